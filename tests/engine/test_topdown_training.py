"""Training a top-down network (pose_hrnet) through the real Trainer: a few steps of a tiny network, a
checkpoint written, the loss finite, resume."""
from __future__ import annotations

import math
import os

import pytest
import torch

import higherhrnet
from higherhrnet.engine import run_dir
from conftest import EXPERIMENTS, tiny_pose_hrnet_cfg, torchrun_train, train_once
from tinycoco import write_tiny_coco


def train_cfg(tmp_path, *opts):
    root = tmp_path / "data"
    if not root.exists():
        write_tiny_coco(root, num_images=4)         # 8 labelled people
    return tiny_pose_hrnet_cfg("DATASET.ROOT", str(root), "DATASET.TRAIN_SET", "train", "WORKERS", "0",
                               "TRAIN.BATCH_SIZE_PER_GPU", "4", "TRAIN.IMAGES_PER_GPU", "1", "TRAIN.END_EPOCH", "1",
                               "OUTPUT_DIR", str(tmp_path / "out"), "LOG_DIR", str(tmp_path / "log"),
                               "AUTO_RESUME", "True", *opts)


def test_a_few_steps_write_a_checkpoint_and_resume(tmp_path):
    torch.set_num_threads(1)
    trainer, first = train_once(train_cfg(tmp_path / "b"))
    assert trainer.iters_per_epoch == 2                     # 8 crops, TRAIN.BATCH_SIZE_PER_GPU 4
    assert isinstance(trainer.loss, higherhrnet.losses.TopDownLoss)
    (epoch,) = first["epochs"]
    assert set(epoch) >= {"heatmaps_1/4", "loss"} and math.isfinite(epoch["loss"]) and epoch["loss"] > 0
    out = first["output_dir"]
    assert sorted(os.listdir(out)) == ["checkpoint.pth", "final_state.pth", "train.log"]
    state = torch.load(os.path.join(out, "checkpoint.pth"), map_location="cpu", weights_only=True)
    assert state["epoch"] == 1
    final = torch.load(os.path.join(out, "final_state.pth"), map_location="cpu", weights_only=True)
    assert list(final["state_dict"]) == list(higherhrnet.build_model(trainer.cfg).state_dict())
    assert "final_layer.weight" in final["state_dict"]      # the official pose_hrnet key layout
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(trainer.log_dir))
    final_path = os.path.join(out, "final_state.pth")      # the commands named run it on a bottom-up model's people
    assert first["summary"].endswith(f"higherhrnet predict --weights BOTTOM_UP_MODEL --refine {final_path} IMAGE")

    _, resumed = train_once(train_cfg(tmp_path / "b", "TRAIN.END_EPOCH", "2"))
    _, full = train_once(train_cfg(tmp_path / "a", "TRAIN.END_EPOCH", "2"))
    assert len(resumed["epochs"]) == 1                      # only epoch 1 ran again
    assert first["epochs"][0] == full["epochs"][0] and resumed["epochs"][0] == full["epochs"][1]


def test_validation_during_training_scores_as_eval_does(tmp_path):
    """TRAIN.VAL_FREQ 1: each epoch's metrics are those `higherhrnet eval` gives the weights saved at that epoch
    (ground-truth boxes of DATASET.TEST_SET, the official rescoring and OKS-NMS), and model_best.pth is kept."""
    from higherhrnet.engine.topdown_eval import evaluate_top_down
    from higherhrnet.person_boxes import ground_truth_boxes
    from higherhrnet.topdown import TopDownParams

    torch.set_num_threads(1)
    cfg = train_cfg(tmp_path, "TRAIN.VAL_FREQ", "1", "DATASET.TEST_SET", "val")        # writes the train split
    write_tiny_coco(tmp_path / "data", split="val", num_images=2, seed=1)
    trainer, result = train_once(cfg)
    (epoch,) = result["epochs"]
    assert set(epoch["val"]) >= {"AP", "AR"} and 0 <= epoch["val"]["AP"] <= 1
    out = result["output_dir"]
    assert "model_best.pth" in os.listdir(out)
    model = higherhrnet.build_model(cfg)
    higherhrnet.load_checkpoint(model, os.path.join(out, "final_state.pth"))
    source = trainer.eval_dataset.source
    params = TopDownParams.from_config(cfg, source.keypoints)
    metrics, _ = evaluate_top_down(model.eval(), source, ground_truth_boxes(source.coco), params, cfg.TEST.OKS_THRE,
                                   progress=False)
    assert metrics == epoch["val"]


@pytest.mark.slow
def test_torchrun_two_processes_share_the_crops_validate_and_resume(tmp_path):
    """Under torchrun with 2 processes: each trains on its half of the crops, validates on its share of the crop
    batches with the metrics of the whole split, the first alone writes the run folder, the replicas end
    identical, and a second torchrun resumes from the checkpoint."""
    cfg = train_cfg(tmp_path, "TRAIN.BATCH_SIZE_PER_GPU", "2", "TRAIN.END_EPOCH", "2", "TRAIN.VAL_FREQ", "1",
                    "DATASET.TEST_SET", "val", "TEST.BATCH_SIZE_PER_GPU", "3")      # writes the train split
    write_tiny_coco(tmp_path / "data", split="val", num_images=2, seed=1)          # 4 people: batches of 3 and 1
    result = torchrun_train(cfg, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # 8 people, 4 a process (one process: 4 iterations of 2)
    assert "training pose_hrnet on cpu (2 processes), 8 people, 2 iterations per epoch" in result.stderr
    assert "epoch 2/2 validation: AP" in result.stderr
    assert "weights identical across 2 ranks: yes" in result.stderr and "terminate called" not in result.stderr
    out = run_dir(cfg, "tiny.yaml", cfg.OUTPUT_DIR)
    assert sorted(os.listdir(out)) == ["checkpoint.pth", "final_state.pth", "model_best.pth", "train.log"]
    log = open(os.path.join(out, "train.log")).read()
    assert log.count("validation: AP") == 2 and "[rank 1]" not in log

    resumed = torchrun_train(cfg, tmp_path, "TRAIN.END_EPOCH", "3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {os.path.join(out, 'checkpoint.pth')}: 2 epochs done, continuing with epoch 3" \
        in resumed.stderr
    assert "epoch 3/3 validation: AP" in resumed.stderr and "epoch 2/3" not in resumed.stderr
    assert "weights identical across 2 ranks: yes" in resumed.stderr
    state = torch.load(os.path.join(out, "checkpoint.pth"), map_location="cpu", weights_only=True)
    assert state["epoch"] == 3


def test_the_synthetic_recipe_loads_and_builds():
    cfg = higherhrnet.load_cfg(str(EXPERIMENTS / "synthetic" / "pose_hrnet_tiny.yaml"))
    assert cfg.MODEL.NAME == "pose_hrnet" and cfg.TRAIN.VAL_FREQ == 4
    network = higherhrnet.build_model(cfg)
    assert network(torch.zeros(1, 3, 128, 96)).shape == (1, 17, 32, 24)
