"""Evaluation: run a Predictor over a split, write the COCO results JSON, score it with the dataset's metric
(data/registry.py: COCO's AP with pycocotools, CrowdPose's).

Used by tools/valid.py and by the trainer's periodic validation (with `validation_pictures` for TensorBoard).
"""
from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..data.metrics import EvaluationError
from ..fileio import write_json
from ..predictor import as_rgb_image
from ..vis import draw_people, heatmap_grid, tag_map_image
from .build import loader_worker_init
from .distributed import group_place

__all__ = ["evaluate", "format_metrics", "predict_split", "clean_results", "save_and_score", "validation_pictures"]

logger = logging.getLogger(__name__)


def _collate(batch):
    return [b[0] for b in batch], [b[1] for b in batch]


class _Shard(Dataset):
    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]


def predict_split(predictor, dataset: Dataset, batch_size: int = 1, workers: int = 0,
                  progress: bool = True, *, desc: str = "evaluating", leave: bool = True) -> list[dict]:
    """COCO keypoint results (one dict per person) for every (image, image_id) item of `dataset`.

    progress: a tqdm bar labelled `desc` on the first process; leave=False clears it when done (training logs).

    Under torch.distributed each rank takes every world_size-th image and the results of all ranks are
    gathered on every rank; images are never counted twice (no sampler padding).
    """
    rank, world = group_place()
    shard = _Shard(dataset, range(rank, len(dataset), world))
    loader = DataLoader(shard, batch_size=max(1, batch_size), num_workers=workers, collate_fn=_collate,
                        worker_init_fn=loader_worker_init)
    results: list[dict] = []
    done: set = set()
    for images, image_ids in tqdm(loader, desc=desc, unit="batch", leave=leave,
                                  disable=not (progress and rank == 0)):
        for people, image_id in zip(predictor.predict_batch(images), image_ids):
            done.add(int(image_id))
            results.extend(person.to_coco(int(image_id)) for person in people)
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, (results, sorted(done)))
        results, seen = [], set()
        for part, ids in gathered:
            fresh = set(ids) - seen
            results.extend(r for r in part if r["image_id"] in fresh)
            seen |= fresh
    return results


def clean_results(results: list[dict], num_joints: int) -> list[dict]:
    """Plain-float results; entries with NaN / inf values are dropped with a warning."""
    clean, dropped = [], 0
    for r in results:
        keypoints = [float(v) for v in r["keypoints"]]
        score = float(r["score"])
        if len(keypoints) != 3 * num_joints:
            raise EvaluationError(f"result for image {r['image_id']} has {len(keypoints)} keypoint values, "
                                  f"expected {3 * num_joints}")
        if not all(math.isfinite(v) for v in keypoints + [score]):
            dropped += 1
            continue
        out = {"image_id": int(r["image_id"]), "category_id": int(r.get("category_id", 1)),
               "keypoints": keypoints, "score": score}
        if "bbox" in r:
            out["bbox"] = [float(v) for v in r["bbox"]]
        clean.append(out)
    if dropped:
        logger.warning("dropped %d results with NaN or infinite values", dropped)
    return clean


def evaluate(predictor, dataset, batch_size: int = 1, workers: int = 0, results_file: str | None = None,
             progress: bool = True, *, desc: str = "evaluating", leave: bool = True):
    """Predict every image of an EvalDataset, optionally write the results JSON (rank 0), and score them.
    progress, desc, leave: the progress bar, as predict_split shows it.

    Returns (metrics, results): metrics is None for splits without annotations (test-dev), else the
    dataset's metric set (CrowdPose's for CrowdPose, COCO's otherwise).
    """
    source = dataset.source
    results = clean_results(predict_split(predictor, dataset, batch_size, workers, progress, desc=desc, leave=leave),
                            source.keypoints.num_joints)
    return save_and_score(results, source, results_file)


def save_and_score(results: list[dict], source, results_file: str | None = None) -> tuple[dict | None, list[dict]]:
    """(metrics, results): `results` (COCO keypoint records of the split `source`, a data.coco.CocoKeypoints)
    written to `results_file` by the first process when given, and scored with the dataset's metric (None for
    a split without annotations)."""
    if results_file and group_place()[0] == 0:
        write_json(results, results_file)
    if not source.has_annotations:
        return None, results
    return source.dataset.metric(source, results), results


def format_metrics(metrics: dict[str, float]) -> str:
    """A Markdown table of the metrics."""
    names = list(metrics)
    return "\n".join(["| " + " | ".join(names) + " |", "|" + "---|" * len(names),
                      "| " + " | ".join(f"{metrics[n]:.3f}" for n in names) + " |"])


def validation_pictures(predictor, image: np.ndarray) -> dict[str, np.ndarray]:
    """What a predictor makes of one (H, W, 3) uint8 RGB image, as (h, w, 3) uint8 RGB pictures:
    "poses": the image with the predicted people drawn; "heatmaps": vis.heatmap_grid of the aggregated
    heatmaps (the max over joints, then one tile per joint); "tags": vis.tag_map_image of the aggregated tags
    (averaged over the image and its mirror with flip test) and heatmaps.

    The maps are those grouping reads (Predictor.maps: one network run serves the people and the maps), in their
    own frame: the image resized to the network input, at the resolution of the last output (or of the
    input with TEST.PROJECT2IMAGE).
    """
    image = as_rgb_image(image)
    maps = predictor.maps([image])[0]
    people = predictor.people_from_maps(image, maps)
    heatmaps = maps.heatmaps.float().cpu().numpy()
    tags = maps.tags.float().cpu().numpy().mean(axis=3)
    return {"poses": draw_people(image, people, predictor.keypoints), "heatmaps": heatmap_grid(heatmaps),
            "tags": tag_map_image(tags, heatmaps, predictor.params.grouping.detection_threshold)}
