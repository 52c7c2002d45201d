"""The instances every backend returns: numpy arrays in the original image frame.

Masks are kept as each instance's box region (`BoxMasks`): what drawing and RLE encoding read. `masks`, the
(N, H, W) full-frame array, is made on first use (50 masks of a 640x480 frame are 15 MB to fill).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class BoxMasks:
    crops: list[np.ndarray]  # per instance, (h_i, w_i) bool: the mask inside its region
    origins: np.ndarray  # (N, 2) int64: (y, x) of each region's top-left pixel in the image
    image_hw: tuple[int, int]

    def __len__(self) -> int:
        return len(self.crops)

    def region(self, i: int) -> tuple[slice, slice]:
        """The image slice that crop i covers."""
        (y, x), (h, w) = self.origins[i], self.crops[i].shape
        return slice(int(y), int(y) + h), slice(int(x), int(x) + w)

    def full(self) -> np.ndarray:
        """(N, H, W) bool, every mask in the whole frame."""
        out = np.zeros((len(self), *self.image_hw), bool)
        for i, crop in enumerate(self.crops):
            if crop.size:
                out[(i, *self.region(i))] = crop
        return out

    def take(self, idx) -> "BoxMasks":
        picked = np.arange(len(self))[idx]
        return BoxMasks([self.crops[i] for i in np.atleast_1d(picked).tolist()], self.origins[idx].reshape(-1, 2),
                        self.image_hw)


@dataclass
class Instances:
    boxes: np.ndarray  # (N, 4) float32 x1y1x2y2, clipped to the image
    scores: np.ndarray  # (N,) float32
    classes: np.ndarray  # (N,) int64, contiguous 0..K-1
    box_masks: BoxMasks  # each mask in its box region; `masks` is the full-frame (N, H, W) bool array
    mask_scores: np.ndarray  # (N,) float32; == scores when there is no MaskIoU head
    image_hw: tuple[int, int] = (0, 0)
    class_names: tuple[str, ...] = field(default=(), repr=False)
    _full: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool in the original frame (made on first use, then kept)."""
        if self._full is None:
            self._full = self.box_masks.full()
        return self._full

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, idx) -> "Instances":
        return Instances(self.boxes[idx], self.scores[idx], self.classes[idx], self.box_masks.take(idx),
                         self.mask_scores[idx], self.image_hw, self.class_names)

    @staticmethod
    def empty(image_hw: tuple[int, int], class_names=()) -> "Instances":
        return Instances(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                         BoxMasks([], np.zeros((0, 2), np.int64), tuple(image_hw)), np.zeros(0, np.float32),
                         tuple(image_hw), tuple(class_names))

    def label(self, i: int) -> str:
        c = int(self.classes[i])
        return self.class_names[c] if c < len(self.class_names) else str(c)
