"""Evaluation of a single-person network on MPII, as bearpaw/pytorch-pose validates its stacked hourglass
(example/main.py validate()) and MPII's PCKh script scores the predictions (higherhrnet.pckh):

    predict_mpii(network, load_image, people, params)          every person's joints, at the crops bearpaw's
                                                               Mpii dataset takes (topdown.bearpaw_center_scale)
    evaluate_mpii(network, load_image, people, truth, params)  (metrics, poses): PCKh's Head .. Ankle, Mean,
                                                               Mean@0.1 and, given the target heatmaps, the PCK
                                                               the training code prints
    format_pckh(metrics)                                       the metrics as a Markdown table
    evaluate_mpii_split(cfg, network, source)                  all of it for a split of an MPII data set
                                                               (data.mpii.MpiiAnnotations), as `higherhrnet eval`
                                                               and validation during training run it
    write_mpii_results(source, poses, out_dir)                 the predictions as files: a JSON of every person's
                                                               joints, and bearpaw's preds_valid.mat layout

The people and their ground truth are plain arrays in this project's image pixels (0-based); they go into
MPII's 1-based frame for PCKh (pckh.to_matlab_frame: + 1, which gives back every coordinate of MPII's
validation annotations exactly).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from yacs.config import CfgNode

from ..config import ConfigError
from ..data.checks import DatasetError
from ..data.mpii import GROUND_TRUTH_JOINT_NAMES, MpiiAnnotations, MpiiPerson, mpii_test_targets
from ..fileio import atomic_write, write_json
from ..pckh import pck, pckh, to_matlab_frame
from ..topdown import PersonPoses, TopDownParams, bearpaw_center_scale, bearpaw_max_predictions
from .distributed import group_place
from .topdown_eval import predict_people

__all__ = ["MpiiPeople", "MpiiTruth", "predict_mpii", "evaluate_mpii", "format_pckh", "mpii_people", "mpii_truth",
           "evaluate_mpii_split", "mpii_results", "write_mpii_results", "PREDICTIONS_KEY"]

# The variable bearpaw's save_pred writes its (N, 16, 2) predictions under (preds_valid.mat), and its
# evaluation/eval_PCKh.py reads.
PREDICTIONS_KEY = "preds"


class MpiiPeople(NamedTuple):
    """N people of an MPII split. image_ids (N,) int: what load_image takes. centers (N, 2) float64: each
    person's position (MPII's objpos) in image pixels (objpos - 1). scales (N,) float64: MPII's scale
    (scale_provided: about the person's height / 200)."""

    image_ids: np.ndarray
    centers: np.ndarray
    scales: np.ndarray


class MpiiTruth(NamedTuple):
    """Their ground truth. joints (N, 16, 2) float64: x, y in image pixels (MPII's values - 1), MPII's joint
    order. visible (N, 16) bool: annotated (not the .mat's jnt_missing). head_boxes (N, 2, 2) float64: the head
    box's corners (x1, y1), (x2, y2) in image pixels."""

    joints: np.ndarray
    visible: np.ndarray
    head_boxes: np.ndarray


def predict_mpii(network: nn.Module, load_image: Callable[[int], np.ndarray], people: MpiiPeople,
                 params: TopDownParams, device: torch.device | str | None = None, progress: bool = False,
                 workers: int = 0, heatmaps_seen: Callable[[int, np.ndarray], None] | None = None) -> PersonPoses:
    """Keypoints (N, J, 3) float32 (x, y in image pixels, heatmap maximum) of every person, in order:
    cropped where bearpaw's Mpii dataset crops at test time (the centre 15 x scale px lower, the scale x 1.25),
    then topdown_eval.predict_people (params.batch_size people a batch, params' crop, flip test and final
    predictions; load_image, workers and heatmaps_seen as there)."""
    centers, scales = bearpaw_center_scale(people.centers, people.scales)
    return predict_people(network, load_image, people.image_ids, centers, scales, params, device, progress, workers,
                          heatmaps_seen)


def evaluate_mpii(network: nn.Module, load_image: Callable[[int], np.ndarray], people: MpiiPeople,
                  truth: MpiiTruth, params: TopDownParams,
                  target_heatmaps: Callable[[int, int], np.ndarray] | None = None, pckh_rules: str = "bearpaw",
                  device: torch.device | str | None = None, progress: bool = False,
                  workers: int = 0) -> tuple[dict[str, float], PersonPoses]:
    """(metrics, poses) of a split: predict_mpii's poses; metrics Head, Shoulder, Elbow, Wrist, Hip, Knee,
    Ankle, Mean, Mean@0.1 (PCKh in percent, as pckh_rules computes it: pckh.PCKH_RULES) and, given
    target_heatmaps(start, stop) -> (stop - start, J, h, w) (the training targets of those people, which
    bearpaw's validate() scores against), PCK: the accuracy its validate() prints (pckh.pck per batch of
    params.batch_size people, averaged weighted by batch size in float32, as its AverageMeter). Under
    torch.distributed (predict_people shares the batches among the ranks) every rank gets the metrics of the
    whole split, the PCK averaged over all batches in their order."""
    batch_sums = []

    def score(start: int, heatmaps: np.ndarray) -> None:
        targets = np.asarray(target_heatmaps(start, start + len(heatmaps)))
        accuracy, _ = pck(bearpaw_max_predictions(heatmaps)[0], bearpaw_max_predictions(targets)[0],
                          heatmaps.shape[3])
        batch_sums.append((start, accuracy, len(heatmaps)))

    poses = predict_mpii(network, load_image, people, params, device, progress, workers,
                         score if target_heatmaps is not None else None)
    result = pckh(to_matlab_frame(poses.keypoints), to_matlab_frame(truth.joints), truth.visible,
                  to_matlab_frame(truth.head_boxes), pckh_rules)
    metrics = dict(result.metrics)
    if target_heatmaps is not None:
        world = group_place()[1]
        if world > 1:
            gathered: list = [None] * world
            dist.all_gather_object(gathered, batch_sums)
            batch_sums = sorted(part for rank_sums in gathered for part in rank_sums)
        total, count = np.float32(0), 0
        for _, accuracy, n in batch_sums:
            total = np.float32(total + np.float32(accuracy * np.float32(n)))
            count += n
        metrics["PCK"] = float(np.float32(total / np.float32(count))) if count else float("nan")
    return metrics, poses


def format_pckh(metrics: dict[str, float]) -> str:
    """A Markdown table of evaluate_mpii's metrics: PCKh in percent with 2 decimals (as the PCKh scripts print
    it), PCK as a fraction with 4 (as bearpaw's training log)."""
    names = list(metrics)
    return "\n".join(["| " + " | ".join(names) + " |", "|" + "---|" * len(names),
                      "| " + " | ".join(f"{metrics[n]:.4f}" if n == "PCK" else f"{metrics[n]:.2f}" for n in names)
                      + " |"])


def mpii_people(source: MpiiAnnotations) -> MpiiPeople:
    """The people of an MPII split as evaluate_mpii takes them: in the split's order, each with the index of the
    split's first person in the same image as its image id (source.load_image reads that image), so that
    consecutive people of one image share one read."""
    first_of_image: dict[str, int] = {}
    image_ids = np.array([first_of_image.setdefault(p.image, i) for i, p in enumerate(source.people)], dtype=np.int64)
    centers = np.array([p.center for p in source.people], dtype=np.float64).reshape(-1, 2) - 1.0
    scales = np.array([p.scale for p in source.people], dtype=np.float64)
    return MpiiPeople(image_ids, centers, scales)


def mpii_truth(source: MpiiAnnotations) -> MpiiTruth:
    """The ground truth of an MPII split from MPII's evaluation file (source.ground_truth(): one row per person
    of the split, DatasetError otherwise): joints and head boxes - 1 (into this project's frame), the joints
    not missing visible. DatasetError when the file's joints are not in MPII's order
    (data.mpii.GROUND_TRUTH_JOINT_NAMES)."""
    truth = source.ground_truth()
    if truth.joint_names != GROUND_TRUTH_JOINT_NAMES:
        raise DatasetError(f"{source.ground_truth_file()}: dataset_joints {list(truth.joint_names)} are not MPII's "
                           f"joints in MPII's order {list(GROUND_TRUTH_JOINT_NAMES)}")
    return MpiiTruth(truth.joints - 1.0, ~truth.missing, truth.head_boxes - 1.0)


def _test_targets(people: Sequence[MpiiPerson], heatmap_size: int,
                  sigma: float) -> Callable[[int, int], np.ndarray]:
    # evaluate_mpii's target_heatmaps: the official test items' targets of people start .. stop - 1.
    def targets(start: int, stop: int) -> np.ndarray:
        return np.stack([mpii_test_targets(person, heatmap_size, sigma)[0] for person in people[start:stop]])
    return targets


def evaluate_mpii_split(cfg: CfgNode, network: nn.Module, source: MpiiAnnotations,
                        device: torch.device | str | None = None, batch_size: int | None = None, workers: int = 0,
                        progress: bool = True) -> tuple[dict[str, float], PersonPoses]:
    """(metrics, poses) of `network` (in eval mode) on an MPII split: evaluate_mpii on the split's people
    (mpii_people) and ground truth (mpii_truth), the test-time stages of TopDownParams.from_config (crop, flip
    test, final predictions; batch_size people a forward pass, default TEST.BATCH_SIZE_PER_GPU), PCKh by
    bearpaw's eval_PCKh.py (pckh.PCKH_RULES), and the PCK of bearpaw's validate() against the split's test
    targets: MODEL.HEATMAP_SIZE maps (square) with Gaussians of MODEL.SIGMA, drawn as its Mpii dataset draws
    them (data.mpii.mpii_test_targets). workers: image-reading processes. ConfigError for non-square heatmaps,
    DatasetError when the ground truth is missing or does not fit the split."""
    params = TopDownParams.from_config(cfg, source.keypoints)
    if batch_size:
        params = dataclasses.replace(params, batch_size=batch_size)
    map_width, map_height = (int(v) for v in cfg.MODEL.HEATMAP_SIZE)
    if map_width != map_height:
        raise ConfigError(f"MODEL.HEATMAP_SIZE {list(cfg.MODEL.HEATMAP_SIZE)}: MPII's crops and targets are square "
                          f"(bearpaw's test items); give [n, n]")
    truth = mpii_truth(source)
    return evaluate_mpii(network, source.load_image, mpii_people(source), truth, params,
                         target_heatmaps=_test_targets(source.people, map_width, cfg.MODEL.SIGMA), device=device,
                         progress=progress, workers=workers)


def mpii_results(source: MpiiAnnotations, poses: PersonPoses) -> list[dict]:
    """One record per person of the split, in its order: image (the file, as the annotation file names it),
    person (its index in the split: the row of the ground truth and of the .mat's predictions), keypoints
    [x, y, score] x 16 (image pixels, this project's 0-based frame; score: the heatmap maximum), center [x, y]
    and scale [s, s] of its crop (image pixels; units of 200 px). Plain Python numbers."""
    keypoints = np.asarray(poses.keypoints, dtype=np.float64)
    return [{"image": person.image, "person": i, "keypoints": [float(v) for v in keypoints[i].reshape(-1)],
             "center": [float(v) for v in poses.centers[i]], "scale": [float(v) for v in poses.scales[i]]}
            for i, person in enumerate(source.people)]


def write_mpii_results(source: MpiiAnnotations, poses: PersonPoses, out_dir: str) -> list[str]:
    """Write a split's predictions into out_dir; returns the paths written:
    keypoints_<split>_results.json   mpii_results' records
    preds_<split>.mat                the predictions as bearpaw's save_pred writes them (its preds_valid.mat):
                                     `preds` (N, 16, 2) float32, x, y in MPII's 1-based frame, people in the
                                     split's order, which its evaluation/eval_PCKh.py scores against the ground
                                     truth file
    Each file is written whole (fileio: temporary name, then renamed); WriteError naming a file that cannot be."""
    import scipy.io

    results_file = os.path.join(out_dir, f"keypoints_{source.split}_results.json")
    preds_file = os.path.join(out_dir, f"preds_{source.split}.mat")
    write_json(mpii_results(source, poses), results_file)
    predictions = to_matlab_frame(np.asarray(poses.keypoints, dtype=np.float32))
    with atomic_write(preds_file) as f:
        scipy.io.savemat(f, {PREDICTIONS_KEY: predictions})
    return [results_file, preds_file]
