"""Stop signals as exceptions: SIGTERM handled as Ctrl-C is.

Python turns Ctrl-C (SIGINT) into KeyboardInterrupt, and everything that finishes and reports work when
stopped (predict keeps the images and frames done, training names its last complete checkpoint in train.log)
handles that exception. SIGTERM, what docker, systemd, Kubernetes and SLURM send to stop a process, ends it at
once by default. Within `sigterm_raises()` it raises `Terminated`, a KeyboardInterrupt, so that every Ctrl-C
path runs unchanged; `Interrupted.signal_number` (`stop_signal` for any KeyboardInterrupt) says which signal
it was, for the messages ("terminated (SIGTERM)") and the exit status (128 + the signal's number).

Nothing is installed on import: the command line (higherhrnet.cli.main) and Trainer.run install it while
they run, and restore the previous handler after.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["Interrupted", "Terminated", "sigterm_raises", "stop_signal", "stopped", "same_stop", "raises_stop",
           "loader_worker_sigterm"]


class Interrupted(KeyboardInterrupt):
    """A KeyboardInterrupt that knows which signal stopped the work: `signal_number` (SIGINT for Ctrl-C)."""

    def __init__(self, message: str = "", signal_number: int = signal.SIGINT):
        super().__init__(message)
        self.signal_number = signal_number


class Terminated(Interrupted):
    """SIGTERM received within `sigterm_raises()`: a KeyboardInterrupt, so that what handles Ctrl-C handles it."""

    def __init__(self, message: str = "", signal_number: int = signal.SIGTERM):
        super().__init__(message, signal_number)


def stop_signal(stop: BaseException) -> int:
    """The signal a KeyboardInterrupt stands for: its signal_number, SIGINT (Ctrl-C) for a plain one."""
    return getattr(stop, "signal_number", signal.SIGINT)


def stopped(stop: BaseException) -> str:
    """How a message says why the work stopped: "interrupted" (Ctrl-C) or "terminated (SIGTERM)"."""
    number = stop_signal(stop)
    return "interrupted" if number == signal.SIGINT else f"terminated ({signal.Signals(number).name})"


def same_stop(stop: BaseException, message: str) -> Interrupted:
    """A KeyboardInterrupt for the signal `stop` stands for, saying `message` (a Terminated for SIGTERM)."""
    number = stop_signal(stop)
    return Interrupted(message, number) if number == signal.SIGINT else Terminated(message, number)


class _RaiseTerminated:
    """The SIGTERM handler of sigterm_raises: the first SIGTERM raises Terminated; later ones are ignored, so
    that they do not cut short the saving and summing up the first one started (SIGKILL still ends it)."""

    def __init__(self):
        self.raised = False

    def __call__(self, number: int, frame) -> None:
        if not self.raised:
            self.raised = True
            raise Terminated(signal_number=number)


def raises_stop(number: int, handler) -> bool:
    """Whether `handler`, the Python handler of signal `number`, turns it into a KeyboardInterrupt: Python's
    default one for SIGINT, sigterm_raises's for SIGTERM."""
    return handler is signal.default_int_handler or isinstance(handler, _RaiseTerminated)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises Terminated in the main thread (once: see _RaiseTerminated); the
    default action comes back when the block ends. Does nothing outside the main thread, or when SIGTERM
    already has a handler other than the default: ignored (by a parent), someone else's, or this one (in an
    outer block). DataLoader workers forked inside the block get it too with loader_worker_sigterm."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _RaiseTerminated())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def loader_worker_sigterm(worker_id: int) -> None:
    """A DataLoader worker_init_fn: where the main process was forked inside sigterm_raises, the worker's
    SIGTERM raises Terminated again, so that its loop ends quietly, as on Ctrl-C. PyTorch's workers set a C
    handler that dies by SIGTERM unless the main process sent it, and the main process then reports "DataLoader
    worker is killed by signal" instead of what was finished, when a whole process group or service is stopped
    (systemd, SLURM). Elsewhere (SIGTERM at its default, spawned workers) PyTorch's handler stays."""
    if isinstance(signal.getsignal(signal.SIGTERM), _RaiseTerminated):
        signal.signal(signal.SIGTERM, _RaiseTerminated())
