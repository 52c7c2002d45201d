"""Calibration and evaluation data for CenterMask-Lite: a deterministic synthetic COCO-format shapes dataset."""
