"""hub.resolve_model: a name, a file, a URL, an ONNX file or nothing -> a frozen config and local weights."""
from __future__ import annotations

import hashlib
from dataclasses import FrozenInstanceError, replace

import pytest
import torch
import yaml

import higherhrnet
from higherhrnet import hub, zoo
from higherhrnet.checkpoint import CheckpointError
from higherhrnet.config import ConfigError
from higherhrnet.hub import MissingConfigError, ResolvedModel, resolve_model
from higherhrnet.zoo import WeightsError

from conftest import EXPERIMENTS, REPO, tiny_cfg
from test_zoo import cache, server  # noqa: F401  (fixtures)

BUNDLED_CFG = EXPERIMENTS / "synthetic" / "w16_256_tiny.yaml"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A model file of ours (tiny.pth, with its config), the same weights as a bare state dict (bare.pth) and
    the config as YAML (tiny.yaml)."""
    folder = tmp_path_factory.mktemp("hub")
    cfg = tiny_cfg("TEST.DETECTION_THRESHOLD", "0.3")
    torch.manual_seed(0)
    model = higherhrnet.build_model(cfg)
    higherhrnet.save_model(folder / "tiny.pth", model, cfg)
    torch.save(model.state_dict(), folder / "bare.pth")
    (folder / "tiny.yaml").write_text(cfg.dump())
    return folder


def test_a_registered_name_brings_its_config():
    resolved = resolve_model(zoo.BUNDLED_MODEL, opts=["TEST.FLIP_TEST", "False"])
    assert resolved == ResolvedModel(resolved.cfg, zoo.resolve_weights(zoo.BUNDLED_MODEL), zoo.BUNDLED_MODEL,
                                     "registry:synthetic_w16_256", None)
    assert resolved.cfg.is_frozen() and resolved.cfg.TEST.FLIP_TEST is False
    assert resolved.cfg.MODEL.EXTRA.STAGE2.NUM_CHANNELS == higherhrnet.load_cfg(BUNDLED_CFG).MODEL.EXTRA.STAGE2.NUM_CHANNELS
    with pytest.raises(FrozenInstanceError):
        resolved.name = "other"


def test_a_bad_override_is_reported_before_any_download(monkeypatch):
    monkeypatch.setattr(hub, "resolve_weights", lambda *args: pytest.fail("downloaded before the config was checked"))
    with pytest.raises(ConfigError, match="unknown config key TEST.FLIP"):
        resolve_model("mmpose_higherhrnet_w32_512", opts=["TEST.FLIP", "True"])


def test_a_model_file_of_ours_brings_the_config_it_was_trained_with(files):
    resolved = resolve_model(files / "tiny.pth", opts=["TEST.FLIP_TEST", "False"])
    assert (resolved.weights, resolved.name, resolved.note) == (str(files / "tiny.pth"), None, None)
    assert resolved.config_source == f"saved in {files / 'tiny.pth'}"
    assert resolved.cfg.TEST.DETECTION_THRESHOLD == 0.3 and resolved.cfg.TEST.FLIP_TEST is False
    with pytest.raises(ConfigError, match="the config saved in .*tiny.pth: DATASET.OUTPUT_SIZE"):
        resolve_model(files / "tiny.pth", opts=["DATASET.OUTPUT_SIZE", "[16, 32]"])


def test_a_given_config_is_used_instead_of_the_model_own(files):
    resolved = resolve_model(files / "tiny.pth", cfg=files / "tiny.yaml", opts=["TEST.NMS_KERNEL", "3",
                                                                               "TEST.NMS_PADDING", "1"])
    assert resolved.config_source == str(files / "tiny.yaml") and resolved.cfg.TEST.NMS_KERNEL == 3
    node = higherhrnet.load_cfg(files / "tiny.yaml")
    assert resolve_model(files / "tiny.pth", cfg=node).cfg is node
    changed = resolve_model(files / "tiny.pth", cfg=node, opts=["TEST.FLIP_TEST", "False"])
    assert changed.config_source == "given CfgNode" and changed.cfg.is_frozen()
    assert changed.cfg.TEST.FLIP_TEST is False and node.TEST.FLIP_TEST is True
    # The config's TEST.MODEL_FILE is the model when none is named.
    with_file = higherhrnet.load_cfg(files / "tiny.yaml", ["TEST.MODEL_FILE", str(files / "bare.pth")])
    assert resolve_model(cfg=with_file).weights == str(files / "bare.pth")


def test_a_file_without_config_needs_one_unless_its_hash_is_registered(files, monkeypatch):
    with pytest.raises(MissingConfigError) as info:
        resolve_model(files / "bare.pth")
    message = str(info.value)
    assert message.startswith(f"{files / 'bare.pth'} carries no config (official and mmpose files do not")
    assert isinstance(info.value, ConfigError) and "\n" not in message
    assert resolve_model(files / "bare.pth", cfg=files / "tiny.yaml").weights == str(files / "bare.pth")
    # An official / mmpose file is recognised by its sha256: the registered entry's config and name.
    digest = hashlib.sha256((files / "bare.pth").read_bytes()).hexdigest()
    entry = replace(zoo.REGISTRY["mmpose_higherhrnet_w32_512"], sha256=digest[:8])
    monkeypatch.setitem(zoo.REGISTRY, entry.name, entry)
    resolved = resolve_model(files / "bare.pth")
    assert (resolved.name, resolved.config_source) == (entry.name, f"registry:{entry.name}")
    assert resolved.cfg.DATASET.INPUT_SIZE == 512


def test_errors_are_the_library_own(files, tmp_path):
    with pytest.raises(WeightsError, match="Did you mean higherhrnet_w32_512"):
        resolve_model("higherhrnet_w32_521")
    with pytest.raises(WeightsError, match="checkpoint not found"):
        resolve_model(tmp_path / "missing.pth", cfg=files / "tiny.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_model(files / "tiny.pth", cfg=tmp_path / "missing.yaml")
    (tmp_path / "notes.pth").write_text("not weights")
    with pytest.raises(CheckpointError, match="notes.pth is not a PyTorch checkpoint: it looks like a text file"):
        resolve_model(tmp_path / "notes.pth")


def test_a_url_is_downloaded_once_and_brings_its_config(files, server, cache):  # noqa: F811
    url = server.serve("/models/tiny.pth", (files / "tiny.pth").read_bytes())
    resolved = resolve_model(url, progress=False)
    assert resolved.weights == str(cache / "tiny.pth") and resolved.cfg.TEST.DETECTION_THRESHOLD == 0.3
    resolve_model(url, progress=False)
    assert server.hits["/models/tiny.pth"] == 1


# ---------------------------------------------------------------- no model given: the default

def _default_entry(monkeypatch, url, sha256=None):
    entry = replace(zoo.REGISTRY[zoo.DEFAULT_MODEL], url=url, sha256=sha256)
    monkeypatch.setitem(zoo.REGISTRY, entry.name, entry)
    return entry


def test_no_model_is_the_default_coco_model(server, cache, monkeypatch):  # noqa: F811
    _default_entry(monkeypatch, server.serve("/mm/default.pth", b"coco weights"))
    resolved = resolve_model(progress=False)
    assert resolved.name == hub.DEFAULT_MODEL == "mmpose_higherhrnet_w32_512" and resolved.note is None
    assert resolved.weights == str(cache / "default.pth")
    assert resolved.config_source == "registry:mmpose_higherhrnet_w32_512"
    assert resolved.cfg.DATASET.DATASET == "coco_kpt" and resolved.cfg.DATASET.INPUT_SIZE == 512


def test_offline_the_default_falls_back_to_the_bundled_model_with_one_line(server, cache, monkeypatch):  # noqa: F811
    _default_entry(monkeypatch, server.serve("/mm/x.pth").replace("x.pth", "default.pth"))
    resolved = resolve_model(progress=False, opts=["TEST.FLIP_TEST", "False"])
    assert (resolved.name, resolved.config_source) == (hub.BUNDLED_MODEL, "registry:synthetic_w16_256")
    assert resolved.weights == zoo.resolve_weights(hub.BUNDLED_MODEL) and resolved.cfg.TEST.FLIP_TEST is False
    assert "\n" not in resolved.note and "bundled demo model synthetic_w16_256" in resolved.note
    assert str(cache / "default.pth") in resolved.note
    # With a config of one's own there is no fallback: the bundled network would not fit it.
    with pytest.raises(WeightsError, match="HTTP 404"):
        resolve_model(cfg=EXPERIMENTS / "coco/higher_hrnet/w32_512_adam_lr1e-3.yaml", progress=False)


# ---------------------------------------------------------------- ONNX files bring their config

@pytest.fixture(scope="module")
def onnx_files(files):
    pytest.importorskip("onnxruntime", reason='onnxruntime is not installed; pip install -e ".[onnx]"')
    from higherhrnet.checkpoint import model_meta
    from higherhrnet.fileio import write_bytes
    from higherhrnet.models import fold_batchnorm
    from higherhrnet.models.onnx import export_onnx, onnx_metadata

    cfg = higherhrnet.load_cfg(files / "tiny.yaml")
    model = higherhrnet.build_model(cfg).eval()
    higherhrnet.load_checkpoint(model, files / "tiny.pth")
    folded = fold_batchnorm(model)
    meta = model_meta(cfg, higherhrnet.COCO_KEYPOINTS, epoch=3)
    write_bytes(export_onnx(folded, (128, 128), metadata=onnx_metadata(meta)), files / "tiny.onnx")
    write_bytes(export_onnx(folded, (128, 128)), files / "foreign.onnx")
    return files


def test_an_exported_onnx_file_brings_its_config_and_meta(onnx_files):
    from higherhrnet.models.onnx import read_onnx_meta

    resolved = resolve_model(onnx_files / "tiny.onnx", opts=["TEST.FLIP_TEST", "False"])
    assert resolved.weights == str(onnx_files / "tiny.onnx") and resolved.config_source.startswith("saved in ")
    assert resolved.cfg.TEST.DETECTION_THRESHOLD == 0.3 and resolved.cfg.TEST.FLIP_TEST is False
    meta = read_onnx_meta(onnx_files / "tiny.onnx")
    assert meta["epoch"] == 3 and meta["keypoints"]["names"] == list(higherhrnet.COCO_KEYPOINTS.names)
    assert yaml.safe_load(meta["config"]) == yaml.safe_load((onnx_files / "tiny.yaml").read_text())


def test_an_onnx_file_without_config_needs_one(onnx_files, tmp_path):
    from higherhrnet.models.onnx import OnnxError

    with pytest.raises(MissingConfigError) as info:
        resolve_model(onnx_files / "foreign.onnx")
    assert str(info.value) == (f"{onnx_files / 'foreign.onnx'} is an ONNX model that stores no config (exported by "
                               f"another tool): give the config it was exported with")
    resolved = resolve_model(onnx_files / "foreign.onnx", cfg=onnx_files / "tiny.yaml")
    assert resolved.weights == str(onnx_files / "foreign.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07 not a protobuf at all")
    with pytest.raises(OnnxError, match="cannot read .*broken.onnx as an ONNX model"):
        resolve_model(tmp_path / "broken.onnx")


def test_the_checkout_paths_are_the_package_files():
    assert resolve_model(REPO / "models/w16_256_tiny.pth").cfg.DATASET.DATASET == "synthetic"
