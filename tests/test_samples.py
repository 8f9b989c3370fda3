"""What a newcomer sees first: the bundled model on the bundled sample images, cleaned as the predict command
cleans it, shows the people that are in them and nobody in featureless images.

The samples are images 0, 2 and 4 of write_synthetic_coco(..., {"samples": 6}, seed=2024) (demo/samples/README.md),
so their annotations are regenerated here. A detection is a person when its OKS with a labelled person is at
least 0.5, or when it lies on an unlabelled person (the generator's small people without keypoints).
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import higherhrnet
from higherhrnet.data.synthetic import write_synthetic_coco
from higherhrnet.images import read_image
from higherhrnet.oks import oks_matrix
from higherhrnet.predictor import CLEAN

from conftest import EXPERIMENTS, REPO

SAMPLES = {"three_people": 0, "four_people": 2, "crowded": 4}
# Labelled people whose visible area is smaller than this (mostly hidden behind someone) need not be found.
MIN_VISIBLE_AREA = 300.0


@pytest.fixture(scope="module")
def annotations(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    data = json.loads(open(write_synthetic_coco(str(root), {"samples": 6}, seed=2024, progress=False)["samples"]).read())
    ids = sorted(image["id"] for image in data["images"])
    return {name: [a for a in data["annotations"] if a["image_id"] == ids[index]] for name, index in SAMPLES.items()}


@pytest.fixture(scope="module")
def predictor():
    return higherhrnet.Predictor.from_config(EXPERIMENTS / "synthetic/w16_256_tiny.yaml",
                                             REPO / "models/w16_256_tiny.pth",
                                             device="cpu", **CLEAN)


def match(person, anns, sigmas):
    """The annotation this detection is (index), or None."""
    for i, ann in enumerate(anns):
        gt = np.array(ann["keypoints"], np.float64).reshape(-1, 3)
        if ann["num_keypoints"] > 0:
            # As COCO's evaluation: every labelled joint counts, whatever the detection's joint value, and
            # distances are scaled by the annotated area.
            detection = person.keypoints.astype(np.float64)
            detection[:, 2] = 1.0
            if oks_matrix(gt[None], detection[None], sigmas, 0.0, areas=[ann["area"]])[0, 0] >= 0.5:
                return i
        else:
            x, y, w, h = ann["bbox"]
            visible = person.keypoints[person.keypoints[:, 2] >= 0.2, :2]
            centre = visible.mean(axis=0) if len(visible) else person.keypoints[:, :2].mean(axis=0)
            if x - w <= centre[0] <= x + 2 * w and y - h <= centre[1] <= y + 2 * h:
                return i
    return None


@pytest.mark.parametrize("name", list(SAMPLES))
def test_bundled_samples_show_the_people_in_them(name, annotations, predictor):
    anns = annotations[name]
    people = predictor(read_image(REPO / "demo/samples" / f"{name}.jpg"))
    matched = [match(person, anns, predictor.keypoints.sigmas_array) for person in people]
    assert None not in matched, "a detection that is nobody (or a duplicate of nobody)"
    assert len(set(matched)) == len(matched), f"the same person found twice: {matched}"
    must = {i for i, a in enumerate(anns) if a["num_keypoints"] > 0 and a["area"] >= MIN_VISIBLE_AREA}
    assert must <= set(matched), f"missed {sorted(must - set(matched))}"
    expected = {"three_people": 3, "four_people": 4}.get(name)
    if expected is not None:
        assert len(people) == expected
    else:                       # crowded: 4 labelled (one hidden behind another person) + 1 unlabelled
        assert 3 <= len(people) <= 5


@pytest.mark.parametrize("shape,value", [((480, 640, 3), 0), ((1, 1, 3), 0), ((300, 300, 3), 255), ((64, 64, 3), 128)])
def test_featureless_images_hold_nobody(shape, value, predictor):
    assert predictor(np.full(shape, value, np.uint8)) == []


@pytest.mark.slow
def test_the_quickstart_command(tmp_path):
    """The quickstart's predict command (README; here with the config and file, which need no registered names)
    on the bundled samples with the bundled model."""
    result = subprocess.run([sys.executable, "-m", "higherhrnet", "predict", "--cfg", str(EXPERIMENTS / "synthetic/w16_256_tiny.yaml"),
                             "--weights", str(REPO / "models/w16_256_tiny.pth"), str(REPO / "demo/samples"), "--out",
                             str(tmp_path / "out"), "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    counts = {name: len(json.loads((tmp_path / "out" / f"{name}.json").read_text())["people"]) for name in SAMPLES}
    assert counts["three_people"] == 3 and counts["four_people"] == 4 and 3 <= counts["crowded"] <= 5
