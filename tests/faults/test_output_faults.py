"""Outputs that cannot be written, in the commands not covered elsewhere (training: test_train_faults.py; predict:
test_predict_faults.py): `make-synthetic`, `eval`'s results and `export`, with a disk that fills up (a file size
limit: conftest.limit_file_size). Each ends with one line naming the file and what is kept, and no temporary."""
from __future__ import annotations

import errno
import json
import os

import pytest

from faultkit import TRAIN_OPTS, hidden_files, models_and_data, run

TOO_LARGE = os.strerror(errno.EFBIG)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return models_and_data(tmp_path_factory.mktemp("outputs"))


@pytest.mark.slow
def test_make_synthetic_on_a_full_disk_names_the_file_and_the_splits_kept(tmp_path):
    out = tmp_path / "synthetic"
    # The images (64 x 64 JPEGs, about 2.5 kB) and the train annotations of 1 image fit; those of 6 images do not.
    result = run("make-synthetic", "--out", out, "--train", "1", "--val", "6", "--size", "64", "64",
                 file_size_limit=10_000)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    train = out / "annotations" / "person_keypoints_train.json"
    assert result.stderr.splitlines()[-1] == (
        f"error: cannot write {out / 'annotations' / 'person_keypoints_val.json'}: {TOO_LARGE}; kept in {out}: the "
        f"complete split train ({train}); 6 of the 6 val images, without their annotation file (the same command "
        f"writes the same files again)")
    assert len(json.loads(train.read_text())["images"]) == 1
    assert len(list((out / "images" / "val").glob("*.jpg"))) == 6
    assert not (out / "annotations" / "person_keypoints_val.json").exists() and hidden_files(out) == []


@pytest.mark.slow
def test_eval_on_a_full_disk_names_the_results_file(files, tmp_path):
    out = tmp_path / "eval"
    result = run("eval", "--cfg", files / "tiny.yaml", "--weights", files / "random.pth", "--out", out,
                 "DATASET.ROOT", files / "data", *TRAIN_OPTS, file_size_limit=3_000)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1] == (f"error: cannot write {out / 'keypoints_val_results.json'}: "
                                              f"{TOO_LARGE}; nothing new in {out}")
    assert os.listdir(out) == []


@pytest.mark.slow
def test_export_on_a_full_disk_leaves_the_earlier_model(files, tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"an earlier export")
    result = run("export", "--cfg", files / "tiny.yaml", "--weights", files / "random.pth", "--out", model,
                 file_size_limit=100_000)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1] == (f"error: cannot write {model}: {TOO_LARGE}; the earlier {model} is "
                                              f"unchanged")
    assert model.read_bytes() == b"an earlier export" and hidden_files(tmp_path) == []
