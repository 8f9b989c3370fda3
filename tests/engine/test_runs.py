"""engine/runs.py: one training run per run folder. The lock is held by real processes (a Python process that takes
it through the API), refused to others while they live, and gone when they die, kill -9 included."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from higherhrnet.engine.runs import (LOCK_NAME, SHARE_OPTION, RunFolderInUse, lock_run_folder, run_folder_holder)

# Takes the lock of the folder argv[1], says so, and holds it until killed.
HOLDER = """
import sys, time
from higherhrnet.engine.runs import lock_run_folder
lock = lock_run_folder(sys.argv[1])
print("held" if lock.held else "not held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """A live process holding the lock of tmp_path (killed at the end of the test if still alive)."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


@pytest.mark.slow
def test_a_folder_held_by_a_live_process_is_refused_naming_it(tmp_path, holder):
    record = json.loads((tmp_path / LOCK_NAME).read_text())
    assert record["pid"] == holder.pid and record["host"] == socket.gethostname()
    assert HOLDER.strip().splitlines()[0] in record["command"]           # its command line, as it was started
    assert run_folder_holder(str(tmp_path)) == record
    with pytest.raises(RunFolderInUse) as error:
        lock_run_folder(str(tmp_path), refused="OUTPUT_DIR out")
    message = str(error.value)
    assert "\n" not in message and error.value.holder == record
    assert message.startswith(f"OUTPUT_DIR out: the run folder {tmp_path} is in use by another training run (pid "
                               f"{holder.pid} on {socket.gethostname()}, started {record['started']}, command: ")
    assert message.endswith(f"); wait for it to finish or stop it, or choose another OUTPUT_DIR; to train into it "
                            f"anyway: {SHARE_OPTION}")
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == record       # the refused one changed nothing


@pytest.mark.slow
def test_sharing_a_busy_folder_warns_and_holds_nothing(tmp_path, holder, caplog):
    with caplog.at_level("WARNING", logger="higherhrnet.train"):
        lock = lock_run_folder(str(tmp_path), share=True)
    assert not lock.held
    assert f"the run folder {tmp_path} is in use by another training run (pid {holder.pid} on" in caplog.text
    lock.release()
    assert run_folder_holder(str(tmp_path))["pid"] == holder.pid          # the other run's lock is untouched


@pytest.mark.slow
def test_the_lock_of_a_killed_process_blocks_nobody(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert os.listdir(tmp_path) == [LOCK_NAME]              # kill -9: the file stays, the OS lock went with it
    assert run_folder_holder(str(tmp_path)) is None
    lock = lock_run_folder(str(tmp_path))
    assert lock.held and json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert os.listdir(tmp_path) == []                       # a run that ends removes its lock file
    lock.release()                                          # twice: nothing more


def test_one_process_cannot_hold_a_folder_twice(tmp_path):
    first = lock_run_folder(str(tmp_path))
    with pytest.raises(RunFolderInUse, match=r"\(this process\) on .*; close\(\) the Trainer that holds it"):
        lock_run_folder(str(tmp_path))
    first.release()
    second = lock_run_folder(str(tmp_path))
    assert second.held
    second.release()


def test_only_the_main_process_locks(tmp_path):
    lock = lock_run_folder(str(tmp_path), main=False)       # the other DDP ranks: the same run
    assert not lock.held and os.listdir(tmp_path) == []


def test_released_on_error_frees_the_folder_only_when_the_block_fails(tmp_path):
    lock = lock_run_folder(str(tmp_path))
    with lock.released_on_error():
        pass
    assert lock.held
    with pytest.raises(ValueError):
        with lock.released_on_error():
            raise ValueError("building failed")
    assert not lock.held and os.listdir(tmp_path) == []
