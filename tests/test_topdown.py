"""higherhrnet.topdown, stage by stage: small cases computed by hand, and the outputs of the official code's own
functions for recorded inputs (tests/assets/topdown/official_stages.json, facts computed outside the project)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import higherhrnet
from higherhrnet import topdown
from higherhrnet.geometry import get_affine_transform
from higherhrnet.keypoints import MPII_KEYPOINTS, KeypointSpec

from conftest import EXPERIMENTS, REPO, randomize, sparse_maps, tiny_cfg, tiny_pose_hrnet_cfg

OFFICIAL = json.loads((REPO / "tests" / "assets" / "topdown" / "official_stages.json").read_text())
# bearpaw/pytorch-pose's test-time stages (the stacked hourglass): tests/assets/hourglass/official_stages.json.
BEARPAW = json.loads((REPO / "tests" / "assets" / "hourglass" / "official_stages.json").read_text())


# ---------------------------------------------------------------- boxes -> center, scale

def test_box_to_center_scale_by_hand():
    boxes = [[10, 20, 75, 100],       # already 3:4: centre (47.5, 70), 75 x 100 px -> 0.375 x 0.5, x 1.25
             [0, 0, 100, 50],         # too wide: height becomes 100 / 0.75
             [0, 0, 30, 100]]         # too tall: width becomes 100 x 0.75
    centers, scales = topdown.box_to_center_scale(boxes, (192, 256))
    assert centers.dtype == scales.dtype == np.float32
    np.testing.assert_array_equal(centers, [[47.5, 70.0], [50.0, 25.0], [15.0, 50.0]])
    np.testing.assert_allclose(scales, [[0.46875, 0.625], [0.625, 100 / 0.75 / 200 * 1.25], [0.46875, 0.625]],
                               rtol=1e-7)
    centers, scales = topdown.box_to_center_scale([[0, 0, 100, 100]], (288, 384), padding=1.0)
    np.testing.assert_allclose(scales, [[0.5, 100 / 0.75 / 200]], rtol=1e-7)


def test_box_to_center_scale_quirk_and_empty():
    # The official _box2cs leaves the scale unpadded where the centre's x is exactly -1.
    centers, scales = topdown.box_to_center_scale([[-1.5, 3.0, 1.0, 4.0]], (192, 256))
    assert centers[0, 0] == -1 and scales[0, 1] == np.float32(4 / 200)
    centers, scales = topdown.box_to_center_scale(np.zeros((0, 4)), (192, 256))
    assert centers.shape == scales.shape == (0, 2)


def test_box_to_center_scale_equals_the_official_code():
    for row in OFFICIAL["box_to_center_scale"]:
        centers, scales = topdown.box_to_center_scale([row["box"]], row["image_size"])
        assert centers[0].tolist() == row["center"] and scales[0].tolist() == row["scale"], row["box"]


def test_affine_transform_of_float32_crops_equals_the_official_code():
    for row in OFFICIAL["get_affine_transform"]:
        center, scale = np.float32(row["center"]), np.float32(row["scale"])
        assert get_affine_transform(center, scale, row["rot"], row["output_size"]).tolist() == row["matrix"]
        assert get_affine_transform(center, scale, row["rot"], row["output_size"], inv=True).tolist() == row["inverse"]


def test_bearpaw_center_scale_by_hand():
    # MPII objpos (101, 51) (1-based) is (100, 50) here; scale 2: 30 px lower, 2.5; a centre x of -1 in MATLAB's
    # frame (-2 here) marks "no position": left as it is.
    centers, scales = topdown.bearpaw_center_scale([[100.0, 50.0], [-2.0, 7.0]], [2.0, 3.0])
    assert centers.dtype == np.float32 and scales.dtype == np.float64
    assert centers.tolist() == [[100.0, 80.0], [-2.0, 7.0]] and scales.tolist() == [[2.5, 2.5], [3.0, 3.0]]


def test_bearpaw_center_scale_equals_the_official_dataset():
    facts = BEARPAW["mpii_test_center_scale"]
    centers, scales = topdown.bearpaw_center_scale(np.array(facts["objpos"]) - 1, facts["scale_provided"])
    # Its float32 centres, one less here; the round trip back is exact.
    assert (centers + np.float32(1)).tolist() == facts["center"]
    assert (centers + np.float32(1) - np.float32(1)).tolist() == centers.tolist()
    assert scales[:, 0].tolist() == scales[:, 1].tolist() == facts["scale"]


# ---------------------------------------------------------------- crops and input

def test_crop_puts_the_box_centre_at_the_crop_centre():
    image = np.zeros((400, 600, 3), np.uint8)
    image[200, 300] = (255, 128, 64)
    image[150, 250] = 200                   # 50 px up and left: 50 crop px (1:1 crop) up and left of the centre
    centers, scales = np.float32([[300, 200]]), np.float32([[192 / 200, 256 / 200]])
    crops = topdown.crop_people(image, centers, scales, (192, 256))
    assert crops.shape == (1, 256, 192, 3) and crops.dtype == np.uint8
    ys, xs = np.nonzero(crops[0, :, :, 0] > 100)
    assert sorted(zip(ys.tolist(), xs.tolist())) == [(78, 46), (128, 96)]
    assert tuple(crops[0, 128, 96]) == (255, 128, 64)
    # Outside the image: zeros.
    far = topdown.crop_people(image, np.float32([[-500, -500]]), scales, (192, 256))
    assert not far.any()


def test_normalize_crops():
    crop = np.zeros((1, 2, 3, 3), np.uint8)
    crop[..., 0], crop[..., 2] = 255, 51
    batch = topdown.normalize_crops(crop)
    assert batch.shape == (1, 3, 2, 3) and batch.dtype == torch.float32
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225]
    np.testing.assert_allclose(batch[0, :, 0, 0].numpy(), expected, rtol=1e-6)
    bgr = topdown.normalize_crops(crop, color_rgb=False)       # the official default: the channels reversed
    np.testing.assert_allclose(bgr[0, :, 0, 0].numpy(), [(0.2 - 0.485) / 0.229, -0.456 / 0.224, (1 - 0.406) / 0.225],
                               rtol=1e-6)
    plain = topdown.normalize_crops(crop, None, None)
    np.testing.assert_allclose(plain[0, :, 0, 0].numpy(), [1.0, 0.0, 0.2], rtol=1e-6)
    assert topdown.normalize_crops(np.zeros((0, 8, 4, 3), np.uint8)).shape == (0, 3, 8, 4)
    # Float crops are pixels / 255 already (bearpaw's): only (x - mean) / std, in float32.
    floats = np.zeros((1, 2, 3, 3), np.float32)
    floats[..., 0], floats[..., 2] = 1.0, 0.25
    batch = topdown.normalize_crops(floats, (0.5, 0.25, 0.125), (1.0, 1.0, 0.5))
    assert batch.dtype == torch.float32 and batch[0, :, 1, 2].tolist() == [0.5, -0.25, 0.25]
    assert topdown.normalize_crops(floats, None, None, color_rgb=False)[0, :, 0, 0].tolist() == [0.25, 0.0, 1.0]


# ---------------------------------------------------------------- flip test

class TwoAnswers(nn.Module):
    """Answers `plain` for the batch it was given and `mirrored` for anything else (the flipped batch)."""

    def __init__(self, batch, plain, mirrored, as_list=False):
        super().__init__()
        self.batch, self.plain, self.mirrored, self.as_list = batch, plain, mirrored, as_list

    def forward(self, x):
        out = (self.plain if torch.equal(x, self.batch) else self.mirrored).clone()
        return [torch.zeros_like(out), out] if self.as_list else out


def test_flip_test_heatmaps_by_hand():
    batch = torch.arange(6.0).reshape(1, 1, 2, 3).expand(1, 3, 2, 3)
    plain = torch.zeros(1, 3, 1, 3)
    mirrored = torch.tensor([[[[1.0, 2.0, 3.0]], [[4.0, 5.0, 6.0]], [[7.0, 8.0, 9.0]]]])
    flip_index = [0, 2, 1]                  # joints 1 and 2 are a left/right pair
    # Flipped back: columns reversed, channels 1 and 2 swapped: [[3, 2, 1], [9, 8, 7], [6, 5, 4]];
    # shifted one column right (column 0 kept): [[3, 3, 2], [9, 9, 8], [6, 6, 5]]; averaged with zeros: halves.
    net = TwoAnswers(batch, plain, mirrored)
    out = topdown.flip_test_heatmaps(net, batch, flip_index, shift_heatmap=True)
    assert out[0, :, 0].tolist() == [[1.5, 1.5, 1.0], [4.5, 4.5, 4.0], [3.0, 3.0, 2.5]]
    out = topdown.flip_test_heatmaps(net, batch, flip_index, shift_heatmap=False)
    assert out[0, :, 0].tolist() == [[1.5, 1.0, 0.5], [4.5, 4.0, 3.5], [3.0, 2.5, 2.0]]
    assert torch.equal(topdown.flip_test_heatmaps(net, batch, None), plain)
    listed = TwoAnswers(batch, plain, mirrored, as_list=True)       # a list of outputs: the last one
    assert torch.equal(topdown.flip_test_heatmaps(listed, batch, flip_index), 
                       topdown.flip_test_heatmaps(net, batch, flip_index))
    ones = TwoAnswers(batch, torch.ones(1, 3, 1, 3), mirrored)       # bearpaw's: summed, not shifted
    out = topdown.flip_test_heatmaps(ones, batch, flip_index, shift_heatmap=False, fusion="sum")
    assert out[0, :, 0].tolist() == [[4.0, 3.0, 2.0], [10.0, 9.0, 8.0], [7.0, 6.0, 5.0]]


def test_flip_sum_equals_the_official_flip_back():
    """With plain heatmaps of zeros, the sum is the mirrored heatmaps flipped back: bearpaw's flip_back."""
    facts = BEARPAW["flip_back"]
    mirrored = torch.from_numpy(np.array(facts["heatmaps_k"], np.float32) / 8)
    batch = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    net = TwoAnswers(batch, torch.zeros_like(mirrored), mirrored, as_list=True)
    out = topdown.flip_test_heatmaps(net, batch, MPII_KEYPOINTS.flip_index, shift_heatmap=False, fusion="sum")
    assert out.dtype == torch.float32 and out.tolist() == facts["flipped"]


# ---------------------------------------------------------------- final predictions

def test_max_predictions_by_hand():
    heatmaps = np.zeros((1, 3, 4, 5), np.float32)
    heatmaps[0, 0, 2, 3] = 0.8
    heatmaps[0, 1] = -1.0                   # no positive maximum: (0, 0)
    heatmaps[0, 1, 3, 4] = -0.5
    heatmaps[0, 2, 1, 1] = heatmaps[0, 2, 3, 0] = 0.5      # a tie: the first in row-major order
    coords, maxvals = topdown.max_predictions(heatmaps)
    assert coords.dtype == np.float32 and coords.tolist() == [[[3, 2], [0, 0], [1, 1]]]
    assert maxvals.tolist() == [[[np.float32(0.8)], [-0.5], [0.5]]]


def test_final_predictions_by_hand():
    # A 6 x 8 heatmap of a crop of 150 x 200 image pixels centred on (120.5, 80.25): 25 image px per heatmap px,
    # heatmap (3, 4) is the centre.
    heatmaps = np.zeros((1, 2, 8, 6), np.float32)
    heatmaps[0, 0, 4, 3], heatmaps[0, 0, 4, 4], heatmaps[0, 0, 4, 2] = 2.0, 1.0, 0.5   # right neighbour higher
    heatmaps[0, 0, 5, 3] = heatmaps[0, 0, 3, 3] = 1.0                                  # a tie vertically
    heatmaps[0, 1, 1, 3] = 1.0                                                         # row 1: no step (1 < y)
    centers, scales = np.float32([[120.5, 80.25]]), np.float32([[0.75, 1.0]])
    preds, maxvals = topdown.final_predictions(heatmaps, centers, scales, post_process=True)
    assert preds.dtype == np.float32
    assert preds[0].tolist() == [[120.5 + 0.25 * 25, 80.25], [120.5, 80.25 - 3 * 25]]
    assert maxvals[0, :, 0].tolist() == [2.0, 1.0]
    plain, _ = topdown.final_predictions(heatmaps, centers, scales, post_process=False)
    assert plain[0].tolist() == [[120.5, 80.25], [120.5, 80.25 - 3 * 25]]


@pytest.mark.parametrize("which, post_process", [("post_process", True), ("plain", False)])
def test_final_predictions_equal_the_official_code(which, post_process):
    facts = OFFICIAL["final_predictions"]
    heatmaps = np.array(facts["heatmaps"], np.float32)
    preds, maxvals = topdown.final_predictions(heatmaps, np.array(facts["centers"], np.float32),
                                               np.array(facts["scales"], np.float32), post_process)
    assert preds.tolist() == facts[which]["preds"]
    assert maxvals.tolist() == facts[which]["maxvals"]


def test_bearpaw_max_predictions_equal_get_preds():
    facts = BEARPAW["get_preds"]
    coords, maxvals = topdown.bearpaw_max_predictions(np.array(facts["heatmaps_k"], np.float32) / 8)
    assert coords.dtype == np.float32 and coords.tolist() == facts["preds"]   # 1-based; (0, 0): nothing positive


def test_bearpaw_final_predictions_by_hand():
    # Person 0: 8 x 8 heatmaps of the square crop of side 200 x 0.16 = 32 px around (100, 200) here, MATLAB
    # (101, 201): bearpaw takes 1-based heatmap x1 to its image x trunc(85 + 4 (x1 - 1)) + 1, here one less:
    # trunc(85 + 4 (x0 + 0.5 + step)) for the 0-based maximum x0 (85 = 101 - 16); y likewise from 185.
    heatmaps = np.zeros((2, 3, 8, 8), np.float32)
    heatmaps[0, 0, 5, 1], heatmaps[0, 0, 5, 2] = 1.0, 0.5          # x0 = 1: a step right (not in HRNet's bounds)
    heatmaps[0, 1, 2, 6], heatmaps[0, 1, 1, 6] = 1.0, 0.5          # a step up
    heatmaps[0, 2, 0, 0] = 1.0                                      # the first pixel: no step
    # Person 1: side 30 px around MATLAB (1, 1): image x = trunc(3.75 (x0 + 0.5) - 14), toward 0.
    heatmaps[1, 0, 0, 0] = heatmaps[1, 1, 5, 5] = 1.0               # joint 2: nothing positive, (0, 0) in 1-based
    centers, scales = np.float32([[100.0, 200.0], [0.0, 0.0]]), np.array([[0.16, 0.16], [0.15, 0.15]])
    preds, maxvals = topdown.bearpaw_final_predictions(heatmaps, centers, scales)
    assert preds.dtype == np.float32 and maxvals[..., 0].tolist() == [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]
    assert preds[0].tolist() == [[85 + 7, 185 + 22], [85 + 26, 185 + 9], [85 + 2, 185 + 2]]
    assert preds[1].tolist() == [[-12, -12], [6, 6], [-15, -15]]    # -12.125, 6.625, -15.875 truncated
    plain, _ = topdown.bearpaw_final_predictions(heatmaps, centers, scales, post_process=False)
    assert plain[0, :2].tolist() == [[85 + 6, 185 + 22], [85 + 26, 185 + 10]]
    with pytest.raises(ValueError, match="square heatmaps, not 8 x 6"):
        topdown.bearpaw_final_predictions(np.zeros((1, 3, 8, 6), np.float32), centers, scales)


def test_bearpaw_final_predictions_equal_the_official_code():
    facts = BEARPAW["final_preds"]
    centers = np.array(facts["center"], np.float32) - np.float32(1)
    scales = np.stack([facts["scale"]] * 2, axis=1)
    preds, _ = topdown.bearpaw_final_predictions(sparse_maps(facts["heatmaps"]), centers, scales)
    assert (preds + 1).tolist() == facts["preds"]          # its 1-based predictions


def test_final_predictions_of_nobody():
    preds, maxvals = topdown.final_predictions(np.zeros((0, 17, 64, 48), np.float32), np.zeros((0, 2), np.float32),
                                               np.zeros((0, 2), np.float32))
    assert preds.shape == (0, 17, 2) and maxvals.shape == (0, 17, 1)


# ---------------------------------------------------------------- scores and records

def test_rescore_by_hand():
    keypoints = np.zeros((4, 3, 3), np.float32)
    keypoints[0, :, 2] = [0.9, 0.1, 0.5]        # joints above 0.2: 0.9 and 0.5, mean 0.7
    keypoints[1, :, 2] = [0.1, 0.2, 0.0]        # float32 0.2 is a hair above 0.2: it counts, alone
    keypoints[2, :, 2] = [1.0, 1.0, 1.0]
    keypoints[3, :, 2] = [0.1, 0.15, 0.0]       # none above 0.2: 0
    scores = topdown.rescore(keypoints, [0.8, 0.9, 0.5, 1.0], in_vis_thre=0.2)
    # float32 joint scores compared and summed in float64 as the official code (NumPy 1.x) does
    assert scores.tolist() == [(float(np.float32(0.9)) + 0.5) / 2 * 0.8, float(np.float32(0.2)) * 0.9, 0.5, 0.0]
    assert topdown.rescore(np.zeros((0, 17, 3)), [], 0.2).shape == (0,)


def test_coco_results():
    keypoints = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3) / 4
    records = topdown.coco_results(7, keypoints, [0.5, 0.25], np.float32([[1, 2], [3, 4]]),
                                   np.float32([[0.5, 0.75], [1, 1]]))
    assert records[1] == {"image_id": 7, "category_id": 1, "keypoints": [1.5, 1.75, 2.0, 2.25, 2.5, 2.75],
                          "score": 0.25, "center": [3.0, 4.0], "scale": [1.0, 1.0]}
    assert json.loads(json.dumps(records)) == records
    assert topdown.coco_results(1, np.zeros((0, 17, 3)), []) == []


# ---------------------------------------------------------------- the stages together

def test_params_from_the_official_recipe():
    cfg = higherhrnet.load_cfg(EXPERIMENTS / "coco" / "hrnet" / "w32_384x288_adam_lr1e-3.yaml")
    params = topdown.TopDownParams.from_config(cfg, higherhrnet.COCO_KEYPOINTS)
    assert params.image_size == (288, 384) and params.flip_index == tuple(higherhrnet.COCO_KEYPOINTS.flip_index)
    assert (params.flip_test, params.shift_heatmap, params.post_process, params.color_rgb) == (True,) * 4
    assert (params.batch_size, params.in_vis_thre) == (32, 0.2)
    assert params.mean == (0.485, 0.456, 0.406) and params.std == (0.229, 0.224, 0.225)
    with pytest.raises(higherhrnet.ConfigError, match="pose_higher_hrnet is a bottom-up network"):
        topdown.TopDownParams.from_config(tiny_cfg(), higherhrnet.COCO_KEYPOINTS)
    few = KeypointSpec.from_lists("three", ["a", "b", "c"], [], [0.1] * 3)
    with pytest.raises(higherhrnet.ConfigError, match="has 3 joints but MODEL.NUM_JOINTS is 17"):
        topdown.TopDownParams.from_config(cfg, few)


def test_params_of_a_stacked_hourglass(monkeypatch):
    """MODEL.NAME stacked_hourglass runs bearpaw's stages: flip heatmaps summed and not shifted, its final
    predictions, its crop (the registry's entry is stood in for by pose_hrnet's)."""
    cfg = tiny_pose_hrnet_cfg("MODEL.NUM_JOINTS", "16", "DATASET.NUM_JOINTS", "16", "TEST.FLIP_TEST", "False")
    cfg.defrost()
    cfg.MODEL.NAME = "stacked_hourglass"
    entry = topdown.model_entry("pose_hrnet")
    monkeypatch.setattr(topdown, "model_entry", lambda name: entry)
    spec = KeypointSpec.from_lists("sixteen", [str(i) for i in range(16)], [("0", "5")], [0.1] * 16)
    params = topdown.TopDownParams.from_config(cfg, spec)
    assert (params.flip_fusion, params.shift_heatmap, params.predictions, params.crop) == ("sum", False, "bearpaw",
                                                                                          "bearpaw")
    assert params.flip_test is False and params.post_process is True
    hrnet = topdown.TopDownParams.from_config(tiny_pose_hrnet_cfg(), higherhrnet.COCO_KEYPOINTS)
    assert (hrnet.flip_fusion, hrnet.shift_heatmap, hrnet.predictions, hrnet.crop) == ("mean", True, "hrnet", "affine")
    with pytest.raises(ValueError, match="flip_fusion 'max'"):
        topdown.TopDownParams(image_size=(8, 8), flip_index=(0,), flip_fusion="max")
    with pytest.raises(ValueError, match="predictions 'dark'"):
        topdown.TopDownParams(image_size=(8, 8), flip_index=(0,), predictions="dark")


@pytest.fixture(scope="module")
def tiny_network():
    torch.manual_seed(0)
    cfg = tiny_pose_hrnet_cfg()
    return cfg, randomize(higherhrnet.build_model(cfg))


def test_estimate_poses_is_the_stages_in_a_row(tiny_network):
    cfg, network = tiny_network
    params = topdown.TopDownParams.from_config(cfg, higherhrnet.COCO_KEYPOINTS)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = [[10, 20, 40, 60], [80.5, 5.25, 70, 30], [-10, 90, 30, 50]]
    poses = topdown.estimate_poses(network, image, boxes, params)
    assert poses.keypoints.shape == (3, 17, 3) and poses.keypoints.dtype == np.float32
    centers, scales = topdown.box_to_center_scale(boxes, (64, 96))
    batch = topdown.normalize_crops(topdown.crop_people(image, centers, scales, (64, 96)))
    heatmaps = topdown.flip_test_heatmaps(network, batch, higherhrnet.COCO_KEYPOINTS.flip_index).numpy()
    assert heatmaps.shape == (3, 17, 24, 16)
    preds, maxvals = topdown.final_predictions(heatmaps, centers, scales)
    np.testing.assert_array_equal(poses.keypoints, np.concatenate([preds, maxvals], axis=2))
    np.testing.assert_array_equal(poses.centers, centers)
    # One crop per forward pass: the same up to float rounding (other kernels for another batch size).
    one = topdown.estimate_poses(network, image, boxes, topdown.TopDownParams(**{**vars(params), "batch_size": 1}))
    np.testing.assert_allclose(one.keypoints, poses.keypoints, atol=1e-3)
    nobody = topdown.estimate_poses(network, image, np.zeros((0, 4)), params)
    assert nobody.keypoints.shape == (0, 17, 3) and nobody.centers.shape == (0, 2)
    seen = []
    topdown.poses_of_crops(network, lambda start, stop: topdown.crop_people(image, centers[start:stop],
                                                                            scales[start:stop], (64, 96)),
                           centers, scales, topdown.TopDownParams(**{**vars(params), "batch_size": 2}),
                           heatmaps_seen=lambda start, maps: seen.append((start, maps)))
    assert [start for start, _ in seen] == [0, 2]
    np.testing.assert_allclose(np.concatenate([maps for _, maps in seen]), heatmaps, atol=1e-5)


def test_estimate_poses_at_takes_the_params_crop(tiny_network, monkeypatch):
    """params.crop names the crop (topdown.CROPS): a crop that plugs in gets the image, the centres and scales
    (this project's frame) and the input size, and may give float crops."""
    cfg, network = tiny_network
    calls = []

    def grey(image, centers, scales, image_size):
        calls.append((centers.tolist(), scales.tolist(), tuple(image_size)))
        return np.full((len(centers), image_size[1], image_size[0], 3), 0.5, np.float32)

    monkeypatch.setitem(topdown.CROPS, "grey", grey)
    params = topdown.TopDownParams(image_size=(64, 96), flip_index=tuple(higherhrnet.COCO_KEYPOINTS.flip_index),
                                   mean=None, std=None, crop="grey", flip_fusion="sum",
                                   shift_heatmap=False)
    centers, scales = np.float32([[30.0, 40.0]]), np.array([[0.5, 0.5]])
    image = np.zeros((120, 160, 3), np.uint8)
    poses = topdown.estimate_poses_at(network, image, centers, scales, params)
    assert calls == [([[30.0, 40.0]], [[0.5, 0.5]], (64, 96))]
    assert poses.keypoints.shape == (1, 17, 3)
    heatmaps = topdown.flip_test_heatmaps(network, torch.full((1, 3, 96, 64), 0.5), params.flip_index, False, "sum")
    assert poses.keypoints[0, :, 2].tolist() == heatmaps.amax(dim=(2, 3))[0].tolist()
    with pytest.raises(ValueError, match="no crop named 'round' .* known crops are affine, bearpaw, grey"):
        topdown.estimate_poses_at(network, image, centers, scales, topdown.TopDownParams(**{**vars(params),
                                                                                           "crop": "round"}))


def test_estimate_poses_finds_a_painted_joint():
    """A network whose heatmaps are the crop's red channel, pooled to 1/4: the joint lands on the red pixel."""

    class RedChannel(nn.Module):
        def forward(self, x):
            red = nn.functional.avg_pool2d(x[:, :1], 4)
            return red.expand(-1, 17, -1, -1)

    image = np.zeros((300, 400, 3), np.uint8)
    image[150:154, 200:204, 0] = 255        # a 4 x 4 red square at 200..203 x 150..153: centre (201.5, 151.5)
    params = topdown.TopDownParams(image_size=(64, 96), flip_index=tuple(range(17)), flip_test=False,
                                   post_process=False, mean=None, std=None)       # heatmaps: red / 255
    box = [201.5 - 32, 151.5 - 48, 64, 96]  # a 1:1 crop (64 x 96 box, / 1.25 padding doesn't matter for the peak)
    poses = topdown.estimate_poses(RedChannel(), image, [box], params, device="cpu")
    np.testing.assert_allclose(poses.keypoints[0, :, :2], np.tile([201.5, 151.5], (17, 1)), atol=2.5)
