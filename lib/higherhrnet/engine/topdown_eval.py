"""Evaluation of a top-down network (MODEL.NAME pose_hrnet) as the HRNet paper's code scores it
(deep-high-resolution-net.pytorch: core/function.validate, then COCODataset.evaluate):

    predict_boxes(network, load_image, boxes, params)   every box's keypoints; crops in batches of
                                                        params.batch_size taken across images in the boxes'
                                                        order, as the official loader batches them
    score_people(boxes, poses, ...)                     rescoring, OKS-NMS per image (oks.box_oks_nms), the
                                                        COCO keypoint results
    evaluate_top_down(network, source, boxes, params, oks_thre)   all of it, the results file and the metric

The results file has the bottom-up evaluation's format (engine.evaluation.clean_results: image_id,
category_id, keypoints, score, bbox; here bbox is the person box that made the crop).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..oks import box_oks_nms, box_soft_oks_nms
from ..person_boxes import PersonBoxes
from ..topdown import PersonPoses, TopDownParams, box_to_center_scale, crop_function, poses_of_crops, rescore
from .build import loader_worker_init
from .distributed import group_place
from .evaluation import clean_results, save_and_score

__all__ = ["predict_boxes", "predict_people", "score_people", "evaluate_top_down"]


class _CropBatches(Dataset):
    """Item k: the crops (n, h, w, 3) RGB of the k-th batch of people (`crop`: a topdown.CROPS function), made
    in a loader worker. Each batch reads its own images (an image whose people straddle two batches is read by
    both)."""

    def __init__(self, load_image: Callable[[int], np.ndarray], image_ids: np.ndarray, centers: np.ndarray,
                 scales: np.ndarray, image_size: tuple[int, int], batch_size: int, crop: Callable):
        self.load_image, self.image_ids, self.centers, self.scales = load_image, image_ids, centers, scales
        self.image_size, self.batch_size, self.crop = image_size, batch_size, crop
        self.current: dict[int, np.ndarray] = {}    # the image of the last box cropped: {image id: image}

    def __len__(self) -> int:
        return -(-len(self.centers) // self.batch_size)

    def __getitem__(self, k: int) -> np.ndarray:
        return self.crops(k * self.batch_size, min((k + 1) * self.batch_size, len(self.centers)))

    def crops(self, start: int, stop: int) -> np.ndarray:
        out = []
        for i in range(start, stop):
            image_id = int(self.image_ids[i])
            if image_id not in self.current:
                self.current.clear()
                self.current[image_id] = self.load_image(image_id)
            out.append(self.crop(self.current[image_id], self.centers[i:i + 1], self.scales[i:i + 1],
                                 self.image_size))
        return np.concatenate(out)


def predict_boxes(network: nn.Module, load_image: Callable[[int], np.ndarray], boxes: PersonBoxes,
                  params: TopDownParams, device: torch.device | str | None = None,
                  progress: bool = False, workers: int = 0) -> PersonPoses:
    """Keypoints (N, J, 3) float32 (x, y in image pixels, heatmap maximum), centres and scales of N boxes:
    predict_people at their box_to_center_scale crops."""
    centers, scales = box_to_center_scale(boxes.boxes, params.image_size)
    return predict_people(network, load_image, boxes.image_ids, centers, scales, params, device, progress, workers)


def predict_people(network: nn.Module, load_image: Callable[[int], np.ndarray], image_ids: np.ndarray,
                   centers: np.ndarray, scales: np.ndarray, params: TopDownParams,
                   device: torch.device | str | None = None, progress: bool = False, workers: int = 0,
                   heatmaps_seen: Callable[[int, np.ndarray], None] | None = None) -> PersonPoses:
    """Keypoints (N, J, 3) float32 (x, y in image pixels, heatmap maximum) of N people, person i cropped from
    image image_ids[i] at centers[i], scales[i] (N, 2) by params.crop.

    load_image(image_id) -> (H, W, 3) uint8 RGB; each image is read once per run of consecutive people (of a
    batch, with workers). The crops go through the network params.batch_size at a time in the people's order,
    whatever image they come from, as the official validate() batches its dataset's crops (so its float results
    are matched, not only approached). workers > 0: images are read and cropped in that many loader processes
    (load_image must then be picklable), the same crops in the same order. The network should be in eval mode.
    heatmaps_seen: as poses_of_crops, its start the batch's first person among the N (under torch.distributed,
    called for this process's batches only).

    Under torch.distributed each rank predicts every world_size-th of those batches, whole, and the keypoints of
    all ranks are gathered on every rank: each crop still goes through the network in the batch it would in one
    process, so the results do not depend on the number of processes.
    """
    image_ids, centers, scales = np.asarray(image_ids), np.asarray(centers), np.asarray(scales)
    rank, world = group_place()
    if world == 1:
        return _predict_people(network, load_image, image_ids, centers, scales, params, device, progress, workers,
                               heatmaps_seen)
    # The people of batches rank, rank + world, ...: whole batches in order, only the last of all possibly short,
    # so that batching the shard by params.batch_size gives back the same batches.
    mine = np.flatnonzero(np.arange(len(centers)) // params.batch_size % world == rank)

    def seen(start: int, heatmaps: np.ndarray) -> None:
        heatmaps_seen(int(mine[start]), heatmaps)      # the shard's person `start` is person mine[start]

    poses = _predict_people(network, load_image, image_ids[mine], centers[mine], scales[mine], params, device,
                            progress, workers, seen if heatmaps_seen is not None else None)
    gathered: list = [None] * world
    dist.all_gather_object(gathered, (mine, poses.keypoints))
    keypoints = np.zeros((len(centers), *poses.keypoints.shape[1:]), dtype=poses.keypoints.dtype)
    for indices, part in gathered:
        keypoints[indices] = part
    return PersonPoses(keypoints, centers, scales)


def _predict_people(network, load_image, image_ids, centers, scales, params, device, progress, workers,
                    heatmaps_seen) -> PersonPoses:
    """predict_people in this process: every person given."""
    batches = _CropBatches(load_image, image_ids, centers, scales, params.image_size, params.batch_size,
                           crop_function(params.crop))
    if workers > 0 and len(batches) > 1:
        loader = iter(DataLoader(batches, batch_size=None, num_workers=workers,
                                 worker_init_fn=loader_worker_init))

        def crops(start: int, stop: int) -> np.ndarray:
            # poses_of_crops asks for the batches in order, as the (unshuffled) loader yields them.
            return np.asarray(next(loader))
    else:
        crops = batches.crops
    return poses_of_crops(network, crops, centers, scales, params, device,
                          lambda starts: tqdm(starts, desc="people", unit="batch", disable=not progress),
                          heatmaps_seen)


def score_people(boxes: PersonBoxes, poses: PersonPoses, sigmas: np.ndarray, in_vis_thre: float,
                 oks_thre: float, soft_nms: bool = False) -> list[dict]:
    """COCO keypoint results of the kept people, as the official evaluation makes them: per image (in the order
    images first appear in `boxes`), every person rescored (topdown.rescore: box score x mean joint score
    above in_vis_thre), then OKS-NMS at oks_thre (oks.box_oks_nms, all joints, each person's area its crop's
    w * h: prod(scale * 200) in float32 as the official code takes it); the kept people in the order NMS keeps
    them (soft_nms: oks.box_soft_oks_nms instead, TEST.SOFT_NMS). Records: image_id, category_id 1, keypoints,
    score, bbox (the person's box), center, scale."""
    keypoints = np.asarray(poses.keypoints, dtype=np.float32)
    # The official code writes COCO's sigmas as tenths (.26 / 10.0), a last bit away from 0.026.
    sigmas = np.round(np.asarray(sigmas, dtype=np.float64) * 10, 12) / 10.0
    scores = rescore(keypoints, boxes.scores, in_vis_thre)
    areas = np.prod(poses.scales * 200, 1).astype(np.float64)
    by_image: dict[int, list[int]] = {}
    for i, image_id in enumerate(boxes.image_ids):
        by_image.setdefault(int(image_id), []).append(i)
    records = []
    for image_id, members in by_image.items():
        members = np.asarray(members)
        nms = box_soft_oks_nms if soft_nms else box_oks_nms
        kept = nms(keypoints[members], scores[members], areas[members], oks_thre, sigmas)
        for k in kept:
            i = members[k]
            records.append({"image_id": image_id, "category_id": 1,
                            "keypoints": [float(v) for v in keypoints[i].astype(np.float64).reshape(-1)],
                            "score": float(scores[i]), "bbox": [float(v) for v in boxes.boxes[i]],
                            "center": [float(v) for v in poses.centers[i]],
                            "scale": [float(v) for v in poses.scales[i]]})
    return records


def evaluate_top_down(network: nn.Module, source, boxes: PersonBoxes, params: TopDownParams, oks_thre: float,
                      results_file: str | None = None, device: torch.device | str | None = None,
                      progress: bool = True, soft_nms: bool = False, workers: int = 0):
    """Predict every box of a split (source: data.coco.CocoKeypoints), score the people (score_people),
    optionally write the results JSON (the first process), and score them with the dataset's metric.
    workers: image-reading processes (predict_boxes). Returns (metrics, results) as engine.evaluate does:
    metrics None for a split without annotations."""
    poses = predict_boxes(network, _SourceImages(source), boxes, params, device, progress, workers)
    records = score_people(boxes, poses, source.keypoints.sigmas_array, params.in_vis_thre, oks_thre, soft_nms)
    return save_and_score(clean_results(records, source.keypoints.num_joints), source, results_file)


class _SourceImages:
    """load_image(image_id) of a split (data.coco.CocoKeypoints): its (H, W, 3) uint8 RGB image; picklable, for
    loader workers."""

    def __init__(self, source):
        self.source = source
        self.index = {image_id: i for i, image_id in enumerate(source.ids)}

    def __call__(self, image_id: int) -> np.ndarray:
        return self.source.load_image(self.index[image_id])
