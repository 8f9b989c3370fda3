"""Top-down training data: the official person filters on tiny COCO data, flip pairs and the half-body crop
on a crafted person, and the items' shapes."""
import json

import numpy as np
import pytest
import torch

import higherhrnet
from higherhrnet import COCO_KEYPOINTS
from higherhrnet.data import CocoKeypoints, TopDownAugment, TopDownTrainingDataset
from higherhrnet.data.topdown import flip_joints, half_body_center_scale, person_instances, select_instances

from conftest import tiny_pose_hrnet_cfg
from tinycoco import POSE, person_annotation, write_tiny_coco

IMAGE_SIZE = (64, 96)        # (width, height) as MODEL.IMAGE_SIZE of tiny_pose_hrnet_cfg
NO_AUGMENT = TopDownAugment(scale_factor=0.0, rot_factor=0.0, flip_prob=0.0, prob_half_body=0.0)


def crafted_root(tmp_path):
    """tiny COCO (2 images: 2 labelled people, 1 unlabelled, 1 crowd region each) plus people that the official
    filters drop or keep, on image 100 (128 x 96)."""
    root = tmp_path / "coco"
    data = write_tiny_coco(root, num_images=2)
    extra = [
        person_annotation(900, 100, [10, 10, 30, 60]) | {"area": 0.0},          # no area: dropped
        person_annotation(901, 100, [140, 10, 20, 40]),                          # right of the image: dropped
        person_annotation(902, 100, [10, 10, 30, 60]) | {"iscrowd": 1},          # crowd, with keypoints: dropped
        person_annotation(903, 100, [10, 10, 30, 60]) | {"category_id": 2},      # not a person: dropped
        person_annotation(904, 100, [-10.0, 20.0, 30.0, 90.0]),                  # cleaned to [0, 20, 29, 75]: kept
    ]
    data["annotations"] += extra
    data["categories"].append({"id": 2, "name": "dog", "supercategory": "animal"})
    (root / "annotations" / "person_keypoints_train.json").write_text(json.dumps(data))
    return root


def test_the_official_filters_keep_labelled_non_crowd_people_with_a_box(tmp_path):
    source = CocoKeypoints(str(crafted_root(tmp_path)), "train", COCO_KEYPOINTS)
    people = person_instances(source, IMAGE_SIZE)
    assert len(people) == 2 * 2 + 1
    assert [p.image_index for p in people] == [0, 0, 0, 1, 1]
    clipped = people[2]                                                       # the last annotation of image 100
    # The official cleaning: x1 = max(0, -10) = 0, x2 = min(127, x1 + 30 - 1) = 29 (the width is not cut by the
    # part left of the image), y2 = min(95, 20 + 89) = 95: box [0, 20, 29, 75], centre (14.5, 57.5);
    # 29 < 75 x 2/3, so w = 50; scale (50, 75) / 200 x 1.25
    assert clipped.center.tolist() == [14.5, 57.5] and clipped.center.dtype == np.float32
    np.testing.assert_allclose(clipped.scale, [50 / 200 * 1.25, 75 / 200 * 1.25], rtol=1e-6)
    assert set(clipped.joints[:, 2]) == {1.0}                                  # visibility 2 counts as 1
    assert all(p.joints[:, 2].max() > 0 for p in people)


def test_select_data_drops_people_whose_joints_are_far_from_the_box_centre(tmp_path):
    source = CocoKeypoints(str(crafted_root(tmp_path)), "train", COCO_KEYPOINTS)
    people = person_instances(source, IMAGE_SIZE)
    far = people[0].__class__(0, people[0].center + np.float32(80), people[0].scale, people[0].joints)
    assert select_instances(people + [far]) == select_instances(people)
    assert len(select_instances(people)) == len(people)          # stick figures centred in their boxes


def test_flip_swaps_left_and_right_and_mirrors_about_the_crop():
    joints = np.zeros((17, 3))
    joints[:, 0], joints[:, 1], joints[:, 2] = np.arange(17) * 2.0, 10.0, 1.0
    joints[COCO_KEYPOINTS.index("left_wrist"), 2] = 0
    flipped = flip_joints(joints, 100, COCO_KEYPOINTS.flip_index)
    lw, rw = COCO_KEYPOINTS.index("left_wrist"), COCO_KEYPOINTS.index("right_wrist")
    assert flipped[rw].tolist() == [100 - 1 - joints[lw, 0], 10.0, 0.0]     # the invisible one moved sides
    assert flipped[lw].tolist() == [100 - 1 - joints[rw, 0], 10.0, 1.0]
    assert flipped[0].tolist() == [99.0, 10.0, 1.0]                          # the nose stays the nose


def one_person_dataset(tmp_path, augment, **kw):
    root = tmp_path / "one"
    write_tiny_coco(root, num_images=1, people_per_image=1, crowd=False)
    source = CocoKeypoints(str(root), "train", COCO_KEYPOINTS)
    return TopDownTrainingDataset(source, person_instances(source, IMAGE_SIZE), IMAGE_SIZE, (16, 24), 2.0, augment,
                                  **kw)


def test_a_flipped_crop_is_the_mirror_of_the_plain_one(tmp_path):
    plain = one_person_dataset(tmp_path, NO_AUGMENT)
    flipping = one_person_dataset(tmp_path, TopDownAugment(scale_factor=0.0, rot_factor=0.0, flip_prob=1.0,
                                                           prob_half_body=0.0))
    image = plain.source.load_image(0)
    person = plain.people[0]
    crop, joints, _ = plain.crop(image, person, np.random.default_rng(0))
    crop_f, joints_f, _ = flipping.crop(image, person, np.random.default_rng(0))
    index = COCO_KEYPOINTS.flip_index
    # x -> W - x in crop pixels (the official flip about image column (w - 1) / 2), left and right swapped
    np.testing.assert_allclose(joints_f[:, 0], IMAGE_SIZE[0] - joints[index, 0], atol=1e-3)
    np.testing.assert_allclose(joints_f[:, 1], joints[index, 1], atol=1e-3)
    # the pixels too, shifted one column by that flip (to bilinear rounding)
    np.testing.assert_allclose(crop_f[:, 1:].astype(int), crop[:, ::-1][:, :-1].astype(int), atol=1)


class FixedNormal:
    """An rng whose standard normal draws are fixed (half_body_center_scale draws one)."""

    def __init__(self, value):
        self.value = value

    def standard_normal(self):
        return self.value


def crafted_person(box=(0.0, 0.0, 100.0, 200.0)):
    x, y, w, h = box
    joints = np.ones((17, 3))
    joints[:, :2] = POSE * [w, h] + [x, y]
    return joints


def test_half_body_crops_the_upper_or_the_lower_body():
    upper = COCO_KEYPOINTS.upper_body_mask
    # A wide person: the upper body spans x 30..170, y 5..55 (140 x 50), wider than 0.75, so h = 140 / 0.75.
    joints = crafted_person((0.0, 0.0, 200.0, 100.0))
    center, scale = half_body_center_scale(joints, upper, 0.75, FixedNormal(0.0))     # 0 < 0.5: upper body
    assert center == pytest.approx(joints[:11, :2].mean(axis=0), rel=1e-6)
    assert scale.tolist() == pytest.approx([140 / 200 * 1.5, 140 / 0.75 / 200 * 1.5], rel=1e-6)
    # A tall one: the lower body spans x 35..65, y 110..194 (30 x 84), so w = 84 x 0.75.
    joints = crafted_person((0.0, 0.0, 100.0, 200.0))
    center, scale = half_body_center_scale(joints, upper, 0.75, FixedNormal(0.6))     # 0.6 >= 0.5: lower body
    assert center == pytest.approx(joints[11:, :2].mean(axis=0), rel=1e-6)
    assert scale.tolist() == pytest.approx([84 * 0.75 / 200 * 1.5, 84 / 200 * 1.5], rel=1e-6)
    joints[:, 2] = 0
    joints[[0, 1, 13, 14, 15], 2] = 1               # 2 upper joints, too few: the lower body, 3 of them
    center, _ = half_body_center_scale(joints, upper, 0.75, FixedNormal(0.0))
    assert center == pytest.approx(joints[13:16, :2].mean(axis=0), rel=1e-6)
    joints[:, 2] = 0
    joints[[0, 13], 2] = 1                          # neither half has more than 2: the upper one, 1 joint
    assert half_body_center_scale(joints, upper, 0.75, FixedNormal(0.0)) is None


def test_items_are_normalised_crops_targets_and_weights(tmp_path):
    dataset = one_person_dataset(tmp_path, TopDownAugment())
    image, heatmaps, weights, joints = dataset[0]
    assert image.shape == (3, 96, 64) and image.dtype == torch.float32
    assert [h.shape for h in heatmaps] == [(17, 24, 16)] and [w.shape for w in weights] == [(17, 1)]
    assert joints == []
    assert heatmaps[0].max() == 1.0
    assert torch.equal(dataset[(0, 0)][0], image) and not torch.equal(dataset[(1, 0)][0], image)   # per epoch
    weighted = one_person_dataset(tmp_path, NO_AUGMENT, joint_weights=COCO_KEYPOINTS.joint_weights)
    assert weighted[0][2][0][:, 0].tolist() == pytest.approx(list(COCO_KEYPOINTS.joint_weights))
    bgr = one_person_dataset(tmp_path, NO_AUGMENT, color_rgb=False, mean=None, std=None)
    rgb = one_person_dataset(tmp_path, NO_AUGMENT, mean=None, std=None)
    assert torch.equal(bgr[0][0], rgb[0][0].flip(0))


def test_build_dataset_reads_the_top_down_keys(tmp_path):
    root = crafted_root(tmp_path)
    cfg = tiny_pose_hrnet_cfg("DATASET.ROOT", str(root), "DATASET.TRAIN_SET", "train", "DATASET.TRAIN", "nowhere",
                              "DATASET.SCALE_FACTOR", "0.25", "DATASET.ROT_FACTOR", "30", "DATASET.FLIP", "False",
                              "MODEL.SIGMA", "3", "DATASET.COLOR_RGB", "False")
    dataset = higherhrnet.build_dataset(cfg, is_train=True)
    assert isinstance(dataset, TopDownTrainingDataset) and len(dataset) == 5
    assert dataset.augment == TopDownAugment(scale_factor=0.25, rot_factor=30.0, flip_prob=0.0, prob_half_body=0.3,
                                             num_joints_half_body=8)
    assert dataset.sigma == 3 and not dataset.color_rgb and dataset.joint_weights is None
    assert dataset.image_size == (64, 96) and dataset.heatmap_size == (16, 24)


def custom_keypoints_cfg(root, *opts):
    """COCO's joints described under DATASET.KEYPOINTS (no registered set), plus opts."""
    cfg = tiny_pose_hrnet_cfg("DATASET.ROOT", str(root), "DATASET.TRAIN_SET", "train", *opts)
    cfg.defrost()
    kp = cfg.DATASET.KEYPOINTS
    kp.NAMES, kp.SIGMAS = list(COCO_KEYPOINTS.names), list(COCO_KEYPOINTS.sigmas)
    kp.FLIP_PAIRS = [list(p) for p in COCO_KEYPOINTS.flip_pairs]
    return cfg


def test_half_body_and_joint_weights_need_them_in_the_keypoint_set(tmp_path):
    root = crafted_root(tmp_path)
    with pytest.raises(higherhrnet.ConfigError, match="DATASET.PROB_HALF_BODY 0.3: the keypoint set 'coco_kpt' names "
                                                      "no upper-body joints"):
        higherhrnet.build_dataset(custom_keypoints_cfg(root), is_train=True)
    assert len(higherhrnet.build_dataset(custom_keypoints_cfg(root, "DATASET.PROB_HALF_BODY", "0"))) == 5
    cfg = custom_keypoints_cfg(root, "LOSS.USE_DIFFERENT_JOINTS_WEIGHT", "True")
    cfg.DATASET.KEYPOINTS.UPPER_BODY = list(COCO_KEYPOINTS.upper_body)
    with pytest.raises(higherhrnet.ConfigError, match="LOSS.USE_DIFFERENT_JOINTS_WEIGHT: the keypoint set 'coco_kpt' "
                                                      "has no per-joint loss weights"):
        higherhrnet.build_dataset(cfg, is_train=True)
    cfg.DATASET.KEYPOINTS.JOINT_WEIGHTS = [2.0] * 17
    dataset = higherhrnet.build_dataset(cfg, is_train=True)
    assert dataset.joint_weights[:, 0].tolist() == [2.0] * 17
    assert dataset.upper_body.tolist() == COCO_KEYPOINTS.upper_body_mask.tolist()
