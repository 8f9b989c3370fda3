from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import higherhrnet
from higherhrnet import COCO_KEYPOINTS, Predictor
from higherhrnet.inference import InferenceParams, scale_outputs

from conftest import painted_image, painted_network, people_in, randomize, tiny_cfg

J = 17


# ---------------------------------------------------------------- flip test

class _PeakNet(nn.Module):
    """Outputs a single heatmap peak for left_wrist at (x, y) of the 1/2 output, whatever the input."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def forward(self, image):
        n, _, h, w = image.shape
        quarter = torch.zeros(n, 2 * J, h // 4, w // 4)
        half = torch.zeros(n, J, h // 2, w // 2)
        if image[0, 0, 0, 0] > 0:   # the un-flipped image has a bright top-left corner
            half[:, COCO_KEYPOINTS.index("left_wrist"), self.y, self.x] = 1.0
        return [quarter, half]


def test_flip_test_flips_back_and_swaps_channels():
    cfg = tiny_cfg()
    params = InferenceParams.from_config(cfg, COCO_KEYPOINTS)
    image = torch.zeros(1, 3, 64, 96)
    image[0, :, 0, 0] = 1.0
    heatmaps, tags = scale_outputs(_PeakNet(5, 7), image, params, None)
    assert len(heatmaps) == 2 and len(tags) == 2
    original, flipped = heatmaps
    # Heatmaps are the mean of both outputs (the 1/4 one is empty here).
    assert original[0, COCO_KEYPOINTS.index("left_wrist"), 7, 5] == 0.5
    assert flipped.sum() == 0   # the mirrored image has no bright corner: the peak is not there
    heatmaps, _ = scale_outputs(_PeakNet(5, 7), torch.flip(image, [3]), params, None)
    # The peak seen in the mirror image is a RIGHT wrist at the mirrored column of the original.
    assert heatmaps[1][0, COCO_KEYPOINTS.index("right_wrist"), 7, 48 - 1 - 5] == 0.5
    assert heatmaps[1].sum() == 0.5


# ---------------------------------------------------------------- whole pipeline with a painted "network"

@pytest.mark.parametrize("opts", [
    [],
    ["TEST.FLIP_TEST", "False"],
    ["TEST.PROJECT2IMAGE", "False"],
    ["TEST.SCALE_FACTOR", "[1.0, 0.5]"],
    ["TEST.SCALE_FACTOR", "[2.0, 1.0, 0.5]", "TEST.PROJECT2IMAGE", "False"],
])
def test_pipeline_recovers_people_in_image_pixels(opts):
    w, h = 300, 220
    people = people_in(w, h, 3, seed=4)
    cfg = tiny_cfg("DATASET.INPUT_SIZE", "256", "DATASET.OUTPUT_SIZE", "[64, 128]", *opts)
    model = painted_network(cfg, people, (w, h))
    found = Predictor.from_model(cfg, model, raw=True)(painted_image(w, h))
    assert len(found) == 3
    for person in found:
        gt = people[np.argmin([np.abs(g - person.keypoints[:, :2]).mean() for g in people])]
        # One heatmap pixel of the 1/2 output is 300 / 256 * 2 = 2.3 image pixels.
        assert np.abs(person.keypoints[:, :2] - gt).max() < 3.0
        assert person.score > 0.5
        record = person.to_coco(42)
        assert record["image_id"] == 42 and len(record["keypoints"]) == 3 * J


def test_image_with_nobody():
    cfg = tiny_cfg("DATASET.INPUT_SIZE", "256", "DATASET.OUTPUT_SIZE", "[64, 128]")
    model = painted_network(cfg, np.zeros((0, J, 2)), (200, 150))
    assert Predictor.from_model(cfg, model, raw=True)(painted_image(200, 150)) == []


def test_batch_equals_one_at_a_time():
    torch.manual_seed(0)
    cfg = tiny_cfg("DATASET.INPUT_SIZE", "128", "DATASET.OUTPUT_SIZE", "[32, 64]")
    model = randomize(higherhrnet.build_model(cfg))
    predictor = Predictor(cfg, model.state_dict(), raw=True)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, shape, dtype=np.uint8) for shape in
              [(120, 160, 3), (120, 160, 3), (200, 90, 3), (121, 160, 3)]]
    batched = predictor(images)
    for image, people in zip(images, batched):
        single = predictor(image)
        assert len(single) == len(people) > 0
        for a, b in zip(single, people):
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
            assert a.score == pytest.approx(b.score, abs=1e-5)


def test_predictor_rejects_bad_arrays():
    cfg = tiny_cfg()
    predictor = Predictor.from_model(cfg, painted_network(cfg, np.zeros((0, J, 2)), (10, 10)), raw=True)
    with pytest.raises(ValueError, match="uint8"):
        predictor(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predictor(np.zeros((10, 10, 2), np.uint8))     # (H, W) is gray, accepted (tests/faults)


def test_several_scales_without_1_is_a_config_error():
    with pytest.raises(higherhrnet.ConfigError, match="1.0 must be one of them"):
        InferenceParams.from_config(tiny_cfg("TEST.SCALE_FACTOR", "[2.0, 0.5]"), COCO_KEYPOINTS)


def test_optional_oks_nms_removes_duplicates_only_when_enabled():
    w, h = 400, 300
    rng = np.random.default_rng(7)
    pose = np.array([100.0, 150.0]) + rng.normal(0, 40, size=(1, J, 2))
    other = np.array([300.0, 150.0]) + rng.normal(0, 40, size=(1, J, 2))
    people = np.concatenate([pose, pose + 8.0, other])   # a near-duplicate 8 px away, and someone else
    cfg = tiny_cfg("DATASET.INPUT_SIZE", "256", "DATASET.OUTPUT_SIZE", "[64, 128]")
    model = painted_network(cfg, people, (w, h))
    image = painted_image(w, h)
    assert len(Predictor.from_model(cfg, model, raw=True)(image)) == 3          # the reference keeps duplicates
    kept = Predictor.from_model(cfg, model, oks_nms_threshold=0.3, raw=True)(image)
    assert len(kept) == 2
    assert min(np.abs(p.keypoints[:, 0] - other[0, :, 0]).mean() for p in kept) < 3


def test_the_finite_check_accepts_finite_maps_whose_sum_overflows():
    """The check sums the maps first: a sum that overflows must not make finite maps count as broken."""
    from higherhrnet.inference import NonFiniteOutputError, _check_finite

    heatmaps, tags = torch.full((2, 4, 4), 3e38), torch.zeros(2, 4, 4, 1)
    assert not torch.isfinite(heatmaps.sum())
    _check_finite("", heatmaps, tags)
    heatmaps[0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteOutputError, match=r"\(1 of 32 heatmap values\)"):
        _check_finite("", heatmaps, tags)
