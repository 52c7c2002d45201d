"""Torch-free runtime: numpy + OpenCV and one backend package. Shared pre/post-processing lives here.

    import cv2
    from cmlite import runtimes
    seg = runtimes.load("out/openvino-fp32", threads=2)
    inst = seg.predict(cv2.imread("image.jpg"))
"""
from importlib import metadata as _metadata

from .config import PipelineConfig
from .errors import CmliteError
from .instances import Instances
from .loader import load
from .manifest import Manifest, read_manifest
from .pipeline import DenseOutputs, Segmenter

try:
    __version__ = _metadata.version("cmlite")
except _metadata.PackageNotFoundError:  # run from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["CmliteError", "DenseOutputs", "Instances", "Manifest", "PipelineConfig", "Segmenter", "load",
           "read_manifest"]
