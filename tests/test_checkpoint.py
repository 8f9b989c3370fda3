from __future__ import annotations

import datetime
import os
import pickle
import re

import numpy as np
import pytest
import torch
from torch import nn

import higherhrnet
from higherhrnet import CheckpointError, load_checkpoint
from higherhrnet.checkpoint import (atomic_save, load_pretrained_backbone, read_checkpoint, read_model_meta,
                                    save_model)

from conftest import tiny_cfg, tiny_hourglass_cfg

INPUT = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def fresh_model():
    torch.manual_seed(123)
    return higherhrnet.build_model(tiny_cfg()).eval()


def outputs(model):
    with torch.no_grad():
        return model(INPUT)


def assert_same_outputs(a, b):
    for x, y in zip(outputs(a), outputs(b)):
        assert torch.equal(x, y)


def fp16_layout(state):
    """The official FP16 training layout: the net wrapped as Sequential(tofp16, net) -> keys "1.",
    conv / deconv / final-layer tensors in half precision, BatchNorm kept in float32."""
    half_modules = {n for n, m in fresh_model().named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}
    out = {}
    for k, v in state.items():
        module = k.rsplit(".", 1)[0]
        out["1." + k] = v.half() if module in half_modules else v
    return out


LAYOUTS = {
    "bare": lambda sd: sd,
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 3},
    "model": lambda sd: {"model": sd, "config": "MODEL: {}\n"},
    "module.": lambda sd: {"module." + k: v for k, v in sd.items()},
    "state_dict+module.": lambda sd: {"state_dict": {"module." + k: v for k, v in sd.items()}},
    "module.1.": lambda sd: {"module." + k: v for k, v in fp16_layout(sd).items()},
    # pose-ae-train's train.py: its Trainer's state (network as `model`, a DataParallel), optimizer, epoch.
    "pose-ae-train": lambda sd: {"state_dict": {"model.module." + k: v for k, v in sd.items()},
                                 "optimizer": {"state": {}, "param_groups": []}, "epoch": 7},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_accepted_layouts_reproduce_outputs(tmp_path, tiny_model, layout):
    path = tmp_path / "ckpt.pth"
    torch.save(LAYOUTS[layout](tiny_model.state_dict()), path)
    model = fresh_model()
    load_checkpoint(model, path)
    if "1." in layout:
        # Half-precision weights lose bits: compare with the source model's weights rounded the same way.
        load_checkpoint(tiny_model, {k[2:]: v.float() for k, v in fp16_layout(tiny_model.state_dict()).items()})
    assert_same_outputs(model, tiny_model)


def test_fp16_layout_is_converted_to_float32(tmp_path, tiny_model):
    path = tmp_path / "fp16.pth"
    state = fp16_layout(tiny_model.state_dict())
    assert any(v.dtype == torch.float16 for v in state.values())
    torch.save(state, path)
    model = fresh_model()
    load_checkpoint(model, path)
    assert all(v.dtype in (torch.float32, torch.int64) for v in model.state_dict().values())
    assert torch.equal(model.conv1.weight, state["1.conv1.weight"].float())
    assert torch.equal(model.bn1.running_var, state["1.bn1.running_var"])


def test_missing_bn_counters_are_tolerated(tmp_path, tiny_model):
    state = {k: v for k, v in tiny_model.state_dict().items() if not k.endswith("num_batches_tracked")}
    model = fresh_model()
    load_checkpoint(model, state)
    assert_same_outputs(model, tiny_model)


def test_mismatch_lists_missing_unexpected_and_wrong_shape(tiny_model):
    state = dict(tiny_model.state_dict())
    del state["stage4.0.branches.1.0.conv2.weight"]
    state["head.extra.weight"] = torch.zeros(3)
    state["final_layers.0.weight"] = torch.zeros(5, 8, 1, 1)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(fresh_model(), state)
    msg = str(e.value)
    assert "missing (1): stage4.0.branches.1.0.conv2.weight" in msg
    assert "unexpected (1): head.extra.weight" in msg
    assert "final_layers.0.weight: checkpoint [5, 8, 1, 1] vs model [34, 8, 1, 1]" in msg


def test_mismatch_between_widths_is_reported(tmp_path):
    w16 = higherhrnet.build_model(tiny_cfg("MODEL.EXTRA.STAGE2.NUM_CHANNELS", "[16, 16]"))
    path = tmp_path / "other.pth"
    torch.save(w16.state_dict(), path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(fresh_model(), path)
    # Another network: one line naming the file and what it holds; the keys in `details`.
    assert str(e.value) == (f"{path} holds the weights of a HigherHRNet-W16 (17 joints), not of this config's "
                            f"network, a HigherHRNet-W8 (17 joints): give the config it was trained with, or "
                            f"weights for this network")
    assert re.search(r"wrong shape \(\d+\): transition1.0.0.weight: checkpoint \[16, ", e.value.details)


def foreign_weights(tiny_model):
    """Files of other networks, each with what the error should say it holds."""
    state = tiny_model.state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith(("final_layers", "deconv_layers"))}
    classifier = {**backbone, "incre_modules.0.0.conv1.weight": torch.zeros(32, 8, 1, 1),
                  "classifier.weight": torch.zeros(1000, 2048)}
    top_down = {**backbone, "final_layer.weight": torch.zeros(17, 8, 1, 1), "final_layer.bias": torch.zeros(17)}
    crowdpose = higherhrnet.build_model(tiny_cfg("MODEL.NUM_JOINTS", "14", "DATASET.NUM_JOINTS", "14")).state_dict()
    hourglass = higherhrnet.build_model(tiny_hourglass_cfg()).state_dict()
    return {
        "an ImageNet HRNet-W8 classifier (backbone weights, for MODEL.PRETRAINED)": classifier,
        "a top-down HRNet-W8 pose network (17 heatmaps, one person per crop)": top_down,
        "a HigherHRNet-W8 (14 joints)": crowdpose,
        "a residual stacked hourglass (2 stacks)": hourglass,
        "an unknown network (2 tensors, e.g. fc.bias, fc.weight)": {"fc.weight": torch.zeros(2, 2),
                                                                    "fc.bias": torch.zeros(2)},
    }


def test_weights_of_another_network_are_named_in_one_line(tmp_path, tiny_model):
    for description, state in foreign_weights(tiny_model).items():
        path = tmp_path / "foreign.pth"
        torch.save(state, path)
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(fresh_model(), path)
        message = str(e.value)
        assert "\n" not in message and message.startswith(f"{path} holds the weights of {description}, not of this "
                                                           f"config's network, a HigherHRNet-W8 (17 joints)")
        assert re.match(r"  (missing|unexpected|wrong shape) \(\d+\): ", e.value.details)
    assert higherhrnet.checkpoint.describe_weights(
        higherhrnet.build_model(tiny_cfg("MODEL.SWAHR", "True")).state_dict()) == \
        "a HigherHRNet-W8 (17 joints, SWAHR scale heads)"


def test_an_mmpose_network_other_than_hrnet_is_named_in_one_line(tmp_path):
    # mmpose's SimpleBaseline: a ResNet backbone (layer2..4 are no HRNet modules).
    path = tmp_path / "res50_coco_256x192.pth"
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(64, 3, 3, 3),
                               **{f"backbone.layer4.{i}.conv1.weight": torch.zeros(17) for i in range(40)}}}, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(fresh_model(), path)
    message = str(e.value)
    assert message.startswith(f"{path}: an mmpose network other than HigherHRNet or top-down HRNet: 40 keys outside")
    assert "\n" not in message and "(+37 more)" in message


def test_damaged_files_give_readable_errors(tmp_path, tiny_model):
    good = tmp_path / "good.pth"
    torch.save(tiny_model.state_dict(), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="damaged or not a PyTorch file"):
        load_checkpoint(fresh_model(), truncated)
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights")
    with pytest.raises(CheckpointError, match=str(text)):
        load_checkpoint(fresh_model(), text)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(fresh_model(), empty)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(fresh_model(), tmp_path / "absent.pth")


@pytest.mark.parametrize("content, looks_like", [
    (b"\x08\x08\x12\x07pytorch\x1a\x062.13.0:\xbf\xaf", "an ONNX model"),
    (b"<!DOCTYPE html><html><body>Google Drive - Virus scan warning</body></html>", "a web page"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 5329055\n", "a Git LFS pointer"),
    (b"\x89HDF\r\n\x1a\n" + bytes(100), "an HDF5 file"),
    (b"MODEL:\n  NAME: pose_higher_hrnet\n", "a text file"),
    (bytes([0xff, 0xfe, 0x00, 0x01]) * 50, "a binary file of an unknown format"),
])
def test_files_that_are_not_checkpoints_are_named_in_one_line(tmp_path, content, looks_like):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(fresh_model(), path)
    assert str(e.value).startswith(f"{path} is not a PyTorch checkpoint: it looks like {looks_like}")
    assert "\n" not in str(e.value) and "Python objects" not in str(e.value)


def test_non_tensor_content_is_rejected(tiny_model):
    with pytest.raises(CheckpointError, match="no model weights"):
        load_checkpoint(fresh_model(), {"epoch": 3})
    with pytest.raises(CheckpointError, match="not tensors: conv1.weight"):
        load_checkpoint(fresh_model(), {**tiny_model.state_dict(), "conv1.weight": [1, 2]})


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


class _Plain:
    pass


def test_pickles_with_objects_are_refused_without_running_code(tmp_path, tiny_model):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": tiny_model.state_dict(), "x": _Payload(str(marker))}, evil)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(fresh_model(), evil)
    assert not marker.exists()
    objects = tmp_path / "objects.pth"
    torch.save({"model": tiny_model.state_dict(), "cfg": _Plain()}, objects)
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_checkpoint(objects)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(CheckpointError):
        read_checkpoint(raw)
    assert not marker.exists()


def test_saved_model_loads_with_weights_only_and_carries_metadata(tmp_path, tiny_model):
    cfg = tiny_cfg("TEST.FLIP_TEST", "False")
    path = tmp_path / "out" / "model.pth"
    save_model(path, tiny_model, cfg, higherhrnet.COCO_KEYPOINTS, epoch=7,
               metrics={"AP": np.float64(0.5), "AP .5": 0.75})
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw) == ["state_dict", "meta"]
    assert list(raw["state_dict"]) == list(fresh_model().state_dict())        # official key order, no prefix
    meta = raw["meta"]
    assert meta["format"] == "higherhrnet" and meta["version"] == higherhrnet.__version__
    assert datetime.datetime.fromisoformat(meta["date"]).utcoffset() == datetime.timedelta(0)
    assert meta["epoch"] == 7 and meta["metrics"] == {"AP": 0.5, "AP .5": 0.75}
    assert type(meta["metrics"]["AP"]) is float                               # not a NumPy scalar
    assert meta["dataset"] == "coco_kpt"
    reloaded_cfg = higherhrnet.get_cfg()
    reloaded_cfg.merge_from_other_cfg(higherhrnet.config.CfgNode.load_cfg(meta["config"]))
    assert reloaded_cfg.TEST.FLIP_TEST is False
    assert higherhrnet.KeypointSpec.from_lists(**meta["keypoints"]) == higherhrnet.COCO_KEYPOINTS
    assert isinstance(meta["keypoints"]["flip_pairs"][0], list)               # plain lists, not tuples
    assert read_model_meta(path) == meta and read_model_meta(raw) == meta
    model = fresh_model()
    assert read_model_meta(load_checkpoint(model, path)) == meta
    assert_same_outputs(model, tiny_model)


def test_files_without_our_metadata_read_as_empty(tmp_path, tiny_model):
    state = tiny_model.state_dict()
    official = tmp_path / "official.pth"
    torch.save(state, official)                                               # the official bare state dict
    assert read_model_meta(official) == {}
    # mmcv's save_checkpoint writes a "meta" of its own (mmcv version, time): not ours.
    assert read_model_meta({"state_dict": state, "meta": {"mmcv_version": "1.3.8", "time": "x"}}) == {}
    assert read_model_meta({"model": state, "config": "x", "epoch": 3}) == {}


def test_metadata_that_is_not_plain_is_refused(tmp_path, tiny_model):
    path = tmp_path / "model.pth"
    with pytest.raises(TypeError, match=r"metrics\.AP: Tensor is not a plain value"):
        save_model(path, tiny_model, metrics={"AP": torch.tensor(0.5)})
    assert not path.exists()


def test_atomic_save_leaves_nothing_behind_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pth"
    atomic_save({"a": torch.ones(2)}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"a": torch.zeros(2)}, path)
    assert os.listdir(tmp_path) == ["ckpt.pth"]
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))


def test_partial_backbone_load_filters_by_layer(tmp_path, tiny_model):
    imagenet = {k: v for k, v in tiny_model.state_dict().items() if not k.startswith(("final_layers", "deconv"))}
    imagenet["classifier.weight"] = torch.zeros(1000, 2048)
    imagenet["incre_modules.0.0.conv1.weight"] = torch.zeros(32, 8, 1, 1)
    path = tmp_path / "hrnet_imagenet.pth"
    torch.save(imagenet, path)

    model = fresh_model()
    loaded = load_pretrained_backbone(model, path, ["*"])
    assert "classifier.weight" not in loaded and "final_layers.0.weight" not in loaded
    assert torch.equal(model.stage4[0].branches[3][0].conv1.weight, tiny_model.stage4[0].branches[3][0].conv1.weight)
    assert not torch.equal(model.final_layers[0].weight, tiny_model.final_layers[0].weight)

    model = fresh_model()
    loaded = load_pretrained_backbone(model, path, ["conv1", "bn1"])
    assert {k.split(".")[0] for k in loaded} == {"conv1", "bn1"}
    assert torch.equal(model.conv1.weight, tiny_model.conv1.weight)
    assert not torch.equal(model.conv2.weight, tiny_model.conv2.weight)

    with pytest.raises(CheckpointError, match="no tensor matches"):
        load_pretrained_backbone(fresh_model(), path, ["nothing"])
