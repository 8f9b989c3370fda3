"""docs/training.md's smoke run, run as the page writes it (with fewer images), so that the page cannot go
stale: its commands, the config it names, the line training ends with and the command that line gives."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import REPO

PAGE = REPO / "docs" / "training.md"
MARKER = "<!-- smoke run:"


def smoke_commands() -> list[list[str]]:
    """The commands of the first ```bash block after the smoke-run marker of docs/training.md."""
    text = PAGE.read_text(encoding="utf-8")
    assert MARKER in text, f"{PAGE} lost its smoke-run marker"
    block = re.search(r"```bash\n(.*?)```", text[text.index(MARKER):], re.S).group(1)
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [c for c in commands if c]


def test_the_smoke_run_is_make_synthetic_then_train():
    commands = smoke_commands()
    assert [c[:2] for c in commands] == [["higherhrnet", "make-synthetic"], ["higherhrnet", "train"]]
    train = commands[1]
    assert (REPO / train[train.index("--cfg") + 1]).is_file()


@pytest.mark.slow
def test_the_documented_smoke_run_trains_validates_and_names_its_files(tmp_path):
    exe = shutil.which("higherhrnet")
    assert exe is not None, "the console script is not installed (pip install -e .)"
    (tmp_path / "experiments").symlink_to(REPO / "experiments")      # the page runs from the repository root
    make, train = smoke_commands()
    # Fewer images: 16 training images (2 iterations of 8 per epoch) and 4 validation images.
    budget = {"make-synthetic": ["--train", "16", "--val", "4"], "train": ["TRAIN.MAX_ITERS_PER_EPOCH", "2"]}
    results = []
    for command in (make, train):
        result = subprocess.run([exe, *command[1:], *budget[command[1]]], cwd=tmp_path, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        results.append(result)
    trained = results[1]
    assert "epoch 2/2 validation: AP " in trained.stderr and "validating" in trained.stderr
    last = trained.stdout.strip().splitlines()[-1]
    run = "output/synthetic/pose_higher_hrnet/w16_256_smoke"
    assert last.startswith(f"training finished: model {run}/final_state.pth, best validated model "
                           f"{run}/model_best.pth (AP ")
    assert f"; TensorBoard logs in log/synthetic/pose_higher_hrnet/w16_256_smoke;" in last
    assert any(name.startswith("events.out.tfevents")
               for name in os.listdir(tmp_path / "log/synthetic/pose_higher_hrnet/w16_256_smoke"))
    assert last.endswith(f"; run with: higherhrnet predict --weights {run}/final_state.pth IMAGE")
    # The evaluation command the line gives works as written.
    evaluate = shlex.split(re.search(r"evaluate with: (.*?);", last).group(1))
    assert evaluate[:2] == ["higherhrnet", "eval"]
    result = subprocess.run([exe, *evaluate[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "in 4 images" in result.stdout and (tmp_path / run / "eval_final_state/metrics_val.json").is_file()
