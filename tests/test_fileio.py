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


# Run in a process whose files cannot grow past 100 kB (conftest.limit_file_size): a big write fails as on a full
# disk, a small one does not. Prints one JSON line per write: "ok", or the error's type, message and errno.
FULL_DISK_SCRIPT = """
import json, sys
import torch
from higherhrnet.checkpoint import atomic_save
from higherhrnet.fileio import write_json, write_text
folder = sys.argv[1]
writes = {
    "checkpoint.pth": lambda path: atomic_save({"weights": torch.zeros(100_000)}, path),
    "results.json": lambda path: write_json(list(range(100_000)), path),
    "small.txt": lambda path: write_text("fits", path),
}
for name, write in writes.items():
    try:
        write(folder + "/" + name)
        print(json.dumps("ok"))
    except Exception as e:
        print(json.dumps([type(e).__name__, str(e), e.errno]))
"""


@pytest.mark.slow
def test_a_full_disk_gives_one_line_naming_the_file_and_the_old_file_stays(tmp_path):
    import errno
    import subprocess
    import sys

    from conftest import limit_file_size

    (tmp_path / "checkpoint.pth").write_bytes(b"the previous checkpoint")
    (tmp_path / "results.json").write_text("[1, 2]")
    result = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                            timeout=120, preexec_fn=lambda: limit_file_size(100_000))
    assert result.returncode == 0, result.stderr
    too_large = os.strerror(errno.EFBIG)
    # torch.save's zip writer reports "unexpected pos": the OSError underneath is what is named.
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        ["WriteError", f"cannot write {tmp_path / 'checkpoint.pth'}: {too_large}", errno.EFBIG],
        ["WriteError", f"cannot write {tmp_path / 'results.json'}: {too_large}", errno.EFBIG],
        "ok",
    ]
    assert (tmp_path / "checkpoint.pth").read_bytes() == b"the previous checkpoint"
    assert (tmp_path / "results.json").read_text() == "[1, 2]"
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pth", "results.json", "small.txt"]   # no temporaries


def test_write_error_reads_as_one_line_and_says_what_is_kept():
    import errno

    from higherhrnet.fileio import WriteError

    error = WriteError.from_error("out/a.json", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC and error.filename == "out/a.json"
    assert str(error) == "cannot write out/a.json: No space left on device"
    assert str(error.keeping("the 3 images done are in out")) == \
        "cannot write out/a.json: No space left on device; the 3 images done are in out"


def test_a_read_only_folder_is_named_with_the_destination(tmp_path, read_only):
    from higherhrnet.fileio import WriteError

    (tmp_path / "out.json").write_text("old")
    read_only(tmp_path)
    with pytest.raises(WriteError) as error:
        write_json({"a": 1}, tmp_path / "out.json")
    assert str(error.value) == f"cannot write {tmp_path / 'out.json'}: {os.strerror(error.value.errno)}"
    assert (tmp_path / "out.json").read_text() == "old"


def test_other_errors_in_the_block_are_not_called_write_errors(tmp_path):
    """Only the file's own writes become WriteError: a download's network error (an OSError too) stays itself."""
    with pytest.raises(FileNotFoundError) as error:
        with atomic_write(tmp_path / "out.bin") as f:
            f.write(b"data")
            open(tmp_path / "missing")
    assert type(error.value) is FileNotFoundError
    assert os.listdir(tmp_path) == []


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
