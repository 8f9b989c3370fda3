"""Large images: sizes read from headers, refusals before decoding, reduced JPEG decoding and its memory.

Big test images are made without allocating their pixels: a PNG of zeros from one deflated row repeated, and
a mid-grey JPEG whose entropy-coded data is 2 zero bits per 8x8 block (both written by hand below).
Memory is measured as the peak resident set size of a fresh Python process.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import zlib

import cv2
import numpy as np
import pytest

from higherhrnet import images
from higherhrnet.images import (ImageError, decode_image, decode_image_reduced, image_size, read_image,
                                read_image_reduced, reduce_factor)

ORIENTATION = 0x0112


# ---------------------------------------------------------------------------------------------------------------
# Writers

def encode(ext: str, image: np.ndarray, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def zero_png(width: int, height: int) -> bytes:
    """A valid 8-bit grayscale PNG of zeros of any size, in milliseconds: one row (filter byte + zeros) is
    deflated and fully flushed, which resets the compressor, so the same bytes encode every further row. The
    stream ends with an empty final fixed-Huffman block and the Adler-32 of n zero bytes, (n % 65521) << 16 | 1."""
    row = bytes(width + 1)
    compressor = zlib.compressobj()
    first = compressor.compress(row) + compressor.flush(zlib.Z_FULL_FLUSH)   # starts with the 2-byte zlib header
    again = compressor.compress(row) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert first[2:] == again
    n = height * len(row)
    stream = first + again * (height - 1) + b"\x03\x00" + struct.pack(">I", (n % 65521) << 16 | 1)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", stream)
            + png_chunk(b"IEND", b""))


def jpeg_segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def flat_jpeg(width: int, height: int, components: int = 3, one_scan: bool = True) -> bytes:
    """A mid-grey (128) baseline JPEG of any size, in milliseconds. 4:4:4; each Huffman table holds one 1-bit
    code (DC difference category 0, AC end of block), so every 8x8 block is 2 zero bits. one_scan=False puts
    each component in its own scan (a multi-scan sequential JPEG)."""
    ids = range(1, components + 1)
    frame = struct.pack(">BHHB", 8, height, width, components) + b"".join(bytes([c, 0x11, 0]) for c in ids)
    one_code = bytes([1] + [0] * 15)
    tables = b"\x00" + one_code + b"\x00" + b"\x10" + one_code + b"\x00"
    head = (b"\xff\xd8" + jpeg_segment(0xDB, b"\x00" + b"\x01" * 64) + jpeg_segment(0xC0, frame)
            + jpeg_segment(0xC4, tables))

    def scan(scan_ids) -> bytes:
        bits = 2 * len(scan_ids) * -(-width // 8) * -(-height // 8)
        data = bytearray((bits + 7) // 8)
        if bits % 8:
            data[-1] = (1 << (8 - bits % 8)) - 1   # pad the last byte with 1 bits
        selectors = b"".join(bytes([c, 0]) for c in scan_ids)
        return jpeg_segment(0xDA, bytes([len(scan_ids)]) + selectors + b"\x00\x3f\x00") + bytes(data)

    scans = scan(list(ids)) if one_scan else b"".join(scan([c]) for c in ids)
    return head + scans + b"\xff\xd9"


def exif_block(orientation: int, order: str = "<") -> bytes:
    """A TIFF-structured EXIF block whose first directory holds only the Orientation tag."""
    mark = b"II*\x00" if order == "<" else b"MM\x00*"
    entry = struct.pack(order + "HHIHH", ORIENTATION, 3, 1, orientation, 0)
    return mark + struct.pack(order + "IH", 8, 1) + entry + struct.pack(order + "I", 0)


def with_jpeg_exif(jpeg: bytes, orientation: int, order: str = "<") -> bytes:
    return jpeg[:2] + jpeg_segment(0xE1, b"Exif\x00\x00" + exif_block(orientation, order)) + jpeg[2:]


def with_png_exif(png: bytes, orientation: int) -> bytes:
    """eXIf placed after the image data, where OpenCV still applies it."""
    end = png.rfind(b"IEND") - 4
    return png[:end] + png_chunk(b"eXIf", exif_block(orientation)) + png[end:]


def extended_webp(image: np.ndarray, orientation: int) -> bytes:
    """A VP8X WebP: the lossless bitstream OpenCV writes, plus an EXIF chunk announced in the VP8X flags."""
    simple = encode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert simple[12:16] == b"VP8L"
    height, width = image.shape[:2]
    vp8x = b"VP8X" + struct.pack("<IB3x", 10, 0x08) + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little")
    exif = exif_block(orientation)
    exif_chunk = b"EXIF" + struct.pack("<I", len(exif)) + exif + b"\x00" * (len(exif) & 1)
    body = b"WEBP" + vp8x + simple[12:] + exif_chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


def gray_tiff(image: np.ndarray, orientation: int | None = None, order: str = "<", big: bool = False) -> bytes:
    """An uncompressed 8-bit grayscale TIFF (or BigTIFF), one strip, optionally with an Orientation tag."""
    height, width = image.shape
    tags = [(256, 3, width), (257, 3, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 0),
            (277, 3, 1), (278, 3, height), (279, 4, height * width)]
    tags = sorted(tags + ([(274, 3, orientation)] if orientation else []))
    count_format, entry_format, field, first = ("Q", "HHQ", 8, 16) if big else ("H", "HHI", 4, 8)
    entry_size = struct.calcsize(order + entry_format) + field
    pixels_at = first + struct.calcsize(order + count_format) + len(tags) * entry_size + field
    head = (b"II" if order == "<" else b"MM") + (
        struct.pack(order + "HHHQ", 43, 8, 0, first) if big else struct.pack(order + "HI", 42, first))
    out = head + struct.pack(order + count_format, len(tags))
    for tag, value_type, value in tags:
        value = pixels_at if tag == 273 else value
        out += struct.pack(order + entry_format, tag, value_type, 1)
        out += struct.pack(order + ("H" if value_type == 3 else "I"), value).ljust(field, b"\x00")
    return out + bytes(field) + image.tobytes()


def jp2_codestream(jp2: bytes) -> bytes:
    """The bare JPEG 2000 codestream inside a JP2 file's contiguous-codestream box."""
    start = jp2.index(b"jp2c") + 4
    assert jp2[start:start + 4] == b"\xff\x4f\xff\x51"
    return jp2[start:]


def cv2_size(data: bytes, exif: bool = True) -> tuple[int, int]:
    flags = cv2.IMREAD_COLOR if exif else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    assert decoded is not None
    return decoded.shape[1], decoded.shape[0]


# ---------------------------------------------------------------------------------------------------------------
# Header sizes

W, H = 131, 97   # odd, not a multiple of 8 or 16; large enough for OpenJPEG's default resolution count
RNG = np.random.default_rng(0)
COLOR = RNG.integers(0, 255, (H, W, 3), dtype=np.uint8)
GRAY = COLOR[:, :, 0].copy()

SMALL_FILES = {
    "png": lambda: encode(".png", COLOR),
    "png 16-bit gray": lambda: encode(".png", GRAY.astype(np.uint16) * 257),
    "jpeg 4:2:0": lambda: encode(".jpg", COLOR),
    "jpeg gray": lambda: encode(".jpg", GRAY),
    "jpeg progressive": lambda: encode(".jpg", COLOR, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    "jpeg multi-scan": lambda: flat_jpeg(W, H, one_scan=False),
    "bmp": lambda: encode(".bmp", COLOR),
    "bmp 8-bit": lambda: encode(".bmp", GRAY),
    "webp lossy": lambda: encode(".webp", COLOR, [cv2.IMWRITE_WEBP_QUALITY, 90]),
    "webp lossless": lambda: encode(".webp", COLOR, [cv2.IMWRITE_WEBP_QUALITY, 101]),
    "webp extended": lambda: extended_webp(COLOR, 1),
    "tiff": lambda: encode(".tif", COLOR),
    "tiff big-endian": lambda: gray_tiff(GRAY, order=">"),
    "bigtiff": lambda: gray_tiff(GRAY, big=True),
    "gif": lambda: encode(".gif", COLOR),
    "ppm": lambda: encode(".ppm", COLOR),
    "pgm": lambda: encode(".pgm", GRAY),
    "pbm": lambda: encode(".pbm", GRAY),
    "pgm ascii, comments": lambda: encode(".pgm", GRAY, [cv2.IMWRITE_PXM_BINARY, 0]).replace(
        b"P2\n", b"P2\n# a comment\n# another\n", 1),
    "jp2": lambda: encode(".jp2", COLOR),
    "j2k codestream": lambda: jp2_codestream(encode(".jp2", COLOR)),
}


@pytest.mark.parametrize("kind", SMALL_FILES)
def test_header_size_is_the_size_opencv_decodes(kind):
    data = SMALL_FILES[kind]()
    assert cv2_size(data) == (W, H)   # the premise: OpenCV reads every one of these
    assert image_size(data, "x") == (W, H)
    assert image_size(data, "x", exif=False) == (W, H)


def test_unparsed_formats_give_none_and_are_decoded_then_shrunk():
    pam = encode(".pam", np.zeros((48, 64, 3), np.uint8))
    assert image_size(pam) is None
    assert image_size(b"BMW is a car maker, not a bitmap") is None
    image, factor = decode_image_reduced(pam, 64 * 48 // 4)
    assert image.shape == (24, 32, 3) and factor == 0.5


@pytest.mark.parametrize("orientation, turned", [(1, False), (3, False), (6, True), (8, True)])
@pytest.mark.parametrize("kind", ["jpeg", "jpeg big-endian exif", "png", "webp", "tiff"])
def test_exif_orientation_swaps_width_and_height_as_opencv_does(kind, orientation, turned):
    data = {"jpeg": lambda: with_jpeg_exif(encode(".jpg", COLOR), orientation),
            "jpeg big-endian exif": lambda: with_jpeg_exif(encode(".jpg", COLOR), orientation, ">"),
            "png": lambda: with_png_exif(encode(".png", COLOR), orientation),
            "webp": lambda: extended_webp(COLOR, orientation),
            "tiff": lambda: gray_tiff(GRAY, orientation)}[kind]()
    shown = (H, W) if turned else (W, H)
    assert cv2_size(data) == shown
    # OpenCV's TIFF decoder turns the image even when told to ignore the orientation.
    assert cv2_size(data, exif=False) == (shown if kind == "tiff" else (W, H))
    assert image_size(data) == shown
    assert image_size(data, exif=False) == cv2_size(data, exif=False)


def test_jpeg_segments_are_skipped_by_their_length():
    jpeg = encode(".jpg", COLOR)
    fake_frame = b"\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x03"   # a 16x16 SOF0 inside another segment's payload
    xmp = jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + fake_frame)
    data = (jpeg[:2] + jpeg_segment(0xE2, fake_frame) + xmp + b"\xff\xff\xff"   # fill bytes before a marker
            + jpeg_segment(0xFE, b"comment " + fake_frame)
            + jpeg_segment(0xE1, b"Exif\x00\x00" + exif_block(6)) + jpeg[2:])
    assert cv2_size(data) == (H, W)
    assert image_size(data) == (H, W)


CUT_INSIDE_HEADER = {
    "png": lambda data: data[:20],                                 # inside IHDR
    "jpeg": lambda data: data[:data.index(b"\xff\xc0") + 6],       # inside the frame header
    "bmp": lambda data: data[:20],
    "webp": lambda data: data[:22],                                # inside the VP8L header
    "tiff": lambda data: data[:struct.unpack_from("<I", data, 4)[0] + 20],   # inside the first directory
    "gif": lambda data: data[:8],
    "pgm": lambda data: data[:data.index(b"\n", 3) - 1],            # "P5\n131 9": the height cut short
    "jp2": lambda data: data[:50],                                 # inside the ihdr box
}


@pytest.mark.parametrize("kind, ext, image", [
    ("png", ".png", COLOR), ("jpeg", ".jpg", COLOR), ("bmp", ".bmp", COLOR), ("webp", ".webp", COLOR),
    ("tiff", ".tif", COLOR), ("gif", ".gif", COLOR), ("pgm", ".pgm", GRAY), ("jp2", ".jp2", COLOR),
])
def test_truncated_headers_are_image_errors(kind, ext, image, tmp_path):
    cut = CUT_INSIDE_HEADER[kind](encode(ext, image))
    with pytest.raises(ImageError, match="truncated"):
        image_size(cut, "cut" + ext)
    path = tmp_path / ("cut" + ext)
    path.write_bytes(cut)
    for read in (read_image, lambda p: read_image_reduced(p, 100)):
        with pytest.raises(ImageError, match="cut"):
            read(path)


# ---------------------------------------------------------------------------------------------------------------
# Refusals before decoding

def test_png_over_opencv_limit_is_an_image_error_and_the_next_file_still_reads(tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(zero_png(40000, 30000))   # 1.2e9 pixels, 1.5 MB
    with pytest.raises(cv2.error):            # the reported crash: OpenCV refuses it from its header
        cv2.imdecode(np.fromfile(huge, np.uint8), cv2.IMREAD_COLOR)
    normal = tmp_path / "normal.png"
    normal.write_bytes(zero_png(40, 30))
    results = []
    for path in (huge, normal):                # how the demo goes through a folder
        try:
            results.append(read_image_reduced(path, 50_000_000)[0].shape)
        except ImageError as e:
            results.append(str(e))
    assert results[1] == (30, 40, 3)
    assert "huge.png: 40000x30000" in results[0] and "1,200,000,000 pixels" in results[0]
    assert "OPENCV_IO_MAX_IMAGE_PIXELS" in results[0]
    with pytest.raises(ImageError, match="OPENCV_IO_MAX_IMAGE_PIXELS"):
        read_image(huge)


def test_png_over_max_pixels_is_refused_without_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    path.write_bytes(zero_png(30000, 30000))

    def no_decoding(*args):
        raise AssertionError("decoded")
    monkeypatch.setattr(images.cv2, "imdecode", no_decoding)
    messages = []
    for read in (lambda: read_image_reduced(path, 50_000_000), lambda: read_image(path, max_pixels=50_000_000)):
        with pytest.raises(ImageError) as error:
            read()
        messages.append(str(error.value))
    for part in (f"{path}: 30000x30000", "900,000,000 pixels", "limit of 50,000,000", "--max-pixels 900000000"):
        assert all(part in message for message in messages)
    assert "cannot decode a PNG at reduced size" in messages[0]


def test_png_at_or_under_max_pixels_is_decoded():
    data = zero_png(37, 23)
    assert decode_image(data, max_pixels=37 * 23).shape == (23, 37, 3)
    image, factor = decode_image_reduced(data, 37 * 23)
    assert image.shape == (23, 37, 3) and factor == 1.0 and not image.any()
    with pytest.raises(ImageError, match="over the limit of 850 pixels"):
        decode_image(data, "a.png", max_pixels=37 * 23 - 1)
    with pytest.raises(ImageError, match="cannot decode a PNG at reduced size"):
        decode_image_reduced(data, 37 * 23 - 1, "a.png")


@pytest.mark.parametrize("data, kind", [
    (encode(".jpg", COLOR, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), "progressive JPEG"),
    (flat_jpeg(W, H, one_scan=False), "multi-scan JPEG"),
])
def test_jpegs_buffered_in_full_are_refused_over_the_limit(data, kind):
    with pytest.raises(ImageError, match=f"cannot decode a {kind} at reduced size"):
        decode_image_reduced(data, W * H - 1)
    image, factor = decode_image_reduced(data, W * H)
    assert image.shape == (H, W, 3) and factor == 1.0


def test_opencv_limit_follows_its_environment_variable(tmp_path):
    """With OPENCV_IO_MAX_IMAGE_PIXELS=1KB (1024 pixels) OpenCV refuses a 41x25 PNG but not a 40x25 one, and a
    64x48 JPEG only at full size: it checks the size it will output, 32x24 at 1/2."""
    for width in (40, 41):
        (tmp_path / f"{width}.png").write_bytes(zero_png(width, 25))
    (tmp_path / "64.jpg").write_bytes(flat_jpeg(64, 48))
    lines = run_python("""
        import cv2, numpy as np
        for path, flags, limit in [(sys.argv[1], cv2.IMREAD_COLOR, None), (sys.argv[2], cv2.IMREAD_COLOR, None),
                                   (sys.argv[3], cv2.IMREAD_COLOR, None),
                                   (sys.argv[3], cv2.IMREAD_REDUCED_COLOR_2, 1000)]:
            try:
                cv2.imdecode(np.fromfile(path, np.uint8), flags)
                opencv = "ok"
            except cv2.error:
                opencv = "refused"
            try:
                if limit is None:
                    images.read_image(path)
                else:
                    assert images.read_image_reduced(path, limit)[0].shape == (24, 32, 3)
                ours = "ok"
            except images.ImageError as e:
                ours = "refused" if "OPENCV_IO_MAX_IMAGE_PIXELS" in str(e) else str(e)
            print(opencv, ours)
    """, tmp_path / "40.png", tmp_path / "41.png", tmp_path / "64.jpg", OPENCV_IO_MAX_IMAGE_PIXELS="1KB")
    assert lines == ["ok ok", "refused refused", "refused refused", "ok ok"]


# ---------------------------------------------------------------------------------------------------------------
# Reduced JPEG decoding

def test_reduce_factor_picks_the_smallest_power_of_two_within_the_limit():
    # 4000x3000 decodes to 2000x1500, 1000x750, 500x375 at 1/2, 1/4, 1/8
    cases = {12_000_000: 1, 11_999_999: 2, 3_000_000: 2, 2_999_999: 4, 750_000: 4, 749_999: 8,
             187_500: 8, 1_000: 8}
    assert {limit: reduce_factor(4000, 3000, limit) for limit in cases} == cases
    # libjpeg rounds up: 1001x777 decodes to 501x389 at 1/2
    assert reduce_factor(1001, 777, 501 * 389) == 2 and reduce_factor(1001, 777, 501 * 389 - 1) == 4


@pytest.mark.parametrize("limit, shape", [(3_000_000, (1500, 2000)), (750_000, (750, 1000)),
                                          (187_500, (375, 500))])
def test_large_jpeg_is_decoded_reduced(limit, shape):
    image, factor = decode_image_reduced(flat_jpeg(4000, 3000), limit)
    assert image.shape == shape + (3,) and factor == shape[1] / 4000
    assert (image == 128).all()


def test_jpeg_still_over_the_limit_at_one_eighth_is_resized_to_it():
    image, factor = decode_image_reduced(flat_jpeg(4000, 3000), 100_000)
    height, width = image.shape[:2]
    assert width * height <= 100_000 < (width + 1) * (height + 1)
    assert abs(width / height - 4 / 3) < 0.01 and factor == width / 4000


def test_reduced_size_rounding_matches_libjpeg():
    image, factor = decode_image_reduced(flat_jpeg(1001, 777), 501 * 389)
    assert image.shape == (389, 501, 3) and factor == 501 / 1001


def test_reduced_jpeg_factor_is_relative_to_the_shown_width():
    data = with_jpeg_exif(flat_jpeg(800, 600), 6)   # shown 600 wide, 800 high
    image, factor = decode_image_reduced(data, 30_000)
    assert image.shape == (200, 150, 3) and factor == 150 / 600
    image, factor = decode_image_reduced(data, 30_000, exif=False)
    assert image.shape == (150, 200, 3) and factor == 200 / 800


def run_python(script: str, *args, **env) -> list[str]:
    """Runs script in a fresh Python process and returns the lines it prints. There, `images` is
    higherhrnet/images.py loaded without the package's __init__ (which would import torch), its JPEG data
    check already run once, so that peak() measures images, not code; peak() is
    the process's peak resident set size in bytes: VmHWM, which starts afresh with the new program, unlike
    getrusage's ru_maxrss, which a child inherits from this (large) pytest process."""
    prelude = textwrap.dedent(f"""
        import importlib, sys, types
        package = sys.modules["higherhrnet"] = types.ModuleType("higherhrnet")
        package.__path__ = [{os.path.dirname(images.__file__)!r}]
        images = importlib.import_module("higherhrnet.images")
        images.jpeg_data_problem(
            images.cv2.imencode(".jpg", images.np.zeros((8, 8, 3), images.np.uint8))[1].tobytes())

        def peak():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    """)
    out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script), *map(str, args)],
                         env=dict(os.environ, **env), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory is read from /proc")
def test_reduced_jpeg_never_holds_the_full_image(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(flat_jpeg(8000, 6000))   # 144 MB as an RGB array
    full_bytes = 8000 * 6000 * 3
    reduced, full = map(int, run_python("""
        before = peak()
        image, factor = images.read_image_reduced(sys.argv[1], 750_000)   # 1/8: 1000x750
        assert image.shape == (750, 1000, 3)
        print(peak() - before)
        del image
        before = peak()
        image = images.read_image(sys.argv[1])
        print(peak() - before)
    """, path))
    assert full > full_bytes        # the measurement sees a full decode
    assert reduced < full_bytes / 8


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory is read from /proc")
@pytest.mark.parametrize("kind", ["png", "webp", "tiff", "bmp", "progressive jpeg", "multi-scan jpeg"])
def test_opencv_reduced_decoding_of_other_formats_holds_the_full_image(kind, tmp_path):
    """Why those formats are refused over the limit rather than decoded with IMREAD_REDUCED_*."""
    width, height = 3000, 2000
    if kind == "multi-scan jpeg":
        data = flat_jpeg(width, height, one_scan=False)
    else:
        image = np.zeros((height, width, 3), np.uint8)
        image[::7, ::5] = 200
        ext, params = {"png": (".png", []), "webp": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
                       "tiff": (".tif", []), "bmp": (".bmp", []),
                       "progressive jpeg": (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])}[kind]
        data = encode(ext, image, params)
    path = tmp_path / "image"
    path.write_bytes(data)
    (increase,) = run_python("""
        import cv2, numpy as np
        data = np.fromfile(sys.argv[1], np.uint8)
        before = peak()
        image = cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_8)
        assert image.shape[:2] == (250, 375)
        print(peak() - before)
    """, path)
    increase = int(increase)
    # A full BGR image is 3 bytes a pixel; so is a 4:2:0 JPEG's coefficient buffer (1.5 samples x 2 bytes).
    assert increase > 0.9 * width * height * 3
