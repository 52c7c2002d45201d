"""Data and quantization: the synthetic COCO-format shapes dataset and its moving scene, calibration frames from
any source, COCO evaluation (coco_eval.py, coco_results.py) and the INT8 quantizers."""
