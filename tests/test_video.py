"""video.py: frames in with stride and limits, videos out (H.264 through ffmpeg, else OpenCV), atomically."""
from __future__ import annotations

import os
import signal

import cv2
import numpy as np
import pytest

from higherhrnet import video
from higherhrnet.video import VideoError, VideoSource, VideoWriter


def frames(n, size=(48, 32)):
    return [np.full((size[1], size[0], 3), 20 * i, np.uint8) for i in range(n)]


def test_writer_makes_a_readable_video_and_nothing_else(tmp_path):
    with VideoWriter(str(tmp_path / "clip"), 10.0, (48, 32)) as writer:
        for frame in frames(9):
            writer.write(frame)
    assert os.listdir(tmp_path) == [os.path.basename(writer.path)]
    capture = cv2.VideoCapture(writer.path)
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 9
    ok, first = capture.read()
    assert ok and first.shape == (32, 48, 3)


def test_h264_when_ffmpeg_is_there_and_opencv_otherwise(tmp_path, monkeypatch):
    if video.find_ffmpeg() is not None:
        writer = VideoWriter(str(tmp_path / "h264"), 10.0, (48, 32))
        writer.write(frames(1)[0])
        assert writer.close().endswith("h264.mp4") and writer.description.startswith("H.264")
        probe = cv2.VideoCapture(writer.path)
        assert int(probe.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") in (b"avc1", b"h264", b"H264")
    monkeypatch.setattr(video, "find_ffmpeg", lambda: None)
    writer = VideoWriter(str(tmp_path / "plain"), 10.0, (48, 32))
    writer.write(frames(1)[0])
    path = writer.close()
    assert path.endswith(("plain.webm", "plain.mp4")) and "install imageio-ffmpeg" in writer.description


@pytest.mark.parametrize("kept", [0.5, 0.0])
def test_a_video_opencv_could_not_finish_is_one_line_and_not_kept(tmp_path, monkeypatch, kept):
    """OpenCV's writer reports no write error: a disk that fills up leaves a file cut short (here: the finished
    file cut to `kept` of its size, as a full disk stops it). Reading it back finds that."""
    monkeypatch.setattr(video, "find_ffmpeg", lambda: None)
    writer = VideoWriter(str(tmp_path / "clip"), 10.0, (48, 32))
    for frame in frames(12) + frames(8):
        writer.write(frame)
    opencv = writer._cv_writer

    class FullDisk:
        """OpenCV's writer, whose file a full disk cut short when it was finished."""

        @staticmethod
        def release():
            opencv.release()
            size = os.path.getsize(writer._tmp)
            with open(writer._tmp, "r+b") as f:
                f.truncate(int(size * kept))

    writer._cv_writer = FullDisk()
    with pytest.raises(VideoError) as error:
        writer.close()
    message = str(error.value)
    assert message.startswith(f"cannot write {writer.path}: OpenCV's encoder left ") and "\n" not in message
    assert message.endswith(" (a full disk?); the video is not kept")
    assert os.listdir(tmp_path) == []


def test_an_aborted_video_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        with VideoWriter(str(tmp_path / "clip"), 10.0, (48, 32)) as writer:
            writer.write(frames(1)[0])
            raise RuntimeError("stopped")
    assert os.listdir(tmp_path) == []
    writer = VideoWriter(str(tmp_path / "clip"), 10.0, (48, 32))
    with pytest.raises(ValueError, match="frame of 10x10 for a 48x32 video"):
        writer.write(np.zeros((10, 10, 3), np.uint8))
    writer.abort()
    assert os.listdir(tmp_path) == []


# An "ffmpeg" that reads the frames and then fails as ffmpeg does on a full disk: many lines, exit status 1.
FAILING_FFMPEG = """#!/bin/sh
cat > /dev/null
echo "[vost#0:0/libx264 @ 0x5601] Error submitting a packet to the muxer: No space left on device" >&2
echo "    Last message repeated 1 times" >&2
echo "[out#0/mp4 @ 0x5602] Error muxing a packet" >&2
echo "[out#0/mp4 @ 0x5602] Error writing trailer: No space left on device" >&2
echo "[out#0/mp4 @ 0x5602] Error closing file: No space left on device" >&2
exit 1
"""


def test_an_ffmpeg_failure_is_one_line_and_leaves_no_temporary(tmp_path, monkeypatch):
    fake = tmp_path / "ffmpeg"
    fake.write_text(FAILING_FFMPEG)
    fake.chmod(0o755)
    monkeypatch.setattr(video, "find_ffmpeg", lambda: str(fake))
    out = tmp_path / "out"
    writer = VideoWriter(str(out / "clip"), 10.0, (48, 32))
    for frame in frames(3):
        writer.write(frame)
    with pytest.raises(VideoError) as error:
        writer.close()
    assert str(error.value) == (f"cannot write {out / 'clip.mp4'}: ffmpeg failed (Error closing file: No space left "
                                f"on device)")
    assert os.listdir(out) == []


@pytest.mark.parametrize("stderr, status, reason", [
    ("", -25, "SIGXFSZ: File size limit exceeded"),
    ("", 1, "exit status 1"),
    ("[out#0/mp4 @ 0x1] Error opening output file: Permission denied\n", 1, "Error opening output file: Permission "
                                                                              "denied"),
])
def test_ffmpeg_reason_is_one_line(stderr, status, reason):
    assert video.ffmpeg_reason(stderr, status) == reason


@pytest.mark.skipif(video.find_ffmpeg() is None, reason="needs ffmpeg (imageio-ffmpeg)")
def test_ffmpeg_leaves_ctrl_c_and_sigterm_to_the_writer(tmp_path):
    """A terminal's Ctrl-C and a service's SIGTERM reach ffmpeg too: sent to it while it writes, they wait, and
    the video ends whole when the writer closes it, with every frame."""
    writer = VideoWriter(str(tmp_path / "clip"), 10.0, (48, 32))
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()       # this thread's mask is as it was
    for frame in frames(5):
        writer.write(frame)
    writer._process.send_signal(signal.SIGINT)
    writer._process.send_signal(signal.SIGTERM)
    for frame in frames(4):
        writer.write(frame)
    path = writer.close()
    assert int(cv2.VideoCapture(path).get(cv2.CAP_PROP_FRAME_COUNT)) == 9
    assert os.listdir(tmp_path) == ["clip.mp4"]


@pytest.fixture
def clip(tmp_path):
    with VideoWriter(str(tmp_path / "clip"), 10.0, (48, 32)) as writer:
        for frame in frames(10):
            writer.write(frame)
    return writer.path


def test_source_stride_max_frames_and_times(clip):
    source = VideoSource(clip, stride=3)
    assert (source.fps, source.frame_count, len(source)) == (10.0, 10, 4)
    got = list(source)
    assert [f.index for f in got] == [0, 3, 6, 9] and [f.time for f in got] == [0.0, 0.3, 0.6, 0.9]
    assert got[1].image.shape == (32, 48, 3) and not source.truncated
    limited = VideoSource(clip, stride=2, max_frames=3)
    assert len(limited) == 3 and [f.index for f in limited] == [0, 2, 4]


def test_a_cut_video_is_noticed(tmp_path):
    rng = np.random.default_rng(0)
    with VideoWriter(str(tmp_path / "long"), 10.0, (48, 32)) as writer:
        for _ in range(60):
            writer.write(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))   # noise: frames of similar size
    data = open(writer.path, "rb").read()
    half = tmp_path / f"half{os.path.splitext(writer.path)[1]}"
    half.write_bytes(data[: len(data) * 2 // 3])
    # The index is at the front (+faststart, or OpenCV's container): the file opens, then ends early.
    source = VideoSource(str(half))
    got = list(source)
    assert 0 < len(got) < 60 and source.truncated and source.decoded == len(got)


def test_sources_that_cannot_be_read(tmp_path):
    with pytest.raises(VideoError, match="video file not found"):
        VideoSource(str(tmp_path / "missing.mp4"))
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(VideoError, match="notes.mp4"):
        VideoSource(str(tmp_path / "notes.mp4"))
    with pytest.raises(VideoError, match="cannot open webcam 9"):
        VideoSource(9)
    with pytest.raises(ValueError, match="stride"):
        VideoSource(str(tmp_path / "notes.mp4"), stride=0)
