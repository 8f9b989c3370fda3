"""higherhrnet.pckh and engine.mpii_eval: PCKh and the training code's PCK, computed by hand for small cases and
compared with the official code's outputs for recorded inputs (tests/assets/hourglass: official_pckh.json from
bearpaw's, HRNet's and mmpose's PCKh scripts; official_stages.json from bearpaw's accuracy() and validate())."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from higherhrnet import topdown
from higherhrnet.engine.mpii_eval import MpiiPeople, MpiiTruth, evaluate_mpii, format_pckh
from higherhrnet.keypoints import MPII_KEYPOINTS
from higherhrnet.pckh import PCK_JOINTS, PCKH_RULES, pck, pckh, to_matlab_frame

from conftest import REPO, sparse_maps

ASSETS = REPO / "tests" / "assets" / "hourglass"
OFFICIAL_PCKH = json.loads((ASSETS / "official_pckh.json").read_text())
OFFICIAL_STAGES = json.loads((ASSETS / "official_stages.json").read_text())
PARTS = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"]
MPII_JOINTS = MPII_KEYPOINTS.names


# ---------------------------------------------------------------- PCKh

def one_person(offsets: dict[str, tuple[float, float]], missing: tuple[str, ...] = ()):
    """One person, every joint at (100, 200) + 10 x its index; head box 30 x 40 (diagonal 50, head size 30 px);
    the prediction moved by `offsets` (by joint name)."""
    joints = np.array([[100.0 + 10 * i, 200.0] for i in range(16)])[None]
    preds = joints.copy()
    for name, (dx, dy) in offsets.items():
        preds[0, MPII_JOINTS.index(name)] += (dx, dy)
    visible = np.array([[name not in missing for name in MPII_JOINTS]])
    return preds, joints, visible, np.array([[[10.0, 20.0], [40.0, 60.0]]])


def test_pckh_by_hand():
    # head size 30 px: 15 px is exactly 0.5 head sizes, 3 px exactly 0.1.
    preds, joints, visible, head = one_person({"head_top": (15.0, 0.0), "l_shoulder": (0.0, 14.9), "r_shoulder": (9.0, 12.0),
                                               "l_wrist": (16.0, 0.0), "l_ankle": (3.0, 0.0), "pelvis": (99.0, 0.0)},
                                              missing=("r_wrist",))
    bearpaw = pckh(preds, joints, visible, head, "bearpaw")
    # bearpaw's script counts errors below 0.5 head sizes: the head (exactly 0.5) and the right shoulder (15 px
    # diagonally) miss, the left shoulder (14.9) is found; the right wrist is missing: its PCKh is 0 / 0.
    assert bearpaw.per_joint[MPII_JOINTS.index("head_top")] == 0.0
    assert bearpaw.per_joint[MPII_JOINTS.index("l_shoulder")] == 100.0
    assert np.isnan(bearpaw.per_joint[MPII_JOINTS.index("r_wrist")])
    assert bearpaw.counts.tolist() == [1] * 10 + [0] + [1] * 5
    m = bearpaw.metrics
    assert list(m) == PARTS
    assert (m["Head"], m["Shoulder"], m["Elbow"], m["Knee"], m["Ankle"]) == (0.0, 50.0, 100.0, 100.0, 100.0)
    assert np.isnan(m["Wrist"]) and np.isnan(m["Mean"])          # a part with a joint nobody has: NaN
    hrnet = pckh(preds, joints, visible, head, "hrnet")              # at most 0.5: the head and right shoulder count
    assert hrnet.per_joint[MPII_JOINTS.index("head_top")] == 100.0 and hrnet.metrics["Shoulder"] == 100.0
    # The curve: 50 thresholds 0 .. 0.49 for bearpaw's script, 51 (0 .. 0.5) for HRNet's; the left ankle's 3 px
    # error is 0.1 head sizes: not below 0.1 (bearpaw), at most 0.1 (HRNet), and the pelvis is never found.
    assert bearpaw.curve.shape == (50, 16) and hrnet.curve.shape == (51, 16)
    lank = MPII_JOINTS.index("l_ankle")
    assert bearpaw.curve[10, lank] == 0.0 and bearpaw.curve[11, lank] == 100.0 and hrnet.curve[10, lank] == 100.0
    assert not bearpaw.curve[:, MPII_JOINTS.index("pelvis")].any()


def test_pckh_means_by_hand():
    # Two people; the second one's legs are missing. Found: every joint of person 1 but its left ankle, every
    # visible joint of person 2 but its head.
    preds, joints, visible, head = one_person({"l_ankle": (40.0, 0.0)})
    preds2, joints2, visible2, _ = one_person({"head_top": (0.0, 40.0)}, missing=MPII_JOINTS[:6])
    preds, joints = np.concatenate([preds, preds2]), np.concatenate([joints, joints2])
    visible, head = np.concatenate([visible, visible2]), np.concatenate([head, head])
    per_joint = [100.0] * 5 + [0.0] + [100.0] * 3 + [50.0] + [100.0] * 6     # legs: person 1 alone
    bearpaw = pckh(preds, joints, visible, head, "bearpaw")
    assert bearpaw.per_joint.tolist() == per_joint
    # bearpaw: a plain mean of the 14 joints other than pelvis and thorax.
    assert bearpaw.metrics["Mean"] == pytest.approx((12 * 100 + 0 + 50) / 14, abs=1e-12)
    assert bearpaw.metrics["Ankle"] == 50.0 and bearpaw.metrics["Head"] == 50.0
    # HRNet / mmpose: weighted by visible joints (legs 1 each, the other 8 joints 2 each: 22 in all).
    hrnet = pckh(preds, joints, visible, head, "hrnet")
    assert hrnet.metrics["Mean"] == pytest.approx((5 * 100 + 0 + 2 * (6 * 100 + 100 + 50)) / 22, abs=1e-12)


@pytest.mark.parametrize("rules", sorted(PCKH_RULES))
@pytest.mark.parametrize("case", OFFICIAL_PCKH["cases"], ids=lambda case: case["name"])
def test_pckh_equals_the_official_scripts(case, rules):
    preds = np.array(case["preds"], dtype=case["preds_dtype"])
    result = pckh(to_matlab_frame(preds), np.array(case["joints"]), 1 - np.array(case["missing"], np.uint8),
                  np.array(case["head_boxes"]), rules)
    official = case[rules]["metrics"] if rules == "bearpaw" else case[rules]
    # The same values in the same order; mmpose names the last two PCKh and PCKh@0.1.
    np.testing.assert_array_equal(list(result.metrics.values()), list(official.values()))
    if rules == "bearpaw":
        np.testing.assert_array_equal(result.per_joint, case["bearpaw"]["per_joint"])
        if "curve" in case["bearpaw"]:
            np.testing.assert_array_equal(result.curve, case["bearpaw"]["curve"])
        assert [f"{v:.2f}" for v in list(result.metrics.values())[:8]] == case["bearpaw"]["printed"]


def test_pckh_rejects_bad_input():
    preds, joints, visible, head = one_person({})
    with pytest.raises(ValueError, match=r"head_boxes has shape \(1, 4\), expected \(1, 2, 2\)"):
        pckh(preds, joints, visible, head.reshape(1, 4))
    with pytest.raises(ValueError, match=r"joints has shape \(1, 17, 2\)"):
        pckh(preds, np.zeros((1, 17, 2)), visible, head)
    with pytest.raises(ValueError, match="unknown PCKh rules 'coco'"):
        pckh(preds, joints, visible, head, "coco")


def test_to_matlab_frame():
    xy = np.array([[0.0, 0.0, 0.9], [10.5, -1.0, 0.1]], np.float32)
    out = to_matlab_frame(xy)
    assert out.dtype == np.float32 and out.tolist() == [[1.0, 1.0], [11.5, 0.0]]
    assert to_matlab_frame(np.array([0.1], np.float32).repeat(2)).tolist() == [np.float32(0.1) + np.float32(1)] * 2


# ---------------------------------------------------------------- the training code's PCK

def test_pck_by_hand():
    # Heatmaps 20 wide: distances in units of 2 heatmap px (1-based maxima, (0, 0): nothing found). Joint 0: a hit
    # at distance 0, a miss at exactly 0.5 units (1 px: not below 0.5), a person with nothing found; joint 1:
    # targets on the first row or column only, which do not count; joint 2: no target at all.
    preds = np.zeros((3, 3, 2), np.float32)
    targets = np.zeros((3, 3, 2), np.float32)
    preds[:2, 0] = [[5, 5], [5, 5]]
    targets[:, 0] = [[5, 5], [5, 6], [9, 9]]
    targets[:, 1] = [[1, 5], [5, 1], [1, 1]]
    mean, per_joint = pck(preds, targets, 20, joints=(0, 1, 2))
    assert per_joint.dtype == np.float32 and per_joint.tolist() == [np.float32(1 / 3), -1.0, -1.0]
    assert mean == np.float32(1 / 3)
    mean, per_joint = pck(preds, targets, 20, joints=(1, 2))
    assert mean == 0.0 and per_joint.tolist() == [-1.0, -1.0]
    assert PCK_JOINTS == (0, 1, 2, 3, 4, 5, 10, 11, 14, 15)     # main.py's idx for MPII, 1-based there


def test_pck_equals_the_official_accuracy():
    for case in OFFICIAL_STAGES["accuracy"]:
        if "output" in case:
            output, target = sparse_maps(case["output"]), sparse_maps(case["target"])
        else:
            output = np.array(case["output_k"], np.float32) / 8
            target = np.array(case["target_k"], np.float32) / 8
        joints = tuple(i - 1 for i in case["idx"])
        mean, per_joint = pck(topdown.bearpaw_max_predictions(output)[0], topdown.bearpaw_max_predictions(target)[0],
                              output.shape[3], joints)
        assert [float(mean)] + per_joint.tolist() == case["acc"]


# ---------------------------------------------------------------- the evaluation

class RecordedMaps(nn.Module):
    """A two-stack network answering recorded heatmaps: the crops of person k are filled with k (float crops,
    no normalisation); a mirrored crop has its mark (-1 in the first column of channel 1) in its last column."""

    def __init__(self, plain, mirrored):
        super().__init__()
        self.plain, self.mirrored = torch.from_numpy(plain), torch.from_numpy(mirrored)

    def forward(self, x):
        people = x[:, 0, 0, 0].long()
        out = torch.where((x[:, 1, 0, -1] == -1)[:, None, None, None], self.mirrored[people], self.plain[people])
        return [torch.zeros_like(out), out]


def marked_crops(image, centers, scales, image_size):
    # load_image returns the person's index as its image: the crop is that value, marked in its first column.
    crops = np.full((len(centers), image_size[1], image_size[0], 3), image[0, 0, 0], np.float32)
    crops[:, :, 0, 1] = -1
    return crops


@pytest.mark.parametrize("flip", [False, True])
def test_evaluate_mpii_equals_the_official_validate(flip, monkeypatch):
    facts = OFFICIAL_STAGES["validate"]
    monkeypatch.setitem(topdown.CROPS, "marked", marked_crops)
    network = RecordedMaps(sparse_maps(facts["plain"]), sparse_maps(facts["mirrored"]))
    targets = sparse_maps(facts["targets"])
    n = len(targets)
    params = topdown.TopDownParams(image_size=(16, 16), flip_index=tuple(MPII_KEYPOINTS.flip_index), flip_test=flip,
                                   mean=None, std=None, batch_size=facts["batches"][0], flip_fusion="sum",
                                   shift_heatmap=False, predictions="bearpaw", crop="marked")
    people = MpiiPeople(np.arange(n), np.array(facts["objpos"]) - 1, np.array(facts["scale_provided"]))
    official = np.array(facts["flip" if flip else "no_flip"]["predictions"], np.float32)
    # The ground truth: the official predictions, visible, with 40 x 30 head boxes: PCKh 100 everywhere.
    truth = MpiiTruth(official - 1, np.ones((n, 16), bool), np.tile([[0.0, 0.0], [40.0, 30.0]], (n, 1, 1)))
    metrics, poses = evaluate_mpii(network, lambda k: np.full((1, 1, 3), k, np.uint8), people, truth, params,
                                   target_heatmaps=lambda start, stop: targets[start:stop])
    np.testing.assert_array_equal(poses.keypoints[..., :2] + 1, official)
    np.testing.assert_array_equal(poses.centers + np.float32(1), np.array(facts["center"], np.float32))
    assert metrics["PCK"] == facts["flip" if flip else "no_flip"]["acc"]
    assert list(metrics) == PARTS + ["PCK"] and all(metrics[name] == 100.0 for name in PARTS)


def test_format_pckh():
    metrics = {"Head": 96.7915, "Mean": 88.6372, "Mean@0.1": 33.05, "PCK": 0.8712345}
    assert format_pckh(metrics) == ("| Head | Mean | Mean@0.1 | PCK |\n|---|---|---|---|\n"
                                    "| 96.79 | 88.64 | 33.05 | 0.8712 |")
