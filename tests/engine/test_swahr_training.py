"""SWAHR in training and around it: the learning rate (TRAIN.LR x WORLD_SIZE, TRAIN.LR_SCHEDULE swahr), a
tiny SWAHR run through Trainer with validation, its ONNX export and `higherhrnet predict` on its weights."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import higherhrnet
from higherhrnet.config import ConfigError
from higherhrnet.engine.build import build_optimizer, build_scheduler
from higherhrnet.predictor import Predictor

from conftest import REPO, assert_same_maps, painted_image, tiny_cfg, train_once
from tinycoco import write_tiny_coco


def rates(cfg, iters_per_epoch: int, steps: int) -> list[float]:
    """The learning rate each of the first `steps` optimiser steps uses."""
    optimizer = build_optimizer(cfg, torch.nn.Linear(1, 1))
    scheduler = build_scheduler(cfg, optimizer, iters_per_epoch)
    used = []
    for _ in range(steps):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return used


def test_swahr_schedule_values():
    # SWAHR's do_train with 2 iterations per epoch: lr0 = 0.00025 x 8, warm-up W = 3 x 2 iterations, decay over
    # (300 - 3) x 2 = 594; after step k it sets 0.1 lr0 + k / W 0.9 lr0 (k < W), else (1 - (k - W) / 594) lr0, and
    # step k + 1 uses it. Step 0 uses lr0 itself (the optimiser's initial rate).
    cfg = tiny_cfg("TRAIN.LR", "0.00025", "WORLD_SIZE", "8", "TRAIN.LR_SCHEDULE", "swahr", "TRAIN.WARM_UP_EPOCH", "3",
                   "TRAIN.END_EPOCH", "300")
    used = rates(cfg, 2, 600)
    expected = {0: 0.002, 1: 0.0002, 2: 0.0002 + 0.0018 / 6, 6: 0.0002 + 0.0018 * 5 / 6, 7: 0.002,
                300: 0.002 * (1 - 293 / 594), 599: 0.002 * 2 / 594}
    for step, lr in expected.items():
        assert used[step] == pytest.approx(lr, rel=1e-12), step
    assert max(used) == pytest.approx(0.002)


def test_world_size_multiplies_every_optimisers_rate():
    assert rates(tiny_cfg("TRAIN.LR", "0.001"), 10, 1) == [0.001]                     # default 1: unchanged
    assert rates(tiny_cfg("TRAIN.LR", "0.001", "WORLD_SIZE", "4"), 10, 1) == [0.004]
    sgd = tiny_cfg("TRAIN.OPTIMIZER", "sgd", "TRAIN.LR", "0.01", "WORLD_SIZE", "2", "TRAIN.LR_STEP", "[1]")
    assert rates(sgd, 10, 12)[9:] == pytest.approx([0.02, 0.002, 0.002])             # multistep keeps its steps


@pytest.mark.parametrize("opts,message", [
    (["TRAIN.LR_SCHEDULE", "cosine"], "TRAIN.LR_SCHEDULE must be multistep or swahr, got 'cosine'"),
    (["TRAIN.LR_SCHEDULE", "swahr", "TRAIN.WARMUP_EPOCHS", "1"], "set TRAIN.WARMUP_EPOCHS 0"),
    (["TRAIN.LR_SCHEDULE", "swahr", "TRAIN.WARM_UP_EPOCH", "5", "TRAIN.END_EPOCH", "5"],
     r"0 <= TRAIN.WARM_UP_EPOCH \(5.0\) < TRAIN.END_EPOCH \(5\)"),
])
def test_schedule_settings_are_checked(opts, message):
    with pytest.raises(ConfigError, match=message):
        build_scheduler(tiny_cfg(*opts), torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1), 10)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny SWAHR config trained for 2 iterations with validation after its one epoch."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("swahr")
    write_tiny_coco(tmp / "data", split="train", num_images=4)
    write_tiny_coco(tmp / "data", split="val", num_images=2, seed=1)
    cfg = tiny_cfg("MODEL.SWAHR", "True", "TRAIN.LR_SCHEDULE", "swahr", "TRAIN.WARM_UP_EPOCH", "0.5",
                   "TRAIN.END_EPOCH", "1", "TRAIN.MAX_ITERS_PER_EPOCH", "2", "TRAIN.IMAGES_PER_GPU", "1",
                   "TRAIN.VAL_FREQ", "1", "TRAIN.LR", "0.002", "DATASET.ROOT", str(tmp / "data"),
                   "DATASET.TRAIN", "train", "DATASET.TEST", "val", "WORKERS", "0",
                   "OUTPUT_DIR", str(tmp / "out"), "LOG_DIR", str(tmp / "log"))
    _, result = train_once(cfg, "tiny_swahr.yaml")
    (tmp / "tiny_swahr.yaml").write_text(cfg.dump())
    return cfg, tmp, result


def test_trainer_logs_the_scale_terms_and_validates(trained):
    cfg, tmp, result = trained
    (epoch,) = result["epochs"]
    assert {"heatmaps_1/4", "scale_1/4", "push_1/4", "pull_1/4", "heatmaps_1/2", "scale_1/2", "loss"} <= set(epoch)
    assert all(np.isfinite(epoch[k]) for k in ("heatmaps_1/4", "scale_1/4", "scale_1/2", "loss"))
    assert epoch["scale_1/4"] > 0                 # the heads left zero after the first step
    assert 0.0 <= epoch["val"]["AP"] <= 1.0
    final = torch.load(f"{result['output_dir']}/final_state.pth", map_location="cpu", weights_only=True)["state_dict"]
    assert list(final) == list(higherhrnet.build_model(cfg).state_dict())
    assert final["conv_scale_layers.1.3.weight"].abs().sum() > 0


def test_onnx_export_of_a_swahr_model_matches_torch(trained):
    pytest.importorskip("onnxruntime", reason='onnxruntime is not installed (pip install -e ".[onnx]")')
    cfg, _, result = trained
    weights = f"{result['output_dir']}/final_state.pth"
    reference = Predictor.from_config(cfg, weights, device="cpu", fold_bn=False, raw=True)
    exported = Predictor.from_config(cfg, weights, device="cpu", backend="onnxruntime", onnx_threads=1, raw=True)
    assert exported.network.output_channels == [51, 34]
    images = [painted_image(150, 110)]
    assert_same_maps(reference, exported, images, atol=1e-4)


@pytest.mark.slow
def test_predict_command_on_swahr_weights(trained, tmp_path):
    _, tmp, result = trained
    image = tmp_path / "street.png"
    import cv2
    assert cv2.imwrite(str(image), painted_image(120, 90))
    run = subprocess.run([sys.executable, "-m", "higherhrnet", "predict", "--cfg", str(tmp / "tiny_swahr.yaml"),
                          "--weights", f"{result['output_dir']}/final_state.pth", str(image), "--all",
                          "--out", str(tmp_path / "out"), "--device", "cpu"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "out" / "street.json").read_text())
    assert (record["width"], record["height"]) == (120, 90)
    for person in record["people"]:
        assert len(person["keypoints"]) == 17 and np.isfinite(np.array(person["keypoints"], float)).all()
