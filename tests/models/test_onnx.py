from __future__ import annotations

import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

import higherhrnet
from higherhrnet import Predictor
from higherhrnet.fileio import write_bytes
from higherhrnet.models.onnx import (OnnxError, OnnxRuntimeNetwork, create_session, export_onnx,
                                     max_differences)
from higherhrnet.models import fold_batchnorm

from conftest import REPO, assert_same_maps, randomize, tiny_cfg
from tinycoco import draw, person_annotation

SKIP_REASON = 'onnxruntime is not installed; the ONNX tests need pip install -e ".[onnx]"'
# Sizes other than the 128 x 128 the tiny model is exported at, in both directions, with a batch of 2.
CHECK_SHAPES = [(2, 3, 256, 320), (1, 3, 384, 256)]


@pytest.fixture(scope="module")
def onnxruntime():
    return pytest.importorskip("onnxruntime", reason=SKIP_REASON)


@pytest.fixture(scope="module")
def tiny(onnxruntime):
    """cfg, a randomized tiny model, and its folded export (traced at 128 x 128)."""
    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = randomize(higherhrnet.build_model(cfg))
    return cfg, model, export_onnx(fold_batchnorm(model), input_size=(128, 128))


def assert_matches_torch(model, network, shapes, atol=1e-3):
    g = torch.Generator().manual_seed(5)
    for shape in shapes:
        batch = torch.randn(shape, generator=g)
        with torch.no_grad():
            expected = model(batch)
        actual = network(batch)
        assert len(actual) == len(expected) == 2
        for a, e in zip(actual, expected):
            assert a.shape == e.shape and a.dtype == torch.float32
            torch.testing.assert_close(a, e, atol=atol, rtol=0)


def test_export_has_dynamic_batch_height_width_and_matches_torch(tiny):
    import onnx

    _, model, data = tiny
    proto = onnx.load_from_string(data)
    (image,) = proto.graph.input
    dims = image.type.tensor_type.shape.dim
    assert image.name == "image" and dims[1].dim_value == 3
    assert all(dims[i].dim_param and not dims[i].dim_value for i in (0, 2, 3))
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1"]
    assert {p.key: p.value for p in proto.metadata_props}["higherhrnet.output_strides"] == "4,2"
    assert not any(node.op_type == "BatchNormalization" for node in proto.graph.node)
    network = OnnxRuntimeNetwork(create_session(data, threads=1))
    assert network.output_channels == [34, 17]
    assert_matches_torch(model, network, CHECK_SHAPES)


@pytest.mark.slow
def test_dynamo_exporter_also_gives_dynamic_sizes(tiny):
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (needed by --exporter dynamo only)")
    _, model, _ = tiny
    data = export_onnx(fold_batchnorm(model), input_size=(128, 128), exporter="dynamo")
    assert_matches_torch(model, OnnxRuntimeNetwork(create_session(data)), CHECK_SHAPES)


def test_export_refuses_training_mode_and_old_opsets(tiny):
    _, model, _ = tiny
    with pytest.raises(ValueError, match="eval"):
        export_onnx(fold_batchnorm(model).train())
    with pytest.raises(OnnxError, match="opset 10 is too old"):
        export_onnx(fold_batchnorm(model), opset=10)


def painted_images():
    """Stick figures (as in the tiny COCO set) under noise, in sizes that need no padding at 128 or 64 pixels.

    The random network finds people all over them. Flat areas (padding, solid strokes) would make it output
    equal values at neighbouring pixels, and ties are broken by float rounding, differently by any two
    correct implementations; noise everywhere keeps the test about the network, not about tie-breaking.
    """
    rng = np.random.default_rng(3)
    images = []
    for (h, w), boxes in [((192, 288), [(20, 20, 60, 140), (140, 40, 70, 130)]), ((256, 256), [(10, 15, 80, 120)])]:
        image = np.zeros((h, w, 3), np.uint8)
        for k, box in enumerate(boxes):
            draw(image, person_annotation(k, 0, box))
        noisy = image.astype(np.int64) // 2 + rng.integers(0, 128, (h, w, 3))
        images.append(noisy.astype(np.uint8))
    return images


@pytest.mark.parametrize("opts", [[], ["TEST.SCALE_FACTOR", "[1.0, 0.5]", "TEST.PROJECT2IMAGE", "False"]])
def test_predictor_onnxruntime_backend_matches_torch_backend(tiny, opts):
    cfg, model, _ = tiny
    cfg = tiny_cfg(*opts)
    reference = Predictor(cfg, model.state_dict(), fold_bn=False, raw=True)
    onnx_predictor = Predictor(cfg, model.state_dict(), backend="onnxruntime", raw=True)
    assert isinstance(onnx_predictor.network, OnnxRuntimeNetwork) and onnx_predictor.backend == "onnxruntime"
    images = painted_images()
    assert_same_maps(reference, onnx_predictor, images, atol=1e-3)
    for people, people_ort in zip(reference(images), onnx_predictor(images)):
        assert len(people) == len(people_ort) > 0
        for person, person_ort in zip(people, people_ort):
            np.testing.assert_allclose(person_ort.keypoints[:, :2], person.keypoints[:, :2], atol=1e-4)
            np.testing.assert_allclose(person_ort.keypoints[:, 2], person.keypoints[:, 2], atol=1e-3)
            assert person_ort.score == pytest.approx(person.score, abs=1e-3)


def test_predictor_takes_an_onnx_file(tiny, tmp_path):
    cfg, model, data = tiny
    path = tmp_path / "tiny.onnx"
    write_bytes(data, path)
    images = painted_images()
    from_file = Predictor(cfg, path, backend="onnxruntime", onnx_threads=1, raw=True)(images)
    from_checkpoint = Predictor(cfg, model.state_dict(), backend="onnxruntime", raw=True)(images)
    for a, b in zip(from_file, from_checkpoint):
        assert len(a) == len(b) > 0
        for p, q in zip(a, b):
            np.testing.assert_array_equal(p.keypoints, q.keypoints)
    with pytest.raises(ValueError, match="run it with the onnxruntime backend"):
        Predictor(cfg, path, raw=True)
    with pytest.raises(OnnxError, match=r"\[34, 17\] channels but the config's network has \[18, 17\]"):
        Predictor(tiny_cfg("MODEL.TAG_PER_JOINT", "False"), path, backend="onnxruntime", raw=True)
    with pytest.raises(OnnxError, match="ONNX model not found"):
        Predictor(cfg, tmp_path / "missing.onnx", backend="onnxruntime", raw=True)
    (tmp_path / "broken.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(OnnxError, match="onnxruntime cannot load"):
        Predictor(cfg, tmp_path / "broken.onnx", backend="onnxruntime", raw=True)


def test_missing_onnxruntime_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # makes `import onnxruntime` fail
    cfg = tiny_cfg()
    with pytest.raises(OnnxError, match=re.escape('pip install -e ".[onnx]"')):
        Predictor(cfg, higherhrnet.build_model(cfg).state_dict(), backend="onnxruntime", raw=True)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend 'tensorrt'"):
        Predictor(tiny_cfg(), {}, backend="tensorrt", raw=True)


def test_max_differences_sees_a_changed_network(tiny):
    _, model, _ = tiny
    changed = fold_batchnorm(model)
    with torch.no_grad():
        changed.final_layers[1].bias += 0.01
    differences = max_differences(model, changed, (64, 96))
    assert differences[0] < 1e-5 and differences[1] == pytest.approx(0.01, abs=1e-4)


# ---------------------------------------------------------------- command-line tools

@pytest.fixture(scope="module")
def tiny_files(tiny, tmp_path_factory):
    cfg, model, _ = tiny
    folder = tmp_path_factory.mktemp("onnx")
    (folder / "tiny.yaml").write_text(cfg.dump())
    higherhrnet.save_model(folder / "tiny.pth", model, cfg)
    return folder


def run_script(script, *args):
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


@pytest.mark.slow
def test_export_cli_writes_a_checked_model(tiny_files):
    import onnx

    out = tiny_files / "tiny.onnx"
    result = run_script("tools/export_onnx.py", "--cfg", tiny_files / "tiny.yaml", "--weights",
                        tiny_files / "tiny.pth", "--out", out, "--input-size", "160", "96")
    assert result.returncode == 0, result.stderr
    assert "onnx.checker: passed" in result.stdout
    checks = re.findall(r"at (\d+)x(\d+) \(batch 2\): max abs difference (\S+) \(output_0\), (\S+) \(output_1\)",
                        result.stdout)
    assert [(int(w), int(h)) for w, h, _, _ in checks] == [(224, 96), (96, 224)]
    assert all(float(d) < 1e-3 for _, _, *ds in checks for d in ds)
    proto = onnx.load(str(out))
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert yaml.safe_load(metadata["higherhrnet.config"]) == yaml.safe_load((tiny_files / "tiny.yaml").read_text())
    assert metadata["higherhrnet.version"] == higherhrnet.__version__
    # What the model is (the model meta of the weights), so that the file needs no --cfg later.
    meta = json.loads(metadata["higherhrnet.meta"])
    assert meta["format"] == "higherhrnet" and meta["config"] == metadata["higherhrnet.config"]
    assert meta["dataset"] == "coco_kpt" and meta["keypoints"]["names"] == list(higherhrnet.COCO_KEYPOINTS.names)


@pytest.mark.slow
def test_export_cli_errors(tiny_files, tmp_path):
    common = ["--cfg", tiny_files / "tiny.yaml", "--out", tmp_path / "m.onnx"]
    cases = [
        (["--weights", tmp_path / "missing.pth"], "checkpoint not found"),
        (["--weights", tiny_files / "tiny.pth", "--input-size", "100", "64"], "multiples of 32"),
        (["--weights", tiny_files / "tiny.pth", "--opset", "10"], "opset 10 is too old"),
    ]
    for extra, message in cases:
        result = run_script("tools/export_onnx.py", *common, *extra)
        assert result.returncode == 2 and message in result.stderr, (extra, result.stderr)
        # one line says what is wrong (after the subcommand's usage line for a value it cannot use)
        assert "Traceback" not in result.stderr and len([l for l in result.stderr.splitlines() if "error" in l]) == 1
    result = run_script("tools/export_onnx.py", "--cfg", tiny_files / "tiny.yaml", "--weights",
                        tiny_files / "tiny.pth", "--out", tmp_path / "no/such/folder/m.onnx")
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_an_exported_file_brings_its_config_to_the_command_line(tiny, tiny_files, tmp_path):
    from higherhrnet.checkpoint import model_meta
    from higherhrnet.models.onnx import onnx_metadata

    cfg, model, data = tiny
    write_bytes(export_onnx(fold_batchnorm(model), (128, 128), metadata=onnx_metadata(model_meta(cfg))),
                tmp_path / "with_config.onnx")
    write_bytes(data, tmp_path / "foreign.onnx")       # no config stored, as from another tool
    image = painted_images()[0]
    assert cv2.imwrite(str(tmp_path / "street.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    found = {}
    for name, args in [("cfg", ["--cfg", tiny_files / "tiny.yaml"]), ("stored", [])]:
        result = run_script("demo/inference.py", *args, "--weights", tmp_path / "with_config.onnx", "--backend",
                            "onnxruntime", "--image", tmp_path / "street.png", "--out", tmp_path / name, "--all")
        assert result.returncode == 0, result.stderr
        found[name] = json.loads((tmp_path / name / "street.json").read_text())["people"]
    assert found["stored"] == found["cfg"] and found["cfg"]
    result = run_script("demo/inference.py", "--weights", tmp_path / "foreign.onnx", "--backend", "onnxruntime",
                        "--image", tmp_path / "street.png", "--out", tmp_path / "x")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr == (f"error: --cfg is required: {tmp_path / 'foreign.onnx'} is an ONNX model that stores no "
                             f"config (exported by another tool): give the config it was exported with\n")


@pytest.mark.slow
def test_demo_with_onnxruntime_backend_finds_the_same_people(tiny, tiny_files, tmp_path):
    write_bytes(tiny[2], tmp_path / "tiny.onnx")
    image = painted_images()[0]
    assert cv2.imwrite(str(tmp_path / "street.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    common = ["--cfg", tiny_files / "tiny.yaml", "--image", tmp_path / "street.png"]
    found = {}
    for backend, weights in [("torch", tiny_files / "tiny.pth"), ("onnxruntime", tmp_path / "tiny.onnx")]:
        result = run_script("demo/inference.py", *common, "--weights", weights, "--out", tmp_path / backend,
                            "--backend", backend, "--all")
        assert result.returncode == 0, result.stderr
        found[backend] = json.loads((tmp_path / backend / "street.json").read_text())["people"]
    assert len(found["torch"]) == len(found["onnxruntime"]) > 0
    for a, b in zip(found["torch"], found["onnxruntime"]):
        # The JSON rounds pixels to 0.1 and values to 0.001: equal up to one rounding step.
        np.testing.assert_allclose(b["keypoints"], a["keypoints"], atol=0.1 + 1e-6)
    result = run_script("demo/inference.py", *common, "--weights", tmp_path / "tiny.onnx", "--out", tmp_path / "x")
    assert result.returncode == 2 and "--backend onnxruntime" in result.stderr
