"""Export and conversion of CenterMask-Lite to edge targets (ONNX Runtime, OpenVINO, TFLite/LiteRT, TensorRT)."""
