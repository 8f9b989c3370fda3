"""The package works anywhere: a wheel built from the sources, installed in a fresh environment and run from a
folder outside the checkout, finds its configs and the bundled model as package data (.ci/run does the same
with a full `pip install` of the wheel and its dependencies)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow   # builds and installs a wheel, starts processes


def run(*args, **kwargs):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, environment) with the wheel installed in the venv; its dependencies come from this test's
    environment (a .pth file naming its site-packages, which a venv made from a venv's interpreter cannot get
    with --system-site-packages), so that nothing is downloaded."""
    root = tmp_path_factory.mktemp("wheel")
    # Build from a copy of the sources, so that the checkout gets no build/ folder and stale files stay out.
    source = root / "source"
    shutil.copytree(REPO / "lib", source / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", source)
    (wheel,) = (root / "dist").glob("higherhrnet-*.whl")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    purelib = run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
                  ).stdout.strip()
    with open(os.path.join(purelib, "dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps",
        "--no-build-isolation", "-q", wheel)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HIGHERHRNET_CACHE=str(root / "cache"), OMP_NUM_THREADS="1")
    return venv, env


def test_the_installed_wheel_predicts_with_the_bundled_model_outside_the_checkout(installed, tmp_path):
    venv, env = installed
    where = run(venv / "bin" / "python", "-c", "import higherhrnet; print(higherhrnet.__file__)", cwd=tmp_path,
                env=env).stdout.strip()
    assert where.startswith(str(venv)), where            # the wheel's copy, not the checkout's
    shutil.copy(REPO / "demo/samples/three_people.jpg", tmp_path)
    run(venv / "bin" / "higherhrnet", "predict", "--weights", "synthetic_w16_256", "three_people.jpg", "--out",
        tmp_path / "out", "--device", "cpu", cwd=tmp_path, env=env)
    assert len(json.loads((tmp_path / "out" / "three_people.json").read_text())["people"]) == 3
    listing = run(venv / "bin" / "higherhrnet", "weights", cwd=tmp_path, env=env).stdout
    assert any(line.startswith("synthetic_w16_256 ") and line.rstrip().endswith("bundled")
               for line in listing.splitlines())
    # A registered config, found inside the installed package.
    summary = run(venv / "bin" / "higherhrnet", "summary", "--cfg", os.path.join(os.path.dirname(where), "experiments",
                  "synthetic", "w16_256_tiny.yaml"), cwd=tmp_path, env=env).stdout
    assert "pose_higher_hrnet" in summary
