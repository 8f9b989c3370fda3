"""engine/hooks.py's hooks on their own, driven by a stand-in loop (the TensorBoard hook: test_tensorboard.py;
FiniteWeights and LossWatch: tests/faults/test_api_faults.py)."""
from __future__ import annotations

import pytest
import torch

import higherhrnet
from higherhrnet.engine.hooks import BestModel, saved_files_note
from higherhrnet.engine.train_loop import TrainingError, TrainLoop, TrainState

from conftest import tiny_cfg


class _Loop:
    """What a hook reads of a TrainLoop: 8 epochs of 10 iterations."""

    position = TrainLoop.position

    def __init__(self):
        self.state = TrainState()
        self.end_epoch, self.iters_per_epoch = 8, 10


def test_best_model_is_saved_when_ap_improves_and_never_with_non_finite_weights(tmp_path, caplog):
    cfg = tiny_cfg()
    model = higherhrnet.build_model(cfg)
    hook = BestModel(str(tmp_path), model, cfg, higherhrnet.COCO_KEYPOINTS)
    hook.loop = _Loop()
    state, path = hook.loop.state, tmp_path / "model_best.pth"

    def epoch(number, **val):
        state.epoch = number
        state.history.append({"loss": 1.0, **({"val": val} if val else {})})
        hook.after_epoch()

    def saved():
        return torch.load(path, map_location="cpu", weights_only=True)["meta"]

    epoch(0)                                                      # not validated: nothing to compare
    assert not path.exists() and state.best_metric is None
    with caplog.at_level("INFO", logger="higherhrnet.train"):
        epoch(1, AP=0.2, AR=0.3)
    assert state.best_metric == 0.2 and "new best AP 0.2000: model_best.pth" in caplog.text
    assert saved()["epoch"] == 2 and saved()["metrics"] == {"AP": 0.2, "AR": 0.3}
    epoch(2, AP=0.2)                                              # equal: not better
    epoch(3, AP=0.1)
    assert state.best_metric == 0.2 and saved()["epoch"] == 2
    epoch(4, AP=0.25)
    assert state.best_metric == 0.25 and saved()["epoch"] == 5

    name, weight = next(iter(model.named_parameters()))
    with torch.no_grad():
        weight.view(-1)[0] = float("nan")
    with pytest.raises(TrainingError, match=rf"NaN or infinite by epoch 6/8, iteration 1/10: {name} .*nothing is saved "
                                            rf"from them \(model_best.pth was not written\)"):
        epoch(5, AP=0.5)
    assert saved()["epoch"] == 5 and saved()["metrics"]["AP"] == 0.25


def test_best_model_follows_the_datasets_main_metric(tmp_path, caplog):
    """MPII's main metric is PCKh's Mean (data.registry): a better Head or PCK with a lower Mean is not better."""
    cfg = tiny_cfg()
    hook = BestModel(str(tmp_path), higherhrnet.build_model(cfg), cfg, higherhrnet.COCO_KEYPOINTS, "Mean")
    hook.loop = _Loop()
    state = hook.loop.state
    for number, val in enumerate([{"Head": 80.0, "Mean": 50.0, "PCK": 0.5}, {"Head": 95.0, "Mean": 45.0, "PCK": 0.9},
                                  {"Head": 70.0, "Mean": 55.5, "PCK": 0.4}]):
        state.epoch = number
        state.history.append({"loss": 1.0, "val": val})
        with caplog.at_level("INFO", logger="higherhrnet.train"):
            hook.after_epoch()
    assert state.best_metric == 55.5
    assert "new best Mean 50.0000: model_best.pth" in caplog.text and "new best Mean 55.5000" in caplog.text
    assert caplog.text.count("new best") == 2
    meta = torch.load(tmp_path / "model_best.pth", map_location="cpu", weights_only=True)["meta"]
    assert meta["epoch"] == 3 and meta["metrics"]["Mean"] == 55.5
    files = {"final_state": "f.pth", "model_best": "b.pth", "best_metric": 55.5, "main_metric": "Mean",
             "log_dir": "log"}
    assert "best validated model b.pth (Mean 55.5000)" in saved_files_note(files, top_down=True)
