"""Faults in `higherhrnet eval` / tools/valid.py: an output path under a regular file, weights holding NaN,
weights whose outputs overflow, a damaged image in the data set, Ctrl-C and SIGTERM (sent to this process) while
it evaluates."""
from __future__ import annotations

import os
import shutil
import signal

import pytest
import torch

import higherhrnet
from higherhrnet.cli import main

from conftest import tiny_cfg
from faultkit import EXIT_STATUS, STOPPED, TRAIN_OPTS, libjpeg_warnings, models_and_data, run, zero_filled_hole


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return models_and_data(tmp_path_factory.mktemp("eval"))


def eval_args(files, weights, out):
    return ["eval", "--cfg", str(files / "tiny.yaml"), "--weights", str(weights), "--out", str(out),
            "DATASET.ROOT", str(files / "data"), *TRAIN_OPTS]


@pytest.mark.slow
def test_valid_py_with_out_under_a_regular_file_fails_before_any_work(files, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run(*eval_args(files, files / "random.pth", blocker / "eval")[1:], script="tools/valid.py")
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"error: cannot write to output folder {blocker / 'eval'}: {blocker} is a file, "
                             f"not a folder\n")
    assert "evaluating" not in result.stderr and blocker.read_text() == "x"


def test_weights_with_nan_are_refused_naming_the_tensor(files, tmp_path, capsys):
    code = main(eval_args(files, files / "nan.pth", tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 2 and "nan.pth has NaN or infinite values in 1 tensor: stage2.0.fuse_layers.0.1.1.running_var" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_outputs_that_overflow_are_reported_not_scored(files, tmp_path, capsys):
    cfg = tiny_cfg()
    model = higherhrnet.build_model(cfg)
    with torch.no_grad():
        for layer in model.final_layers:
            layer.bias.fill_(3e38)                     # finite weights, infinite heatmaps after the flip average
    higherhrnet.save_model(tmp_path / "overflow.pth", model, cfg)
    code = main(eval_args(files, tmp_path / "overflow.pth", tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "error: the network's outputs hold NaN or infinite values" in err    # one image per batch
    assert not (tmp_path / "out" / "metrics_val.json").exists()
    assert not (tmp_path / "out" / "keypoints_val_results.json").exists()


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_stop_during_evaluation_says_nothing_was_written(files, tmp_path, capsys, monkeypatch, signal_name):
    import higherhrnet.engine

    def stopped(*args, **kwargs):
        os.kill(os.getpid(), getattr(signal, signal_name))          # a real signal, to this process
        pytest.fail(f"{signal_name} did not stop the evaluation")

    monkeypatch.setattr(higherhrnet.engine, "evaluate", stopped)
    code = main(eval_args(files, files / "random.pth", tmp_path / "out"))
    assert code == EXIT_STATUS[signal_name]
    assert capsys.readouterr().err == (f"{STOPPED[signal_name]}: evaluation stopped before its results were "
                                       f"written; nothing new in {tmp_path / 'out'}\n")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_damaged_image_in_the_data_set_stops_evaluation_naming_it_and_the_key(files, tmp_path, capfd):
    data = tmp_path / "data"
    shutil.copytree(files / "data", data)
    damaged = zero_filled_hole(sorted((data / "images" / "val").glob("*.jpg"))[0])
    assert "Corrupt JPEG data" in libjpeg_warnings(damaged, capfd)
    args = ["eval", "--cfg", str(files / "tiny.yaml"), "--weights", str(files / "random.pth"), "DATASET.ROOT",
            str(data), *TRAIN_OPTS]
    code = main([*args, "--out", str(tmp_path / "out")])
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith(f"error: {damaged}: damaged JPEG, its image data is corrupt (")
    assert errors[0].endswith("; set DATASET.ACCEPT_DAMAGED_IMAGES True to use it as decoded")
    code = main([*args, "--out", str(tmp_path / "accepted"), "DATASET.ACCEPT_DAMAGED_IMAGES", "True"])
    assert code == 0, capfd.readouterr().err
    assert (tmp_path / "accepted" / "keypoints_val_results.json").exists()
