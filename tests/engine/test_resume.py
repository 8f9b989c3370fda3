"""engine/resume.py's functions on their own: which checkpoint is read, what a fresh start keeps, the note
naming the last complete checkpoint. Resuming real runs: tests/engine/test_training.py, tests/faults."""
from __future__ import annotations

import datetime
import os
import re

import pytest
import torch

import higherhrnet
from higherhrnet.engine.build import build_optimizer, build_scheduler
from higherhrnet.engine.resume import checkpoint_note, resume_training, set_aside_previous_run
from higherhrnet.engine.train_loop import TrainingError

from conftest import tiny_cfg


def built(cfg):
    model = higherhrnet.build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    return model, optimizer, build_scheduler(cfg, optimizer, 2), torch.amp.GradScaler("cpu", enabled=False)


def test_a_model_file_is_not_resumed_from_and_fresh_reads_nothing(tmp_path):
    cfg = tiny_cfg("TRAIN.BEGIN_EPOCH", "3")
    model, optimizer, scheduler, scaler = built(cfg)
    weights = tmp_path / "final_state.pth"
    higherhrnet.save_model(weights, model, cfg)                  # weights and meta, no training state
    cfg = tiny_cfg("TRAIN.BEGIN_EPOCH", "3", "TRAIN.RESUME", "True", "TRAIN.CHECKPOINT", str(weights))
    with pytest.raises(TrainingError, match=re.escape(f"cannot resume from {weights}: it has no 'model' entry")):
        resume_training(cfg, "check", str(tmp_path / "checkpoint.pth"), model, optimizer, scheduler, scaler, 2)
    resumed = resume_training(cfg, "fresh", str(tmp_path / "checkpoint.pth"), model, optimizer, scheduler, scaler, 2)
    assert resumed.state.epoch == 3 and resumed.state.best_metric is None and resumed.path is None
    assert resumed.optimizer is optimizer and resumed.scheduler is scheduler


def test_a_fresh_start_keeps_the_run_files_under_their_date(tmp_path):
    for name in ("checkpoint.pth", "model_best.pth", "train.log"):
        (tmp_path / name).write_text(name)
    when = datetime.datetime(2024, 5, 6, 7, 8, 9).timestamp()
    os.utime(tmp_path / "checkpoint.pth", (when, when))
    (tmp_path / "checkpoint.20240506-070809.pth").write_text("older")      # the name is taken: -2
    set_aside_previous_run(str(tmp_path))
    assert (tmp_path / "checkpoint.20240506-070809-2.pth").read_text() == "checkpoint.pth"
    assert (tmp_path / "checkpoint.20240506-070809.pth").read_text() == "older"
    (best,) = tmp_path.glob("model_best.*.pth")
    assert re.fullmatch(r"model_best\.\d{8}-\d{6}\.pth", best.name) and best.read_text() == "model_best.pth"
    assert not (tmp_path / "checkpoint.pth").exists() and not (tmp_path / "model_best.pth").exists()
    assert (tmp_path / "train.log").read_text() == "train.log"                # not a run file: left alone


def test_the_note_names_the_last_complete_checkpoint(tmp_path):
    path = str(tmp_path / "checkpoint.pth")
    assert checkpoint_note(path, 1).startswith("no checkpoint was written yet")       # no file
    (tmp_path / "checkpoint.pth").write_bytes(b"")
    assert checkpoint_note(path, None).startswith("no checkpoint was written yet")
    assert checkpoint_note(path, 1) == f"the last complete checkpoint is {path} (1 epoch done; resuming continues " \
                                       f"with epoch 2)"
    assert "(2 epochs done;" in checkpoint_note(path, 2)
