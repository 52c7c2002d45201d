"""Torch-free runtime: numpy + OpenCV and one backend package. Shared pre/post-processing lives here."""
from .config import PipelineConfig
from .errors import CmliteError
from .instances import Instances
from .pipeline import DenseOutputs, Segmenter

__all__ = ["CmliteError", "DenseOutputs", "Instances", "PipelineConfig", "Segmenter"]
