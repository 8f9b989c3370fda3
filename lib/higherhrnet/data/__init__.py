"""Datasets: COCO-format keypoint data, training augmentation and targets."""
from __future__ import annotations

from ..config import CfgNode, ConfigError
from ..core.inference import input_normalization
from ..keypoints import keypoints_from_cfg
from .coco import CocoKeypoints, DatasetError, EvalDataset, TrainingDataset
from .transforms import AugmentParams

__all__ = ["build_dataset", "CocoKeypoints", "DatasetError", "EvalDataset", "TrainingDataset", "AugmentParams"]

_LAYOUTS = {"coco": "coco", "coco_kpt": "coco", "crowd_pose": "crowd_pose", "crowd_pose_kpt": "crowd_pose"}


def build_dataset(cfg: CfgNode, is_train: bool = True):
    """Training: a TrainingDataset over DATASET.TRAIN, one target set per DATASET.OUTPUT_SIZE entry, inputs
    normalised with MODEL.INPUT_MEAN / INPUT_STD. Otherwise an EvalDataset over DATASET.TEST yielding
    (image (H, W, 3) uint8 RGB, image id). Unknown DATASET.DATASET names use the COCO layout."""
    try:
        keypoints = keypoints_from_cfg(cfg)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    name = cfg.DATASET.DATASET if is_train else cfg.DATASET.DATASET_TEST
    layout = _LAYOUTS.get(name, "coco")
    split = cfg.DATASET.TRAIN if is_train else cfg.DATASET.TEST
    source = CocoKeypoints(cfg.DATASET.ROOT, split, keypoints, layout=layout, skip_empty=is_train)
    if not is_train:
        return EvalDataset(source)
    d = cfg.DATASET
    augment = AugmentParams(min_scale=d.MIN_SCALE, max_scale=d.MAX_SCALE, max_rotation=d.MAX_ROTATION,
                            max_translate=d.MAX_TRANSLATE, scale_type=d.SCALE_TYPE, flip_prob=d.FLIP)
    sigma = d.SIGMA if d.SIGMA > 0 else d.OUTPUT_SIZE[0] / 64.0
    mean, std = input_normalization(cfg)
    return TrainingDataset(source, d.INPUT_SIZE, list(d.OUTPUT_SIZE), sigma, d.MAX_NUM_PEOPLE, augment,
                           tag_per_joint=cfg.MODEL.TAG_PER_JOINT, scale_aware_sigma=d.SCALE_AWARE_SIGMA,
                           base_size=d.BASE_SIZE, base_sigma=d.BASE_SIGMA, int_sigma=d.INT_SIGMA, mean=mean, std=std,
                           seed=cfg.SEED)
