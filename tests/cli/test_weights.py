"""`higherhrnet weights` and the command line's model resolution (cli/common.load_config_and_weights)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import higherhrnet
from higherhrnet import zoo
from higherhrnet.cli import main
from higherhrnet.cli.common import CommandError, load_config_and_weights

from conftest import REPO, tiny_cfg
from test_zoo import PAYLOAD, PAYLOAD_SHA, cache, server  # noqa: F401  (fixtures)


def test_weights_lists_every_name_with_publisher_ap_config_and_status(cache, monkeypatch, capsys):  # noqa: F811
    entry = zoo.REGISTRY["higherhrnet_w32_512"]
    path = cache / entry.name / entry.filename
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")
    assert main(["weights"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "publisher", "AP", "single", "/", "multi-scale", "config", "here"]
    by_name = {line.split()[0]: line for line in lines[1:] if line and not line.startswith("*")}
    assert set(by_name) == set(zoo.REGISTRY)
    assert by_name["synthetic_w16_256"].rstrip().endswith("bundled")
    assert by_name["higherhrnet_w32_512"].rstrip().endswith("cached")
    assert by_name["swahr_w32_512"].rstrip().endswith("download by hand")
    default = by_name["mmpose_higherhrnet_w32_512"]
    assert "mmpose_higherhrnet_w32_512 *" in default and "mmpose 0.x" in default and "downloads when used" in default
    assert "67.7 / 70.6 (COCO val2017)" in default and "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml" in default
    assert f"Cache folder: {cache}" in lines[-1]


def test_weights_answers_without_importing_torch(tmp_path):
    # Listing names is a lookup: importing torch (about 1.5 s) for it made the command slow to answer.
    code = ("import sys; from higherhrnet.cli import main; status = main(['weights', '--json']); "
            "print('torch loaded' if 'torch' in sys.modules else 'no torch'); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, HIGHERHRNET_CACHE=str(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("no torch")


def test_weights_as_json(cache, capsys):  # noqa: F811
    assert main(["weights", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["cache"] == str(cache)
    rows = {row["name"]: row for row in listing["weights"]}
    assert rows.keys() == zoo.REGISTRY.keys() and [n for n, r in rows.items() if r["default"]] == [zoo.DEFAULT_MODEL]
    assert rows["synthetic_w16_256"]["path"] == zoo.resolve_weights("synthetic_w16_256")
    assert rows["swahr_w32_512"] | {"path": None} == {
        "name": "swahr_w32_512", "default": False, "publisher": "SWAHR (Luo et al.)", "ap": 68.9, "ap_multiscale": 71.4,
        "ap_split": "COCO val2017", "config": "experiments/coco/swahr/w32_512.yaml", "status": "manual", "path": None}
    assert main(["weights", "TEST.FLIP_TEST", "False"]) == 2


# ---------------------------------------------------------------- load_config_and_weights

def test_a_registered_name_gives_its_packaged_config_path():
    cfg, cfg_path, weights = load_config_and_weights(None, "synthetic_w16_256", ["TEST.FLIP_TEST", "False"])
    assert cfg_path == zoo.config_path(zoo.REGISTRY["synthetic_w16_256"]) and weights == zoo.resolve_weights(
        "synthetic_w16_256")
    assert cfg.TEST.FLIP_TEST is False


def test_command_line_messages(tmp_path):
    cfg = tiny_cfg()
    (tmp_path / "tiny.yaml").write_text(cfg.dump())
    torch.save(higherhrnet.build_model(cfg).state_dict(), tmp_path / "bare.pth")
    cases = [
        ((None, None, []), "--cfg is required (it may be left out when --weights names registered weights"),
        ((None, str(tmp_path / "bare.pth"), []), f"--cfg is required: {tmp_path / 'bare.pth'} carries no config"),
        ((str(tmp_path / "tiny.yaml"), None, []), "no weights: pass --weights"),
        ((str(tmp_path / "tiny.yaml"), "higherhrnet_w23_512", []), "unknown weights name 'higherhrnet_w23_512'"),
        ((str(tmp_path / "tiny.yaml"), str(tmp_path / "bare.pth"), ["TEST.FLIP", "1"]),
         "command line: unknown config key TEST.FLIP (did you mean TEST.FLIP_TEST?)"),
    ]
    for arguments, message in cases:
        with pytest.raises(CommandError) as info:
            load_config_and_weights(*arguments)
        assert str(info.value).startswith(message), str(info.value)
    # Without --weights: TEST.MODEL_FILE, else default_weights(cfg, config path).
    assert load_config_and_weights(str(tmp_path / "tiny.yaml"), None, ["TEST.MODEL_FILE", str(tmp_path / "bare.pth")]
                                   )[2] == str(tmp_path / "bare.pth")
    seen = []
    found = load_config_and_weights(str(tmp_path / "tiny.yaml"), None, [],
                                    default_weights=lambda c, path: seen.append(path) or str(tmp_path / "bare.pth"))
    assert found[1:] == (str(tmp_path / "tiny.yaml"), str(tmp_path / "bare.pth")) and seen == [str(tmp_path / "tiny.yaml")]


def test_the_default_model_offline_prints_one_note(server, cache, monkeypatch, capsys):  # noqa: F811
    url = server.serve("/mm/x.pth").replace("x.pth", "default.pth")
    monkeypatch.setitem(zoo.REGISTRY, zoo.DEFAULT_MODEL, replace(zoo.REGISTRY[zoo.DEFAULT_MODEL], url=url))
    cfg, cfg_path, weights = load_config_and_weights(None, None, [], progress=False, default_model=True)
    assert weights == zoo.resolve_weights(zoo.BUNDLED_MODEL) and cfg.DATASET.DATASET == "synthetic"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("note: using the bundled demo model synthetic_w16_256")
    # Reachable (here: served locally), the default is the COCO model, without a note.
    server.serve("/mm/default.pth", PAYLOAD)
    monkeypatch.setitem(zoo.REGISTRY, zoo.DEFAULT_MODEL, replace(zoo.REGISTRY[zoo.DEFAULT_MODEL], url=url,
                                                                  sha256=PAYLOAD_SHA[:8]))
    cfg, cfg_path, weights = load_config_and_weights(None, None, [], progress=False, default_model=True)
    assert weights == str(cache / "default.pth") and cfg.DATASET.DATASET == "coco_kpt"
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- eval's default output folder

def test_eval_writes_results_of_installed_weights_in_the_current_folder(cache, tmp_path, monkeypatch):  # noqa: F811
    from higherhrnet.cli.evaluate import default_output_folder, shipped_place

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    bundled = zoo.resolve_weights(zoo.BUNDLED_MODEL)
    assert shipped_place(bundled) == "inside the installed higherhrnet package"
    assert default_output_folder(bundled, zoo.BUNDLED_MODEL) == str(work / "eval_synthetic_w16_256")
    assert default_output_folder(str(REPO / "models/w16_256_tiny.pth")) == str(work / "eval_w16_256_tiny")
    official = REPO / "models" / "pose_higher_hrnet_w32_512.pth"       # where README has people put them
    assert shipped_place(str(official)) == "in the repository's models/ folder"
    cached = cache / "higher_hrnet32_coco_512x512-8ae85183_20200713.pth"
    assert shipped_place(str(cached)) == "in the download cache"
    assert default_output_folder(str(cached)) == str(work / "eval_higher_hrnet32_coco_512x512-8ae85183_20200713")
    # A training run's weights: beside them, as before.
    run = tmp_path / "output" / "final_state.pth"
    assert shipped_place(str(run)) is None
    assert default_output_folder(str(run)) == str(tmp_path / "output" / "eval_final_state")


@pytest.mark.slow
def test_eval_of_the_bundled_model_writes_nothing_into_the_package(tmp_path):
    from tinycoco import write_tiny_coco

    write_tiny_coco(tmp_path / "data", split="val", num_images=2)
    package_files = sorted(p.name for p in Path(zoo.resolve_weights(zoo.BUNDLED_MODEL)).parent.iterdir())
    result = subprocess.run([sys.executable, "-m", "higherhrnet", "eval", "--weights", zoo.BUNDLED_MODEL, "--device",
                             "cpu", "DATASET.ROOT", str(tmp_path / "data"), "WORKERS", "0"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "eval_synthetic_w16_256"
    assert f"results go to {out} (the weights are inside the installed higherhrnet package" in result.stdout
    assert json.loads((out / "metrics_val.json").read_text()).keys() >= {"AP"}
    assert sorted(p.name for p in Path(zoo.resolve_weights(zoo.BUNDLED_MODEL)).parent.iterdir()) == package_files
