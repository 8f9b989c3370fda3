"""Datasets: COCO-format keypoint data, MPII, training augmentation and targets, the dataset registry."""
from __future__ import annotations

import os
from typing import Sequence

from ..config import CfgNode, ConfigError
from ..keypoints import KeypointSpec
from ..models.registry import build_output_specs, model_entry
from ..normalization import normalization_from_config
from ..outputs import OutputSpec, target_sizes
from .coco import CocoKeypoints, DatasetError, EvalDataset, TrainingDataset
from .mpii import MpiiAnnotations, MpiiAugment, MpiiEvalDataset, MpiiTrainingDataset
from .registry import DATASETS, DatasetInfo, dataset_info, keypoints_from_config
from .topdown import TopDownAugment, TopDownTrainingDataset, person_instances, select_instances
from .transforms import AugmentParams

__all__ = ["build_dataset", "dataset_splits", "CocoKeypoints", "DatasetError", "EvalDataset", "TrainingDataset", "AugmentParams",
           "TopDownAugment", "TopDownTrainingDataset", "MpiiAnnotations", "MpiiAugment", "MpiiTrainingDataset",
           "MpiiEvalDataset", "DATASETS", "DatasetInfo", "dataset_info", "keypoints_from_config"]


def dataset_splits(cfg: CfgNode) -> tuple[str, str]:
    """(training split, test split): DATASET.TRAIN / TEST, or for a top-down network DATASET.TRAIN_SET /
    TEST_SET, the keys of its official files."""
    if model_entry(cfg.MODEL.NAME).top_down:
        return cfg.DATASET.TRAIN_SET, cfg.DATASET.TEST_SET
    return cfg.DATASET.TRAIN, cfg.DATASET.TEST


def build_dataset(cfg: CfgNode, is_train: bool = True, outputs: Sequence[OutputSpec] | None = None):
    """Training: a TrainingDataset over DATASET.TRAIN with one target set per resolution the network's
    outputs are trained at (outputs default to build_output_specs(cfg)), inputs normalised with
    MODEL.INPUT_MEAN / INPUT_STD. Otherwise an EvalDataset over DATASET.TEST yielding
    (image (H, W, 3) uint8 RGB, image id). DATASET.DATASET / DATASET_TEST name the kind (registry.py);
    DATASET.ACCEPT_DAMAGED_IMAGES uses JPEG files with corrupt data as decoded instead of refusing them.
    Every annotation's keypoint count is checked, and with DATASET.CHECK_IMAGES every image the dataset reads
    (CocoKeypoints.check_images): DatasetError naming the problems before anything is read.

    A top-down network (MODEL.NAME pose_hrnet, the registry's top_down) trains on DATASET.TRAIN_SET with a
    TopDownTrainingDataset (`_topdown_training`): one item per person, and is tested on DATASET.TEST_SET
    (dataset_splits). MPII (a dataset kind of layout mpii) is top-down data: `_mpii_dataset`."""
    top_down_training = is_train and model_entry(cfg.MODEL.NAME).top_down
    keypoints = keypoints_from_config(cfg)
    info = dataset_info(cfg.DATASET.DATASET if is_train else cfg.DATASET.DATASET_TEST)
    split = dataset_splits(cfg)[0 if is_train else 1]
    if info.layout == "mpii":
        return _mpii_dataset(cfg, info, keypoints, split, is_train)
    source = CocoKeypoints(cfg.DATASET.ROOT, split, keypoints, dataset=info,
                           skip_empty=is_train and not cfg.DATASET.TRAIN_ON_EMPTY_IMAGES,
                           accept_damaged=cfg.DATASET.ACCEPT_DAMAGED_IMAGES)
    if cfg.DATASET.CHECK_IMAGES:
        # The progress bar on torchrun's first process only: every process checks (they start together).
        source.check_images(progress=os.environ.get("RANK", "0") == "0")
    if not is_train:
        return EvalDataset(source)
    if len(source) == 0:
        raise ConfigError(f"the training split {split} of {cfg.DATASET.ROOT} has no annotated image")
    if top_down_training:
        return _topdown_training(cfg, source)
    d = cfg.DATASET
    outputs = build_output_specs(cfg) if outputs is None else tuple(outputs)
    sizes = target_sizes(outputs)
    # Joint indices address the tag maps: one map per joint, or one map shared by all joints.
    tag_per_joint = all(spec.tag_per_joint for spec in outputs if spec.has_tags)
    augment = AugmentParams(min_scale=d.MIN_SCALE, max_scale=d.MAX_SCALE, max_rotation=d.MAX_ROTATION,
                            max_translate=d.MAX_TRANSLATE, scale_type=d.SCALE_TYPE, flip_prob=d.FLIP)
    sigma = d.SIGMA if d.SIGMA > 0 else sizes[0] / 64.0
    mean, std = normalization_from_config(cfg)
    return TrainingDataset(source, d.INPUT_SIZE, list(sizes), sigma, d.MAX_NUM_PEOPLE, augment,
                           tag_per_joint=tag_per_joint, scale_aware_sigma=d.SCALE_AWARE_SIGMA,
                           base_size=d.BASE_SIZE, base_sigma=d.BASE_SIGMA, int_sigma=d.INT_SIGMA, mean=mean, std=std,
                           seed=cfg.SEED, cache_mb=d.IMAGE_CACHE_MB)


def _topdown_training(cfg: CfgNode, source: CocoKeypoints) -> TopDownTrainingDataset:
    """The official top-down training set: the people of `person_instances` (SELECT_DATA: `select_instances`),
    MODEL.IMAGE_SIZE crops, MODEL.HEATMAP_SIZE targets of MODEL.SIGMA, DATASET.* augmentation, COLOR_RGB,
    LOSS.USE_DIFFERENT_JOINTS_WEIGHT (the keypoint set's joint_weights). The half-body crop needs the keypoint
    set's upper_body joints, and the joint weights its joint_weights: ConfigError when the set has none."""
    d, keypoints = cfg.DATASET, source.keypoints
    if d.PROB_HALF_BODY > 0 and not keypoints.upper_body:
        raise ConfigError(f"DATASET.PROB_HALF_BODY {d.PROB_HALF_BODY}: the keypoint set {keypoints.name!r} names no "
                          f"upper-body joints for the half-body crop; set DATASET.PROB_HALF_BODY 0")
    joint_weights = None
    if cfg.LOSS.USE_DIFFERENT_JOINTS_WEIGHT:
        if not keypoints.joint_weights:
            raise ConfigError(f"LOSS.USE_DIFFERENT_JOINTS_WEIGHT: the keypoint set {keypoints.name!r} has no per-joint "
                              f"loss weights; set it False")
        joint_weights = keypoints.joint_weights
    people = person_instances(source, cfg.MODEL.IMAGE_SIZE)
    if d.SELECT_DATA:
        people = select_instances(people)
    augment = TopDownAugment(scale_factor=d.SCALE_FACTOR, rot_factor=d.ROT_FACTOR, flip_prob=d.FLIP,
                             prob_half_body=d.PROB_HALF_BODY, num_joints_half_body=d.NUM_JOINTS_HALF_BODY)
    mean, std = normalization_from_config(cfg)
    return TopDownTrainingDataset(source, people, cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.SIGMA,
                                  augment, mean=mean, std=std, color_rgb=d.COLOR_RGB, joint_weights=joint_weights,
                                  seed=cfg.SEED)


def _mpii_dataset(cfg: CfgNode, info: DatasetInfo, keypoints: KeypointSpec, split: str, is_train: bool):
    """The MPII split `split` of DATASET.ROOT (data.mpii; either annotation layout) for a top-down network.
    Training: an MpiiTrainingDataset, the official stacked hourglass code's items: MODEL.IMAGE_SIZE crops (square),
    MODEL.HEATMAP_SIZE targets of MODEL.SIGMA, DATASET.SCALE_FACTOR / ROT_FACTOR / FLIP augmentation (and its
    colour factors; there is no half-body crop: DATASET.PROB_HALF_BODY is not read), the input less
    MODEL.INPUT_MEAN, divided by MODEL.INPUT_STD (the official code: MPII's mean, data.mpii.MPII_MEAN, and std 1).
    Otherwise an MpiiEvalDataset. DATASET.CHECK_IMAGES: every image the split names must be there."""
    which = "DATASET.DATASET" if is_train else "DATASET.DATASET_TEST"
    if not model_entry(cfg.MODEL.NAME).top_down:
        raise ConfigError(f"{which} {info.name}: MPII annotates single people, for a top-down network "
                          f"(MODEL.NAME pose_hrnet, stacked_hourglass); MODEL.NAME {cfg.MODEL.NAME} is bottom-up")
    source = MpiiAnnotations(cfg.DATASET.ROOT, split, keypoints, dataset=info,
                             accept_damaged=cfg.DATASET.ACCEPT_DAMAGED_IMAGES)
    if cfg.DATASET.CHECK_IMAGES:
        source.check_images()
    if not is_train:
        return MpiiEvalDataset(source)
    if len(source) == 0:
        raise ConfigError(f"the training split {split} of {cfg.DATASET.ROOT} has no annotated person")
    (width, height), (map_width, map_height) = cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE
    if width != height or map_width != map_height:
        raise ConfigError(f"{which} {info.name}: the official MPII items are square crops and targets; "
                          f"MODEL.IMAGE_SIZE {list(cfg.MODEL.IMAGE_SIZE)} and HEATMAP_SIZE "
                          f"{list(cfg.MODEL.HEATMAP_SIZE)} must each be [n, n]")
    d = cfg.DATASET
    augment = MpiiAugment(scale_factor=d.SCALE_FACTOR, rot_factor=d.ROT_FACTOR, flip_prob=d.FLIP)
    mean, std = normalization_from_config(cfg)
    return MpiiTrainingDataset(source, int(width), int(map_width), cfg.MODEL.SIGMA, augment, mean=mean, std=std,
                               seed=cfg.SEED)
