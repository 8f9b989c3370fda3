"""The int8 backend (models/quantize.py, calibration.py): the bundled model quantized finds the same people on the
bundled samples, calibration sees what test time feeds the network, and the quantized model is cached.

Quantization changes the network's outputs by more than float rounding, so these tests compare people, not maps;
BENCHMARKS.md ("int8 on the CPU") measures AP and joint agreement on the whole synthetic val split.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import higherhrnet
from higherhrnet import Predictor
from higherhrnet.calibration import int8_calibration, pipeline_inputs, synthetic_val_scenes
from higherhrnet.images import read_image
from higherhrnet.inference import InferenceParams
from higherhrnet.models import fold_batchnorm
from higherhrnet.models.onnx import OnnxError, OnnxRuntimeNetwork, export_onnx, read_onnx_metadata
from higherhrnet.models.quantize import (INT8_KEY, Int8Settings, int8_cache_file, int8_model, network_digest,
                                         quantize_onnx)
from higherhrnet.models.runtime import prepare_network
from higherhrnet.predictor import CLEAN

from conftest import EXPERIMENTS, REPO, randomize, tiny_cfg
from tinycoco import write_tiny_coco

pytestmark = pytest.mark.filterwarnings("ignore::higherhrnet.predictor.SyntheticModelWarning")
pytest.importorskip("onnxruntime", reason='onnxruntime is not installed; the int8 tests need pip install -e ".[onnx]"')

SAMPLES = ("three_people", "four_people", "crowded")
# Joints whose fp32 value is at least this are the ones a user sees (predict draws joints from 0.2 on); half a
# heatmap pixel of the bundled model's stride-2 output at these 256 x 256 samples is 1 image pixel, and ADJUST's
# quarter-pixel step 0.5: int8 moves such a joint by a step or two, or, when two candidates for it score about
# the same, to the other one (another person's wrist) -- which a few joints of a crowd do.
CONFIDENT = 0.5
CLOSE_PX = 2.0
# Share of the confident joints that must stay within CLOSE_PX (measured: 105 of 107; each joint that moves to
# another candidate costs 1%). An int8 model calibrated on dark images alone finds nobody here.
MIN_CLOSE_SHARE = 0.9
# A person's score is the mean of its joint values: measured up to 0.08 apart, for a person one of whose joints
# moved to a weaker candidate.
SCORE_TOLERANCE = 0.15


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    """Quantized models are cached here, never in the user's cache; one folder for the whole module, so that the
    bundled model is quantized once."""
    folder = tmp_path_factory.getbasetemp() / "int8-cache"
    monkeypatch.setenv("HIGHERHRNET_CACHE", str(folder))
    return folder


def bundled(backend: str) -> Predictor:
    # A DATASET.ROOT that does not exist: calibration on the synthetic val scenes, whatever the working folder holds.
    return Predictor.from_config(EXPERIMENTS / "synthetic/w16_256_tiny.yaml", REPO / "models/w16_256_tiny.pth",
                                 opts=["DATASET.ROOT", str(REPO / "no-such-folder")], device="cpu", backend=backend,
                                 **CLEAN)


@pytest.fixture(scope="module")
def predictors(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIGHERHRNET_CACHE", str(tmp_path_factory.getbasetemp() / "int8-cache"))
        return bundled("torch"), bundled("onnxruntime-int8")


def matched(people_a, people_b):
    """Pairs (a, b) of the two lists' people, matched by their mean joint distance (Hungarian)."""
    cost = np.array([[np.linalg.norm(a.keypoints[:, :2] - b.keypoints[:, :2], axis=1).mean() for b in people_b]
                     for a in people_a])
    rows, cols = linear_sum_assignment(cost)
    return [(people_a[i], people_b[j]) for i, j in zip(rows, cols)]


def test_the_bundled_model_in_int8_finds_the_same_people_on_the_samples(predictors):
    fp32, int8 = predictors
    assert int8.backend == "onnxruntime-int8" and fp32.backend == "torch"
    assert int8.network.note.startswith("int8: calibrated on 16 scenes of the synthetic val split")
    close = confident = 0
    for name in SAMPLES:
        image = read_image(REPO / "demo/samples" / f"{name}.jpg")
        people, people_int8 = fp32(image), int8(image)
        assert len(people_int8) == len(people) > 0, name
        for person, person_int8 in matched(people, people_int8):
            shown = person.keypoints[:, 2] >= CONFIDENT
            distances = np.linalg.norm(person.keypoints[:, :2] - person_int8.keypoints[:, :2], axis=1)
            close += int((distances[shown] <= CLOSE_PX).sum())
            confident += int(shown.sum())
            assert np.median(distances) <= 1.0, (name, distances)
            assert person_int8.score == pytest.approx(person.score, abs=SCORE_TOLERANCE), name
    assert close / confident >= MIN_CLOSE_SHARE, (close, confident)


def test_featureless_images_hold_nobody_in_int8_either(predictors):
    _, int8 = predictors
    for value in (0, 128, 255):
        assert int8(np.full((240, 320, 3), value, np.uint8)) == []


class ZeroNetwork(torch.nn.Module):
    """The tiny config's outputs, all zeros, for any input: enough to run the test pipeline."""

    def forward(self, batch):
        n, _, h, w = batch.shape
        return [torch.zeros(n, 34, h // 4, w // 4), torch.zeros(n, 17, h // 2, w // 2)]


def test_the_quantized_model_is_cached_by_network_and_settings(cache, caplog):
    cfg = tiny_cfg("DATASET.ROOT", str(cache / "no-data"))
    torch.manual_seed(0)
    model = randomize(higherhrnet.build_model(cfg))
    params = InferenceParams.from_config(cfg, higherhrnet.COCO_KEYPOINTS)
    calibration = int8_calibration(cfg, params, Int8Settings(images=2))
    first = int8_model(model, calibration, (128, 128))
    assert not first.cached and first.path.startswith(str(cache / "int8"))
    again = int8_model(model, calibration, (128, 128))
    assert again.cached and again.path == first.path and again.data == first.data
    assert "from the cache" in again.note and "quantized in" in first.note
    metadata = json.loads(read_onnx_metadata(first.path)[INT8_KEY])
    assert metadata["settings"]["images"] == 2 and "synthetic val split" in metadata["source"]
    # Other settings, weights or calibration inputs: another file.
    digest = network_digest(model)
    assert int8_cache_file(digest, calibration) == first.path
    assert int8_cache_file(digest, int8_calibration(cfg, params, Int8Settings(images=3))) != first.path
    assert int8_cache_file(network_digest(randomize(higherhrnet.build_model(cfg), seed=1)), calibration) != first.path
    flipless = InferenceParams.from_config(tiny_cfg("TEST.FLIP_TEST", "False"), higherhrnet.COCO_KEYPOINTS)
    assert int8_cache_file(digest, int8_calibration(cfg, flipless, Int8Settings(images=2))) != first.path
    # A damaged cache file is quantized again, and replaced.
    with open(first.path, "wb") as f:
        f.write(b"not a model")
    redone = int8_model(model, calibration, (128, 128))
    assert not redone.cached and open(first.path, "rb").read() == redone.data
    assert "is damaged: quantizing again" in caplog.text


def test_convolutions_that_share_a_bias_are_quantized_too():
    """Untrained BatchNorm layers fold into equal (zero) biases, which the exporter shares through Identity nodes;
    each convolution must still get its own int32 bias, or onnxruntime runs it in float."""
    import onnx

    model = higherhrnet.build_model(tiny_cfg()).eval()
    data = export_onnx(fold_batchnorm(model), (128, 128))
    assert any(node.op_type == "Identity" for node in onnx.load_from_string(data).graph.node)   # the case at hand
    batches = [np.random.default_rng(0).standard_normal((1, 3, 128, 128), np.float32)]
    quantized = onnx.load_from_string(quantize_onnx(data, batches, Int8Settings(images=1)))
    initializers = {tensor.name: tensor for tensor in quantized.graph.initializer}
    producers = {output: node for node in quantized.graph.node for output in node.output}
    convolutions = [node for node in quantized.graph.node if node.op_type == "Conv"]
    assert convolutions
    for conv in convolutions:
        bias = producers[conv.input[2]]
        assert bias.op_type == "DequantizeLinear", conv.name
        assert initializers[bias.input[0]].data_type == onnx.TensorProto.INT32, conv.name


def test_calibration_feeds_what_test_time_feeds_the_network():
    cfg = tiny_cfg("TEST.SCALE_FACTOR", "[1.0, 0.5]")
    params = InferenceParams.from_config(cfg, higherhrnet.COCO_KEYPOINTS)
    images = [np.full((96, 160, 3), 40, np.uint8), np.full((200, 120, 3), 200, np.uint8)]
    seen = []

    class Network(ZeroNetwork):
        def forward(self, batch):
            seen.append(batch.clone())
            return super().forward(batch)

    inputs = pipeline_inputs(Network(), images, params)
    # Per image: scale 1 and 0.5 (largest first), each followed by its mirror.
    assert [x.shape for x in inputs] == [(1, 3, 128, 256), (1, 3, 128, 256), (1, 3, 64, 128), (1, 3, 64, 128),
                                         (1, 3, 256, 128), (1, 3, 256, 128), (1, 3, 128, 64), (1, 3, 128, 64)]
    for recorded, fed in zip(inputs, seen):
        np.testing.assert_array_equal(recorded, fed.numpy())
    np.testing.assert_array_equal(inputs[1], inputs[0][..., ::-1])


def test_calibration_images_come_from_the_test_split_when_it_is_there(tmp_path):
    write_tiny_coco(tmp_path, split="val2017", num_images=5)
    cfg = tiny_cfg("DATASET.ROOT", str(tmp_path))
    params = InferenceParams.from_config(cfg, higherhrnet.COCO_KEYPOINTS)
    calibration = int8_calibration(cfg, params, Int8Settings(images=3))
    assert calibration.source == f"3 images of the val2017 split of {tmp_path} (DATASET.ROOT)"
    assert calibration.key["images"].endswith("person_keypoints_val2017.json")
    recorded = calibration.batches(ZeroNetwork())
    assert len(recorded) == 3 * 2                       # three images (0, 2 and 4 of five), each with its mirror
    # Without the split: the synthetic val scenes, and words saying so.
    missing = int8_calibration(tiny_cfg("DATASET.ROOT", str(tmp_path / "none")), params, Int8Settings(images=2))
    assert missing.source.startswith("2 scenes of the synthetic val split (the config's DATASET.ROOT has no val2017")
    assert "stick figures, not photos" in missing.source      # a COCO config: the scenes are not its data
    assert missing.key["images"] == "synthetic val"


def test_synthetic_scenes_are_the_make_synthetic_val_split(tmp_path):
    from higherhrnet.data.synthetic import write_synthetic_coco

    write_synthetic_coco(str(tmp_path), {"train": 1, "val": 2}, progress=False)
    scenes = synthetic_val_scenes(2)
    for i, scene in enumerate(scenes):
        written = read_image(tmp_path / "images" / "val" / f"{2_000_000 + i:012d}.jpg").astype(int)
        assert written.shape == scene.shape
        # The same picture up to JPEG's loss (on these textured backgrounds a mean of about 5), unlike the other.
        assert np.abs(written - scene).mean() < 10 < np.abs(written - scenes[1 - i]).mean()


def test_int8_runs_on_the_cpu_only():
    cfg = tiny_cfg()
    model = higherhrnet.build_model(cfg)
    params = InferenceParams.from_config(cfg, higherhrnet.COCO_KEYPOINTS)
    with pytest.raises(OnnxError, match="runs on the CPU"):
        prepare_network(model, torch.device("cuda"), "onnxruntime-int8", calibration=int8_calibration(cfg, params))
    with pytest.raises(ValueError, match="needs a calibration"):
        prepare_network(model, torch.device("cpu"), "onnxruntime-int8")


def test_an_int8_file_says_what_it_is_and_runs_as_it_is(predictors, tmp_path):
    _, int8 = predictors
    cfg = higherhrnet.load_cfg(EXPERIMENTS / "synthetic/w16_256_tiny.yaml",
                               ["DATASET.ROOT", str(REPO / "no-such-folder")])
    model = higherhrnet.build_model(cfg)
    higherhrnet.load_checkpoint(model, REPO / "models/w16_256_tiny.pth")
    quantized = int8_model(model.eval(), int8_calibration(cfg, int8.params))
    assert quantized.cached                  # the predictors' model: the same network, calibration and settings
    path = tmp_path / "w16_int8.onnx"
    path.write_bytes(quantized.data)
    for backend in ("onnxruntime", "onnxruntime-int8"):
        loaded = Predictor.from_config(cfg, path, device="cpu", backend=backend, **CLEAN)
        assert isinstance(loaded.network, OnnxRuntimeNetwork) and loaded.backend == "onnxruntime-int8"
        assert loaded.network.note.startswith("int8: calibrated on 16 scenes of the synthetic val split")
        image = read_image(REPO / "demo/samples/three_people.jpg")
        assert [p.keypoints.tolist() for p in loaded(image)] == [p.keypoints.tolist() for p in int8(image)]


@pytest.mark.slow
def test_export_int8_and_predict_with_it(tmp_path):
    out = tmp_path / "w16_int8.onnx"
    env_cache = {"HIGHERHRNET_CACHE": str(tmp_path / "cache")}
    common = ["--cfg", str(EXPERIMENTS / "synthetic/w16_256_tiny.yaml"), "DATASET.ROOT", str(tmp_path / "none")]
    result = run_cli("export", *common, "--weights", str(REPO / "models/w16_256_tiny.pth"), "--out", str(out),
                     "--int8", env=env_cache)
    assert result.returncode == 0, result.stderr
    assert "int8: calibrating on 16 scenes of the synthetic val split" in result.stdout
    assert INT8_KEY in read_onnx_metadata(out)
    found = {}
    # The file brings its config (export stores it), so it needs no --cfg.
    checkpoint = REPO / "models/w16_256_tiny.pth"
    for name, config, weights, backend in [("file", common[2:], out, "onnxruntime"),
                                           ("checkpoint", common, checkpoint, "onnxruntime-int8")]:
        result = run_cli("predict", *config, "--weights", str(weights), "--backend", backend, "--device", "cpu",
                         str(REPO / "demo/samples/four_people.jpg"), "--out", str(tmp_path / name), env=env_cache)
        assert result.returncode == 0, result.stderr
        assert "int8: calibrated on 16 scenes of the synthetic val split" in result.stderr
        found[name] = json.loads((tmp_path / name / "four_people.json").read_text())["people"]
    assert len(found["file"]) == len(found["checkpoint"]) == 4


def run_cli(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "higherhrnet", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600, env={**os.environ, **(env or {})})
