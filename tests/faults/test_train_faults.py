"""Faults in `higherhrnet train`: values that would crash later, an unwritable output folder, a learning rate
that explodes without a NaN loss, a NaN loss, resuming with a changed configuration, Ctrl-C and kill -9 sent
to real training processes."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time

import pytest
import torch

import higherhrnet
from higherhrnet.cli import main
from higherhrnet.engine import Trainer, TrainingError

from faultkit import TRAIN_OPTS, hidden_files, models_and_data, run, run_dir, start, train_args


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return models_and_data(tmp_path_factory.mktemp("train"))


# One iteration per epoch: epochs (and checkpoints) come fast.
QUICK = ("TRAIN.MAX_ITERS_PER_EPOCH", "1")


def train(files, out, *extra):
    """The train command in this process (the code a user's command runs); returns its exit status."""
    return main(train_args(files / "tiny.yaml", files / "data", out, *QUICK, *extra))


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
                   f"{blocker / 'output' / 'coco_kpt' / 'pose_higher_hrnet' / 'tiny'}: Not a directory\n")


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
    match = re.search(r"error: weights or buffers became NaN or infinite by epoch 1, iteration [01]: (\S+) \(", err)
    assert match, err
    assert "nothing is saved from them" in err
    folder = run_dir(tmp_path)
    assert f"the last complete checkpoint is {folder / 'checkpoint.pth'} (1 epoch done" in err
    assert sorted(os.listdir(folder)) == ["checkpoint.pth", "train.log"]       # no final_state.pth
    assert checkpoint(tmp_path)["epoch"] == 1
    higherhrnet.load_checkpoint(higherhrnet.build_model(higherhrnet.load_cfg(files / "tiny.yaml")),
                                folder / "checkpoint.pth")                     # finite: it loads
    assert "training stopped: weights or buffers became NaN or infinite by epoch 1" in \
        (folder / "train.log").read_text()


def test_a_nan_loss_is_written_to_train_log(files, tmp_path):
    cfg = higherhrnet.load_cfg(files / "tiny.yaml", ["DATASET.ROOT", str(files / "data"), *TRAIN_OPTS,
                                                     "OUTPUT_DIR", str(tmp_path / "output"),
                                                     "LOG_DIR", str(tmp_path / "log")])
    trainer = Trainer(cfg, "tiny.yaml", device="cpu")
    real = trainer.loss

    def poisoned(outputs, *args):
        terms = real(outputs, *args)
        return {**terms, "heatmaps_1/4": terms["heatmaps_1/4"] * float("nan")}

    trainer.loss = poisoned
    with pytest.raises(TrainingError, match="loss is nan at epoch 0, iteration 0"):
        trainer.run()
    log = (run_dir(tmp_path) / "train.log").read_text()
    assert "training stopped: loss is nan at epoch 0, iteration 0" in log
    assert "no checkpoint was written yet" in log


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
def test_ctrl_c_stops_cleanly_and_names_the_last_complete_checkpoint(files, tmp_path):
    process = start(*train_args(files / "tiny.yaml", files / "data", tmp_path, *QUICK, "TRAIN.END_EPOCH", "1000"))
    folder = run_dir(tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline and not (folder / "checkpoint.pth").exists():
        time.sleep(0.1)
    time.sleep(1.0)                                               # a few more epochs (and saves)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    (last,) = [line for line in stderr.splitlines() if line.startswith("interrupted")]
    assert stderr.rstrip().endswith(last)                         # the last word
    match = re.fullmatch(r"interrupted at epoch (\d+), iteration 0; the last complete checkpoint is (\S+) \((\d+) "
                         r"epochs? done; resuming continues with epoch \3\)", last)
    assert match, stderr
    assert match[2] == str(folder / "checkpoint.pth")
    assert checkpoint(tmp_path)["epoch"] == int(match[3]) and int(match[3]) in (int(match[1]), int(match[1]) + 1)
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
    assert f"resumed from {folder / 'checkpoint.pth'} at epoch {epochs}" in result.stderr
    assert checkpoint(tmp_path)["epoch"] == epochs + 1
    assert hidden_files(folder) == []
    json.dumps(checkpoint(tmp_path)["meta"])                      # plain values only
