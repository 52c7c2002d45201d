"""The Raspberry Pi camera module through libcamera's Python interface, picamera2: `picam:N` (camera N, 0 the
first), frames in the same BGR form as every other source. On a Pi 5 the camera module is not a plain V4L2
device, so OpenCV cannot open it; picamera2 comes with Raspberry Pi OS (`sudo apt install python3-picamera2`)."""
from __future__ import annotations

import numpy as np

from .errors import CmliteError
from .system_packages import system_import

INSTALL = "sudo apt install python3-picamera2 (Raspberry Pi OS; on other systems the Pi camera is not there)"


class PicamCapture:
    backend = "picamera2 (libcamera)"
    live = True

    def __init__(self, index: int, settings=None):
        module = system_import("picamera2", "picam: (the Raspberry Pi camera)", INSTALL)
        try:
            self.cam = module.Picamera2(index)
        except (IndexError, RuntimeError) as e:
            raise CmliteError(f"picam:{index}: no such camera ({e}): check `rpicam-hello --list-cameras`") from None
        main = {"format": "RGB888"}  # picamera2's RGB888 is laid out B, G, R: OpenCV's order
        if settings is not None and settings.size:
            main["size"] = tuple(settings.size)
        controls = {}
        if settings is not None and settings.fps:
            frame_us = int(1e6 / settings.fps)
            controls["FrameDurationLimits"] = (frame_us, frame_us)
        self.cam.configure(self.cam.create_video_configuration(main=main, controls=controls))
        self.cam.start()
        self.fps = settings.fps if settings is not None and settings.fps else None
        self.width, self.height = self.cam.camera_configuration()["main"]["size"]  # picamera2's sizes are (w, h)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.cam is None:
            return False, None
        try:
            frame = self.cam.capture_array("main")
        except RuntimeError:
            return False, None
        return True, np.ascontiguousarray(frame[:, :, :3])

    def cpu_s(self) -> float | None:
        return None

    def isOpened(self) -> bool:  # noqa: N802 (cv2.VideoCapture's name)
        return self.cam is not None

    def release(self) -> None:
        if self.cam is not None:
            self.cam.stop()
            self.cam.close()
            self.cam = None
