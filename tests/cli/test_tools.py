from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from torch import nn

import higherhrnet
from higherhrnet.models.summary import summarize

from conftest import EXPERIMENTS, REPO, tiny_cfg


def run_tool(*args):
    return subprocess.run([sys.executable, str(REPO / "tools/model_summary.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_multiply_adds_of_known_layers():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 2, 4, stride=2, padding=1))
    s = summarize(model, (2, 3, 16, 16))
    conv = 2 * 16 * 16 * 8 * 3 * 3 * 3           # per output pixel: 3*3*3 MACs for each of 8 channels
    deconv = 2 * 16 * 16 * 8 * 2 * 4 * 4         # each input pixel spreads over a 4x4 kernel per pair of channels
    assert s.macs == conv + deconv
    assert s.official_flops == conv + 2 * 32 * 32 * 8 * 2 * 4 * 4  # weights x OUTPUT pixels for the deconv too
    assert s.num_parameters == (8 * 27 + 8) + (8 * 2 * 16 + 2)
    assert s.output_shapes == [(2, 2, 32, 32)]


@pytest.mark.slow
def test_model_summary_cli_json_on_tiny_config(tmp_path):
    cfg_file = tmp_path / "tiny.yaml"
    cfg = tiny_cfg()
    cfg_file.write_text(cfg.dump())
    result = run_tool("--cfg", str(cfg_file), "--input-size", "192", "128", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    model = higherhrnet.build_model(cfg)
    assert data["num_parameters"] == sum(p.numel() for p in model.parameters())
    assert data["output_shapes"] == [[1, 34, 32, 48], [1, 17, 64, 96]]
    assert abs(sum(m["gmacs"] for m in data["per_module"].values()) - data["gmacs"]) < 1e-6


@pytest.mark.slow
def test_model_summary_cli_w32_matches_published_numbers():
    result = run_tool("--cfg", str(EXPERIMENTS / "coco/higher_hrnet/w32_512_adam_lr1e-3.yaml"))
    assert result.returncode == 0, result.stderr
    # The HigherHRNet paper / official repo: W32-512 has 28.6M parameters and 47.9 GFLOPs.
    assert "parameters: 28.6M" in result.stdout
    assert "GFLOPs (official count, conv weights x output pixels): 47.9" in result.stdout
    assert "output 1: [1, 17, 256, 256]" in result.stdout


@pytest.mark.slow
def test_model_summary_cli_errors(tmp_path):
    result = run_tool("--cfg", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "config file not found" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"MODEL": {"NUM_JOINT": 3}}))
    result = run_tool("--cfg", str(bad))
    assert result.returncode == 2 and "MODEL.NUM_JOINT" in result.stderr and "Traceback" not in result.stderr
    result = run_tool("--cfg", str(EXPERIMENTS / "coco/higher_hrnet/w32_512_adam_lr1e-3.yaml"),
                      "--input-size", "100", "100")
    assert result.returncode == 2 and "multiples of 32" in result.stderr


@pytest.mark.slow
def test_model_summary_cli_hourglass_and_v2_head():
    result = run_tool("--cfg", str(EXPERIMENTS / "synthetic/hourglass_256_tiny.yaml"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["output_shapes"] == [[1, 34, 64, 64]] * 2                 # one output per stack, all at 1/4
    assert set(data["per_module"]) == {"stem", "hourglasses", "features", "predictions", "merge_features",
                                       "merge_predictions"}
    assert sum(m["parameters"] for m in data["per_module"].values()) == data["num_parameters"] == 1_046_196
    result = run_tool("--cfg", str(EXPERIMENTS / "coco/higher_hrnet/w32_512_hrnetv2_head.yaml"), "--input-size", "128",
                      "128")
    assert result.returncode == 0, result.stderr
    assert "representation_head" in result.stdout and "parameters: 29.9M" in result.stdout
    assert "output 0: [1, 34, 32, 32]  (stride 4)" in result.stdout
