"""devices.resolve_device: one default (CUDA when available, else the CPU) and one error for every command,
the Trainer and the Predictor."""
from __future__ import annotations

import pytest
import torch

import higherhrnet
from higherhrnet import COCO_KEYPOINTS, ConfigError, Predictor
from higherhrnet.cli import main
from higherhrnet.inference import InferenceParams
from higherhrnet.devices import DeviceError, resolve_device

from conftest import EXPERIMENTS, REPO, tiny_cfg

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where CUDA is missing")


def test_default_is_cuda_when_available_else_cpu(monkeypatch):
    for given in (None, ""):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert resolve_device(given) == torch.device("cuda")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert resolve_device(given) == torch.device("cpu")


def test_named_devices_are_taken_as_they_are(monkeypatch):
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_devices_that_cannot_be_used_are_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"^device cuda:1 requested but CUDA is not available .*--device cpu\)$") as e:
        resolve_device("cuda:1")
    # The Trainer used to raise a ConfigError and the Predictor a RuntimeError: both still catch it.
    assert isinstance(e.value, ConfigError) and isinstance(e.value, RuntimeError)
    assert "'" not in str(e.value) and "=" not in str(e.value)       # words for the command line and Python alike
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceError, match=r"cuda:3 requested but this machine has 1 CUDA device \(cuda:0 to cuda:0\)"):
        resolve_device("cuda:3")
    with pytest.raises(DeviceError, match="unknown device gpu: use cpu, cuda or cuda:N"):
        resolve_device("gpu")
    with pytest.raises(TypeError, match="device must be a name"):
        resolve_device(0)


def test_the_predictor_resolves_its_device_the_same_way(monkeypatch):
    cfg = tiny_cfg()
    model = higherhrnet.build_model(cfg)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Predictor.from_model(cfg, model, raw=True).device == torch.device("cpu")
    with pytest.raises(DeviceError, match="--device cpu"):
        Predictor.from_model(cfg, model, device="cuda", raw=True)
    with pytest.raises(DeviceError, match="--device cpu"):
        Predictor.from_config(cfg, model.state_dict(), device="cuda", raw=True)
    # A ready network is not moved: by default its inputs go where its parameters are.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    params = InferenceParams.from_config(cfg, COCO_KEYPOINTS)
    assert Predictor(model, params, COCO_KEYPOINTS, raw=True).device == torch.device("cpu")


@no_cuda
@pytest.mark.parametrize("command", ["predict", "eval", "train"])
def test_every_command_gives_the_one_message(command, tmp_path, capsys):
    cfg = str(EXPERIMENTS / "synthetic/w16_256_tiny.yaml")
    weights = str(REPO / "models/w16_256_tiny.pth")
    argv = {"predict": ["predict", "--cfg", cfg, "--weights", weights, str(REPO / "demo/samples/three_people.jpg"),
                        "--out", str(tmp_path / "out")],
            "eval": ["eval", "--cfg", cfg, "--weights", weights, "--out", str(tmp_path / "out")],
            "train": ["train", "--cfg", cfg, "OUTPUT_DIR", str(tmp_path / "output"), "LOG_DIR", str(tmp_path / "log")]}
    assert main([*argv[command], "--device", "cuda"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: device cuda requested but CUDA is not available on this machine (no GPU, or a PyTorch built without "
        "CUDA): use device cpu (--device cpu)")
