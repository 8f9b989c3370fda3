from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

import higherhrnet
from higherhrnet import COCO_KEYPOINTS
from higherhrnet.data.metrics import COCO_METRICS, EvaluationError, coco_keypoint_metrics
from higherhrnet.engine import clean_results
from higherhrnet.engine import Trainer

from conftest import COCO_MINI, REPO, randomize, tiny_cfg
from tinycoco import write_tiny_coco

pytestmark = pytest.mark.slow   # starts processes: left out of the quick subset (docs/testing.md)

MINI_ANN = COCO_MINI / "annotations/person_keypoints_val2017.json"


def quiet_coco(path):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.mark.skipif(not COCO_MINI.exists(), reason="../shared/data/coco-mini not present")
def test_ground_truth_as_predictions_scores_one():
    gt = quiet_coco(MINI_ANN)
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in gt.dataset["annotations"] if a["num_keypoints"] > 0]
    metrics = coco_keypoint_metrics(gt, results, COCO_KEYPOINTS.sigmas_array)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AR"] == pytest.approx(1.0)
    # Moving every keypoint 15 px scores clearly lower: the metric is not blind.
    shifted = [dict(r, keypoints=(np.array(r["keypoints"]) + np.tile([15.0, 15.0, 0.0], 17)).tolist())
               for r in results]
    assert coco_keypoint_metrics(gt, shifted, COCO_KEYPOINTS.sigmas_array)["AP"] < 0.6


@pytest.mark.skipif(not COCO_MINI.exists(), reason="../shared/data/coco-mini not present")
def test_edge_cases():
    gt = quiet_coco(MINI_ANN)
    assert coco_keypoint_metrics(gt, [], COCO_KEYPOINTS.sigmas_array) == {k: 0.0 for k in
                                                                          COCO_METRICS}
    with pytest.raises(EvaluationError, match="not in the ground truth: \\[123456\\]"):
        coco_keypoint_metrics(gt, [{"image_id": 123456, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0}],
                              COCO_KEYPOINTS.sigmas_array)
    raw = [{"image_id": np.int64(785), "keypoints": np.zeros(51, np.float32), "score": np.float32(0.5)},
           {"image_id": 785, "keypoints": [float("nan")] + [0.0] * 50, "score": 0.5}]
    clean = clean_results(raw, 17)
    assert len(clean) == 1 and json.dumps(clean)
    with pytest.raises(EvaluationError, match="51"):
        clean_results([{"image_id": 1, "keypoints": [0.0] * 3, "score": 1.0}], 17)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    write_tiny_coco(root / "data", split="val", num_images=3)
    cfg = tiny_cfg("DATASET.ROOT", str(root / "data"), "DATASET.TEST", "val", "DATASET.TRAIN", "val", "WORKERS", "0",
                   "OUTPUT_DIR", str(root / "out"), "LOG_DIR", str(root / "log"))
    torch.manual_seed(0)
    higherhrnet.save_model(root / "random.pth", randomize(higherhrnet.build_model(cfg)), cfg)
    (root / "tiny.yaml").write_text(cfg.dump())
    return root


def run_valid(root, *extra, torchrun=False):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun \
        else [sys.executable]
    return subprocess.run(launcher + [str(REPO / "tools/valid.py"), "--cfg", str(root / "tiny.yaml"), "--weights",
                                      str(root / "random.pth"), "--device", "cpu", *map(str, extra)],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_valid_cli_writes_results_and_metrics(tiny_run):
    result = run_valid(tiny_run, "--out", tiny_run / "single")
    assert result.returncode == 0, result.stderr
    assert "| AP | AP .5 | AP .75 | AP (M) | AP (L) | AR |" in result.stdout
    results = json.loads((tiny_run / "single/keypoints_val_results.json").read_text())
    metrics = json.loads((tiny_run / "single/metrics_val.json").read_text())
    # pycocotools reports -1 for an area range with no ground truth (no "large" people here)
    assert len(metrics) == 10 and all(-1 <= v <= 1 for v in metrics.values())
    assert {r["image_id"] for r in results} <= {100, 101, 102} and len(results) > 0
    assert all(len(r["keypoints"]) == 51 and set(r) >= {"image_id", "category_id", "score"} for r in results)


def test_eval_never_writes_into_the_training_run(tiny_run, tmp_path):
    """Without --out, `higherhrnet eval` writes eval_<weights name>/ beside the weights, never over a run's own
    files; with the config's training output (no --weights) too."""
    run = tmp_path / "out" / "coco_kpt" / "pose_higher_hrnet" / "tiny"
    run.mkdir(parents=True)
    (run / "final_state.pth").write_bytes((tiny_run / "random.pth").read_bytes())
    (run / "keypoints_val_results.json").write_text("training's own file")
    cfg = higherhrnet.load_cfg(tiny_run / "tiny.yaml", ["OUTPUT_DIR", str(tmp_path / "out")])
    (tmp_path / "tiny.yaml").write_text(cfg.dump())
    result = subprocess.run([sys.executable, "-m", "higherhrnet", "eval", "--cfg", str(tmp_path / "tiny.yaml"),
                             "--device", "cpu"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert (run / "keypoints_val_results.json").read_text() == "training's own file"
    assert json.loads((run / "eval_final_state" / "metrics_val.json").read_text()).keys() >= {"AP"}
    assert "eval_final_state" in result.stdout


def test_valid_under_torchrun_gathers_without_duplicates(tiny_run):
    single = run_valid(tiny_run, "--out", tiny_run / "one")
    assert single.returncode == 0, single.stderr
    result = run_valid(tiny_run, "--out", tiny_run / "two", torchrun=True)
    assert result.returncode == 0, result.stderr[-2000:]
    one = json.loads((tiny_run / "one/keypoints_val_results.json").read_text())
    two = json.loads((tiny_run / "two/keypoints_val_results.json").read_text())
    key = lambda r: (r["image_id"], round(r["score"], 5))
    assert sorted(map(key, two)) == sorted(map(key, one))   # 3 images over 2 ranks: nothing lost or doubled


def test_valid_cli_onnxruntime_backend_gives_the_torch_results(tiny_run, tmp_path):
    pytest.importorskip("onnxruntime", reason='onnxruntime is not installed (pip install -e ".[onnx]")')
    from higherhrnet.fileio import write_bytes
    from higherhrnet.models.onnx import export_onnx
    from higherhrnet.models import fold_batchnorm

    cfg = higherhrnet.load_cfg(tiny_run / "tiny.yaml")
    model = higherhrnet.build_model(cfg)
    higherhrnet.load_checkpoint(model, tiny_run / "random.pth")
    write_bytes(export_onnx(fold_batchnorm(model.eval()), (128, 128)), tmp_path / "random.onnx")
    reference = run_valid(tiny_run, "--out", tmp_path / "torch")
    # The .onnx file only loads with the onnxruntime backend: this run cannot silently use PyTorch.
    result = run_valid(tiny_run, "--out", tmp_path / "ort", "--weights", tmp_path / "random.onnx",
                       "--backend", "onnxruntime")
    assert reference.returncode == 0 and result.returncode == 0, result.stderr
    expected = json.loads((tmp_path / "torch/keypoints_val_results.json").read_text())
    actual = json.loads((tmp_path / "ort/keypoints_val_results.json").read_text())
    assert len(actual) == len(expected) > 0
    key = lambda r: (r["image_id"], -r["score"])
    for a, e in zip(sorted(actual, key=key), sorted(expected, key=key)):
        assert a["image_id"] == e["image_id"] and a["score"] == pytest.approx(e["score"], abs=1e-4)
        np.testing.assert_allclose(a["keypoints"], e["keypoints"], atol=1e-3)


def test_split_without_annotations_writes_results_only(tiny_run, tmp_path):
    data = json.loads((tiny_run / "data/annotations/person_keypoints_val.json").read_text())
    del data["annotations"]
    root = tmp_path / "testdev"
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "images/test2017").symlink_to(tiny_run / "data/images/val")   # COCO's test-dev image folder
    (root / "annotations/image_info_test-val.json").write_text(json.dumps(data))
    result = run_valid(tiny_run, "--out", tmp_path / "out", "DATASET.ROOT", root, "DATASET.TEST", "test-val")
    assert result.returncode == 0, result.stderr
    assert "has no annotations" in result.stdout
    assert (tmp_path / "out/keypoints_test-val_results.json").exists()
    assert not (tmp_path / "out/metrics_test-val.json").exists()


def test_training_validates_and_keeps_the_best_model(tiny_run, capsys):
    cfg = higherhrnet.load_cfg(tiny_run / "tiny.yaml", ["TRAIN.END_EPOCH", "2", "TRAIN.VAL_FREQ", "1",
                                                        "TRAIN.IMAGES_PER_GPU", "2",
                                                        "OUTPUT_DIR", str(tiny_run / "train_out")])
    trainer = Trainer(cfg, "tiny.yaml", device="cpu")
    result = trainer.run()
    assert all("AP" in epoch["val"] for epoch in result["epochs"])
    best = torch.load(os.path.join(result["output_dir"], "model_best.pth"), map_location="cpu", weights_only=True)
    assert best["meta"]["metrics"]["AP"] == max(e["val"]["AP"] for e in result["epochs"])
    assert "validating" in capsys.readouterr().err                 # validation shows its progress
    log = open(os.path.join(result["output_dir"], "train.log")).read()
    assert "epoch 1/2 validation: AP " in log and "epoch 2/2 validation: AP " in log
    saved = result["saved"]
    assert saved["model_best"] == os.path.join(result["output_dir"], "model_best.pth")
    assert saved["best_metric"] == max(e["val"]["AP"] for e in result["epochs"])
    assert f"best validated model {saved['model_best']} (AP {saved['best_metric']:.4f})" in result["summary"]
    model = higherhrnet.build_model(cfg)
    higherhrnet.load_checkpoint(model, os.path.join(result["output_dir"], "model_best.pth"))
