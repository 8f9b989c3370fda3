"""Where a run's files go, and one training run per run folder.

A training run's main process holds a lock on its run folder (OUTPUT_DIR/<dataset>/<model>/<config name>)
from before it first writes there until the run ends: a second run into the same folder is refused
(RunFolderInUse, naming the process that holds it; checked before the network and data are built, and again
when the lock is taken) unless it asks to share the folder. The lock is an OS lock (flock) on the hidden file
`.train.lock` in the folder, which also names the holder (pid, host, start time, command line, as JSON). The OS
drops the lock when its process dies, however it dies (kill -9 included), so a lock file left behind never
blocks anyone; a run that ends removes its lock file. Where the file system cannot lock (some network file
systems), training goes on with a warning.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shlex
import socket
import sys
from typing import Iterator

from ..config import CfgNode, ConfigError
from ..fileio import writable_folder_problem

try:
    import fcntl
except ImportError:     # Windows: no flock; runs are not locked there
    fcntl = None

__all__ = ["run_dir", "RunFolderInUse", "RunFolderLock", "lock_run_folder", "run_folder_holder", "describe_holder",
           "claim_run_folders", "refuse_busy_run_folder", "LOCK_NAME", "SHARE_OPTION"]

logger = logging.getLogger("higherhrnet.train")

# The lock file in a run folder (hidden: a listing of the run's files leaves it out).
LOCK_NAME = ".train.lock"
# How a user asks to train into a folder another run is using: the command line's option, the Trainer's argument.
SHARE_OPTION = "--share-run-folder (Python: Trainer(..., share_run_folder=True))"


def run_dir(cfg: CfgNode, cfg_name: str, root: str) -> str:
    """root/<DATASET.DATASET>/<MODEL.NAME>/<config file name without extension>: the official layout."""
    dataset = cfg.DATASET.DATASET.replace(":", "_")
    return os.path.join(root, dataset, cfg.MODEL.NAME, os.path.splitext(os.path.basename(cfg_name))[0])


class RunFolderInUse(ConfigError):
    """Another live training run holds the run folder's lock; the message names it and the way out.
    `holder`: what its lock file says ({"pid", "host", "started", "command"}; {} when unreadable)."""

    def __init__(self, message: str, holder: dict):
        super().__init__(message)
        self.holder = holder


class RunFolderLock:
    """The lock of one run folder, as lock_run_folder took it: `held` says whether this process holds it (False
    when sharing a busy folder, where locks are not supported, or on processes other than the main one).
    release() ends it (idempotent); `released_on_error()` is a `with` block that releases it when the block
    raises."""

    def __init__(self, folder: str, fd: int | None = None):
        self.folder, self.path = folder, os.path.join(folder, LOCK_NAME)
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file (while still holding the lock, so that no other run holds a lock on a file that
        is gone) and drop the lock."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            with contextlib.suppress(OSError):
                os.remove(self.path)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def released_on_error(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.release()
            raise

    def __del__(self):
        # Only the file descriptor: the OS drops the lock with it; the file stays (it blocks nobody).
        if getattr(self, "_fd", None) is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)


def _holder_record() -> bytes:
    command = shlex.join(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    started = datetime.datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started,
                       "command": command}).encode("utf-8") + b"\n"


def _read_holder(fd: int) -> dict:
    with contextlib.suppress(OSError, ValueError):
        holder = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
        if isinstance(holder, dict):
            return holder
    return {}


def describe_holder(holder: dict) -> str:
    """"pid 1234 on HOST, started 2026-01-01 12:00:00+01:00, command: ..." for a lock file's record."""
    if not holder.get("pid"):
        return "a process that has not said which yet"
    this = holder["pid"] == os.getpid() and holder.get("host") == socket.gethostname()
    command = " ".join(str(holder.get("command", "?")).split())     # one line, whatever the command held
    if len(command) > 200:
        command = command[:197] + "..."
    return (f"pid {holder['pid']}{' (this process)' if this else ''} on {holder.get('host', '?')}, started "
            f"{holder.get('started', '?')}, command: {command}")


def run_folder_holder(folder: str) -> dict | None:
    """What the lock file of the run folder `folder` says about the live run holding it, or None when no live
    run holds it (no lock file, or one whose process has ended)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _read_holder(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def lock_run_folder(folder: str, share: bool = False, refused: str = "", main: bool = True) -> RunFolderLock:
    """Take the lock of the run folder `folder` (which must exist) for this process.

    When another live run holds it: RunFolderInUse, whose message starts with `refused` (default: the folder)
    and says who holds it and what to do; with `share`, a warning instead, and training goes on without the
    lock (this run then never blocks another). A lock file left by a process that has ended is taken over.
    On the other processes of a DDP run (`main` False): a lock that is not held (they are the same run)."""
    lock = RunFolderLock(folder)
    if fcntl is None or not main:
        return lock
    while True:
        try:
            fd = os.open(lock.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            logger.warning("warning: cannot create the lock file %s (%s): another training run into %s would not "
                           "be noticed", lock.path, e.strerror, folder)
            return lock
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            if share:
                logger.warning("warning: the run folder %s is in use by another training run (%s); training into it "
                               "anyway, as asked: each file is the last one either run wrote", folder,
                               describe_holder(holder))
                return lock
            raise _in_use(folder, holder, refused) from None
        except OSError as e:
            os.close(fd)
            logger.warning("warning: cannot lock %s (%s): another training run into %s would not be noticed",
                           lock.path, e.strerror, folder)
            return lock
        # A run that ended between our open and our lock removed the file we opened: lock the new one instead.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock.path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        with contextlib.suppress(OSError):      # who holds it is only for messages: a full disk does not matter
            os.ftruncate(fd, 0)
            os.pwrite(fd, _holder_record(), 0)
        lock._fd = fd
        return lock


def _in_use(folder: str, holder: dict, refused: str) -> RunFolderInUse:
    advice = ("close() the Trainer that holds it" if holder.get("pid") == os.getpid() else
              "wait for it to finish or stop it")
    return RunFolderInUse(f"{refused or folder}: the run folder {folder} is in use by another training run "
                          f"({describe_holder(holder)}); {advice}, or choose another OUTPUT_DIR; to train into it "
                          f"anyway: {SHARE_OPTION}", holder)


def refuse_busy_run_folder(folder: str, share: bool = False, refused: str = "") -> None:
    """RunFolderInUse (its message starting with `refused`) when another live run holds the run folder `folder`,
    unless `share`: a look at its lock file that writes nothing, so that it can come before any other check.
    The lock itself is taken (lock_run_folder) when the run is about to write there."""
    holder = None if share else run_folder_holder(folder)
    if holder is not None:
        raise _in_use(folder, holder, refused)


def claim_run_folders(cfg: CfgNode, out_dir: str, log_dir: str, share: bool = False, main: bool = True) -> None:
    """What a training run's main process does before any slow work: create the run folder `out_dir` and the
    TensorBoard folder `log_dir`, prove files can be written there (ConfigError naming OUTPUT_DIR / LOG_DIR
    otherwise) and, unless `share`, look again that no other live run holds the run folder (refuse_busy_run_folder).
    Nothing on the other processes (`main` False, DDP ranks of the same run)."""
    if not main:
        return
    _make_writable_folder(out_dir, "OUTPUT_DIR", cfg.OUTPUT_DIR)
    _make_writable_folder(log_dir, "LOG_DIR", cfg.LOG_DIR)
    refuse_busy_run_folder(out_dir, share, f"OUTPUT_DIR {cfg.OUTPUT_DIR}")


def _make_writable_folder(folder: str, key: str, value: str) -> None:
    """Create a run folder and prove files can be written there (ConfigError naming the key otherwise), before
    any slow work."""
    problem = writable_folder_problem(folder)
    if problem:
        raise ConfigError(f"{key} {value}: cannot write the run folder {folder}: {problem}")
