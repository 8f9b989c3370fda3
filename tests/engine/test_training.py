from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import higherhrnet
from higherhrnet.engine import Trainer

from conftest import EXPERIMENTS, REPO, tiny_cfg, torchrun_train, train_once
from tinycoco import write_tiny_coco


def train_cfg(tmp_path, *opts):
    root = tmp_path / "data"
    if not root.exists():
        write_tiny_coco(root, num_images=4)
    return tiny_cfg("DATASET.ROOT", str(root), "DATASET.TRAIN", "train", "WORKERS", "0",
                    "TRAIN.IMAGES_PER_GPU", "2", "TRAIN.LR", "0.003", "TRAIN.END_EPOCH", "2",
                    "OUTPUT_DIR", str(tmp_path / "out"), "LOG_DIR", str(tmp_path / "log"), "AUTO_RESUME", "True",
                    *opts)


def test_loss_falls_and_outputs_are_written(tmp_path, capsys):
    torch.set_num_threads(2)
    trainer, result = train_once(train_cfg(tmp_path, "TRAIN.END_EPOCH", "6", "TRAIN.WARMUP_EPOCHS", "0.5"))
    losses = [e["loss"] for e in result["epochs"]]
    assert losses[-1] < 0.7 * losses[0], losses
    out = result["output_dir"]
    assert sorted(os.listdir(out)) == ["checkpoint.pth", "final_state.pth", "train.log"]
    state = torch.load(os.path.join(out, "checkpoint.pth"), map_location="cpu", weights_only=True)
    assert state["epoch"] == 6 and {"model", "optimizer", "scheduler", "meta"} <= set(state)
    assert state["meta"]["epoch"] == 6 and state["meta"]["config"] == trainer.cfg.dump()
    log = open(os.path.join(out, "train.log")).read()
    assert "epoch 1/6:" in log and "epoch 6/6:" in log
    assert "epoch 1/6:" in capsys.readouterr().err                # the progress bar counts the same way
    # The last line names what the run left and how to use it; no validation, so no model_best.pth.
    final_state = os.path.join(out, "final_state.pth")
    assert result["saved"] == {"final_state": final_state, "model_best": None, "best_metric": None,
                               "main_metric": "AP", "log_dir": trainer.log_dir}
    assert log.rstrip().splitlines()[-1].endswith(result["summary"])
    assert result["summary"] == (f"training finished: model {final_state}; TensorBoard logs in {trainer.log_dir}; "
                                 f"evaluate with: higherhrnet eval --weights {final_state}; run with: higherhrnet "
                                 f"predict --weights {final_state} IMAGE")
    final = torch.load(os.path.join(out, "final_state.pth"), map_location="cpu", weights_only=True)
    assert list(final) == ["state_dict", "meta"]
    assert list(final["state_dict"]) == list(higherhrnet.build_model(trainer.cfg).state_dict())   # official layout
    meta = final["meta"]
    assert meta["format"] == "higherhrnet" and meta["dataset"] == "coco_kpt" and meta["epoch"] == 6
    assert meta["keypoints"]["names"] == list(higherhrnet.COCO_KEYPOINTS.names)
    assert "metrics" not in meta                                   # no validation in this run
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(trainer.log_dir))


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    _, full = train_once(train_cfg(tmp_path / "a", "TRAIN.END_EPOCH", "2"))
    _, first = train_once(train_cfg(tmp_path / "b", "TRAIN.END_EPOCH", "1"))
    trainer, resumed = train_once(train_cfg(tmp_path / "b", "TRAIN.END_EPOCH", "2"))
    assert len(resumed["epochs"]) == 1                        # only epoch 1 ran again
    assert first["epochs"][0] == full["epochs"][0]
    assert resumed["epochs"][0] == full["epochs"][1]


@pytest.mark.parametrize("opts, message", [
    (["DATASET.DATASET", "my_poses"], "no keypoint set is registered for dataset 'my_poses'"),
    # validation would read tags output 1 does not have: refused now, not after the first epoch
    (["TRAIN.VAL_FREQ", "1", "TEST.WITH_AE", "(True, True)"], "TEST.WITH_AE uses the tags of output 1"),
])
def test_config_errors_come_before_any_folder_or_data(tmp_path, opts, message):
    cfg = tiny_cfg("DATASET.ROOT", str(tmp_path / "no_data"), "OUTPUT_DIR", str(tmp_path / "out"),
                   "LOG_DIR", str(tmp_path / "log"), *opts)
    with pytest.raises(higherhrnet.ConfigError) as error:
        Trainer(cfg, "tiny.yaml", device="cpu")
    assert message in str(error.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_train_cli_single_process_and_bad_config(tmp_path):
    cfg = train_cfg(tmp_path, "TRAIN.END_EPOCH", "1")
    path = tmp_path / "tiny.yaml"
    path.write_text(cfg.dump())
    result = subprocess.run([sys.executable, str(REPO / "tools/train.py"), "--cfg", str(path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1:" in result.stderr
    result = subprocess.run([sys.executable, str(REPO / "tools/train.py"), "--cfg", str(path), "TRAIN.LRR", "1"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "unknown config key TRAIN.LRR" in result.stderr


@pytest.mark.slow
def test_torchrun_two_processes_end_with_identical_weights(tmp_path):
    result = torchrun_train(train_cfg(tmp_path, "TRAIN.IMAGES_PER_GPU", "1"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training pose_higher_hrnet on cpu (2 processes)" in result.stderr
    assert "weights identical across 2 ranks: yes" in result.stderr
    assert "terminate called" not in result.stderr


def test_learning_rate_schedule_warmup_and_steps():
    from higherhrnet.engine.build import build_optimizer, build_scheduler

    cfg = tiny_cfg("TRAIN.LR", "0.1", "TRAIN.LR_STEP", "[2, 3]", "TRAIN.LR_FACTOR", "0.1",
                   "TRAIN.WARMUP_EPOCHS", "1.0", "TRAIN.WARMUP_FACTOR", "0.01", "TRAIN.OPTIMIZER", "sgd")
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, iters_per_epoch=4)
    lrs = []
    for _ in range(16):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.1 * (0.01 + (1 - 0.01) * i / 4) for i in range(4)] + [0.1] * 4 + [0.01] * 4 + [0.001] * 4
    np.testing.assert_allclose(lrs, expected, rtol=1e-9)
    assert optimizer.param_groups[0]["weight_decay"] == cfg.TRAIN.WD


def test_gradient_clipping_bounds_the_update(tmp_path):
    cfg = train_cfg(tmp_path, "TRAIN.CLIP_GRAD_NORM", "1e-6", "TRAIN.OPTIMIZER", "sgd", "TRAIN.MOMENTUM", "0.0",
                    "TRAIN.WD", "0.0", "TRAIN.LR", "1.0", "TRAIN.END_EPOCH", "1", "TRAIN.MAX_ITERS_PER_EPOCH", "1")
    trainer = Trainer(cfg, "tiny.yaml", device="cpu")
    before = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
    trainer.run()
    after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    assert 0 < (after - before).norm().item() <= 1e-6 * 1.01     # lr 1 x clipped norm


@pytest.mark.parametrize("name,losses", [
    ("hourglass_256_tiny.yaml", ["heatmaps_1/4_output0", "push_1/4_output0", "pull_1/4_output0",
                                 "heatmaps_1/4_output1", "push_1/4_output1", "pull_1/4_output1"]),
    ("w16_256_tiny_v2head.yaml", ["heatmaps_1/4", "push_1/4", "pull_1/4", "heatmaps_1/2"]),
])
def test_tiny_synthetic_configs_train_validate_and_predict(tmp_path, name, losses):
    """The new networks' synthetic recipes, as shipped, through Trainer (with validation) and Predictor."""
    root = tmp_path / "data"
    write_tiny_coco(root, num_images=4)
    write_tiny_coco(root, split="val", num_images=2, seed=1)
    cfg = higherhrnet.load_cfg(EXPERIMENTS / "synthetic" / name, [
        "DATASET.ROOT", str(root), "WORKERS", "0", "TRAIN.IMAGES_PER_GPU", "2", "TRAIN.END_EPOCH", "1",
        "TRAIN.MAX_ITERS_PER_EPOCH", "3", "TRAIN.VAL_FREQ", "1", "OUTPUT_DIR", str(tmp_path / "out"),
        "LOG_DIR", str(tmp_path / "log")])
    trainer, result = train_once(cfg, name)
    epochs = result["epochs"]
    assert len(epochs) == 1 and 0 <= epochs[0]["val"]["AP"] <= 1
    assert [k for k in epochs[0] if k not in ("loss", "val")] == losses
    assert np.isfinite(epochs[0]["loss"])
    out = result["output_dir"]
    assert {"checkpoint.pth", "final_state.pth", "model_best.pth"} <= set(os.listdir(out))
    predictor = higherhrnet.Predictor(cfg, os.path.join(out, "final_state.pth"), raw=True)
    assert predictor.meta["metrics"] == epochs[0]["val"] and predictor.meta["dataset"] == "synthetic"
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    assert all(p.keypoints.shape == (17, 3) for p in predictor(image))


def test_cudnn_and_loss_scale_keys_are_applied():
    from higherhrnet.engine.build import apply_cudnn_settings, build_mixed_precision

    before = (torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        apply_cudnn_settings(tiny_cfg("CUDNN.BENCHMARK", "False", "CUDNN.DETERMINISTIC", "True"))
        assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == (False, True)
        apply_cudnn_settings(tiny_cfg())
        assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == (True, False)
    finally:
        (torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) = before
    scaler, amp, _ = build_mixed_precision(tiny_cfg("FP16.ENABLED", "True"), torch.device("cpu"))
    assert not amp and not scaler.is_enabled()                        # float16 mixed precision needs CUDA
    scaler, amp, dtype = build_mixed_precision(tiny_cfg("TRAIN.CPU_AUTOCAST", "bf16"), torch.device("cpu"))
    assert amp and dtype == torch.bfloat16 and not scaler.is_enabled()   # bfloat16 needs no loss scaling


def test_adam_has_no_weight_decay_as_in_the_official_code_and_adamw_has():
    from higherhrnet.engine.build import build_optimizer

    model = torch.nn.Linear(2, 2)
    official = higherhrnet.load_cfg(EXPERIMENTS / "coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    assert official.TRAIN.WD == 0.0001
    adam = build_optimizer(official, model)
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["weight_decay"] == 0
    adamw = build_optimizer(tiny_cfg("TRAIN.OPTIMIZER", "adamw", "TRAIN.WD", "0.0001"), model)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["weight_decay"] == 0.0001


def _one_step(cfg, weights):
    """(losses, gradients by parameter name) of one training step from `weights` on the loader's first batch."""
    trainer = Trainer(cfg, "tiny.yaml", device="cpu")
    try:
        trainer.model.load_state_dict(weights)
        loop = trainer.step_loop()
        memory_formats = {p.is_contiguous(memory_format=torch.channels_last) for p in trainer.model.parameters()
                          if p.dim() == 4 and p.shape[2:] != (1, 1)}
        losses = loop.run_step(next(iter(trainer.loader)))
        return losses, {n: p.grad.clone() for n, p in trainer.model.named_parameters()}, memory_formats
    finally:
        trainer.close()


def test_channels_last_and_bf16_steps_match_the_float32_step(tmp_path):
    """The CPU's default channels-last step computes the official float32 step up to float rounding. bfloat16
    autocast gives the same losses to about 1e-4 and gradients in the same direction, but (8-bit mantissa) the
    stem's gradients, sums of many cancelling terms, differ by up to half their size: hence opt-in."""
    torch.manual_seed(0)
    weights = higherhrnet.build_model(train_cfg(tmp_path)).state_dict()
    official, official_grads, contiguous = _one_step(train_cfg(tmp_path, "TRAIN.CHANNELS_LAST", "never"), weights)
    default, default_grads, channels_last = _one_step(train_cfg(tmp_path), weights)
    bf16, bf16_grads, _ = _one_step(train_cfg(tmp_path, "TRAIN.CPU_AUTOCAST", "bf16"), weights)
    assert contiguous == {False} and channels_last == {True}          # the CPU default is channels-last

    reference = torch.cat([g.flatten() for g in official_grads.values()])

    def relative(grads):
        return (torch.cat([grads[n].flatten() for n in official_grads]) - reference).norm().item() / reference.norm()

    def cosine(grads):
        return torch.nn.functional.cosine_similarity(torch.cat([grads[n].flatten() for n in official_grads]),
                                                     reference, dim=0).item()

    assert default["loss"] == pytest.approx(official["loss"], rel=1e-5)
    # Float rounding alone: small, though BatchNorm's backward at batch 2 amplifies it in the stem (1e-4 to 2e-3
    # relative depending on the thread count).
    assert relative(default_grads) < 1e-2 and cosine(default_grads) > 0.9999
    assert bf16["loss"] == pytest.approx(official["loss"], rel=1e-3) and bf16["loss"] != official["loss"]
    assert cosine(bf16_grads) > 0.9 and relative(bf16_grads) > 1e-3    # bfloat16 really ran, in the same direction
