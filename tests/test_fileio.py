"""fileio.py: a file appears under its real name complete, or not at all."""
from __future__ import annotations

import collections
import json
import os
import signal

import pytest

from higherhrnet.fileio import atomic_write, finish_before_interrupt, write_bytes, write_json
from higherhrnet.interrupts import Terminated, sigterm_raises, stop_signal


def test_complete_files_replace_the_old_one(tmp_path):
    path = tmp_path / "sub" / "out.json"
    write_json({"a": 1}, path)
    write_json({"a": 2}, path, indent=1)
    assert json.loads(path.read_text()) == {"a": 2}
    write_bytes(b"\x00\x01", tmp_path / "x.bin")
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\x01"
    assert sorted(os.listdir(tmp_path / "sub")) == ["out.json"]     # no temporary file left


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failure_while_writing_leaves_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "out.json"
    path.write_text("old")
    with pytest.raises(error):
        with atomic_write(path, text=True) as f:
            f.write("half of the new conte")
            raise error("interrupted")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_unserialisable_json_never_reaches_the_real_name(tmp_path):
    with pytest.raises(TypeError):
        write_json({"a": object()}, tmp_path / "out.json")
    assert os.listdir(tmp_path) == []


def test_files_get_the_permissions_of_an_ordinary_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        write_bytes(b"x", tmp_path / "a.bin")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "a.bin").st_mode & 0o777) == 0o644


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_checkpoint_save_holds_ctrl_c_and_sigterm_until_the_file_is_complete(tmp_path, stop):
    """SIGINT or SIGTERM (where it raises: sigterm_raises) in the middle of torch.save (its zip writer then fails
    with an error of its own, not the signal's): the save finishes, the file loads, and the signal's
    KeyboardInterrupt comes afterwards."""
    import torch

    from higherhrnet.checkpoint import atomic_save

    number = getattr(signal, stop)

    class Interrupting:
        def __reduce__(self):            # pickled in the middle of the zip file: the signal arrives there
            os.kill(os.getpid(), number)
            return (collections.OrderedDict, ())

    path = tmp_path / "checkpoint.pth"
    with pytest.raises(KeyboardInterrupt) as info, sigterm_raises():
        atomic_save({"weights": torch.arange(1000.0), "late": Interrupting()}, path)
    assert stop_signal(info.value) == number
    state = torch.load(path, weights_only=True)
    assert torch.equal(state["weights"], torch.arange(1000.0)) and state["late"] == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth"]


def test_held_signals_raise_the_first_ones_stop_even_when_the_block_fails():
    with pytest.raises(KeyboardInterrupt) as info, sigterm_raises():
        with finish_before_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            raise OSError("disk full")
    assert isinstance(info.value, Terminated) and isinstance(info.value.__context__, OSError)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigterm_that_would_not_raise_is_not_held():
    finished = []
    signal.signal(signal.SIGTERM, signal.SIG_IGN)        # like the default action (which would end pytest)
    try:
        with finish_before_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            finished.append(signal.getsignal(signal.SIGTERM))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert finished == [signal.SIG_IGN]
