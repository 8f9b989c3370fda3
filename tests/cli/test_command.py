"""The `higherhrnet` command: subcommands, help, the shared option style, defaults kept in step."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from higherhrnet.cli import SUBCOMMANDS, main
from higherhrnet.cli.common import CommandError, split_overrides

from conftest import REPO


@pytest.mark.slow
@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_every_subcommand_has_help_through_python_m(command):
    result = subprocess.run([sys.executable, "-m", "higherhrnet", command, "--help"], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: higherhrnet {command}")


def test_console_script_lists_the_subcommands_without_importing_torch():
    exe = shutil.which("higherhrnet")
    assert exe is not None, "the console script is not installed (pip install -e .)"
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and all(name in result.stdout for name in SUBCOMMANDS)
    # --help must answer without paying for PyTorch (or OpenCV): they are imported only to run a subcommand.
    probe = ("import sys; from higherhrnet.cli import build_parser; build_parser(); "
             "print(sorted(m for m in ('torch', 'cv2', 'numpy') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr


@pytest.mark.slow
def test_tools_scripts_are_the_subcommands():
    for script, command in (("tools/train.py", "train"), ("tools/valid.py", "eval"), ("tools/export_onnx.py", "export"),
                            ("tools/model_summary.py", "summary"), ("tools/make_synthetic.py", "make-synthetic"),
                            ("demo/inference.py", "predict")):
        result = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0 and result.stdout.startswith(f"usage: higherhrnet {command}"), script


def test_overrides_are_found_anywhere_on_the_line():
    rest, overrides = split_overrides(["--image", "IMG_01.JPG", "TEST.FLIP_TEST", "False", "--threshold", "0.5",
                                       "SEED", "3", "DATASET.ROOT", "/data", "photo.jpg"])
    assert rest == ["--image", "IMG_01.JPG", "--threshold", "0.5", "photo.jpg"]
    assert overrides == ["TEST.FLIP_TEST", "False", "SEED", "3", "DATASET.ROOT", "/data"]
    assert split_overrides(["TEST.FLIP_TST", "1"])[1] == ["TEST.FLIP_TST", "1"]     # named later by load_cfg
    with pytest.raises(CommandError, match="TEST.FLIP_TEST has no value"):
        split_overrides(["--image", "a.jpg", "TEST.FLIP_TEST"])


def test_unknown_subcommand_and_bad_option_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fly"])
    assert info.value.code == 2
    assert main(["summary", "--cfg", "missing.yaml"]) == 2
    assert "config file not found: missing.yaml" in capsys.readouterr().err


def test_help_texts_quote_the_library_defaults():
    from higherhrnet.cli import export, predict
    from higherhrnet.models.onnx import DEFAULT_OPSET
    from higherhrnet.predictor import CLEAN

    assert (predict.DEFAULT_MIN_SCORE, predict.DEFAULT_NMS) == (CLEAN["min_score"], CLEAN["oks_nms_threshold"])
    assert export.HELP_OPSET == DEFAULT_OPSET
