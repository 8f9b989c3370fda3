"""The datasets this toolkit knows: name -> keypoint set, file layout and metric, in one table.

DATASET.DATASET (training) and DATASET.DATASET_TEST (evaluation) are looked up here. A name that is not
registered is a dataset of your own: COCO's file layout and metric, with the keypoint set described under
DATASET.KEYPOINTS (by joint name).

Layouts (DATASET.ROOT):
    coco       annotations/person_keypoints_{split}.json   images/{split}/<file_name>
               (COCO test-dev: annotations/image_info_{split}.json, images/test2017/)
    crowd_pose json/crowdpose_{split}.json                  images/<file_name>
    synthetic  COCO's layout and joints (stick figures drawn by `higherhrnet make-synthetic`)
    mpii       single-person MPII (top down, data/mpii.py), either layout, told by the files present:
               bearpaw's   mpii_annotations.json (both splits: train, val)  images/<img_paths>
                           detections_our_format.mat (the validation ground truth, from its evaluation/data/)
               mmpose's    annotations/mpii_{split}.json  images/<image>  annotations/mpii_gt_val.mat
    synthetic_mpii  mpii's layout and joints (stick figures of `higherhrnet make-synthetic --format mpii`,
               bearpaw's layout)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ..config import CfgNode, ConfigError
from ..keypoints import COCO_KEYPOINTS, CROWDPOSE_KEYPOINTS, MPII_KEYPOINTS, KeypointSpec
from ..pckh import PCKH_PARTS
from .metrics import COCO_METRICS, CROWDPOSE_METRICS, coco_keypoint_metrics, crowdpose_metrics

__all__ = ["DatasetInfo", "DATASETS", "dataset_info", "keypoints_from_config", "coco_paths", "crowdpose_paths",
           "mpii_paths", "MPII_METRICS"]


def coco_paths(root: str, split: str) -> tuple[str, str]:
    """(annotation file, image folder) of a split in COCO's layout."""
    annotations = os.path.join(root, "annotations", f"person_keypoints_{split}.json")
    if "test" in split and not os.path.exists(annotations):
        # COCO test-dev: image list only, images in test2017/.
        return os.path.join(root, "annotations", f"image_info_{split}.json"), os.path.join(root, "images", "test2017")
    return annotations, os.path.join(root, "images", split)


def crowdpose_paths(root: str, split: str) -> tuple[str, str]:
    """(annotation file, image folder) of a split in CrowdPose's layout."""
    return os.path.join(root, "json", f"crowdpose_{split}.json"), os.path.join(root, "images")


def mpii_paths(root: str, split: str) -> tuple[str, str]:
    """(annotation file, image folder) of a split in MPII's layouts: mmpose's annotations/mpii_{split}.json when
    it is there, else bearpaw's mpii_annotations.json (which holds both splits)."""
    mmpose = os.path.join(root, "annotations", f"mpii_{split}.json")
    annotations = mmpose if os.path.isfile(mmpose) else os.path.join(root, "mpii_annotations.json")
    return annotations, os.path.join(root, "images")


def _coco_metric(source, results: list[dict]) -> dict[str, float]:
    return coco_keypoint_metrics(source.coco, results, source.keypoints.sigmas_array)


def _crowdpose_metric(source, results: list[dict]) -> dict[str, float]:
    return crowdpose_metrics(source.annotation_file, results, source.keypoints.sigmas_array)


# MPII is scored by engine/mpii_eval.py, not by a metric over result records: PCKh (head-normalised PCK at 0.5,
# pckh.py) per body part, its mean and its mean at 0.1 need the head boxes of MPII's ground-truth file, and the
# PCK the official training code prints needs the heatmaps.
MPII_METRICS = tuple(part for part, _ in PCKH_PARTS) + ("Mean", "Mean@0.1", "PCK")


@dataclass(frozen=True)
class DatasetInfo:
    """A kind of dataset.

    keypoints: its keypoint set (None: described by DATASET.KEYPOINTS). paths(root, split) ->
    (annotation file, image folder). metric(source, results) -> {metric name: value} for a CocoKeypoints source
    and COCO-format results (None for the mpii layout, which engine.mpii_eval scores); metric_names lists the
    names its evaluation gives, in order. main_metric: the one that says which of two models is better (the
    best model kept during training, the log's "new best" line): AP for COCO's layout, PCKh's Mean for MPII.
    real_people: whether its images are photos of real people (False for the synthetic stick figures: a
    model trained on them is no use on photos). layout: the annotation format its files are read as: "coco"
    (data.coco.CocoKeypoints: images of several people, for both kinds of network) or "mpii" (data.mpii: one
    record per person, for top-down networks).
    """

    name: str
    keypoints: KeypointSpec | None
    paths: Callable[[str, str], tuple[str, str]]
    metric: Callable[..., dict[str, float]] | None
    metric_names: tuple[str, ...]
    main_metric: str = "AP"
    real_people: bool = True
    layout: str = "coco"


_COCO = DatasetInfo("coco", COCO_KEYPOINTS, coco_paths, _coco_metric, COCO_METRICS)
# The stick figures of `higherhrnet make-synthetic` (data/synthetic.py), written in COCO's layout with COCO's joints.
_SYNTHETIC = DatasetInfo("synthetic", COCO_KEYPOINTS, coco_paths, _coco_metric, COCO_METRICS, real_people=False)
_CROWDPOSE = DatasetInfo("crowd_pose", CROWDPOSE_KEYPOINTS, crowdpose_paths, _crowdpose_metric, CROWDPOSE_METRICS)
_MPII = DatasetInfo("mpii", MPII_KEYPOINTS, mpii_paths, None, MPII_METRICS, main_metric="Mean", layout="mpii")
# The stick figures of `higherhrnet make-synthetic --format mpii` (data/synthetic.py), in MPII's layout and joints.
_SYNTHETIC_MPII = DatasetInfo("synthetic_mpii", MPII_KEYPOINTS, mpii_paths, None, MPII_METRICS, main_metric="Mean",
                              real_people=False, layout="mpii")

# Both spellings of the official code (DATASET.DATASET coco_kpt, DATASET.DATASET_TEST coco).
DATASETS: dict[str, DatasetInfo] = {
    "coco": _COCO, "coco_kpt": _COCO, "synthetic": _SYNTHETIC,
    "crowd_pose": _CROWDPOSE, "crowd_pose_kpt": _CROWDPOSE, "mpii": _MPII,
    "synthetic_mpii": _SYNTHETIC_MPII,
}


def dataset_info(name: str) -> DatasetInfo:
    """The registered dataset `name`; any other name is a custom dataset in COCO's layout and metric."""
    return DATASETS.get(name) or DatasetInfo(name, None, coco_paths, _coco_metric, COCO_METRICS)


def keypoints_from_config(cfg: CfgNode) -> KeypointSpec:
    """DATASET.KEYPOINTS when it names joints, else the set registered for DATASET.DATASET.
    Raises ConfigError naming the config keys on inconsistencies."""
    kp = cfg.DATASET.KEYPOINTS
    if kp.NAMES:
        try:
            spec = KeypointSpec.from_lists(cfg.DATASET.DATASET, kp.NAMES, kp.FLIP_PAIRS, kp.SIGMAS, kp.SKELETON,
                                           kp.GROUPING_ORDER, kp.UPPER_BODY, kp.JOINT_WEIGHTS)
        except ValueError as e:
            raise ConfigError(f"DATASET.KEYPOINTS: {e}") from None
    else:
        spec = dataset_info(cfg.DATASET.DATASET).keypoints
        if spec is None:
            known = sorted(n for n, info in DATASETS.items() if info.keypoints is not None)
            raise ConfigError(f"no keypoint set is registered for dataset {cfg.DATASET.DATASET!r}; known: {known}; "
                              "or describe yours under DATASET.KEYPOINTS")
    if spec.num_joints != cfg.DATASET.NUM_JOINTS:
        raise ConfigError(f"keypoint set {spec.name!r} has {spec.num_joints} joints but DATASET.NUM_JOINTS is "
                          f"{cfg.DATASET.NUM_JOINTS}")
    return spec
