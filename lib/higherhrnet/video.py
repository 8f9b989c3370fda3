"""Reading frames from video files and webcams, and writing videos that browsers play.

Reading uses OpenCV. Writing prefers H.264 in MP4 (yuv420p, moov atom first), which every browser plays: it
needs an ffmpeg executable, found through the imageio-ffmpeg package (`pip install imageio-ffmpeg`, or
`pip install -e ".[video]"`; it ships a static ffmpeg) or on PATH. Without one, OpenCV writes VP9 in WebM
(Chrome, Firefox, Edge and Safari 14.1+ play it); if OpenCV cannot either, MPEG-4 Part 2 in MP4, which
desktop players read but browsers do not. The chosen encoding is reported by `VideoWriter.description`.
A video is written to a hidden temporary file beside it (named as fileio.atomic_write names its own) and
renamed when closed: an interrupted run leaves no half file under the real name, and a run killed outright
leaves a temporary that the next video written under that name removes. When writing fails (a full disk:
ffmpeg stops; OpenCV's writer, which reports nothing, is checked by reading its file back), the temporary is
removed and VideoError says so in one line naming the video. ffmpeg does not see Ctrl-C or SIGTERM (they are
blocked in it): the process writing the video decides when it ends.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from .fileio import WriteError, new_temporary

__all__ = ["VideoError", "VideoSource", "Frame", "VideoWriter", "find_ffmpeg", "ffmpeg_reason"]


class VideoError(RuntimeError):
    """A video or webcam cannot be read or written; the message names it and says why."""


@dataclass
class Frame:
    """index: position in the video (0-based, counting skipped frames); time: seconds from the start;
    image: (H, W, 3) uint8 RGB."""

    index: int
    time: float
    image: np.ndarray


class VideoSource:
    """Frames of a video file or a webcam (an integer index), every `stride`-th, at most `max_frames` of them.

    fps: the source's frame rate (25 when it does not say); frame_count: frames it claims to hold (None for a
    webcam or when unknown). After iterating, `decoded` is the number of frames read and `truncated` says
    whether the file ended before its announced length (a damaged or partly copied file).
    """

    def __init__(self, source: str | int, stride: int = 1, max_frames: int | None = None):
        if stride < 1:
            raise ValueError(f"frame stride must be at least 1, got {stride}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max frames must be at least 1, got {max_frames}")
        self.source, self.stride, self.max_frames = source, stride, max_frames
        self.is_webcam = isinstance(source, int)
        if not self.is_webcam and not os.path.isfile(source):
            raise VideoError(f"{source}: video file not found")
        self.capture = cv2.VideoCapture(source)
        if not self.capture.isOpened():
            what = f"webcam {source}" if self.is_webcam else f"{source}"
            raise VideoError(f"cannot open {what}" + (" (no camera at that index, or no permission)" if self.is_webcam
                                                       else ": not a video OpenCV can read"))
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else 25.0
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not self.is_webcam else 0
        self.frame_count = count if count > 0 else None
        self.decoded = 0
        self.truncated = False

    @property
    def name(self) -> str:
        return f"webcam{self.source}" if self.is_webcam else os.path.basename(str(self.source))

    def __len__(self) -> int:
        """Frames the iteration will yield, as far as known (0 when unknown)."""
        if self.frame_count is None:
            return self.max_frames or 0
        count = (self.frame_count + self.stride - 1) // self.stride
        return min(count, self.max_frames) if self.max_frames else count

    def __iter__(self) -> Iterator[Frame]:
        yielded = index = 0
        while self.max_frames is None or yielded < self.max_frames:
            wanted = index % self.stride == 0
            # grab() moves past a frame without decoding it: the frames the stride leaves out cost little.
            ok, frame = self.capture.read() if wanted else (self.capture.grab(), None)
            if not ok:
                self.truncated = self.frame_count is not None and index < self.frame_count
                break
            if wanted:
                yield Frame(index, index / self.fps, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                yielded += 1
            index += 1
            self.decoded = index

    def close(self) -> None:
        self.capture.release()


def find_ffmpeg() -> str | None:
    """The path of an ffmpeg executable: imageio-ffmpeg's, else one on PATH, else None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def _start_deaf_to_stop_signals(command: list[str]) -> subprocess.Popen:
    """Popen(command), stdin and stderr piped, with SIGINT and SIGTERM blocked in the child. Ctrl-C in a
    terminal, and SIGTERM sent to a process group or a whole service (systemd, SLURM), reach ffmpeg too: it
    would end the video on its own (exit status 255) while this process, stopping as well, is still finishing
    it. Blocked, they stay pending until ffmpeg exits (it never unblocks them); SIGKILL still works, and ffmpeg
    stops at the end of its input when this process dies. A child starts with its parent thread's mask."""
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        return subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class VideoWriter:
    """Writes RGB frames of one size to `stem` + ".mp4" (H.264, or MPEG-4 Part 2 as the last resort) or
    ".webm" (VP9); see the module docstring for the choice. `path` is the final file name, `description`
    the encoding. Use as a context manager, or call close() (keep the video) / abort() (discard it)."""

    def __init__(self, stem: str, fps: float, size: tuple[int, int], prefer_h264: bool = True):
        self.fps, self.size = fps, (int(size[0]), int(size[1]))
        folder = os.path.dirname(os.path.abspath(stem))
        ffmpeg = find_ffmpeg() if prefer_h264 else None
        self._process = self._cv_writer = None
        self._frames = 0        # frames written
        if ffmpeg is not None:
            self.path, self.description = stem + ".mp4", "H.264 (ffmpeg)"
            self._tmp = self._temporary(self.path)
            w, h = self.size
            # Even sizes for yuv420p; +faststart puts the index first so browsers start playing at once.
            command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                       "-s", f"{w}x{h}", "-r", f"{fps:.6g}", "-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
                       "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-crf", "23",
                       "-movflags", "+faststart", "-f", "mp4", self._tmp]
            self._process = _start_deaf_to_stop_signals(command)
            return
        for suffix, fourcc, description in ((".webm", "VP90", "VP9 (OpenCV; install imageio-ffmpeg for H.264)"),
                                            (".mp4", "mp4v", "MPEG-4 Part 2 (OpenCV; browsers do not play it: "
                                                             "install imageio-ffmpeg for H.264)")):
            self._tmp = self._temporary(stem + suffix)
            writer = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*fourcc), fps, self.size)
            if writer.isOpened():
                self._cv_writer, self.path, self.description = writer, stem + suffix, description
                return
            writer.release()
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._tmp)
        raise VideoError(f"cannot write a video in {folder}: neither ffmpeg nor OpenCV's encoders are available")

    @staticmethod
    def _temporary(path: str) -> str:
        fd, tmp = new_temporary(path)
        os.close(fd)
        return tmp

    def write(self, image: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame of the writer's size."""
        if image.shape[1::-1] != self.size:
            raise ValueError(f"frame of {image.shape[1]}x{image.shape[0]} for a {self.size[0]}x{self.size[1]} video")
        if self._process is not None:
            try:
                self._process.stdin.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
            except BrokenPipeError:
                raise VideoError(f"cannot write {self.path}: ffmpeg stopped ({self._ffmpeg_failure()})") from None
        else:
            self._cv_writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self._frames += 1

    def _cv_written_problem(self) -> str | None:
        """What is wrong with the file OpenCV's writer finished, or None. OpenCV's writer reports no write error
        (a full disk leaves a file cut short), so the file is read back: every frame written must be there.
        This costs a decode of the video, on this fallback path only (ffmpeg reports its errors itself)."""
        capture = cv2.VideoCapture(self._tmp)
        try:
            if not capture.isOpened():
                return "OpenCV's encoder left a file that cannot be read back"
            count = 0
            while count < self._frames and capture.grab():
                count += 1
            return None if count == self._frames else f"OpenCV's encoder left {count} of the {self._frames} frames written"
        finally:
            capture.release()

    def _ffmpeg_failure(self) -> str:
        """Why ffmpeg stopped, in one line; the writer is aborted (its temporary file removed)."""
        self._process.wait()
        reason = ffmpeg_reason(self._process.stderr.read().decode(errors="replace"), self._process.returncode)
        self.abort()
        return reason

    def close(self) -> str:
        """Finish the file and give it its real name; returns that name. VideoError (one line) when ffmpeg
        fails, WriteError when the file cannot be renamed; the temporary file is removed then."""
        if self._process is not None:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
            if self._process.wait() != 0:
                raise VideoError(f"cannot write {self.path}: ffmpeg failed ({self._ffmpeg_failure()})")
            self._process.stderr.close()
            self._process = None
        elif self._cv_writer is not None:
            self._cv_writer.release()
            self._cv_writer = None
            problem = self._cv_written_problem()
            if problem:
                self.abort()
                raise VideoError(f"cannot write {self.path}: {problem} (a full disk?); the video is not kept")
        try:
            os.replace(self._tmp, self.path)
        except OSError as e:
            self.abort()
            raise WriteError.from_error(self.path, e) from None
        return self.path

    def abort(self) -> None:
        """Stop writing and remove the temporary file (the real name is never touched)."""
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
            self._process.kill()
            self._process.wait()
            self._process.stderr.close()
            self._process = None
        if self._cv_writer is not None:
            self._cv_writer.release()
            self._cv_writer = None
        with contextlib.suppress(OSError):
            os.remove(self._tmp)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def ffmpeg_reason(stderr: str, returncode: int) -> str:
    """One line saying why ffmpeg failed: the last line of its error output without the "[muxer @ 0x...]"
    prefix ("Error closing file: No space left on device"), else the signal that stopped it, else its exit
    status."""
    lines = [re.sub(r"^(\[[^]]*\]\s*)+", "", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line and not line.startswith("Last message repeated")]
    if lines:
        return lines[-1]
    if returncode < 0:
        try:
            number = signal.Signals(-returncode)
        except ValueError:
            return f"signal {-returncode}"
        return f"{number.name}: {signal.strsignal(number)}"
    return f"exit status {returncode}"
