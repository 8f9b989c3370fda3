"""The `higherhrnet` command: subcommands, help, the shared option style, defaults kept in step."""
from __future__ import annotations

import ast
import os
import re
import shutil
import signal
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


# The least each subcommand needs on its line to get past argparse's own checks.
REQUIRED = {"train": ["--cfg", "c.yaml"], "summary": ["--cfg", "c.yaml"], "make-synthetic": ["--out", "data"],
            "export": ["--out", "model.onnx"]}


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_a_line_a_subcommand_cannot_parse_prints_its_usage(command, capsys):
    assert main([command, *REQUIRED.get(command, []), "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: higherhrnet {command} ")
    assert err.rstrip().endswith(f"higherhrnet {command}: error: unrecognized arguments: --bogus")
    # A config override without its value (the last word: an override takes the next word as its value).
    assert main([command, *REQUIRED.get(command, []), "TEST.FLIP_TEST"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: higherhrnet {command} ")
    assert "error: config override TEST.FLIP_TEST has no value (overrides are KEY VALUE pairs)" in err


def test_option_values_a_subcommand_refuses_print_its_usage(tmp_path, capsys):
    cases = [(["make-synthetic", "--out", str(tmp_path), "--empty", "2"], "--empty must be a fraction"),
             (["make-synthetic", "--out", str(tmp_path), "SEED", "1"], "make-synthetic takes no config overrides"),
             (["export", "--out", "model.txt"], "--out model.txt: the file name should end in .onnx"),
             (["summary", "--cfg", str(REPO / "experiments/synthetic/w16_256_tiny.yaml"), "--input-size", "33", "33"],
              "--input-size must be positive multiples of 32")]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"usage: higherhrnet {argv[0]} ") and f"higherhrnet {argv[0]}: error: {message}" in err
    # Problems that are not about the command line stay one line.
    assert main(["summary", "--cfg", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err == f"error: config file not found: {tmp_path / 'missing.yaml'}\n"


@pytest.mark.parametrize("signal_name, status, line", [("SIGINT", 130, "interrupted\n"),
                                                        ("SIGTERM", 143, "terminated (SIGTERM)\n")])
def test_a_stop_ends_any_subcommand_with_one_line_and_its_exit_status(monkeypatch, capsys, signal_name, status, line):
    import higherhrnet.cli.summary

    def stopped(args, overrides):
        os.kill(os.getpid(), getattr(signal, signal_name))          # a real signal, to this process
        pytest.fail(f"{signal_name} did not stop the command")

    monkeypatch.setattr(higherhrnet.cli.summary, "run", stopped)
    assert main(["summary", "--cfg", "c.yaml"]) == status
    assert capsys.readouterr().err == line
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL      # put back: the command's handler is gone


def _message_strings(source: str):
    """(line, text) of every string in a raise statement or a warn / log / print call of `source`."""
    calls = {"warn", "debug", "info", "warning", "error", "exception", "print", "fail"}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            roots = [node.exc]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in calls:
            roots = node.args
        else:
            continue
        for root in roots:
            for sub in ast.walk(root):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    yield sub.lineno, sub.value


# Python call syntax in a message: device='cpu', resume=fresh, Trainer(..., ...
_PYTHON_SYNTAX = re.compile(r"\b[a-z_][a-z0-9_]*=[^=\s]|\w\(\.\.\.")
PACKAGE = REPO / "lib" / "higherhrnet"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_messages_that_reach_the_command_line_use_no_python_syntax(path):
    """Errors, warnings and log lines may reach `higherhrnet` users: they say "--device cpu", or "device cpu
    (--device cpu)" where the library's callers read them too, never "device='cpu'"."""
    found = [f"{path.name}:{line}: {text!r}" for line, text in _message_strings(path.read_text(encoding="utf-8"))
             if _PYTHON_SYNTAX.search(text)]
    assert not found


def test_the_python_syntax_check_sees_such_messages():
    source = ("raise ValueError(f'{x} needs a GPU; use device=\\'cpu\\'')\n"
              "logger.warning('start again with Trainer(..., resume=\"fresh\")')\n"
              "print('a == b and KEY=1 are fine')\n")
    hits = [text for _, text in _message_strings(source) if _PYTHON_SYNTAX.search(text)]
    assert hits == [" needs a GPU; use device='cpu'", 'start again with Trainer(..., resume="fresh")']
