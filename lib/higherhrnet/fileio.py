"""Writing files atomically: a reader (or a crash) never sees a half-written file under its real name.

Everything the toolkit writes (checkpoints, ONNX models, JSON results and metrics) goes through
`atomic_write`: the data is written to a hidden temporary file in the destination's folder, flushed to
disk, and renamed over the destination in one step (os.replace is atomic within a file system). On any
failure, Ctrl-C and SIGTERM included, the temporary file is removed and the destination is left as it was.

A process killed outright (kill -9, power loss) cannot remove its temporary file. The next write to the same
name removes such leftovers: files named as atomic_write names its temporaries for that destination
(`.NAME.<random>.tmp<ext>`) and last modified before the current process started, so that a temporary
another running process is still writing is never touched.

A write that fails (no space left on the device, no permission, a read-only disk, a file size limit) raises
WriteError, an OSError whose message is one line naming the destination and the system's reason; the
destination is left as it was. That holds for torch.save too, whose zip writer hides the OSError of a full disk
behind a RuntimeError of its own ("unexpected pos ...").
"""
from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import signal
import tempfile
import threading
import time
from typing import IO, Any, Iterator

from .interrupts import raises_stop

__all__ = ["atomic_write", "finish_before_interrupt", "write_json", "write_text", "write_bytes", "new_temporary", "remove_stale_temporaries",
           "temporary_pattern", "writable_folder_problem", "file_in_the_way", "WriteError"]


class WriteError(OSError):
    """A file could not be written (no space left on the device, no permission, ...). str(): one line,
    "cannot write PATH: REASON", then what is kept where a caller said it (`kept`). errno, strerror and
    filename (the destination) are those of an OSError."""

    def __init__(self, path: str | os.PathLike, reason: str, code: int | None = None, kept: str = ""):
        super().__init__(code, reason, os.fspath(path))
        self.kept = kept

    @classmethod
    def from_error(cls, path: str | os.PathLike, error: OSError) -> "WriteError":
        """The WriteError for `path` of an OSError raised while writing it (or its temporary file)."""
        if isinstance(error, WriteError):
            return error
        reason = error.strerror or (errno.errorcode.get(error.errno, "") if error.errno else "") or str(error) \
            or type(error).__name__
        return cls(path, reason, error.errno)

    def keeping(self, kept: str) -> "WriteError":
        """The same error, saying what is kept (e.g. "the 12 images done are in out/")."""
        return WriteError(self.filename, self.strerror, self.errno, kept)

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}" + (f"; {self.kept}" if self.kept else "")

    def __reduce__(self):
        return type(self), (self.filename, self.strerror, self.errno, self.kept)


def _process_start_time() -> float:
    """When this process started (seconds since the epoch): from /proc on Linux, else when this module loaded."""
    try:
        with open("/proc/self/stat", "rb") as f:
            # Field 22 counts clock ticks from boot; the command name (field 2) may hold spaces, so split after it.
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


# At or before the true start on Linux (the boot time is whole seconds, rounded down).
_STARTED = _process_start_time()


def temporary_pattern(path: str | os.PathLike) -> str:
    """The glob pattern of atomic_write's temporary files for `path`, in its folder."""
    path = os.fspath(path)
    name = glob.escape(os.path.basename(path))
    folder = glob.escape(os.path.dirname(os.path.abspath(path)))
    return os.path.join(folder, f".{name}.*.tmp{glob.escape(os.path.splitext(path)[1])}")


def remove_stale_temporaries(pattern: str) -> list[str]:
    """Remove the files matching `pattern` that were last modified before this process started; returns them.

    For temporary files a killed process left behind (see the module docstring)."""
    removed = []
    for candidate in glob.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            if os.path.isfile(candidate) and os.path.getmtime(candidate) < _STARTED:
                os.remove(candidate)
                removed.append(candidate)
    return removed


def new_temporary(path: str | os.PathLike) -> tuple[int, str]:
    """(open file descriptor, name) of a new hidden temporary file for `path` in its folder, named
    `.NAME.<random>.tmp<ext>`, with the permissions an ordinary new file gets; for a writer that renames it to
    `path` when done. Creates the folder if needed and first removes what killed writers of `path` left.
    WriteError naming `path` when the folder or the file cannot be created."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        remove_stale_temporaries(temporary_pattern(path))
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".tmp{os.path.splitext(path)[1]}",
                                   dir=folder)
    except OSError as e:
        raise WriteError.from_error(path, e) from None
    try:
        # mkstemp makes the file private (0600); give it the permissions an ordinary new file would get.
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        os.close(fd)
        os.remove(tmp)
        raise
    return fd, tmp


def file_in_the_way(folder: str | os.PathLike) -> str | None:
    """The first part of the path `folder` (itself included) that exists and is not a folder, as written in
    `folder`: nothing can be made under it. None when there is none."""
    path = os.path.normpath(os.fspath(folder))
    prefix = os.sep if path.startswith(os.sep) else ""
    for part in path.split(os.sep):
        prefix = os.path.join(prefix, part) if prefix else part
        if not part or part == "..":
            continue
        if os.path.lexists(prefix) and not os.path.isdir(prefix):
            return prefix
    return None


def writable_folder_problem(folder: str | os.PathLike, create: bool = True) -> str | None:
    """Why files cannot be written in `folder` (created first when `create`), or None when they can: for
    checking an output location before any slow work."""
    folder = os.fspath(folder)
    blocker = file_in_the_way(folder)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    if not create and not os.path.isdir(folder):
        return f"folder {folder} does not exist"
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".higherhrnet-write-test-"):
            return None
    except OSError as e:
        return e.strerror or str(e)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, text: bool = False) -> Iterator[IO]:
    """`with atomic_write(path) as f: f.write(...)`: f is a binary (or, with text=True, UTF-8 text) file
    that becomes `path` when the block ends without an exception. Creates the folder if needed.

    When writing fails (f.write or f.flush in the block, whatever raised afterwards, e.g. torch's zip writer;
    or the final flush, fsync and rename), WriteError naming `path` (module docstring); other errors of the
    block come out unchanged. The destination is never touched then."""
    path = os.fspath(path)
    fd, tmp = new_temporary(path)
    raw = None
    try:
        raw = os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {}))
        f = _WatchedFile(raw)
        try:
            yield f
        except Exception:
            if f.error is not None:
                raise WriteError.from_error(path, f.error) from None
            raise
        try:
            raw.flush()
            os.fsync(raw.fileno())
            raw.close()
            os.replace(tmp, path)
        except OSError as e:
            raise WriteError.from_error(path, e) from None
    except BaseException:
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.close()         # flushes what is buffered, which may fail again: the first error counts
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


class _WatchedFile:
    """The file atomic_write hands out: the real one, remembering the first OSError of a write or flush, so that
    the error can be named even when the caller's writer (torch's zip writer) reports another."""

    def __init__(self, file: IO):
        self._file = file
        self.error: OSError | None = None

    def write(self, data):
        try:
            return self._file.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as e:
            self.error = self.error or e
            raise

    def __getattr__(self, name: str):
        return getattr(self._file, name)


@contextlib.contextmanager
def finish_before_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM while the block runs and raise what they would have raised when it ends
    (KeyboardInterrupt, or interrupts.Terminated; the first signal's), even when the block failed: for a few
    steps that belong together (an image's picture, its JSON and the count of finished images; a checkpoint
    and the epoch it holds), so that what is reported as finished is exactly what is on disk. A signal is held
    only where it would raise (SIGINT with Python's default handler, SIGTERM within
    interrupts.sigterm_raises); one that is ignored, has its default action or someone else's handler is left
    alone, and nothing is held outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    held = {number: handler for number, handler in handlers.items() if raises_stop(number, handler)}
    received = []
    for number in held:
        signal.signal(number, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
        for number in received:     # the first that raises wins; a repeated SIGTERM is ignored by its handler
            held[number](number, None)


def _umask() -> int:
    """The process's umask. Read from /proc on Linux: setting and restoring it (the portable way) is not
    thread-safe, since a file another thread creates in between would get the temporary mask."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, ValueError, IndexError, StopIteration):
        mask = os.umask(0)
        os.umask(mask)
        return mask


def write_json(obj: Any, path: str | os.PathLike, indent: int | None = None) -> None:
    """json.dump `obj` to `path` atomically."""
    with atomic_write(path, text=True) as f:
        json.dump(obj, f, indent=indent)


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_write(path, text=True) as f:
        f.write(text)


def write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write `data` to `path` atomically."""
    with atomic_write(path) as f:
        f.write(data)
