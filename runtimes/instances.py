"""The instances every backend returns: numpy arrays in the original image frame."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Instances:
    boxes: np.ndarray  # (N, 4) float32 x1y1x2y2, clipped to the image
    scores: np.ndarray  # (N,) float32
    classes: np.ndarray  # (N,) int64, contiguous 0..K-1
    masks: np.ndarray  # (N, H, W) bool
    mask_scores: np.ndarray  # (N,) float32; == scores when there is no MaskIoU head
    image_hw: tuple[int, int] = (0, 0)
    class_names: tuple[str, ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, idx) -> "Instances":
        return Instances(self.boxes[idx], self.scores[idx], self.classes[idx], self.masks[idx],
                         self.mask_scores[idx], self.image_hw, self.class_names)

    @staticmethod
    def empty(image_hw: tuple[int, int], class_names=()) -> "Instances":
        h, w = image_hw
        return Instances(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                         np.zeros((0, h, w), bool), np.zeros(0, np.float32), image_hw, tuple(class_names))

    def label(self, i: int) -> str:
        c = int(self.classes[i])
        return self.class_names[c] if c < len(self.class_names) else str(c)
