"""Reading user images robustly: every failure is an ImageError with a one-line reason.

read_image(path) -> (H, W, 3) uint8 RGB, with
- EXIF orientation applied (photos come out the way viewers show them; COCO evaluation must NOT do this,
  its annotations are in stored-pixel order: pass exif=False);
- grayscale, palette and RGBA images converted to RGB (alpha dropped);
- 16-bit images scaled to 8 bits over their full range (v / 257), never clipped;
- truncated JPEG / PNG files detected (OpenCV would otherwise decode a half-grey picture).
"""
from __future__ import annotations

import os

import cv2
import numpy as np

__all__ = ["ImageError", "read_image", "decode_image", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jp2")


class ImageError(ValueError):
    """An input image cannot be used; the message names the file and the reason."""


def read_image(path: str | os.PathLike, exif: bool = True) -> np.ndarray:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(f"{path}: file not found")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a folder, not an image")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    return decode_image(data, path, exif=exif)


def decode_image(data: bytes, name: str = "image", exif: bool = True) -> np.ndarray:
    """Encoded image bytes -> (H, W, 3) uint8 RGB; see the module docstring."""
    if len(data) == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    _check_complete(data, name)
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    if not exif:
        flags |= cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.size == 0:
        raise ImageError(f"{name}: not a readable image (unknown format or corrupt data)")
    if image.dtype == np.uint16:
        image = np.round(image.astype(np.float32) / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"{name}: unsupported pixel type {image.dtype} (use 8- or 16-bit images)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_complete(data: bytes, name: str) -> None:
    if data[:2] == b"\xff\xd8":
        # The end-of-image marker must follow the last scan; it cannot occur inside entropy-coded data.
        last_scan = data.rfind(b"\xff\xda")
        if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
            raise ImageError(f"{name}: truncated JPEG (no end-of-image marker after the image data)")
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if data.rfind(b"IEND") < 0:
            raise ImageError(f"{name}: truncated PNG (no IEND chunk)")
