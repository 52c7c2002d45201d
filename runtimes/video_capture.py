"""Opening cameras, video files and streams with OpenCV: what both the camera app's sources (apps/sources.py) and
the INT8 calibration frames (calibration/frames.py) read from. Torch-free: OpenCV only."""
from __future__ import annotations

import cv2

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}


def open_capture(*args) -> cv2.VideoCapture:
    """cv2.VideoCapture(*args) without OpenCV's backend warnings: callers raise their own one-line error."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(*args)
    finally:
        cv2.utils.logging.setLogLevel(level)
