"""Reading user images robustly: every failure is an ImageError with a one-line reason.

read_image(path) -> (H, W, 3) uint8 RGB, with
- EXIF orientation applied (photos come out the way viewers show them; COCO evaluation must NOT do this,
  its annotations are in stored-pixel order: pass exif=False);
- grayscale, palette and RGBA images converted to RGB (alpha dropped);
- 16-bit images scaled to 8 bits over their full range (v / 257), never clipped;
- float images (32- or 64-bit TIFF, ...): values all within 0..1 are scaled by 255 (the float convention of
  OpenCV, scikit-image and torchvision), values within 0..255 are taken as they are (Pillow's mode F), both
  rounded; any other range (negative, over 255, NaN) is refused, saying how to convert the file;
- truncated JPEG / PNG files detected (OpenCV would otherwise decode a half-grey picture);
- damaged JPEG data detected: a file of full length whose compressed data is corrupt (a zero-filled hole left by
  an interrupted download or a bad sector) is a DamagedImageError, where libjpeg would decode it to a different
  picture and only print "Corrupt JPEG data: ..." on stderr. jpeg_data_problem asks libjpeg-turbo itself
  (simplejpeg's strict mode turns its corrupt-data warnings into errors), decoding at 1/8 scale: every
  Huffman code is still read, few pixels are made, so the check costs half to two thirds of a decode. A JPEG
  read with exif=False at full size (training, evaluation) skips that second read: it is decoded once by
  libjpeg-turbo in strict mode (_strict_jpeg), which checks the data as it decodes and gives OpenCV's pixels.
  accept_damaged=True skips the check and returns what libjpeg makes of the file, as before.

Large images. The size is read from the file header first (image_size), so a size problem is reported
before any pixel memory is allocated:
- an image OpenCV would refuse (over 2**30 pixels or 2**20 pixels a side by default; environment variables
  OPENCV_IO_MAX_IMAGE_PIXELS, _WIDTH, _HEIGHT, which OpenCV reads when cv2 is imported) is an ImageError,
  not a cv2 traceback;
- read_image(path, max_pixels=N) refuses images of more than N pixels;
- read_image_reduced(path, N) returns at most N pixels and the scale factor. A sequential JPEG is decoded
  at 1/2, 1/4 or 1/8 by libjpeg's DCT scaling, which works a block row at a time and never holds the full
  image. Everything else over N is refused: OpenCV's IMREAD_REDUCED_* decodes PNG, WebP, TIFF, BMP and PNM
  in full and resizes afterwards, and libjpeg buffers the DCT coefficients of a whole progressive or
  multi-scan JPEG (2 bytes per sample) whatever the output scale. tests/test_images_large.py measures both.
Decoding holds twice the decoded image at its peak: cv2.imdecode's result is copied into a numpy array.
"""
from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass

import cv2
import numpy as np
import simplejpeg

from .errors import OneLineError

__all__ = ["ImageError", "DamagedImageError", "jpeg_data_problem", "read_image", "read_image_reduced", "decode_image",
           "decode_image_reduced", "image_size", "read_image_size", "reduce_factor", "uint16_to_uint8", "float_to_uint8",
           "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jp2")


class ImageError(OneLineError):
    """An input image cannot be used; the message names the file and the reason."""


class DamagedImageError(ImageError):
    """A JPEG of full length whose compressed data is corrupt: decoding it would give a different picture.

    Made with DamagedImageError.of(name, problem, fix): the file, what libjpeg warns about ("Corrupt JPEG data:
    premature end of data segment", ...) and how to use the file anyway; with_fix words that for a caller's own
    option. DamagedImageError(message) alone (as pickling and DataLoader workers re-create it) keeps the message.
    """

    def __init__(self, message: str, name: str | None = None, problem: str | None = None):
        super().__init__(message)
        self.name, self.problem = name, problem

    @classmethod
    def of(cls, name: str, problem: str, fix: str = "pass accept_damaged=True to use it as decoded"):
        return cls(f"{name}: damaged JPEG, its image data is corrupt ({problem}: an interrupted download or a bad "
                   f"sector?) and would decode to a different picture; {fix}", name, problem)

    def with_fix(self, fix: str) -> "DamagedImageError":
        """The same error, its message ending with `fix` instead."""
        return self if self.problem is None else DamagedImageError.of(self.name, self.problem, fix)


def _opencv_limit(variable: str, default: int) -> int:
    """One of OpenCV's decoding limits, parsed as OpenCV parses it: digits, then optionally KB or MB (x1024,
    x1024**2). OpenCV reads it once, when cv2 is loaded (and aborts on a value it cannot parse), so this
    module, which imports cv2 first, reads it once too."""
    match = re.fullmatch(r"(\d+)(KB|Kb|kb|MB|Mb|mb)?", os.environ.get(variable, ""))
    if match is None:
        return default
    return int(match[1]) * {None: 1, "k": 1024, "m": 1024 ** 2}[match[2] and match[2][0].lower()]


_CV_MAX_PIXELS = _opencv_limit("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30)
_CV_MAX_WIDTH = _opencv_limit("OPENCV_IO_MAX_IMAGE_WIDTH", 1 << 20)
_CV_MAX_HEIGHT = _opencv_limit("OPENCV_IO_MAX_IMAGE_HEIGHT", 1 << 20)

_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def read_image(path: str | os.PathLike, exif: bool = True, max_pixels: int | None = None,
               accept_damaged: bool = False) -> np.ndarray:
    """The image at path as (H, W, 3) uint8 RGB; see the module docstring.

    max_pixels: refuse (ImageError) an image of more pixels, before decoding it when image_size can read its
    header. None: only OpenCV's own limit applies. accept_damaged: decode a JPEG with corrupt data as libjpeg
    does instead of raising DamagedImageError.
    """
    path = os.fspath(path)
    return decode_image(_read_bytes(path), path, exif=exif, max_pixels=max_pixels, accept_damaged=accept_damaged)


def read_image_reduced(path: str | os.PathLike, max_pixels: int, exif: bool = True,
                       accept_damaged: bool = False) -> tuple[np.ndarray, float]:
    """The image at path with at most max_pixels pixels, and the factor it was scaled by.

    Returns ((h, w, 3) uint8 RGB, factor): factor = w / the image's full width (after EXIF orientation when
    exif), 1.0 when it fits; a point (x, y) in the returned image is (x / factor, y / factor) in the full image.
    A JPEG over the limit is decoded at 1/reduce_factor(...) and, if still over, resized down (INTER_AREA) to
    the largest size of the same aspect ratio within the limit. Other formats over the limit are refused with an
    ImageError naming the size, the limit and how to raise it; see the module docstring for why. accept_damaged
    as read_image.
    """
    path = os.fspath(path)
    return decode_image_reduced(_read_bytes(path), max_pixels, path, exif=exif, accept_damaged=accept_damaged)


def decode_image(data: bytes, name: str = "image", exif: bool = True,
                 max_pixels: int | None = None, accept_damaged: bool = False) -> np.ndarray:
    """Encoded image bytes -> (H, W, 3) uint8 RGB; see the module docstring and read_image."""
    if len(data) == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    header = _read_header(data, name)
    if header is not None:
        _check_opencv_limits(header.width, header.height, name, header, exif)
        if max_pixels is not None and header.width * header.height > max_pixels:
            raise ImageError(_over_limit(name, header.shown(exif), max_pixels))
    image = _decode(data, name, _flags(exif), accept_damaged)
    if header is None and max_pixels is not None and image.shape[0] * image.shape[1] > max_pixels:
        raise ImageError(_over_limit(name, (image.shape[1], image.shape[0]), max_pixels))
    return image


def decode_image_reduced(data: bytes, max_pixels: int, name: str = "image", exif: bool = True,
                         accept_damaged: bool = False) -> tuple[np.ndarray, float]:
    """Encoded image bytes -> ((h, w, 3) uint8 RGB, factor); see read_image_reduced.

    A format image_size cannot read (it returns None) is decoded in full by OpenCV, then resized: only
    OpenCV's own limit bounds the memory it takes.
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {max_pixels}")
    if len(data) == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    header = _read_header(data, name)
    if header is None:
        image = _decode(data, name, _flags(exif), accept_damaged)
        full_width = image.shape[1]
        image = _shrink(image, max_pixels)
        return image, image.shape[1] / full_width
    full_width, full_height = header.shown(exif)
    if header.width * header.height <= max_pixels:
        _check_opencv_limits(header.width, header.height, name, header, exif)
        return _decode(data, name, _flags(exif), accept_damaged), 1.0
    if not header.reducible:
        # OpenCV's limit first: raising max_pixels would not help with that one.
        _check_opencv_limits(header.width, header.height, name, header, exif)
        raise ImageError(_over_limit(name, (full_width, full_height), max_pixels, header.kind))
    denominator = reduce_factor(header.width, header.height, max_pixels)
    # OpenCV checks its limit on the size libjpeg will output, not on the stored size.
    _check_opencv_limits(-(-header.width // denominator), -(-header.height // denominator), name, header, exif)
    image = _decode(data, name, _flags(exif) | _REDUCED_FLAGS[denominator], accept_damaged)
    expected = (-(-full_height // denominator), -(-full_width // denominator))
    if image.shape[:2] != expected:
        raise ImageError(f"{name}: decoded at 1/{denominator} to {image.shape[1]}x{image.shape[0]}, but its "
                         f"header implies {expected[1]}x{expected[0]}")
    image = _shrink(image, max_pixels)
    return image, image.shape[1] / full_width


def reduce_factor(width: int, height: int, max_pixels: int) -> int:
    """The reduction (1, 2, 4 or 8) read_image_reduced decodes a width x height JPEG at.

    1 when width * height <= max_pixels; otherwise the smallest d of 2, 4 and 8 with
    ceil(width / d) * ceil(height / d) <= max_pixels (libjpeg rounds the reduced size up), or 8 when even 1/8
    is over, the 1/8 image then being resized down to the limit. The smallest: the decoded image stays within
    the limit while discarding no more detail than the limit requires.
    """
    if width * height <= max_pixels:
        return 1
    for denominator in (2, 4, 8):
        if -(-width // denominator) * -(-height // denominator) <= max_pixels:
            return denominator
    return 8


def image_size(data: bytes, name: str = "image", exif: bool = True) -> tuple[int, int] | None:
    """(width, height) in pixels that decode_image(data, exif=exif) returns, read from the header only.

    Reads PNG (IHDR; orientation from eXIf), JPEG (SOFn; orientation from the first Exif APP1 segment), BMP,
    WebP (VP8, VP8L, VP8X; orientation from the EXIF chunk), TIFF and BigTIFF (first IFD, Orientation tag),
    GIF (logical screen), PBM / PGM / PPM and JPEG 2000 (JP2 ihdr box, or a bare codestream's SIZ). With exif,
    orientations 5-8 (a 90-degree turn) swap width and height, as OpenCV 5.1 does; it also turns TIFFs when
    told to ignore orientation, so their size is swapped whatever exif says. OpenCV versions that ignore EXIF
    in PNG or WebP (opencv/opencv#16579) return those unswapped.

    None for other formats (AVIF, PAM, PFM, HDR, Sun raster, ...): OpenCV then learns their size only while
    decoding, so for them nothing is refused before the pixels are allocated, up to OpenCV's own limit.
    ImageError for a recognised format whose header is truncated or corrupt.
    """
    header = _read_header(data, name)
    return None if header is None else header.shown(exif)


# The first read of read_image_size: the headers of COCO's JPEGs end within 4 KB (an ICC profile at most).
_HEADER_BYTES = 16384


def read_image_size(path: str | os.PathLike, exif: bool = True) -> tuple[int, int] | None:
    """(width, height) of the image file at path as read_image(path, exif=exif) returns it, from the header only
    (image_size): the file's first 16 KB, and all of it only when the header runs past them (a large Exif or
    ICC segment, a TIFF directory at the end). None for the formats image_size cannot read.
    ImageError when the file is missing, a folder, unreadable, or its header truncated or corrupt."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read(_HEADER_BYTES)
            try:
                return image_size(data, path, exif=exif)
            except ImageError:
                if len(data) < _HEADER_BYTES:
                    raise
                data += f.read()
        return image_size(data, path, exif=exif)
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None


# ---------------------------------------------------------------------------------------------------------------
# Decoding


def _read_bytes(path: str) -> bytes:
    if not os.path.exists(path):
        raise ImageError(f"{path}: file not found")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a folder, not an image")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None


def _flags(exif: bool) -> int:
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    return flags if exif else flags | cv2.IMREAD_IGNORE_ORIENTATION


def uint16_to_uint8(image: np.ndarray) -> np.ndarray:
    """16-bit pixels to 8 bits over the full range (v / 257, rounded): 65535 -> 255, never clipped."""
    return np.round(image.astype(np.float32) / 257.0).astype(np.uint8)


def float_to_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Float pixels to 8 bits by the module docstring's rule: all within 0..1 -> v * 255, all within 0..255 ->
    v, rounded; ImageError naming `name` for any other range."""
    low, high = float(np.min(image)), float(np.max(image))
    if not (0.0 <= low and high <= 255.0):      # also NaN, which fails every comparison
        raise ImageError(f"{name}: {image.dtype} image with values {low:.4g} to {high:.4g}, neither 0..1 nor 0..255: "
                         f"rescale it to 0..255 and save it with 8 bits, e.g. cv2.imwrite('image.png', "
                         f"cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8))")
    scale = 255.0 if high <= 1.0 else 1.0
    return np.round(image.astype(np.float64) * scale).astype(np.uint8)


def _is_float_tiff(data: bytes) -> bool:
    """A TIFF whose samples are floating point (SampleFormat 3): OpenCV decodes a one-channel one only as it is
    stored (with IMREAD_COLOR it fails, logging an assertion)."""
    if data[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return False
    try:
        return _first_ifd(data, (339,)).get(339) == 3
    except (struct.error, ValueError):
        return False


def _float_image(data: bytes) -> np.ndarray | None:
    """A float image decoded as stored, as (H, W, 3) BGR (gray repeated, alpha dropped); None when it is not
    one."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0 or not np.issubdtype(image.dtype, np.floating):
        return None
    if image.ndim == 2 or image.shape[2] == 1:
        return np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    if image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    return image if image.shape[2] == 3 else None


# What libjpeg says that is not about damaged image data: warnings about metadata (the pixels are right) and
# JPEG kinds this check's libjpeg build does not read (OpenCV's decoding then says whether it can). Everything
# else it reports in strict mode, warnings included ("Corrupt JPEG data: ...", "Inconsistent progression
# sequence", "Unsupported marker type 0x03": a marker that does not exist, read where data was hit), means the
# compressed data is not what was written.
_NOT_DAMAGE = ("Warning: unknown JFIF revision", "Unknown Adobe color transform code", "Corrupt JPEG data: bad ICC marker",
               "Unsupported JPEG process", "Unsupported JPEG data precision", "Unsupported color conversion")


def jpeg_data_problem(data: bytes) -> str | None:
    """What libjpeg reports while reading the compressed data of the JPEG file `data` (e.g. "Corrupt JPEG data:
    premature end of data segment"), or None when it reads cleanly or `data` is not a JPEG. Strict decoding stops
    at the first warning, so a file with a warning about its metadata passes unchecked."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", min_height=1, min_width=1, strict=True)
    except ValueError as e:
        message = str(e).strip()
        return None if message.startswith(_NOT_DAMAGE) else message
    return None


def _strict_jpeg(data: bytes, name: str) -> np.ndarray | None:
    """A JPEG decoded by libjpeg-turbo in strict mode, as stored (no EXIF orientation): (H, W, 3) uint8 RGB, the
    pixels OpenCV's decoding gives (the same libjpeg-turbo algorithms: accurate integer IDCT, fancy upsampling;
    tests/test_images.py compares them on every JPEG kind), DamagedImageError when its data is damaged (what
    jpeg_data_problem reports), None for a file strict decoding does not read (_NOT_DAMAGE: CMYK, 12-bit,
    lossless, metadata warnings), which OpenCV then decodes.

    One decode that checks the data as it goes: a separate jpeg_data_problem check before OpenCV's decode
    reads every Huffman code twice (a training item read from disk spent a fifth of its time in the check)."""
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError as e:
        message = str(e).strip()
        if message.startswith(_NOT_DAMAGE):
            return None
        raise DamagedImageError.of(name, message) from None


def _decode(data: bytes, name: str, flags: int, accept_damaged: bool) -> np.ndarray:
    _check_complete(data, name)
    if not accept_damaged:
        # Full size, orientation ignored (training, evaluation): what the strict decode gives.
        if flags == _flags(exif=False) and data[:3] == b"\xff\xd8\xff":
            image = _strict_jpeg(data, name)
            if image is not None:
                return image
        problem = jpeg_data_problem(data)
        if problem:
            raise DamagedImageError.of(name, problem)
    try:
        image = _float_image(data) if _is_float_tiff(data) else cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:   # e.g. a size limit hit in a format image_size does not read
        reason = str(e).strip().splitlines()[-1]
        raise ImageError(f"{name}: OpenCV cannot decode it ({reason})") from None
    if image is None or image.size == 0:
        raise ImageError(f"{name}: not a readable image (unknown format or corrupt data)")
    if image.dtype == np.uint16:
        image = uint16_to_uint8(image)
    elif np.issubdtype(image.dtype, np.floating):
        image = float_to_uint8(image, name)
    elif image.dtype != np.uint8:
        raise ImageError(f"{name}: unsupported pixel type {image.dtype} (use 8- or 16-bit images)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_complete(data: bytes, name: str) -> None:
    if data[:2] == b"\xff\xd8":
        # The end-of-image marker must follow the last scan; it cannot occur inside entropy-coded data. The
        # usual file ends with it: then any scan marker (found near the start) lies before it, and the scans
        # of a large file need not be searched twice.
        if data.endswith(b"\xff\xd9") and b"\xff\xda" in data:
            return
        last_scan = data.rfind(b"\xff\xda")
        if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
            raise ImageError(f"{name}: truncated JPEG (no end-of-image marker after the image data)")
    elif data[:8] == _PNG_SIGNATURE:
        if data.rfind(b"IEND") < 0:
            raise ImageError(f"{name}: truncated PNG (no IEND chunk)")


def _fit(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest (width, height) of about the same aspect ratio with at most max_pixels pixels."""
    scale = math.sqrt(max_pixels / (width * height))
    fit_width = max(1, min(width, int(width * scale)))
    fit_height = max(1, min(height, int(height * scale), max_pixels // fit_width))
    # Float rounding, or a side held at 1 pixel by an extreme aspect ratio.
    return max(1, min(fit_width, max_pixels // fit_height)), fit_height


def _shrink(image: np.ndarray, max_pixels: int) -> np.ndarray:
    height, width = image.shape[:2]
    if width * height <= max_pixels:
        return image
    return cv2.resize(image, _fit(width, height, max_pixels), interpolation=cv2.INTER_AREA)


def _check_opencv_limits(width: int, height: int, name: str, header: _Header, exif: bool) -> None:
    """ImageError where OpenCV's decoder would raise cv2.error for a width x height output."""
    if width <= _CV_MAX_WIDTH and height <= _CV_MAX_HEIGHT and width * height <= _CV_MAX_PIXELS:
        return
    shown_width, shown_height = header.shown(exif)
    hint = ("; read_image_reduced / the demo's --max-pixels decode a JPEG like this one at reduced size"
            if header.reducible and (width, height) == (header.width, header.height) else "")
    raise ImageError(f"{name}: {shown_width}x{shown_height} {header.kind} ({header.width * header.height:,} "
                     f"pixels) is over OpenCV's decoding limit of {_CV_MAX_PIXELS:,} pixels, {_CV_MAX_WIDTH:,} "
                     f"wide, {_CV_MAX_HEIGHT:,} high (environment variables OPENCV_IO_MAX_IMAGE_PIXELS, "
                     f"_WIDTH, _HEIGHT, read when cv2 is imported){hint}")


def _over_limit(name: str, size: tuple[int, int], max_pixels: int, kind: str | None = None) -> str:
    width, height = size
    why = (f" and OpenCV cannot decode a {kind} at reduced size without allocating all of it" if kind else "")
    return (f"{name}: {width}x{height} image ({width * height:,} pixels) is over the limit of {max_pixels:,} "
            f"pixels{why}; raise the limit (demo: --max-pixels {width * height}) or shrink the file first")


# ---------------------------------------------------------------------------------------------------------------
# Headers: each reader returns the stored size; ImageError when the header is cut short or inconsistent.

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_TRANSPOSING = (5, 6, 7, 8)   # EXIF orientations shown turned by 90 degrees


@dataclass(frozen=True)
class _Header:
    kind: str           # for messages: "PNG", "progressive JPEG", ...
    width: int          # as stored, before EXIF orientation
    height: int
    transposed: bool    # EXIF orientation 5-8: shown with width and height swapped
    reducible: bool = False   # OpenCV decodes it at 1/2, 1/4, 1/8 without a full-size buffer
    always_oriented: bool = False   # the decoder applies the orientation even with IMREAD_IGNORE_ORIENTATION

    def shown(self, exif: bool) -> tuple[int, int]:
        turned = self.transposed and (exif or self.always_oriented)
        return (self.height, self.width) if turned else (self.width, self.height)


def _read_header(data: bytes, name: str) -> _Header | None:
    for signature, reader in _HEADER_READERS:
        if signature(data):
            header = reader(data, name)
            if header is not None and (header.width <= 0 or header.height <= 0):
                raise ImageError(f"{name}: {header.kind} header gives an empty {header.width}x{header.height} image")
            return header
    return None


def _unpack(fmt: str, data: bytes, offset: int, name: str, kind: str) -> tuple:
    if offset + struct.calcsize(fmt) > len(data):
        raise ImageError(f"{name}: truncated {kind} header")
    return struct.unpack_from(fmt, data, offset)


def _png(data: bytes, name: str) -> _Header:
    length, kind, width, height = _unpack(">I4sII", data, 8, name, "PNG")
    if kind != b"IHDR" or length != 13:
        raise ImageError(f"{name}: corrupt PNG (the first chunk is {kind!r}, not IHDR)")
    # OpenCV applies an eXIf chunk wherever it is, before or after the image data.
    exif, position = b"", 8
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"eXIf":
            exif = data[position + 8: position + 8 + length]
        if kind in (b"eXIf", b"IEND"):
            break
        position += length + 12
    return _Header("PNG", width, height, _exif_orientation(exif) in _TRANSPOSING)


# Start-of-frame markers: C4 (Huffman tables), C8 (reserved) and CC (arithmetic conditioning) are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SEQUENTIAL = frozenset({0xC0, 0xC1, 0xC9})
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_LOSSLESS = frozenset({0xC3, 0xC7, 0xCB, 0xCF})


def _jpeg(data: bytes, name: str) -> _Header:
    """Walks the marker segments up to the first scan: the frame header (SOFn) gives the size, the first
    Exif APP1 segment the orientation and the first scan header whether all components share one scan."""
    frame, exif, scan_components, position = None, b"", None, 2
    while scan_components is None:
        # Like libjpeg, skip stray bytes and 0xFF fill bytes before a marker.
        position = data.find(b"\xff", position)
        while 0 <= position < len(data) - 1 and data[position + 1] == 0xFF:
            position += 1
        if position < 0 or position >= len(data) - 1:
            break
        marker = data[position + 1]
        if marker == 0x00 or marker == 0x01 or 0xD0 <= marker <= 0xD8:   # no length field
            position += 2
            continue
        if marker == 0xD9:
            break
        (length,) = _unpack(">H", data, position + 2, name, "JPEG")
        body, end = position + 4, position + 2 + length
        if length < 2 or end > len(data):
            raise ImageError(f"{name}: truncated JPEG header (segment {marker:#04x} runs past the end)")
        if marker in _SOF_MARKERS and frame is None:
            frame = (marker,) + _unpack(">xHHB", data, body, name, "JPEG")
        elif marker == 0xE1 and not exif and data.startswith(b"Exif\x00\x00", body):
            exif = data[body + 6: end]
        elif marker == 0xDA:
            if frame is None:
                raise ImageError(f"{name}: corrupt JPEG (image data before the frame header)")
            (scan_components,) = _unpack("B", data, body, name, "JPEG")
        position = end
    if frame is None:
        raise ImageError(f"{name}: truncated JPEG header (no frame header)")
    marker, height, width, components = frame
    if height == 0:
        raise ImageError(f"{name}: JPEG with its height in a DNL marker (not supported by libjpeg)")
    # libjpeg keeps the coefficients of the whole image when there is more than one scan.
    single_scan = marker in _SEQUENTIAL and scan_components == components
    if marker in _PROGRESSIVE:
        kind = "progressive JPEG"
    elif marker in _LOSSLESS:
        kind = "lossless JPEG"
    elif scan_components is not None and scan_components != components:
        kind = "multi-scan JPEG"
    else:
        kind = "JPEG"
    return _Header(kind, width, height, _exif_orientation(exif) in _TRANSPOSING, reducible=single_scan)


def _bmp(data: bytes, name: str) -> _Header | None:
    (info_size,) = _unpack("<I", data, 14, name, "BMP")
    if info_size not in (12, 16, 40, 52, 56, 64, 108, 124):   # the known BMP / OS/2 info headers
        return None   # "BM" and then not a bitmap: left to OpenCV
    if info_size == 12:   # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = _unpack("<HH", data, 18, name, "BMP")
    else:
        width, height = _unpack("<ii", data, 18, name, "BMP")
    return _Header("BMP", width, abs(height), False)   # a negative height means top-down rows


def _webp(data: bytes, name: str) -> _Header:
    (chunk,) = _unpack("4s", data, 12, name, "WebP")
    transposed = False
    if chunk == b"VP8 ":   # lossy: 3-byte frame tag, start code, 14-bit sizes
        start_code, width, height = _unpack("<3sHH", data, 23, name, "WebP")
        if start_code != b"\x9d\x01\x2a":
            raise ImageError(f"{name}: corrupt WebP (bad VP8 start code)")
        width, height = width & 0x3FFF, height & 0x3FFF
    elif chunk == b"VP8L":   # lossless: signature byte, then 14-bit sizes minus one
        signature, bits = _unpack("<BI", data, 20, name, "WebP")
        if signature != 0x2F:
            raise ImageError(f"{name}: corrupt WebP (bad VP8L signature)")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8X":   # extended: flags, then 24-bit canvas sizes minus one
        flags, width, height = _unpack("<B3x3s3s", data, 20, name, "WebP")
        width, height = int.from_bytes(width, "little") + 1, int.from_bytes(height, "little") + 1
        if flags & 0x08:   # OpenCV applies the EXIF chunk only when this flag announces it
            transposed = _exif_orientation(_riff_chunk(data, b"EXIF")) in _TRANSPOSING
    else:
        raise ImageError(f"{name}: corrupt WebP (unknown first chunk {chunk!r})")
    return _Header("WebP", width, height, transposed)


def _riff_chunk(data: bytes, wanted: bytes) -> bytes:
    position = 12
    while position + 8 <= len(data):
        kind, length = struct.unpack_from("<4sI", data, position)
        if kind == wanted:
            return data[position + 8: position + 8 + length]
        position += 8 + length + (length & 1)
    return b""


def _tiff(data: bytes, name: str) -> _Header:
    try:
        tags = _first_ifd(data, (256, 257, 274))
    except (struct.error, ValueError):
        raise ImageError(f"{name}: truncated or corrupt TIFF header") from None
    if 256 not in tags or 257 not in tags:
        raise ImageError(f"{name}: corrupt TIFF (no ImageWidth / ImageLength in the first directory)")
    # OpenCV 5.1's TIFF decoder orients the image itself (measured, tests/test_images_large.py).
    return _Header("TIFF", tags[256], tags[257], tags.get(274, 1) in _TRANSPOSING, always_oriented=True)


_TIFF_VALUE_FORMATS = {3: "H", 4: "I", 16: "Q"}   # SHORT, LONG, LONG8 (BigTIFF)


def _first_ifd(data: bytes, wanted: tuple[int, ...]) -> dict[int, int]:
    """The (first) value of each wanted integer tag in the first directory of TIFF-structured bytes (a TIFF or
    BigTIFF file, or an EXIF block); struct.error or ValueError when the bytes run out or make no sense."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None:
        raise ValueError("no TIFF byte-order mark")
    (version,) = struct.unpack_from(order + "H", data, 2)
    if version == 42:
        (directory,) = struct.unpack_from(order + "I", data, 4)
        # Entries: tag, type, value count, then the value (or its offset) in a 4-byte field.
        count_format, entry_format, value_offset, entry_size, offset_format = "H", "HHI", 8, 12, "I"
    elif version == 43:
        (directory,) = struct.unpack_from(order + "Q", data, 8)
        count_format, entry_format, value_offset, entry_size, offset_format = "Q", "HHQ", 12, 20, "Q"   # 8 bytes
    else:
        raise ValueError(f"TIFF version {version}")
    (count,) = struct.unpack_from(order + count_format, data, directory)
    first = directory + struct.calcsize(count_format)
    values = {}
    for entry in range(first, first + count * entry_size, entry_size):
        tag, value_type, value_count = struct.unpack_from(order + entry_format, data, entry)
        if tag in wanted and value_type in _TIFF_VALUE_FORMATS and value_count >= 1:
            value_format = order + _TIFF_VALUE_FORMATS[value_type]
            where = entry + value_offset
            if struct.calcsize(value_format) * value_count > entry_size - value_offset:   # stored elsewhere
                (where,) = struct.unpack_from(order + offset_format, data, where)
            (values[tag],) = struct.unpack_from(value_format, data, where)
    return values


def _exif_orientation(exif: bytes) -> int:
    """The Orientation tag (1-8) of an EXIF block (TIFF-structured); 1 when absent or unreadable."""
    try:
        return _first_ifd(exif, (0x0112,)).get(0x0112, 1)
    except (struct.error, ValueError):
        return 1


def _gif(data: bytes, name: str) -> _Header:
    width, height = _unpack("<HH", data, 6, name, "GIF")   # the logical screen, which OpenCV decodes
    return _Header("GIF", width, height, False)


# PBM / PGM / PPM: magic, whitespace or comments, width, whitespace or comments, height, whitespace.
_PNM_HEADER = re.compile(rb"P[1-6](?:\s|#[^\n]*\n)+(\d+)(?:\s|#[^\n]*\n)+(\d+)[\s#]")


def _pnm(data: bytes, name: str) -> _Header:
    match = _PNM_HEADER.match(data)
    if match is None:
        raise ImageError(f"{name}: truncated or corrupt PNM header")
    return _Header("PNM", int(match[1]), int(match[2]), False)


def _jp2(data: bytes, name: str) -> _Header:
    """A JP2 file: the image header box (ihdr) inside the header superbox (jp2h)."""
    position, end = 0, len(data)
    while True:
        length, kind = _unpack(">I4s", data, position, name, "JPEG 2000")
        body = position + 8
        if length == 1:   # a 64-bit length follows the type
            (length,) = _unpack(">Q", data, body, name, "JPEG 2000")
            body += 8
        box_end = end if length == 0 else position + length
        if box_end <= position or box_end > end:
            raise ImageError(f"{name}: truncated or corrupt JPEG 2000 header (box {kind!r})")
        if kind == b"jp2h":
            position, end = body, box_end   # descend into the superbox
            continue
        if kind == b"ihdr":
            height, width = _unpack(">II", data, body, name, "JPEG 2000")
            return _Header("JPEG 2000", width, height, False)
        position = box_end


def _j2k(data: bytes, name: str) -> _Header:
    """A bare JPEG 2000 codestream: SOC, then SIZ with the reference grid size and the image offset on it."""
    grid_width, grid_height, x_offset, y_offset = _unpack(">IIII", data, 8, name, "JPEG 2000")
    return _Header("JPEG 2000", grid_width - x_offset, grid_height - y_offset, False)


_HEADER_READERS = (
    (lambda data: data.startswith(_PNG_SIGNATURE), _png),
    (lambda data: data.startswith(b"\xff\xd8\xff"), _jpeg),
    (lambda data: data.startswith(b"BM"), _bmp),
    (lambda data: data.startswith(b"RIFF") and data[8:12] == b"WEBP", _webp),
    (lambda data: data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), _tiff),
    (lambda data: data[:6] in (b"GIF87a", b"GIF89a"), _gif),
    (lambda data: re.match(rb"P[1-6]\s", data) is not None, _pnm),
    (lambda data: data.startswith(_JP2_SIGNATURE), _jp2),
    (lambda data: data.startswith(b"\xff\x4f\xff\x51"), _j2k),
)
