"""Evaluation of a single-person network on MPII, as bearpaw/pytorch-pose validates its stacked hourglass
(example/main.py validate()) and MPII's PCKh script scores the predictions (higherhrnet.pckh):

    predict_mpii(network, load_image, people, params)          every person's joints, at the crops bearpaw's
                                                               Mpii dataset takes (topdown.bearpaw_center_scale)
    evaluate_mpii(network, load_image, people, truth, params)  (metrics, poses): PCKh's Head .. Ankle, Mean,
                                                               Mean@0.1 and, given the target heatmaps, the PCK
                                                               the training code prints
    format_pckh(metrics)                                       the metrics as a Markdown table

The people and their ground truth are plain arrays in this project's image pixels (0-based); they go into
MPII's 1-based frame for PCKh (pckh.to_matlab_frame: + 1, which gives back every coordinate of MPII's
validation annotations exactly).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import nn

from ..pckh import pck, pckh, to_matlab_frame
from ..topdown import PersonPoses, TopDownParams, bearpaw_center_scale, bearpaw_max_predictions
from .topdown_eval import predict_people

__all__ = ["MpiiPeople", "MpiiTruth", "predict_mpii", "evaluate_mpii", "format_pckh"]


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
    params.batch_size people, averaged weighted by batch size in float32, as its AverageMeter)."""
    batch_sums = []

    def score(start: int, heatmaps: np.ndarray) -> None:
        targets = np.asarray(target_heatmaps(start, start + len(heatmaps)))
        accuracy, _ = pck(bearpaw_max_predictions(heatmaps)[0], bearpaw_max_predictions(targets)[0],
                          heatmaps.shape[3])
        batch_sums.append((accuracy, len(heatmaps)))

    poses = predict_mpii(network, load_image, people, params, device, progress, workers,
                         score if target_heatmaps is not None else None)
    result = pckh(to_matlab_frame(poses.keypoints), to_matlab_frame(truth.joints), truth.visible,
                  to_matlab_frame(truth.head_boxes), pckh_rules)
    metrics = dict(result.metrics)
    if target_heatmaps is not None:
        total, count = np.float32(0), 0
        for accuracy, n in batch_sums:
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
