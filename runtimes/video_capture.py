"""Opening cameras, video files and streams with OpenCV: what both the camera app's sources (apps/camera/sources.py) and
the INT8 calibration frames (calibration/frames.py) read from. Torch-free: OpenCV only."""
from __future__ import annotations

import cv2

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}


def open_capture(*args) -> cv2.VideoCapture:
    """cv2.VideoCapture(*args) without OpenCV's backend warnings or FFmpeg's own lines ("[tcp @ 0x...] Connection
    ... failed"): callers raise their own one-line error (`cmlite -v` shows them all)."""
    from .quiet import native_logs, quiet_ffmpeg

    quiet_ffmpeg()  # FFmpeg's decoding lines too, for the frames read from it
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        with native_logs():
            return cv2.VideoCapture(*args)
    finally:
        cv2.utils.logging.setLogLevel(level)
