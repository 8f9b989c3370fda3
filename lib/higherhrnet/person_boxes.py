"""Person boxes for a top-down network (MODEL.NAME pose_hrnet), from the two sources of the HRNet paper's code
(deep-high-resolution-net.pytorch, `COCODataset`), with its filters:

    ground_truth_boxes(coco)                 the annotated people of a split (TEST.USE_GT_BBOX True), score 1
    detection_boxes(path, image_thre)        a COCO detection-results JSON (TEST.COCO_BBOX_FILE): category 1
                                             detections scoring at least TEST.IMAGE_THRE
    boxes_from_config(cfg, coco)             the one TEST.USE_GT_BBOX chooses

Boxes are COCO's (x, y, w, h) in image pixels, float64 as the official code reads them from JSON; their order
is the official dataset's, which decides how crops are batched (and so the last bits of the results).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from yacs.config import CfgNode

from .data.checks import DatasetError
from .data.topdown import person_annotations

__all__ = ["PersonBoxes", "ground_truth_boxes", "detection_boxes", "boxes_from_config"]


@dataclass(frozen=True)
class PersonBoxes:
    """N person boxes: image_ids (N,) int64, boxes (N, 4) float64 x, y, w, h in image pixels, scores (N,)
    float64 (the box's confidence: 1 for ground truth, the detector's score)."""

    image_ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.image_ids)

    @classmethod
    def from_lists(cls, image_ids: Iterable[int], boxes: Iterable, scores: Iterable[float]) -> "PersonBoxes":
        return cls(np.asarray(list(image_ids), dtype=np.int64).reshape(-1),
                   np.asarray(list(boxes), dtype=np.float64).reshape(-1, 4),
                   np.asarray(list(scores), dtype=np.float64).reshape(-1))


def ground_truth_boxes(coco) -> PersonBoxes:
    """The annotated people of a pycocotools COCO split, as the official test with TEST.USE_GT_BBOX reads them
    (`_load_coco_keypoint_annotations`): images in coco.getImgIds() order; per image the people of the first
    category as data.topdown.person_annotations filters and clips them, the training set's rule; score 1."""
    person = coco.getCatIds()[:1]
    image_ids, boxes = [], []
    for image_id in coco.getImgIds():
        for _, box in person_annotations(coco, image_id, person):
            image_ids.append(image_id)
            boxes.append(box)
    return PersonBoxes.from_lists(image_ids, boxes, [1.0] * len(image_ids))


def detection_boxes(path: str, image_thre: float, image_ids: Iterable[int] | None = None) -> PersonBoxes:
    """The detections of a COCO detection-results file (a JSON list of {image_id, category_id, bbox, score}),
    in the file's order, as the official test reads TEST.COCO_BBOX_FILE (`_load_coco_person_detection_results`):
    category 1 (person) only, score at least image_thre (TEST.IMAGE_THRE). image_ids: the split's images;
    DatasetError for a detection of another image (pycocotools could not score it), a file that cannot be
    read or is not such a list."""
    try:
        with open(path, encoding="utf-8") as f:
            detections = json.load(f)
    except OSError as e:
        raise DatasetError(f"cannot read the person detections {path} (TEST.COCO_BBOX_FILE): "
                           f"{e.strerror or e}") from None
    except ValueError as e:
        raise DatasetError(f"{path} (TEST.COCO_BBOX_FILE) is not JSON: {e}") from None
    if not isinstance(detections, list):
        raise DatasetError(f"{path} (TEST.COCO_BBOX_FILE): expected a list of COCO detection results "
                           f"(image_id, category_id, bbox, score), got a {type(detections).__name__}")
    known = None if image_ids is None else set(int(i) for i in image_ids)
    kept_ids, boxes, scores = [], [], []
    for i, det in enumerate(detections):
        try:
            if det["category_id"] != 1 or det["score"] < image_thre:
                continue
            image_id, box, score = int(det["image_id"]), [float(v) for v in det["bbox"]], float(det["score"])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{path} (TEST.COCO_BBOX_FILE): entry {i} is not a COCO detection result "
                               f"(image_id, category_id, bbox [x, y, w, h], score): {str(det)[:120]}") from None
        if len(box) != 4:
            raise DatasetError(f"{path} (TEST.COCO_BBOX_FILE): entry {i} has a bbox of {len(box)} numbers, not 4")
        if known is not None and image_id not in known:
            raise DatasetError(f"{path} (TEST.COCO_BBOX_FILE): entry {i} is a detection in image {image_id}, which "
                               f"is not in the split being evaluated (detections of another split?)")
        kept_ids.append(image_id)
        boxes.append(box)
        scores.append(score)
    return PersonBoxes.from_lists(kept_ids, boxes, scores)


def boxes_from_config(cfg: CfgNode, coco) -> PersonBoxes:
    """TEST.USE_GT_BBOX True: ground_truth_boxes(coco); False: detection_boxes(TEST.COCO_BBOX_FILE,
    TEST.IMAGE_THRE) of coco's images."""
    if cfg.TEST.USE_GT_BBOX:
        return ground_truth_boxes(coco)
    return detection_boxes(cfg.TEST.COCO_BBOX_FILE, cfg.TEST.IMAGE_THRE, coco.getImgIds())
