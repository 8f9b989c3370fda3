"""COCO keypoint evaluation: run a Predictor over a split, write COCO results JSON, score with COCOeval.

Used by tools/valid.py and by the trainer's periodic validation.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
from typing import Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

__all__ = ["evaluate", "format_metrics", "COCO_METRICS", "CROWDPOSE_METRICS", "EvaluationError", "predict_split", "clean_results",
           "coco_keypoint_metrics", "crowdpose_metrics", "write_json"]

logger = logging.getLogger(__name__)

COCO_METRICS = ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")
CROWDPOSE_METRICS = ("AP", "AP .5", "AP .75", "AR", "AR .5", "AR .75", "AP (easy)", "AP (medium)", "AP (hard)")


class EvaluationError(ValueError):
    """Results that cannot be evaluated against the ground truth (unknown image ids, wrong sizes)."""


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
                  progress: bool = True) -> list[dict]:
    """COCO keypoint results (one dict per person) for every (image, image_id) item of `dataset`.

    Under torch.distributed each rank takes every world_size-th image and the results of all ranks are
    gathered on every rank; images are never counted twice (no sampler padding).
    """
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
    shard = _Shard(dataset, range(rank, len(dataset), world))
    loader = DataLoader(shard, batch_size=max(1, batch_size), num_workers=workers, collate_fn=_collate)
    results: list[dict] = []
    done: set = set()
    for images, image_ids in tqdm(loader, desc="evaluating", unit="batch", disable=not (progress and rank == 0)):
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


def _check_ids(results: list[dict], gt_ids) -> None:
    unknown = sorted({r["image_id"] for r in results} - set(gt_ids))
    if unknown:
        raise EvaluationError(f"results name image ids that are not in the ground truth: {unknown[:10]}"
                              f"{' ...' if len(unknown) > 10 else ''}")


def coco_keypoint_metrics(coco_gt, results: list[dict], sigmas: np.ndarray) -> dict[str, float]:
    """pycocotools COCOeval (iouType "keypoints") with the dataset's OKS sigmas -> COCO_METRICS.
    No predictions at all scores 0 everywhere (pycocotools' loadRes cannot take an empty list)."""
    from pycocotools.cocoeval import COCOeval

    _check_ids(results, coco_gt.getImgIds())
    if not results:
        return {name: 0.0 for name in COCO_METRICS}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.params.useSegm = None
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(COCO_METRICS, evaluator.stats)}


def crowdpose_metrics(annotation_file: str, results: list[dict], sigmas: np.ndarray) -> dict[str, float]:
    """CrowdPose's metric set (AP, AP .5, AP .75, AR, AR .5, AR .75, AP easy / medium / hard) with
    faster-coco-eval, imported only here (pip install faster-coco-eval)."""
    try:
        from faster_coco_eval import COCO as FastCOCO
        from faster_coco_eval import COCOeval_faster
    except ImportError:
        raise EvaluationError("CrowdPose evaluation needs faster-coco-eval: pip install faster-coco-eval") from None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = FastCOCO(annotation_file)
    _check_ids(results, gt.getImgIds())
    if not results:
        return {name: 0.0 for name in CROWDPOSE_METRICS}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        evaluator = COCOeval_faster(gt, dt, iouType="keypoints_crowd", kpt_oks_sigmas=np.asarray(sigmas),
                                    use_area=False)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats_as_dict
    names = {"AP": "AP_all", "AP .5": "AP_50", "AP .75": "AP_75", "AR": "AR_all", "AR .5": "AR_50",
             "AR .75": "AR_75", "AP (easy)": "AP_easy", "AP (medium)": "AP_medium", "AP (hard)": "AP_hard"}
    return {ours: float(stats[theirs]) for ours, theirs in names.items()}


def write_json(obj, path: str) -> None:
    """Write JSON atomically (temporary file + rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def evaluate(predictor, dataset, batch_size: int = 1, workers: int = 0, results_file: str | None = None,
             progress: bool = True):
    """Predict every image of an EvalDataset, optionally write the results JSON (rank 0), and score them.

    Returns (metrics, results): metrics is None for splits without annotations (test-dev), CrowdPose's
    metric set for the crowd_pose layout, COCO's otherwise.
    """
    source = dataset.source
    results = clean_results(predict_split(predictor, dataset, batch_size, workers, progress),
                            source.keypoints.num_joints)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    if results_file and rank == 0:
        write_json(results, results_file)
    if not source.has_annotations:
        return None, results
    sigmas = source.keypoints.sigmas_array
    if source.layout == "crowd_pose":
        return crowdpose_metrics(source.annotation_file, results, sigmas), results
    return coco_keypoint_metrics(source.coco, results, sigmas), results


def format_metrics(metrics: dict[str, float]) -> str:
    """A Markdown table of the metrics."""
    names = list(metrics)
    return "\n".join(["| " + " | ".join(names) + " |", "|" + "---|" * len(names),
                      "| " + " | ".join(f"{metrics[n]:.3f}" for n in names) + " |"])
