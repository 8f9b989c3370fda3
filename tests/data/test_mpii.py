"""MPII: the keypoint set, the annotation and ground-truth readers, the stacked hourglass code's crop geometry and
training items (compared with the official code's own outputs, tests/assets/hourglass/official_data.json, facts
recorded outside the project), the synthetic MPII set and the config keys."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from higherhrnet import ConfigError
from higherhrnet import topdown
from higherhrnet import topdown_bearpaw as bearpaw
from higherhrnet.cli import main
from higherhrnet.data import build_dataset, dataset_info, dataset_splits, keypoints_from_config
from higherhrnet.data.checks import DatasetError
from higherhrnet.data.mpii import (MPII_MEAN, MpiiAnnotations, MpiiAugment, MpiiDraws, MpiiEvalDataset, MpiiPerson,
                                   MpiiTrainingDataset, draw_augmentation, mpii_sample, read_mpii_annotations,
                                   read_mpii_ground_truth, write_mpii_ground_truth)
from higherhrnet.data.synthetic import MPII_SPEC, _draw_scene, mpii_people, write_synthetic_mpii
from higherhrnet.keypoints import MPII_KEYPOINTS

from conftest import REPO, tiny_cfg, tiny_pose_hrnet_cfg

OFFICIAL = json.loads((REPO / "tests" / "assets" / "hourglass" / "official_data.json").read_text())

# One real MPII person (image 015601864.jpg, person 1), as bearpaw's mpii_annotations.json and HRNet's / mmpose's
# mpii_train.json write it (their first entries; quoted in public code).
BEARPAW_ENTRY = {
    "dataset": "MPI", "isValidation": 0.0, "img_paths": "015601864.jpg", "img_width": 1280.0, "img_height": 720.0,
    "objpos": [594.0, 257.0], "scale_provided": 3.021,
    "joint_self": [[620.0, 394.0, 1.0], [616.0, 269.0, 1.0], [573.0, 185.0, 1.0], [647.0, 188.0, 0.0],
                   [661.0, 221.0, 1.0], [656.0, 231.0, 1.0], [610.0, 187.0, 0.0], [647.0, 176.0, 1.0],
                   [637.02, 189.818, 1.0], [695.98, 108.182, 1.0], [606.0, 217.0, 1.0], [553.0, 161.0, 1.0],
                   [601.0, 167.0, 1.0], [692.0, 185.0, 1.0], [693.0, 240.0, 1.0], [688.0, 313.0, 1.0]]}
MMPOSE_ENTRY = {
    "center": [594.0, 257.0], "image": "015601864.jpg", "scale": 3.021046, "joints_vis": [1] * 16,
    "joints": [[620.0, 394.0], [616.0, 269.0], [573.0, 185.0], [647.0, 188.0], [661.0, 221.0], [656.0, 231.0],
               [610.0, 187.0], [647.0, 176.0], [637.0201, 189.8183], [695.9799, 108.1817], [606.0, 217.0],
               [553.0, 161.0], [601.0, 167.0], [692.0, 185.0], [693.0, 240.0], [688.0, 313.0]]}


def pattern_image(width, height):
    """The official recordings' test image (their `what`)."""
    ys, xs = np.mgrid[0:height, 0:width]
    channels = [(xs * 7 + ys * 3) % 256, (xs * 2 + ys * 11 + 60) % 256, ((xs - ys) * 5 + 128) % 256]
    return np.stack(channels, axis=2).astype(np.uint8)


def as_recorded(value, dtype):
    """A recorded scale or rotation as the official code held it: a Python number or a 0-d tensor (here a NumPy
    scalar) of its dtype."""
    return value if dtype == "python" else {"float32": np.float32, "float64": np.float64}[dtype](value)


def sha256(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(array, dtype=np.float32)).tobytes()).hexdigest()


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


# ---------------------------------------------------------------- keypoint set and registry

def test_mpii_joints_and_flip_pairs_are_the_official_ones():
    assert MPII_KEYPOINTS.num_joints == 16
    assert MPII_KEYPOINTS.names[6:10] == ("pelvis", "thorax", "upper_neck", "head_top")
    # bearpaw's shufflelr / flip_back pairs
    expected = np.arange(16)
    for a, b in [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)]:
        expected[a], expected[b] = b, a
    assert MPII_KEYPOINTS.flip_index.tolist() == expected.tolist()
    assert MPII_KEYPOINTS.upper_body_mask.tolist() == [False] * 7 + [True] * 9


def test_mpii_is_registered_with_its_layouts(tmp_path):
    for name, real in (("mpii", True), ("synthetic_mpii", False)):
        info = dataset_info(name)
        assert info.keypoints is MPII_KEYPOINTS and info.layout == "mpii" and info.real_people is real
        # Scored by engine.mpii_eval (PCKh needs the ground truth's head boxes), not by a metric over records.
        assert info.metric is None and info.main_metric == "Mean"
        assert info.metric_names == ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean",
                                     "Mean@0.1", "PCK")
    paths = dataset_info("mpii").paths
    assert paths(str(tmp_path), "val") == (str(tmp_path / "mpii_annotations.json"), str(tmp_path / "images"))
    write_json(tmp_path / "annotations" / "mpii_val.json", [MMPOSE_ENTRY])
    assert paths(str(tmp_path), "val")[0] == str(tmp_path / "annotations" / "mpii_val.json")


# ---------------------------------------------------------------- annotation files

def test_both_layouts_give_the_same_person_in_mpii_frame(tmp_path):
    write_json(tmp_path / "bearpaw.json", [BEARPAW_ENTRY, dict(BEARPAW_ENTRY, isValidation=1.0, img_paths="v.jpg")])
    write_json(tmp_path / "mpii_train.json", [MMPOSE_ENTRY])
    (bearpaw_person,), layout = read_mpii_annotations(str(tmp_path / "bearpaw.json"), "train")
    assert layout == "bearpaw" and bearpaw_person.split == "train" and bearpaw_person.image == "015601864.jpg"
    (validation,), _ = read_mpii_annotations(str(tmp_path / "bearpaw.json"), "val")
    assert validation.image == "v.jpg" and validation.split == "val"
    (mmpose_person,), layout = read_mpii_annotations(str(tmp_path / "mpii_train.json"), "train")
    assert layout == "mmpose" and mmpose_person.split == "train"
    # The same numbers, as written (MPII's 1-based frame, no adjustment); visibility is MPII's is_visible in
    # bearpaw's file (joints 3 and 6 occluded) and "labelled" in mmpose's.
    assert bearpaw_person.center.tolist() == mmpose_person.center.tolist() == [594.0, 257.0]
    np.testing.assert_allclose(bearpaw_person.joints[:, :2], mmpose_person.joints[:, :2], atol=1e-3)
    assert bearpaw_person.joints[8].tolist() == [637.02, 189.818, 1.0]
    assert np.flatnonzero(bearpaw_person.joints[:, 2] == 0).tolist() == [3, 6]
    assert mmpose_person.joints[:, 2].tolist() == [1.0] * 16
    assert (bearpaw_person.scale, mmpose_person.scale) == (3.021, 3.021046)
    # Every loader's adjustment: 15 x scale pixels down, scale x 1.25 (float32 centre).
    center, scale = bearpaw.person_center_scale(bearpaw_person.center, bearpaw_person.scale)
    assert center.dtype == np.float32 and center.tolist() == [594.0, np.float32(257.0 + 15 * 3.021)]
    assert scale == 3.021 * 1.25


def test_a_test_split_without_joints_reads_as_unlabelled(tmp_path):
    entry = {k: MMPOSE_ENTRY[k] for k in ("center", "image", "scale")}
    write_json(tmp_path / "mpii_test.json", [entry])
    (person,), _ = read_mpii_annotations(str(tmp_path / "mpii_test.json"), "test")
    assert person.joints.tolist() == [[0.0, 0.0, 0.0]] * 16


@pytest.mark.parametrize("content,message", [
    ("{not json", "not a JSON file"),
    ({"people": []}, "is a list of people"),
    ([{"img": "a.jpg"}], "entry 0 has neither bearpaw's MPII keys"),
    ([BEARPAW_ENTRY, {k: v for k, v in BEARPAW_ENTRY.items() if k != "joint_self"}], "entry 1: missing key 'joint_self'"),
    ([dict(BEARPAW_ENTRY, joint_self=BEARPAW_ENTRY["joint_self"][:15])],
     r"entry 0: 'joint_self' must be 16 x \[x, y, visible\], got shape \(15, 3\)"),
    ([dict(BEARPAW_ENTRY, objpos=[1.0, "x"])], r"entry 0: 'objpos' must be \[x, y\]"),
    ([dict(BEARPAW_ENTRY, scale_provided="big")], "entry 0: 'scale_provided' must be a number"),
    ([MMPOSE_ENTRY, dict(MMPOSE_ENTRY, joints_vis=[1] * 17)], r"entry 1: 'joints_vis' must be 16 numbers"),
    ([dict(MMPOSE_ENTRY, image="")], "entry 0: 'image' must be an image file name"),
])
def test_malformed_annotation_files_are_named_in_one_line(tmp_path, content, message):
    path = tmp_path / "mpii_train.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DatasetError, match=message) as error:
        read_mpii_annotations(str(path), "train")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_bearpaw_file_has_train_and_val_only(tmp_path):
    write_json(tmp_path / "mpii_annotations.json", [BEARPAW_ENTRY])
    with pytest.raises(DatasetError, match=r"splits \['train', 'val'\].*not 'test'"):
        read_mpii_annotations(str(tmp_path / "mpii_annotations.json"), "test")
    with pytest.raises(DatasetError, match="neither .*mpii_valid.json .*nor .*mpii_annotations.json"):
        MpiiAnnotations(str(tmp_path / "nowhere"), "valid")


# ---------------------------------------------------------------- ground truth

def test_ground_truth_reads_mpii_evaluation_layout(tmp_path):
    # MPII's evaluation file as its MATLAB code writes it: joint, coordinate, person axes; 2 people.
    positions = np.arange(16 * 2 * 2, dtype=np.float64).reshape(16, 2, 2) + 0.5
    missing = np.zeros((16, 2), np.uint8)
    missing[[6, 7], 1] = 1
    # headboxes_src[corner, axis, person]: person 0's box (10, 30)-(15, 35), person 1's (20, 40)-(25, 45)
    boxes = np.array([[[10.0, 20.0], [30.0, 40.0]], [[15.0, 25.0], [35.0, 45.0]]])
    names = np.empty((1, 16), dtype=object)
    for i, name in enumerate(["rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
                              "rwri", "relb", "rsho", "lsho", "lelb", "lwri"]):
        names[0, i] = np.array([name])
    path = tmp_path / "mpii_gt_val.mat"
    scipy.io.savemat(path, {"pos_gt_src": positions, "jnt_missing": missing, "headboxes_src": boxes,
                            "dataset_joints": names, "pos_pred_src": np.zeros_like(positions)})
    truth = read_mpii_ground_truth(str(path))
    assert len(truth) == 2 and truth.joint_names[9] == "head" and truth.joint_names[6] == "pelv"
    assert truth.joints[1, 3].tolist() == positions[3, :, 1].tolist()
    assert truth.missing[1].nonzero()[0].tolist() == [6, 7] and not truth.missing[0].any()
    assert truth.head_boxes.tolist() == [[[10.0, 30.0], [15.0, 35.0]], [[20.0, 40.0], [25.0, 45.0]]]
    # Written back in the same layout.
    write_mpii_ground_truth(str(tmp_path / "again.mat"), truth.joints, truth.missing, truth.head_boxes)
    again = scipy.io.loadmat(tmp_path / "again.mat")
    for key, value in (("pos_gt_src", positions), ("jnt_missing", missing), ("headboxes_src", boxes)):
        assert again[key].tolist() == value.tolist(), key
    assert read_mpii_ground_truth(str(tmp_path / "again.mat")).joint_names == truth.joint_names


def test_ground_truth_errors_name_the_key(tmp_path):
    scipy.io.savemat(tmp_path / "a.mat", {"pos_gt_src": np.zeros((16, 2, 3)), "jnt_missing": np.zeros((16, 3)),
                                          "dataset_joints": np.zeros((1, 16))})
    with pytest.raises(DatasetError, match="missing key 'headboxes_src'"):
        read_mpii_ground_truth(str(tmp_path / "a.mat"))
    scipy.io.savemat(tmp_path / "b.mat", {"pos_gt_src": np.zeros((16, 2, 3)), "jnt_missing": np.zeros((16, 2)),
                                          "headboxes_src": np.zeros((2, 2, 3)), "dataset_joints": np.zeros((1, 16))})
    with pytest.raises(DatasetError, match=r"'jnt_missing' must be \(16, 3\)"):
        read_mpii_ground_truth(str(tmp_path / "b.mat"))


# ---------------------------------------------------------------- the official geometry, stage by stage

def test_crop_transform_equals_get_transform():
    for row in OFFICIAL["get_transform"]:
        matrix = bearpaw.crop_transform(np.float32(row["center"]), as_recorded(row["scale"], row["scale_dtype"]),
                                        row["size"], as_recorded(row["rot"], row["rot_dtype"]))
        assert matrix.tolist() == row["matrix"], row


def test_transform_point_equals_transform():
    for row in OFFICIAL["transform"]:
        point = np.float32(row["point"]) if row["point_dtype"] == "float32" else row["point"]
        result = bearpaw.transform_point(point, np.float32(row["center"]),
                                         as_recorded(row["scale"], row["scale_dtype"]), row["size"],
                                         bool(row["invert"]), as_recorded(row["rot"], row["rot_dtype"]))
        assert result.tolist() == row["result"], row


def test_transform_point_truncates_toward_zero_by_hand():
    # scale 0.5: 100 px -> 64: x = (10 - 1 - 100 + 50) * 0.64 = -26.24 -> -26 (not -27), + 1
    assert bearpaw.transform_point([10.0, 101.0], [100.0, 100.0], 0.5, [64, 64]).tolist() == [-25, 33]


def test_transform_predictions_equal_transform_preds():
    for row in OFFICIAL["transform_preds"]:
        result = bearpaw.transform_predictions(np.float32(row["coords"]), np.float32(row["center"]),
                                               np.float64(row["scale"]), row["size"])
        assert result.dtype == np.float32 and result.astype(np.float64).tolist() == row["result"], row


def test_crop_image_equals_crop():
    image = bearpaw.image_to_float(pattern_image(*OFFICIAL["crop"]["image"]))
    for row in OFFICIAL["crop"]["cases"]:
        crop = bearpaw.crop_image(image, np.float32(row["center"]), as_recorded(row["scale"], row["scale_dtype"]),
                                  row["size"], as_recorded(row["rot"], row["rot_dtype"]))
        assert crop.dtype == np.float32 and crop.astype(np.float64).tolist() == row["crop"], row["why"]


def test_crop_people_are_the_test_time_crops():
    image = pattern_image(*OFFICIAL["crop"]["image"])
    rows = [r for r in OFFICIAL["crop"]["cases"] if r["rot"] == 0 and r["scale_dtype"] == "python"]
    crops = bearpaw.crop_people(image, np.float32([r["center"] for r in rows]), [r["scale"] for r in rows],
                                (10, 10))
    assert crops.shape == (len(rows), 10, 10, 3)
    for crop, row in zip(crops, rows):
        assert crop.astype(np.float64).tolist() == row["crop"], row["why"]


def test_the_pipeline_s_bearpaw_crop_takes_this_project_s_frame():
    # topdown.CROPS["bearpaw"], what a stacked_hourglass's TopDownParams crops with: centres one less (0-based),
    # scales as bearpaw_center_scale gives them (N, 2); the same crops as the official test items'.
    image = pattern_image(*OFFICIAL["crop"]["image"])
    rows = [r for r in OFFICIAL["crop"]["cases"] if r["rot"] == 0 and r["scale_dtype"] == "python"]
    centers = np.float32([r["center"] for r in rows]) - np.float32(1)
    scales = np.array([[r["scale"], r["scale"]] for r in rows], dtype=np.float64)
    crops = topdown.crop_function("bearpaw")(image, centers, scales, (10, 10))
    for crop, row in zip(crops, rows):
        assert crop.astype(np.float64).tolist() == row["crop"], row["why"]


def test_mirror_joints_equals_shufflelr():
    row = OFFICIAL["shufflelr"]
    mirrored = bearpaw.mirror_joints(np.float32(row["joints"]), row["width"], MPII_KEYPOINTS.flip_index)
    assert mirrored.astype(np.float64).tolist() == row["result"]


def test_draw_gaussian_equals_draw_labelmap():
    width, height = OFFICIAL["draw_labelmap"]["size"]
    for row in OFFICIAL["draw_labelmap"]["cases"]:
        heatmap = np.zeros((height, width), np.float32)
        _, on_map = bearpaw.draw_gaussian(heatmap, np.float32(row["point"] + [1.0]), row["sigma"])
        nonzero = [[int(y), int(x), float(heatmap[y, x])] for y, x in zip(*np.nonzero(heatmap))]
        assert (nonzero, on_map) == (row["nonzero"], row["visible"]), row["point"]


def test_image_to_float_and_normalisation_by_hand():
    image = np.array([[[0, 51, 255]]], np.uint8)
    assert bearpaw.image_to_float(image).tolist() == [[[0.0, np.float32(51) / np.float32(255), 1.0]]]
    dark = np.array([[[0, 1, 1]]], np.uint8)         # like the code, not divided: its maximum is not above 1
    assert bearpaw.image_to_float(dark).tolist() == [[[0.0, 1.0, 1.0]]]
    crops = np.full((2, 4, 5, 3), 0.5, np.float32)
    normalized = topdown.normalize_crops(crops, MPII_MEAN, None)       # its color_normalize: the mean only
    assert normalized.shape == (2, 3, 4, 5) and normalized.dtype == torch.float32
    assert normalized[1, :, 3, 4].tolist() == (np.float32(0.5) - np.float32(MPII_MEAN)).tolist()
    assert torch.equal(topdown.normalize_crops(crops, MPII_MEAN, (1.0, 1.0, 1.0)), normalized)


def test_person_center_of_x_minus_one_is_not_adjusted():
    center, scale = bearpaw.person_center_scale([-1.0, 50.0], 2.0)
    assert center.tolist() == [-1.0, 50.0] and scale == 2.0


# ---------------------------------------------------------------- the official training items

def official_items():
    recorded = OFFICIAL["mpii"]
    people = recorded["annotations"]
    by_split = {True: [p for p in people if p["isValidation"] != 1], False: [p for p in people if p["isValidation"] == 1]}
    for item in recorded["items"]:
        entry = by_split[item["train"]][item["index"]]
        person = MpiiPerson(entry["img_paths"], np.array(entry["objpos"]), float(entry["scale_provided"]),
                            np.array(entry["joint_self"]), "train" if item["train"] else "val")
        draws = None
        if item["train"]:
            normals, uniforms = list(item["normals"]), list(item["uniforms"])
            scale_normal, rotation_uniform = normals.pop(0), uniforms.pop(0)
            rotation_normal = normals.pop(0) if rotation_uniform <= 0.6 else 0.0
            draws = MpiiDraws(scale_normal, rotation_uniform, rotation_normal, uniforms.pop(0), tuple(uniforms))
        yield item, person, draws


def assert_official_item(item, inputs, heatmaps, weights):
    assert inputs.shape == (3, 256, 256) and heatmaps.shape == (16, 64, 64) and weights.shape == (16, 1)
    for y, x, values in item["input_samples"]:
        assert inputs[:, y, x].tolist() == values, (y, x)
    assert sha256(inputs.numpy().transpose(1, 2, 0)) == item["input"]["sha256"]
    regions = [[*m.nonzero()[0][[0]], *m.nonzero()[1].min(keepdims=True), *m.nonzero()[0][[-1]],
                *m.nonzero()[1].max(keepdims=True)] if m.any() else None for m in heatmaps]
    assert [r if r is None else [int(v) for v in r] for r in regions] == item["target_regions"]
    assert sha256(heatmaps) == item["target"]["sha256"]
    assert weights.reshape(-1).tolist() == item["target_weight"]


def test_items_equal_the_official_mpii_items():
    image = pattern_image(*OFFICIAL["mpii"]["image"])
    augment = MpiiAugment(scale_factor=OFFICIAL["mpii"]["scale_factor"], rot_factor=OFFICIAL["mpii"]["rot_factor"])
    for item, person, draws in official_items():
        inputs, heatmaps, weights, center, scale, _ = mpii_sample(image, person, MPII_KEYPOINTS.flip_index, 256, 64,
                                                                  1.0, OFFICIAL["mean"], None, augment, draws)
        assert_official_item(item, inputs, heatmaps, weights)
        assert center.tolist() == item["center"] and float(scale) == item["scale"]
        assert isinstance(scale, np.float32) == item["train"]       # float32 once augmented, as the code's


def test_mpii_mean_is_the_official_mean_file():
    assert list(MPII_MEAN) == OFFICIAL["mean"]


def test_unaugmented_dataset_items_are_the_official_test_items(tmp_path):
    """The whole path: bearpaw's file and a PNG image, read by MpiiAnnotations, items of MpiiTrainingDataset."""
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), cv2.cvtColor(pattern_image(*OFFICIAL["mpii"]["image"]),
                                                                 cv2.COLOR_RGB2BGR))
    write_json(tmp_path / "mpii_annotations.json", OFFICIAL["mpii"]["annotations"])
    source = MpiiAnnotations(str(tmp_path), "val")
    assert source.layout == "bearpaw" and len(source) == 2
    dataset = MpiiTrainingDataset(source, 256, 64, 1.0, augment=None, mean=OFFICIAL["mean"])
    for item, _, draws in official_items():
        if draws is None:
            inputs, (heatmaps,), (weights,), extra = dataset[item["index"]]
            assert extra == []
            assert_official_item(item, inputs, heatmaps.numpy(), weights.numpy())


def test_augmentation_draws_have_the_official_distributions():
    augment = MpiiAugment()
    draws = [draw_augmentation(np.random.default_rng((0, 0, i)), augment) for i in range(4000)]
    rotating = np.array([d.rotation_uniform <= 0.6 for d in draws])
    assert 0.57 < rotating.mean() < 0.63
    assert all(d.rotation_normal == 0.0 for d, r in zip(draws, rotating) if not r)
    assert 0.47 < np.mean([d.flip_uniform <= 0.5 for d in draws]) < 0.53
    normals = np.array([d.scale_normal for d in draws])
    assert abs(normals.mean()) < 0.06 and 0.95 < normals.std() < 1.05
    colours = np.array([d.colour for d in draws])
    assert colours.min() >= 0.8 and colours.max() <= 1.2 and abs(colours.mean() - 1.0) < 0.01
    # The same (seed, epoch, index), the same draws; another epoch, others.
    assert draw_augmentation(np.random.default_rng((0, 0, 5)), augment) == draws[5]
    assert draw_augmentation(np.random.default_rng((0, 1, 5)), augment) != draws[5]


def test_augmented_scale_and_rotation_are_clipped():
    image = pattern_image(120, 90)
    person = MpiiPerson("a.png", np.array([60.0, 40.0]), 0.35, np.zeros((16, 3)), "train")
    augment = MpiiAugment(scale_factor=0.25, rot_factor=30.0)
    extreme = MpiiDraws(9.0, 0.0, -9.0, 1.0, (1.0, 1.0, 1.0))
    *_, scale, rotation = mpii_sample(image, person, MPII_KEYPOINTS.flip_index, 32, 8, 1.0, None, None, augment,
                                      extreme)
    assert scale == np.float32(0.35 * 1.25) * np.float32(1.25) and rotation == -60
    *_, rotation = mpii_sample(image, person, MPII_KEYPOINTS.flip_index, 32, 8, 1.0, None, None, augment,
                               MpiiDraws(0.0, 0.61, 0.0, 1.0, (1.0, 1.0, 1.0)))
    assert rotation == 0                                  # above rotation_prob: no rotation


# ---------------------------------------------------------------- the synthetic MPII set

@pytest.fixture(scope="module")
def synthetic_mpii(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_mpii")
    files = write_synthetic_mpii(str(root / "a"), {"train": 4, "val": 3}, seed=3, progress=False)
    return root, files


def test_synthetic_mpii_is_bearpaw_layout_with_ground_truth(synthetic_mpii):
    root, files = synthetic_mpii
    assert files == {"annotations": str(root / "a" / "mpii_annotations.json"),
                     "ground_truth": str(root / "a" / "detections_our_format.mat")}
    entries = json.loads((root / "a" / "mpii_annotations.json").read_text())
    assert {e["isValidation"] for e in entries} == {0.0, 1.0}
    assert all(len(e["joint_self"]) == 16 and os.path.isfile(root / "a" / "images" / e["img_paths"]) for e in entries)
    val = MpiiAnnotations(str(root / "a"), "val", dataset=dataset_info("synthetic_mpii"))
    truth = val.ground_truth()
    assert val.ground_truth_file() == files["ground_truth"] and len(truth) == len(val) > 0
    for person, joints, missing, box in zip(val.people, truth.joints, truth.missing, truth.head_boxes):
        assert joints.tolist() == person.joints[:, :2].tolist()
        assert missing.tolist() == (person.joints[:, 0] == 0).tolist()
        head_top, upper_neck = person.joints[9, :2], person.joints[8, :2]
        if not missing[9] and not missing[8]:
            # the head box is the head circle's square: both head points inside, its side their distance
            assert np.all(box[0] - 0.01 <= np.minimum(head_top, upper_neck))
            assert np.all(np.maximum(head_top, upper_neck) <= box[1] + 0.01)
            assert np.isclose(box[1, 0] - box[0, 0], np.linalg.norm(head_top - upper_neck), atol=0.01)


def test_synthetic_mpii_joints_come_from_the_stick_figure():
    coco = {name: i for i, name in enumerate(("nose", "left_eye", "right_eye", "left_ear", "right_ear",
                                               "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                                               "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                                               "right_knee", "left_ankle", "right_ankle"))}
    index = MPII_KEYPOINTS.index
    checked = 0
    for i in range(4):
        image, records = _draw_scene(np.random.default_rng((3, 0, i)), MPII_SPEC)
        for record in (r for r in records if r["kind"] == "labelled"):
            people = mpii_people([record], image.shape[1], image.shape[0])
            if not people:
                continue
            pts = record["pts"] + 1                              # MPII's 1-based frame
            joints = people[0]["joints"]
            for ours, theirs in (("r_ankle", "right_ankle"), ("l_wrist", "left_wrist"), ("r_shoulder", "right_shoulder"),
                                 ("l_hip", "left_hip")):
                if joints[index(ours), 0]:
                    np.testing.assert_allclose(joints[index(ours), :2], pts[coco[theirs]], atol=1e-3)
            named = {n: joints[index(n), :2] for n in ("pelvis", "thorax", "upper_neck", "head_top")}
            if all(joints[index(n), 0] for n in named):
                np.testing.assert_allclose(named["pelvis"], (pts[coco["left_hip"]] + pts[coco["right_hip"]]) / 2,
                                           atol=1e-3)
                np.testing.assert_allclose(named["thorax"],
                                           (pts[coco["left_shoulder"]] + pts[coco["right_shoulder"]]) / 2, atol=1e-3)
                # thorax, upper neck, head top in that order on one line; the head's centre between the last two
                thorax, neck, top = named["thorax"], named["upper_neck"], named["head_top"]
                assert np.linalg.norm(top - thorax) > np.linalg.norm(neck - thorax) > 0
                (ax, ay), (bx, by) = neck - thorax, top - thorax
                assert abs(ax * by - ay * bx) < 0.05 * np.linalg.norm(top - thorax)
                np.testing.assert_allclose((neck + top) / 2, (pts[coco["left_ear"]] + pts[coco["right_ear"]]) / 2,
                                           atol=2e-3)
                checked += 1
    assert checked >= 3


def test_synthetic_mpii_is_deterministic_and_the_cli_writes_it(synthetic_mpii, tmp_path, capsys):
    root, _ = synthetic_mpii
    result = subprocess.run([sys.executable, "-m", "higherhrnet", "make-synthetic", "--out", str(tmp_path / "b"),
                             "--format", "mpii", "--train", "4", "--val", "3", "--seed", "3"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "ground_truth: " in result.stdout
    for name in ("mpii_annotations.json", "images/001000002.jpg"):
        assert (tmp_path / "b" / name).read_bytes() == (root / "a" / name).read_bytes(), name
    again, first = (scipy.io.loadmat(r / "detections_our_format.mat") for r in (tmp_path / "b", root / "a"))
    for key in ("pos_gt_src", "jnt_missing", "headboxes_src"):      # (the file's header has the time it was written)
        assert again[key].tolist() == first[key].tolist(), key
    assert main(["make-synthetic", "--out", str(tmp_path / "c"), "--format", "mpii", "--empty", "0.2"]) == 2
    assert "--empty is for the COCO format" in capsys.readouterr().err


# ---------------------------------------------------------------- config keys and build_dataset

MPII_OPTS = ["DATASET.DATASET", "synthetic_mpii", "DATASET.DATASET_TEST", "synthetic_mpii",
             "DATASET.NUM_JOINTS", "16", "MODEL.NUM_JOINTS", "16", "DATASET.TRAIN_SET", "train",
             "DATASET.TEST_SET", "val", "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]",
             "MODEL.SIGMA", "1.0", "DATASET.SCALE_FACTOR", "0.25", "DATASET.ROT_FACTOR", "30",
             "MODEL.INPUT_MEAN", str(list(MPII_MEAN)), "MODEL.INPUT_STD", "[1.0, 1.0, 1.0]"]


def test_config_keys_build_the_mpii_datasets(synthetic_mpii):
    root, _ = synthetic_mpii
    cfg = tiny_pose_hrnet_cfg(*MPII_OPTS, "DATASET.ROOT", str(root / "a"))
    assert keypoints_from_config(cfg) is MPII_KEYPOINTS and dataset_splits(cfg) == ("train", "val")
    train = build_dataset(cfg, is_train=True)
    assert isinstance(train, MpiiTrainingDataset) and train.source.split == "train" and len(train) > 0
    assert (train.input_size, train.heatmap_size, train.sigma, train.mean, train.std) == (64, 16, 1.0, MPII_MEAN,
                                                                                          (1.0, 1.0, 1.0))
    assert train.augment == MpiiAugment(scale_factor=0.25, rot_factor=30.0, flip_prob=0.5)
    inputs, (heatmaps,), (weights,), tags = train[0]
    assert inputs.shape == (3, 64, 64) and heatmaps.shape == (16, 16, 16) and weights.shape == (16, 1) and tags == []
    assert torch.equal(train[(2, 0)][0], train[(2, 0)][0]) and not torch.equal(train[(2, 0)][0], train[(3, 0)][0])
    test = build_dataset(cfg, is_train=False)
    assert isinstance(test, MpiiEvalDataset) and test.source.split == "val" and test.source.has_annotations
    image, index = test[1]
    assert image.dtype == np.uint8 and image.ndim == 3 and index == 1


def test_config_errors_for_mpii(synthetic_mpii, tmp_path):
    root, _ = synthetic_mpii
    with pytest.raises(ConfigError, match="MPII annotates single people, for a top-down network"):
        build_dataset(tiny_cfg(*MPII_OPTS[:8], "DATASET.ROOT", str(root / "a")))
    with pytest.raises(ConfigError, match=r"must each be \[n, n\]"):
        build_dataset(tiny_pose_hrnet_cfg(*MPII_OPTS, "DATASET.ROOT", str(root / "a"), "MODEL.IMAGE_SIZE", "[64, 96]",
                                          "MODEL.HEATMAP_SIZE", "[16, 24]"))
    write_json(tmp_path / "annotations" / "mpii_train.json", [])
    with pytest.raises(ConfigError, match="has no annotated person"):
        build_dataset(tiny_pose_hrnet_cfg(*MPII_OPTS, "DATASET.ROOT", str(tmp_path)))
    write_json(tmp_path / "annotations" / "mpii_train.json", [MMPOSE_ENTRY])
    with pytest.raises(DatasetError, match="1 image.s. not found .*015601864.jpg"):
        build_dataset(tiny_pose_hrnet_cfg(*MPII_OPTS, "DATASET.ROOT", str(tmp_path)))
