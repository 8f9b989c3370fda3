from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from higherhrnet.images import ImageError, decode_image, read_image, read_image_size


def encode(ext, image):
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an APP1 Exif segment holding only the Orientation tag (0x0112) after the JPEG SOI."""
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHII", 0x0112, 3, 1, orientation) + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_color_jpeg_comes_back_rgb():
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[:, :, 2] = 200   # red in OpenCV's BGR order
    image = decode_image(encode(".png", bgr))
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert (image[:, :, 0] == 200).all() and (image[:, :, 2] == 0).all()


def test_grayscale_and_rgba_become_rgb():
    gray = np.full((5, 7), 77, np.uint8)
    assert (decode_image(encode(".png", gray)) == 77).all()
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 90, 10   # blue channel in BGRA, nearly transparent
    image = decode_image(encode(".png", rgba))
    assert image.shape == (5, 7, 3) and (image[..., 2] == 90).all()


def test_16_bit_is_scaled_over_its_full_range_not_clipped():
    values = np.array([[0, 257 * 100, 40000, 65535]], np.uint16)
    image = decode_image(encode(".png", values))
    assert image[0, :, 0].tolist() == [0, 100, round(40000 / 257), 255]


def test_exif_orientation_is_applied_unless_disabled():
    bgr = np.zeros((40, 60, 3), np.uint8)
    bgr[:10, :10] = 255                        # bright top-left corner
    data = with_exif_orientation(encode(".jpg", bgr), 6)   # 6: rotate 90 degrees clockwise to display
    shown = decode_image(data)
    assert shown.shape == (60, 40, 3)
    assert shown[:10, -10:].mean() > 200      # the corner is now top-right
    raw = decode_image(data, exif=False)
    assert raw.shape == (40, 60, 3)


def test_truncated_jpeg_is_detected():
    rng = np.random.default_rng(0)
    data = encode(".jpg", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for cut in (len(data) // 2, len(data) - 2, len(data) - 50):
        with pytest.raises(ImageError, match="truncated JPEG"):
            decode_image(data[:cut], "photo.jpg")
    assert decode_image(data + b"\x00" * 16).shape == (64, 64, 3)   # trailing padding is fine


def test_truncated_png_is_detected():
    data = encode(".png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ImageError, match="truncated PNG"):
        decode_image(data[:-12], "a.png")


def test_unreadable_inputs(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        read_image(tmp_path / "missing.jpg")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        read_image(empty)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    with pytest.raises(ImageError, match="not a readable image"):
        read_image(text)
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)


def palette_png(indices: np.ndarray, palette: list[tuple[int, int, int]]) -> bytes:
    """A minimal 8-bit palette PNG (colour type 3) written by hand: OpenCV cannot write one."""
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    h, w = indices.shape
    header = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)
    raw = b"".join(b"\x00" + bytes(row) for row in indices.astype(np.uint8))
    plte = b"".join(bytes(c) for c in palette)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"PLTE", plte)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_palette_png_is_expanded_to_rgb():
    indices = np.array([[0, 1], [1, 0]])
    image = decode_image(palette_png(indices, [(255, 0, 0), (0, 0, 255)]))
    assert image.shape == (2, 2, 3)
    assert image[0, 0].tolist() == [255, 0, 0] and image[0, 1].tolist() == [0, 0, 255]


@pytest.mark.parametrize("channels", [1, 3])
def test_float_tiffs_in_0_to_1_are_scaled_by_255(tmp_path, channels):
    values = np.random.default_rng(0).integers(0, 256, (6, 9, channels)).astype(np.float32) / 255
    path = tmp_path / "float.tif"
    assert cv2.imwrite(str(path), values if channels == 3 else values[:, :, 0])
    expected = np.round(values * 255).astype(np.uint8)[:, :, ::-1] if channels == 3 else \
        np.repeat(np.round(values * 255).astype(np.uint8), 3, axis=2)
    np.testing.assert_array_equal(read_image(path), expected)


def test_float_tiffs_in_0_to_255_are_taken_as_they_are(tmp_path):
    values = np.array([[0.0, 1.5, 77.4, 254.6, 255.0]], np.float32)
    path = tmp_path / "float.tif"
    assert cv2.imwrite(str(path), values)
    assert read_image(path)[0, :, 0].tolist() == [0, 2, 77, 255, 255]


def test_float_tiffs_of_other_ranges_are_refused_saying_how_to_convert(tmp_path):
    path = tmp_path / "depth.tif"
    assert cv2.imwrite(str(path), np.array([[-2.0, 0.5, 1000.0]], np.float32))
    with pytest.raises(ImageError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: float32 image with values -2 to 1000, neither 0..1 nor 0..255")
    assert "cv2.NORM_MINMAX" in message and "corrupt" not in message and "\n" not in message


def test_read_image_size_reads_the_header_only_and_all_of_a_long_one(tmp_path):
    bgr = np.zeros((40, 60, 3), np.uint8)
    jpeg = with_exif_orientation(encode(".jpg", bgr), 6)
    # A 60 KB comment segment before the frame header: past read_image_size's first read.
    long_header = jpeg[:2] + b"\xff\xfe" + (60002).to_bytes(2, "big") + b"c" * 60000 + jpeg[2:]
    for name, data in [("short.jpg", jpeg), ("long.jpg", long_header)]:
        path = tmp_path / name
        path.write_bytes(data)
        assert read_image_size(path) == (40, 60) and read_image(path).shape == (60, 40, 3)
        assert read_image_size(path, exif=False) == (60, 40) and read_image(path, exif=False).shape == (40, 60, 3)
    (tmp_path / "cut.jpg").write_bytes(long_header[:20000])       # the frame header never comes
    with pytest.raises(ImageError, match="cut.jpg: truncated JPEG header"):
        read_image_size(tmp_path / "cut.jpg")
    (tmp_path / "odd.pfm").write_bytes(b"PF\n2 2\n-1\n" + bytes(48))
    assert read_image_size(tmp_path / "odd.pfm") is None           # a format without a header reader
    with pytest.raises(ImageError, match="missing.jpg: file not found"):
        read_image_size(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        read_image_size(tmp_path)


def jpeg_kinds():
    """(label, JPEG bytes) of the kinds OpenCV writes: every chroma subsampling, progressive, optimised Huffman
    tables, restart markers, grayscale, sizes that are not whole MCUs, an EXIF orientation."""
    rng = np.random.default_rng(3)
    # Smooth gradients plus noise: every DCT coefficient in use, colours that need real upsampling.
    y, x = np.mgrid[0:77, 0:101]
    image = np.stack([(x * 2.5) % 256, (y * 3.1) % 256, (x + y) % 256], axis=2)
    image = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
    kinds = [(f"sampling {name}", [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, getattr(cv2, f"IMWRITE_JPEG_SAMPLING_FACTOR_{name}")])
             for name in ("411", "420", "422", "440", "444")]
    kinds += [("progressive", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), ("optimised", [cv2.IMWRITE_JPEG_OPTIMIZE, 1]),
              ("restart markers", [cv2.IMWRITE_JPEG_RST_INTERVAL, 3]), ("quality 100", [cv2.IMWRITE_JPEG_QUALITY, 100]),
              ("quality 10", [cv2.IMWRITE_JPEG_QUALITY, 10])]
    for label, params in kinds:
        ok, buf = cv2.imencode(".jpg", image, params)
        assert ok
        yield label, buf.tobytes()
    yield "grayscale", encode(".jpg", image[:, :, 1])
    yield "1 x 1", encode(".jpg", image[:1, :1])
    yield "exif orientation 6", with_exif_orientation(encode(".jpg", image), 6)


def test_jpeg_without_orientation_decodes_as_opencv_does():
    """exif=False JPEGs take one strict libjpeg-turbo decode (checking the data as it goes) instead of a check and
    OpenCV's decode: it must give OpenCV's pixels exactly, for every kind."""
    from higherhrnet.images import _strict_jpeg
    for label, data in jpeg_kinds():
        opencv = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        opencv = cv2.cvtColor(opencv, cv2.COLOR_BGR2RGB)
        assert _strict_jpeg(data, label) is not None, label           # the one-decode path is the one tested
        ours = decode_image(data, exif=False)
        assert ours.dtype == np.uint8 and ours.flags.c_contiguous, label
        assert np.array_equal(ours, opencv), label
