"""Faults in `higherhrnet train`: values that would crash later, an unwritable output folder, a learning rate
that explodes without a NaN loss, a NaN loss, resuming with a changed configuration, Ctrl-C, SIGTERM and
kill -9 sent to real training processes, a run folder another live run is using, a disk that fills up."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import higherhrnet
from higherhrnet.cli import main
from higherhrnet.engine import HookBase, Trainer, TrainingError
from higherhrnet.engine.trainer import TrainingInterrupted

from faultkit import (EXIT_STATUS, STOPPED, TRAIN_OPTS, hidden_files, models_and_data, run, run_dir, start, stop,
                      train_args)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return models_and_data(tmp_path_factory.mktemp("train"))


# One iteration per epoch: epochs (and checkpoints) come fast.
QUICK = ("TRAIN.MAX_ITERS_PER_EPOCH", "1")


def train(files, out, *extra):
    """The train command in this process (the code a user's command runs); returns its exit status."""
    return main(train_args(files / "tiny.yaml", files / "data", out, *QUICK, *extra))


def tiny_trainer(files, out, *extra) -> Trainer:
    """A Trainer (in this process) of the tiny network on the tiny data, writing under `out`."""
    cfg = higherhrnet.load_cfg(files / "tiny.yaml", ["DATASET.ROOT", str(files / "data"), *TRAIN_OPTS, *extra,
                                                     "OUTPUT_DIR", str(out / "output"), "LOG_DIR", str(out / "log")])
    return Trainer(cfg, "tiny.yaml", device="cpu")


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    """A finished one-epoch run, copied by the tests that resume it."""
    out = tmp_path_factory.mktemp("trained")
    assert train(files, out) == 0
    return out


def copy_of(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def checkpoint(out):
    return torch.load(run_dir(out) / "checkpoint.pth", map_location="cpu", weights_only=True)


@pytest.mark.parametrize("key, value, rule", [
    ("TRAIN.IMAGES_PER_GPU", "0", "TRAIN.IMAGES_PER_GPU must be at least 1, got 0"),
    ("WORKERS", "-1", "WORKERS must be >= 0 (0 loads data in the main process), got -1"),
    ("DATASET.INPUT_SIZE", "100", "DATASET.INPUT_SIZE (100) must be a multiple of 32"),
])
def test_values_that_would_crash_in_pytorch_are_refused_at_load(files, tmp_path, capsys, key, value, rule):
    extra = [key, value] + (["DATASET.OUTPUT_SIZE", "[25, 50]"] if key == "DATASET.INPUT_SIZE" else [])
    assert train(files, tmp_path, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and rule in err and err.count("\n") == 1, err
    assert not (tmp_path / "output").exists()


def test_output_dir_under_a_regular_file_fails_before_any_work(files, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["train", "--cfg", str(files / "tiny.yaml"), "DATASET.ROOT", str(files / "data"), *TRAIN_OPTS,
                 "OUTPUT_DIR", str(blocker / "output")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (f"error: OUTPUT_DIR {blocker / 'output'}: cannot write the run folder "
                   f"{blocker / 'output' / 'coco_kpt' / 'pose_higher_hrnet' / 'tiny'}: {blocker} is a file, "
                   f"not a folder\n")


def broken_copy(files, tmp_path):
    """A copy of the tiny data set to break."""
    shutil.copytree(files / "data", tmp_path / "data")
    return tmp_path / "data"


def test_missing_and_missized_images_stop_training_before_anything_is_built(files, tmp_path, capsys):
    data = broken_copy(files, tmp_path)
    (data / "images" / "train" / "000000000101.jpg").unlink()
    annotations = data / "annotations" / "person_keypoints_train.json"
    dataset = json.loads(annotations.read_text())
    dataset["images"][2]["width"] = 96                                 # the file is 128x96
    annotations.write_text(json.dumps(dataset))
    code = main(train_args(files / "tiny.yaml", data, tmp_path, *QUICK))
    err = capsys.readouterr().err
    assert code == 2
    assert err == (f"error: {data / 'images' / 'train'}: 2 of 4 images listed in {annotations} cannot be used: "
                   f"1 missing (000000000101.jpg); 1 not of the annotated size (000000000102.jpg is 128x96, "
                   f"annotated 96x96)\n")
    assert not (tmp_path / "output").exists() and not (tmp_path / "log").exists()


@pytest.mark.slow
def test_an_image_only_the_loader_can_refuse_is_the_same_one_line_with_loader_workers(files, tmp_path):
    """A JPEG whose header is right (the check before training passes) but whose data is cut short: decoding
    it fails in the loader, in a worker process with WORKERS 2; the user reads the same line either way."""
    data = broken_copy(files, tmp_path)
    image = data / "images" / "train" / "000000000102.jpg"
    image.write_bytes(image.read_bytes()[:-200])
    lines = []
    for workers in ("0", "2"):
        result = run(*train_args(files / "tiny.yaml", data, tmp_path / workers, "WORKERS", workers))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "Caught" not in result.stderr, result.stderr
        lines.append(result.stderr.splitlines()[-1])
    assert lines == [f"error: {image}: truncated JPEG (no end-of-image marker after the image data)"] * 2


def test_an_exploding_learning_rate_stops_before_bad_weights_are_saved(files, tmp_path, capsys):
    code = train(files, tmp_path, "TRAIN.LR_FACTOR", "1e9", "TRAIN.LR_STEP", "[1]", "TRAIN.END_EPOCH", "3",
                 "TRAIN.MAX_ITERS_PER_EPOCH", "2")
    err = capsys.readouterr().err
    assert code == 2
    match = re.search(r"error: weights or buffers became NaN or infinite by epoch 2/3, iteration [12]/2: (\S+) \(", err)
    assert match, err
    assert "nothing is saved from them" in err
    folder = run_dir(tmp_path)
    assert f"the last complete checkpoint is {folder / 'checkpoint.pth'} (1 epoch done" in err
    assert sorted(os.listdir(folder)) == ["checkpoint.pth", "train.log"]       # no final_state.pth
    assert checkpoint(tmp_path)["epoch"] == 1
    higherhrnet.load_checkpoint(higherhrnet.build_model(higherhrnet.load_cfg(files / "tiny.yaml")),
                                folder / "checkpoint.pth")                     # finite: it loads
    assert "training stopped: weights or buffers became NaN or infinite by epoch 2/3" in \
        (folder / "train.log").read_text()


def test_a_nan_loss_is_written_to_train_log(files, tmp_path):
    trainer = tiny_trainer(files, tmp_path)
    real = trainer.loss

    def poisoned(outputs, *args):
        terms = real(outputs, *args)
        return {**terms, "heatmaps_1/4": terms["heatmaps_1/4"] * float("nan")}

    trainer.loss = poisoned
    with pytest.raises(TrainingError, match=r"loss is nan in epoch 1/\d+, iteration 1/\d+ "):
        trainer.run()
    log = (run_dir(tmp_path) / "train.log").read_text()
    assert re.search(r"training stopped: loss is nan in epoch 1/\d+, iteration 1/\d+ ", log), log
    assert "no checkpoint was written yet" in log


def test_trainer_run_from_python_raises_sigterm_as_training_interrupted_and_logs_it(files, tmp_path):
    trainer = tiny_trainer(files, tmp_path)
    real = trainer.loss

    def terminated(outputs, *args):
        if trainer.state.iteration == 1:
            os.kill(os.getpid(), signal.SIGTERM)                  # a real signal, to this process
        return real(outputs, *args)

    trainer.loss = terminated
    with pytest.raises(TrainingInterrupted) as info:
        trainer.run()
    assert info.value.signal_number == signal.SIGTERM
    assert re.match(r"terminated \(SIGTERM\) in epoch 1/\d+, iteration 2/\d+; no checkpoint was written yet",
                    str(info.value)), str(info.value)
    assert (run_dir(tmp_path) / "train.log").read_text().rstrip().endswith(str(info.value))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL      # put back after the run


def test_a_changed_learning_rate_is_applied_on_resume(files, trained, tmp_path, caplog):
    out = copy_of(trained, tmp_path)
    cfg = higherhrnet.load_cfg(files / "tiny.yaml", [
        "DATASET.ROOT", str(files / "data"), *TRAIN_OPTS, *QUICK, "OUTPUT_DIR", str(out / "output"),
        "LOG_DIR", str(out / "log"), "TRAIN.END_EPOCH", "2", "TRAIN.LR", "0.01", "TRAIN.LR_STEP", "[1]",
        "TRAIN.LR_FACTOR", "0.5", "PRINT_FREQ", "5"])
    with caplog.at_level("INFO", logger="higherhrnet.train"):
        trainer = Trainer(cfg, "tiny.yaml", device="cpu")
    group = trainer.optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(0.01 * 0.5) and group["initial_lr"] == 0.01    # epoch 1: after the step
    assert trainer.state.epoch == 1
    steps = {float(s["step"]) for s in trainer.optimizer.state.values()}
    assert steps == {1.0}                                           # Adam's moments kept (one step done)
    (applied,) = [r.getMessage() for r in caplog.records if "(applied from now on)" in r.getMessage()]
    for change in ("TRAIN.LR 0.001 -> 0.01", "TRAIN.LR_STEP [200, 260] -> [1]", "TRAIN.LR_FACTOR 0.1 -> 0.5"):
        assert change in applied
    assert "PRINT_FREQ 20 -> 5" in caplog.text


def test_a_changed_optimizer_or_network_is_refused_listing_each_key(files, trained, tmp_path, capsys):
    out = copy_of(trained, tmp_path)
    before = (run_dir(out) / "checkpoint.pth").read_bytes()
    code = train(files, out, "TRAIN.OPTIMIZER", "sgd", "MODEL.EXTRA.STAGE4.NUM_CHANNELS", "[8, 16, 32, 48]")
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "it was trained with a different configuration:\n  MODEL.EXTRA.STAGE4.NUM_CHANNELS [8, 16, 32, 64] -> " \
           "[8, 16, 32, 48]\n  TRAIN.OPTIMIZER 'adam' -> 'sgd'\n" in err
    assert "start again: add --fresh" in err and "resume anyway: add --resume-anyway" in err
    assert (run_dir(out) / "checkpoint.pth").read_bytes() == before


def test_resume_anyway_goes_on_with_the_new_optimizer(files, trained, tmp_path):
    out = copy_of(trained, tmp_path)
    assert train(files, out, "TRAIN.OPTIMIZER", "sgd", "TRAIN.END_EPOCH", "2", "--resume-anyway") == 0
    state = checkpoint(out)
    assert state["epoch"] == 2
    assert state["optimizer"]["param_groups"][0]["momentum"] == 0.9            # SGD's, built from the config


def test_resume_anyway_with_another_network_names_the_keys_that_do_not_fit(files, trained, tmp_path, capsys):
    out = copy_of(trained, tmp_path)
    code = train(files, out, "MODEL.EXTRA.STAGE4.NUM_CHANNELS", "[8, 16, 32, 48]", "--resume-anyway")
    err = capsys.readouterr().err
    assert code == 2 and "does not fit the model" in err and "wrong shape" in err
    assert "stage4.0.branches.3.0.conv1.weight: checkpoint [64, 64, 3, 3] vs model [48, 48, 3, 3]" in err
    assert "--fresh" in err


def test_fresh_keeps_the_old_files_under_dated_names(files, trained, tmp_path):
    out = copy_of(trained, tmp_path)
    folder = run_dir(out)
    old = {name: (folder / name).read_bytes() for name in ("checkpoint.pth", "final_state.pth")}
    assert train(files, out, "TRAIN.OPTIMIZER", "sgd", "--fresh") == 0
    for name, data in old.items():
        stem = name[:-4]
        (kept,) = [p for p in folder.iterdir() if re.fullmatch(rf"{stem}\.\d{{8}}-\d{{6}}\.pth", p.name)]
        assert kept.read_bytes() == data
    assert checkpoint(out)["epoch"] == 1                          # trained again from epoch 0
    assert "'sgd'" in checkpoint(out)["meta"]["config"] or "OPTIMIZER: sgd" in checkpoint(out)["meta"]["config"]


@pytest.mark.slow
@pytest.mark.parametrize("signal_name, group, workers", [("SIGINT", False, 0), ("SIGTERM", False, 0), ("SIGTERM", True, 1)],
                         ids=["ctrl-c", "sigterm", "sigterm-to-the-group-with-a-loader-process"])
def test_a_stop_ends_training_cleanly_and_names_the_last_complete_checkpoint(files, tmp_path, signal_name, group,
                                                                             workers):
    # SIGTERM to the group (systemd, SLURM) reaches the DataLoader worker too: it ends quietly, as on Ctrl-C.
    process = start(*train_args(files / "tiny.yaml", files / "data", tmp_path, *QUICK, "TRAIN.END_EPOCH", "1000",
                                "WORKERS", str(workers)), own_group=group)
    folder = run_dir(tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline and not (folder / "checkpoint.pth").exists():
        time.sleep(0.1)
    time.sleep(1.0)                                               # a few more epochs (and saves)
    stderr = stop(process, signal_name, group)
    assert process.returncode == EXIT_STATUS[signal_name], stderr
    assert "Traceback" not in stderr and "DataLoader" not in stderr
    (last,) = [line for line in stderr.splitlines() if line.startswith(STOPPED[signal_name])]
    assert stderr.rstrip().endswith(last)                         # the last word
    match = re.fullmatch(rf"{re.escape(STOPPED[signal_name])} in epoch (\d+)/1000, iteration 1/1; the last complete "
                         rf"checkpoint is (\S+) \((\d+) epochs? done; resuming continues with epoch (\d+)\)", last)
    assert match, stderr
    assert match[2] == str(folder / "checkpoint.pth") and int(match[4]) == int(match[3]) + 1
    # stopped in the epoch after the saved ones, or in the last saved one (after its checkpoint, in a later hook)
    assert checkpoint(tmp_path)["epoch"] == int(match[3]) and int(match[1]) in (int(match[3]), int(match[3]) + 1)
    assert (folder / "train.log").read_text().rstrip().endswith(last)
    assert hidden_files(folder) == []


@pytest.mark.slow
def test_kill_9_never_leaves_a_damaged_checkpoint_and_leftovers_are_removed(files, tmp_path):
    folder = run_dir(tmp_path)
    args = train_args(files / "tiny.yaml", files / "data", tmp_path, *QUICK, "TRAIN.END_EPOCH", "1000")
    epochs = 0
    for kill in range(3):
        process = start(*args)
        deadline = time.time() + 240
        while time.time() < deadline and (not (folder / "checkpoint.pth").exists() or checkpoint(tmp_path)["epoch"]
                                          < epochs + 2):
            time.sleep(0.05)
        time.sleep(0.05 * kill)                                   # somewhere in an epoch or a save
        process.kill()
        process.communicate(timeout=60)
        state = checkpoint(tmp_path)                              # always a complete file
        assert state["epoch"] >= epochs + 2
        epochs = state["epoch"]
    # A temporary file of a save cut short, as kill -9 leaves them: removed by the next save into the folder.
    leftover = folder / ".checkpoint.pth.c0ffee.tmp.pth"
    leftover.write_bytes(b"half a checkpoint")
    hour_ago = time.time() - 3600
    for path in hidden_files(folder):
        os.utime(folder / path, (hour_ago, hour_ago))
    result = run(*train_args(files / "tiny.yaml", files / "data", tmp_path, *QUICK, "TRAIN.END_EPOCH",
                             str(epochs + 1)))
    assert result.returncode == 0, result.stderr
    assert f"resumed from {folder / 'checkpoint.pth'}: {epochs} epochs done, continuing with epoch {epochs + 1}" \
        in result.stderr
    assert checkpoint(tmp_path)["epoch"] == epochs + 1
    assert hidden_files(folder) == []
    json.dumps(checkpoint(tmp_path)["meta"])                      # plain values only


# Takes the lock of the run folder argv[1] through the library, as a training run does, and holds it until killed.
HOLD_RUN_FOLDER = """
import sys, time
from higherhrnet.engine.runs import lock_run_folder
lock = lock_run_folder(sys.argv[1])
print("held" if lock.held else "not held", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_a_run_folder_in_use_is_refused_before_any_work_and_free_after_kill_9(files, tmp_path, capsys):
    folder = run_dir(tmp_path)
    folder.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_RUN_FOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        # Refused before the data is read: a missing DATASET.ROOT is not what is reported.
        code = main(train_args(files / "tiny.yaml", tmp_path / "no-data", tmp_path, *QUICK))
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"error: OUTPUT_DIR {tmp_path / 'output'}: the run folder {folder} is in use by another "
                              f"training run (pid {holder.pid} on ")
        assert err.endswith("; wait for it to finish or stop it, or choose another OUTPUT_DIR; to train into it "
                            "anyway: --share-run-folder (Python: Trainer(..., share_run_folder=True))\n")
        assert os.listdir(folder) == [".train.lock"]                        # the holder's; nothing written
        assert train(files, tmp_path, "--share-run-folder") == 0              # asked for: trained, with a warning
        assert f"warning: the run folder {folder} is in use by another training run (pid {holder.pid} on " in \
            capsys.readouterr().err
        assert checkpoint(tmp_path)["epoch"] == 1
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert train(files, tmp_path, "TRAIN.END_EPOCH", "2") == 0                # kill -9 took the lock with it
    assert checkpoint(tmp_path)["epoch"] == 2
    assert sorted(os.listdir(folder)) == ["checkpoint.pth", "final_state.pth", "train.log"]   # lock file removed


def test_a_trainer_holds_its_folder_from_construction_to_the_end_of_run(files, tmp_path):
    first = tiny_trainer(files, tmp_path, *QUICK)
    cfg = first.cfg
    with pytest.raises(higherhrnet.ConfigError, match=r"is in use by another training run \(pid \d+ \(this process\)"):
        Trainer(cfg, "tiny.yaml", device="cpu")
    first.run()
    assert not (run_dir(tmp_path) / ".train.lock").exists()
    # A construction that fails once the folder is locked (a refused resume) frees it again.
    changed = cfg.clone()
    changed.defrost()
    changed.TRAIN.OPTIMIZER = "sgd"
    changed.freeze()
    with pytest.raises(TrainingError, match="different configuration"):
        Trainer(changed, "tiny.yaml", device="cpu")
    assert not (run_dir(tmp_path) / ".train.lock").exists()
    Trainer(changed, "tiny.yaml", device="cpu", resume="fresh").close()


@pytest.mark.slow
def test_a_second_training_run_into_a_live_runs_folder_is_refused_until_that_run_is_killed(files, tmp_path):
    args = train_args(files / "tiny.yaml", files / "data", tmp_path, *QUICK, "TRAIN.END_EPOCH", "1000")
    first = start(*args)
    folder = run_dir(tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline and not (folder / "checkpoint.pth").exists():
        time.sleep(0.1)
    second = run(*args)
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert f"the run folder {folder} is in use by another training run (pid {first.pid} on " in second.stderr
    assert "higherhrnet train --cfg" in second.stderr                         # the first run's command line
    first.kill()
    first.communicate(timeout=60)
    epochs = checkpoint(tmp_path)["epoch"]
    # A save the kill cut short leaves its temporary; the next run removes those older than its own start, which
    # it knows to the second (the boot time in /proc is whole seconds): make them older than that.
    hour_ago = time.time() - 3600
    for path in hidden_files(folder):
        os.utime(folder / path, (hour_ago, hour_ago))
    again = run(*train_args(files / "tiny.yaml", files / "data", tmp_path, *QUICK, "TRAIN.END_EPOCH", str(epochs + 1)))
    assert again.returncode == 0, again.stderr
    assert f"resumed from {folder / 'checkpoint.pth'}: {epochs} epochs done, continuing with epoch {epochs + 1}" \
        in again.stderr
    assert hidden_files(folder) == []


@pytest.mark.slow
def test_a_full_disk_at_a_checkpoint_stops_with_one_line_naming_it_and_the_last_complete_one(files, trained,
                                                                                               tmp_path):
    out = copy_of(trained, tmp_path)
    folder = run_dir(out)
    saved = folder / "checkpoint.pth"
    # checkpoint.pth (about 4.7 MB with Adam's state) no longer fits; train.log and the events do.
    result = run(*train_args(files / "tiny.yaml", files / "data", out, *QUICK, "TRAIN.END_EPOCH", "3"),
                 file_size_limit=3_000_000)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    message = (f"cannot write {saved}: {os.strerror(errno.EFBIG)} (at the end of epoch 2/3); the last complete "
               f"checkpoint is {saved} (1 epoch done; resuming continues with epoch 2)")
    assert [line for line in result.stderr.splitlines() if "error" in line] == [f"error: {message}"]
    assert result.stderr.endswith(f"error: {message}\n")
    assert (folder / "train.log").read_text().rstrip().endswith(f"training stopped: {message}")
    assert checkpoint(out)["epoch"] == 1                                    # the complete one, untouched
    assert hidden_files(folder) == []                                       # no temporary, no lock file


@pytest.mark.slow
def test_final_state_on_a_full_disk_with_train_log_unwritable_too(files, trained, tmp_path):
    out = copy_of(trained, tmp_path)
    folder = run_dir(out)
    (folder / "final_state.pth").unlink()
    (folder / "train.log").unlink()
    (folder / "train.log").symlink_to("/dev/full")          # every write to it: ENOSPC, as on a full disk
    # Resumed at its last epoch: only final_state.pth (1.6 MB) is written, and it does not fit.
    result = run(*train_args(files / "tiny.yaml", files / "data", out, *QUICK, "TRAIN.END_EPOCH", "1"),
                 file_size_limit=1_000_000)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "Logging error" not in result.stderr, \
        result.stderr
    log, full = folder / "train.log", os.strerror(errno.ENOSPC)
    assert result.stderr.count(f"warning: cannot write {log}: {full}; the training log goes on on the console "
                               f"only\n") == 1
    final = folder / "final_state.pth"
    assert result.stderr.endswith(
        f"warning: cannot write {log} ({full}): the message saying why training ended is not in it\n"
        f"error: cannot write {final}: {os.strerror(errno.EFBIG)} (after the last epoch); the last complete "
        f"checkpoint is {folder / 'checkpoint.pth'} (1 epoch done; resuming continues with epoch 2)\n")
    assert not final.exists() and hidden_files(folder) == []


def test_a_run_folder_made_read_only_mid_run_stops_at_the_next_checkpoint(files, tmp_path, read_only):
    trainer = tiny_trainer(files, tmp_path, *QUICK, "TRAIN.END_EPOCH", "3")
    folder = run_dir(tmp_path)

    class ReadOnlyAfterFirstEpoch(HookBase):
        def after_epoch(self):
            if self.loop.state.epoch == 0:
                read_only(folder)

    hooks = trainer.build_hooks
    trainer.build_hooks = lambda: hooks() + [ReadOnlyAfterFirstEpoch()]     # after the first checkpoint.pth
    with pytest.raises(TrainingError) as error:
        trainer.run()
    saved = folder / "checkpoint.pth"
    message = str(error.value)
    assert re.fullmatch(rf"cannot write {re.escape(str(saved))}: (Permission denied|Operation not permitted) \(at the "
                        rf"end of epoch 2/3\); the last complete checkpoint is {re.escape(str(saved))} \(1 epoch "
                        rf"done; resuming continues with epoch 2\)", message), message
    assert (folder / "train.log").read_text().rstrip().endswith(f"training stopped: {message}")
    assert checkpoint(tmp_path)["epoch"] == 1


def test_out_of_memory_in_validation_is_one_line_with_the_batch_size_hint(files, tmp_path):
    trainer = tiny_trainer(files, tmp_path, *QUICK, "TRAIN.VAL_FREQ", "1")

    def out_of_memory():
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)")

    trainer._validate = out_of_memory
    with pytest.raises(TrainingError) as error:
        trainer.run()
    first, note = str(error.value).split("\n")
    assert first.startswith("out of memory validating at the end of epoch 1/1 ([enforce fail at alloc_cpu.cpp:117] "
                            "data. DefaultCPUAllocator: can't allocate memory")
    assert first.endswith("); lower TEST.IMAGES_PER_GPU (images per validation batch), or validate less often "
                          "(TRAIN.VAL_FREQ)")
    assert note.startswith("the last complete checkpoint is") or note.startswith("no checkpoint was written yet")
