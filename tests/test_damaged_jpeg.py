"""images.jpeg_data_problem: a JPEG whose compressed data is damaged is found, valid JPEGs of every kind pass.

The oracle is libjpeg as OpenCV runs it: OpenCV's libjpeg prints "Corrupt JPEG data: ..." (and other warnings)
on stderr for the files it decodes into a different picture, and capfd reads that stderr. Every damaged file
these tests make is first shown to be one libjpeg warns about; every valid one to be one it decodes silently.
The check itself runs simplejpeg's libjpeg-turbo in strict mode, a separate build of libjpeg: these tests are
what says the two agree.

Cost (not asserted; 2 CPU cores shared with other jobs, load ~7): 100 reads each, cv2.imdecode / the check:
COCO 000000000785.jpg (640x425, 134 kB) 5.3 / 2.5 ms, 000000040083.jpg 2.5 / 1.6 ms, demo crowded.jpg
0.79 / 0.41 ms: about half to two thirds of a decode.
"""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from higherhrnet.images import DamagedImageError, ImageError, decode_image, jpeg_data_problem, read_image

from conftest import COCO_MINI, REPO

ASSETS = REPO / "tests" / "assets" / "jpeg"
SAMPLE = REPO / "demo" / "samples" / "crowded.jpg"


def libjpeg_says(data: bytes, capfd) -> str:
    """What OpenCV's libjpeg prints on stderr while decoding `data`."""
    capfd.readouterr()
    cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return capfd.readouterr().err.strip()


def encoded(image: np.ndarray, *params: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, list(params))
    assert ok
    return buffer.tobytes()


def photo(width: int, height: int) -> np.ndarray:
    return cv2.resize(cv2.imread(str(SAMPLE)), (width, height), interpolation=cv2.INTER_AREA)


S = cv2
ENCODINGS = {
    "baseline": (),
    "progressive": (S.IMWRITE_JPEG_PROGRESSIVE, 1),
    "optimized": (S.IMWRITE_JPEG_OPTIMIZE, 1),
    "restarts": (S.IMWRITE_JPEG_RST_INTERVAL, 3),
    "progressive restarts": (S.IMWRITE_JPEG_RST_INTERVAL, 1, S.IMWRITE_JPEG_PROGRESSIVE, 1),
    "4:4:4": (S.IMWRITE_JPEG_SAMPLING_FACTOR, S.IMWRITE_JPEG_SAMPLING_FACTOR_444),
    "4:2:2 progressive": (S.IMWRITE_JPEG_SAMPLING_FACTOR, S.IMWRITE_JPEG_SAMPLING_FACTOR_422,
                          S.IMWRITE_JPEG_PROGRESSIVE, 1),
    "4:1:1": (S.IMWRITE_JPEG_SAMPLING_FACTOR, S.IMWRITE_JPEG_SAMPLING_FACTOR_411),
    "4:4:0 restarts": (S.IMWRITE_JPEG_SAMPLING_FACTOR, S.IMWRITE_JPEG_SAMPLING_FACTOR_440,
                       S.IMWRITE_JPEG_RST_INTERVAL, 2),
    "quality 100": (S.IMWRITE_JPEG_QUALITY, 100),
    "quality 5 progressive": (S.IMWRITE_JPEG_QUALITY, 5, S.IMWRITE_JPEG_PROGRESSIVE, 1),
}


def variants() -> dict[str, bytes]:
    """Valid JPEGs: OpenCV's encodings at odd sizes, in colour and gray, the files OpenCV cannot write, the demo
    samples and (where shared/ is there) the COCO photos."""
    found = {}
    for width, height in [(1, 1), (13, 7), (33, 17), (243, 161)]:
        for name, params in ENCODINGS.items():
            image = photo(width, height)
            found[f"{width}x{height} {name}"] = encoded(image, *params)
            found[f"{width}x{height} {name} gray"] = encoded(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), *params)
    found["uniform gray optimized (all-zero data)"] = encoded(np.full((64, 64), 128, np.uint8),
                                                               S.IMWRITE_JPEG_OPTIMIZE, 1)
    for path in [*sorted(ASSETS.glob("*.jpg")), *sorted(SAMPLE.parent.glob("*.jpg")),
                 *sorted(COCO_MINI.glob("images/*/*.jpg"))]:
        found[path.name] = path.read_bytes()
    return found


VARIANTS = variants()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_valid_jpegs_of_every_kind_pass(name, capfd):
    data = VARIANTS[name]
    assert libjpeg_says(data, capfd) == ""
    assert jpeg_data_problem(data) is None
    stored = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    np.testing.assert_array_equal(decode_image(data, name, exif=False), cv2.cvtColor(stored, cv2.COLOR_BGR2RGB))


def scan_data(data: bytes) -> tuple[int, int]:
    """(first byte after the first scan header, the end-of-image marker's position)."""
    start = data.find(b"\xff\xda")
    return start + 2 + int.from_bytes(data[start + 2: start + 4], "big"), data.rfind(b"\xff\xd9")


def with_hole(data: bytes, fraction: float = 0.125) -> bytes:
    """`data` with a zero-filled hole of `fraction` of its scan data in the middle: what an interrupted download
    or a bad sector leaves, the file's length and end marker unchanged."""
    start, end = scan_data(data)
    size = int((end - start) * fraction)
    middle = (start + end - size) // 2
    return data[:middle] + bytes(size) + data[middle + size:]


def test_a_zero_filled_hole_is_refused_in_one_line_naming_the_file(tmp_path, capfd):
    damaged = with_hole(SAMPLE.read_bytes())
    assert "Corrupt JPEG data" in libjpeg_says(damaged, capfd)
    path = tmp_path / "holed.jpg"
    path.write_bytes(damaged)
    with pytest.raises(DamagedImageError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: damaged JPEG, its image data is corrupt (") and "\n" not in message
    assert message.endswith("pass accept_damaged=True to use it as decoded")
    # Accepted, it is what libjpeg makes of it, as before the check.
    libjpeg = cv2.cvtColor(cv2.imdecode(np.frombuffer(damaged, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(read_image(path, accept_damaged=True), libjpeg)


def test_every_damage_libjpeg_warns_about_is_found(capfd):
    """Zero-filled holes, random bytes and single flipped bits anywhere in the scans of baseline, progressive,
    restart-interval, gray and CMYK files: whenever libjpeg warns, the check finds it too."""
    rng = np.random.default_rng(23)
    names = ["243x161 baseline", "243x161 progressive", "243x161 restarts", "243x161 4:2:2 progressive gray",
             "243x161 progressive restarts", "cmyk_progressive_restart.jpg", "successive_approximation.jpg"]
    warned = 0
    for trial in range(140):
        data = bytearray(VARIANTS[names[trial % len(names)]])
        start, end = scan_data(bytes(data))
        where = int(rng.integers(start, end - 1))
        kind = trial % 3
        if kind == 0:
            size = int(rng.integers(1, (end - where) // 2 + 2))
            data[where: min(where + size, end)] = bytes(min(where + size, end) - where)
        elif kind == 1:
            size = int(rng.integers(1, 64))
            data[where: min(where + size, end)] = rng.integers(0, 256, min(where + size, end) - where,
                                                               dtype=np.uint8).tobytes()
        else:
            data[where] ^= 1 << int(rng.integers(8))
        data = bytes(data)
        said = libjpeg_says(data, capfd)
        if "Corrupt JPEG data" in said or "Inconsistent progression" in said:
            warned += 1
            assert jpeg_data_problem(data) is not None, (trial, said)
    assert warned > 40      # the damage was real often enough for the test to mean something


def test_restart_markers_out_of_order_are_found(capfd):
    data = VARIANTS["243x161 restarts"]
    first = data.find(b"\xff\xd0")
    second = data.find(b"\xff\xd1")
    assert 0 < first < second
    swapped = bytearray(data)
    swapped[first + 1], swapped[second + 1] = 0xD1, 0xD0
    swapped = bytes(swapped)
    assert "Corrupt JPEG data: found marker 0xd1 instead of RST0" in libjpeg_says(swapped, capfd)
    assert jpeg_data_problem(swapped) == "Corrupt JPEG data: found marker 0xd1 instead of RST0"


def test_threads_check_images_at_once():
    clean, damaged = VARIANTS["243x161 progressive restarts"], with_hole(VARIANTS["243x161 baseline"])
    expected = [jpeg_data_problem(clean), jpeg_data_problem(damaged)]
    assert expected[0] is None and expected[1] is not None
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append([jpeg_data_problem(clean), jpeg_data_problem(damaged)])
        except Exception as e:      # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 80 and all(r == expected for r in results)


def test_arithmetic_coded_files_are_checked_too(capfd):
    data = (ASSETS / "arithmetic.jpg").read_bytes()
    assert jpeg_data_problem(data) is None and decode_image(data).shape == (40, 56, 3)
    damaged = with_hole(data, 0.3)
    said = libjpeg_says(damaged, capfd)
    assert "Corrupt JPEG data" in said
    assert jpeg_data_problem(damaged) == said.splitlines()[0]


def test_truncation_is_still_reported_as_truncation(tmp_path):
    path = tmp_path / "cut.jpg"
    data = SAMPLE.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated JPEG"):
        read_image(path)



def test_a_warning_about_metadata_is_not_damage(capfd):
    """libjpeg warns about a JFIF header of an unknown revision and decodes the pixels as written."""
    data = bytearray(SAMPLE.read_bytes())
    assert data[6:11] == b"JFIF\0"
    data[11] = 3                    # major revision 3
    data = bytes(data)
    assert "unknown JFIF revision" in libjpeg_says(data, capfd)
    assert jpeg_data_problem(data) is None
    np.testing.assert_array_equal(decode_image(data, exif=False), decode_image(SAMPLE.read_bytes(), exif=False))
