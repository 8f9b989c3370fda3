"""Training bearpaw/pytorch-pose's stacked hourglass (stacked_hourglass) on MPII-layout data through the real
Trainer: RMSprop, the loss summed over the stacks, validation with PCKh (the best model kept by PCKh's Mean), the
same metrics as `higherhrnet eval` gives the saved weights, and resume."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

import higherhrnet
from higherhrnet.cli import main
from higherhrnet.data import DatasetError
from higherhrnet.data.registry import MPII_METRICS
from higherhrnet.data.synthetic import write_synthetic_mpii
from conftest import EXPERIMENTS, tiny_stacked_hourglass_cfg, train_once


@pytest.fixture(scope="module")
def mpii_root(tmp_path_factory):
    """A tiny synthetic MPII set in bearpaw's layout: 3 + 2 images of 1 to 3 people."""
    root = tmp_path_factory.mktemp("synthetic_mpii")
    write_synthetic_mpii(str(root), {"train": 3, "val": 2}, progress=False)
    return root


def train_cfg(root, out, *opts):
    return tiny_stacked_hourglass_cfg(
        "DATASET.DATASET", "synthetic_mpii", "DATASET.DATASET_TEST", "synthetic_mpii", "DATASET.ROOT", str(root),
        "DATASET.TRAIN_SET", "train", "DATASET.TEST_SET", "val", "DATASET.PROB_HALF_BODY", "0.0",
        "DATASET.SCALE_FACTOR", "0.25", "DATASET.ROT_FACTOR", "30", "MODEL.SIGMA", "1",
        # bearpaw's RMSprop, at a rate high enough that one epoch of 3 steps moves the heatmaps off their start
        # (PCKh not 0 everywhere, so that comparing validation with eval compares something).
        "TRAIN.OPTIMIZER", "rmsprop", "TRAIN.LR", "0.01", "TRAIN.MOMENTUM", "0.0", "TRAIN.WD", "0.0",
        "TRAIN.BATCH_SIZE_PER_GPU", "2", "TRAIN.END_EPOCH", "1", "TRAIN.VAL_FREQ", "1",
        "TEST.BATCH_SIZE_PER_GPU", "3", "TEST.FLIP_TEST", "True", "WORKERS", "0",
        "OUTPUT_DIR", str(out / "out"), "LOG_DIR", str(out / "log"), "AUTO_RESUME", "True", *opts)


def test_trains_with_rmsprop_validates_with_pckh_as_eval_scores_and_resumes(mpii_root, tmp_path):
    torch.set_num_threads(1)
    trainer, first = train_once(train_cfg(mpii_root, tmp_path / "b"))
    assert isinstance(trainer.optimizer, torch.optim.RMSprop)
    assert isinstance(trainer.loss, higherhrnet.losses.TopDownLoss)
    (epoch,) = first["epochs"]
    # Both stacks are supervised; the loss is their sum.
    stacks = epoch["heatmaps_1/4_output0"], epoch["heatmaps_1/4_output1"]
    assert all(math.isfinite(v) and v > 0 for v in stacks) and epoch["loss"] == pytest.approx(sum(stacks))
    assert tuple(epoch["val"]) == MPII_METRICS
    assert all(0 <= epoch["val"][name] <= 100 for name in MPII_METRICS[:-1]) and 0 <= epoch["val"]["PCK"] <= 1

    out = first["output_dir"]
    assert sorted(os.listdir(out)) == ["checkpoint.pth", "final_state.pth", "model_best.pth", "train.log"]
    log = open(os.path.join(out, "train.log")).read()
    assert "epoch 1/1 validation: Head " in log and f"new best Mean {epoch['val']['Mean']:.4f}: model_best.pth" in log
    assert first["saved"]["best_metric"] == epoch["val"]["Mean"] and first["saved"]["main_metric"] == "Mean"
    assert f"(Mean {epoch['val']['Mean']:.4f})" in first["summary"]

    # `higherhrnet eval` of the saved weights (their config travels in the file) scores as validation did.
    evaluated = tmp_path / "eval"
    assert main(["eval", "--weights", os.path.join(out, "final_state.pth"), "--device", "cpu",
                 "--out", str(evaluated)]) == 0
    assert json.loads((evaluated / "metrics_val.json").read_text()) == epoch["val"]

    _, resumed = train_once(train_cfg(mpii_root, tmp_path / "b", "TRAIN.END_EPOCH", "2"))
    _, full = train_once(train_cfg(mpii_root, tmp_path / "a", "TRAIN.END_EPOCH", "2"))
    assert len(resumed["epochs"]) == 1                      # only epoch 2 ran again, from the RMSprop state saved
    assert first["epochs"][0] == full["epochs"][0] and resumed["epochs"][0] == full["epochs"][1]


def test_validation_needs_the_ground_truth_before_training(mpii_root, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    for name in ("mpii_annotations.json", "images"):       # everything but detections_our_format.mat
        os.symlink(mpii_root / name, root / name)
    with pytest.raises(DatasetError, match="MPII's validation ground truth not found"):
        higherhrnet.engine.Trainer(train_cfg(root, tmp_path), "tiny.yaml", device="cpu")


def test_the_tiny_recipe_loads_and_builds():
    cfg = higherhrnet.load_cfg(str(EXPERIMENTS / "synthetic" / "hourglass_mpii_tiny.yaml"))
    assert cfg.MODEL.NAME == "stacked_hourglass" and cfg.DATASET.DATASET == "synthetic_mpii"
    assert cfg.TRAIN.OPTIMIZER == "rmsprop" and cfg.TRAIN.VAL_FREQ > 0
    network = higherhrnet.build_model(cfg)
    size = cfg.MODEL.IMAGE_SIZE[0]
    outputs = network(torch.zeros(1, 3, size, size))
    assert [tuple(o.shape) for o in outputs] == [(1, 16, size // 4, size // 4)] * cfg.MODEL.EXTRA.NUM_STACKS
