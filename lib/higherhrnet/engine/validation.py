"""Validation during training (TRAIN.VAL_FREQ): the metrics of the current weights on the test split, as
`higherhrnet eval` scores them, by the kind of network and the layout of the data:

    bottom-up network                  COCO's AP (or CrowdPose's metrics) of a raw Predictor (engine.evaluation)
    top-down network, COCO's layout    COCO's AP on the boxes the config names (engine.topdown_eval)
    top-down network, MPII's layout    PCKh and bearpaw's PCK (engine.mpii_eval)

The dataset kind's main_metric (data.registry.DatasetInfo: AP, or PCKh's Mean) is the one that picks the best
model.
"""
from __future__ import annotations

import torch
from torch import nn
from yacs.config import CfgNode

from ..config import ConfigError
from ..inference import InferenceParams
from ..keypoints import KeypointSpec
from ..models.registry import model_entry
from ..person_boxes import boxes_from_config
from ..predictor import Predictor
from ..topdown import TopDownParams
from .evaluation import evaluate
from .mpii_eval import evaluate_mpii_split, mpii_truth
from .topdown_eval import evaluate_top_down

__all__ = ["check_validation_settings", "check_validation_split", "validate"]


def check_validation_settings(cfg: CfgNode, keypoints: KeypointSpec, outputs) -> None:
    """The TEST.* settings that validation during training (`validate`) will use, checked now (ConfigError)
    rather than after the first epoch: a top-down network's (TopDownParams), a bottom-up one's
    (InferenceParams)."""
    if model_entry(cfg.MODEL.NAME).top_down:
        TopDownParams.from_config(cfg, keypoints)
    else:
        InferenceParams.from_config(cfg, keypoints, outputs)


def check_validation_split(cfg: CfgNode, dataset) -> None:
    """That the test split `dataset` (build_dataset's, is_train False) can be scored, checked before training:
    ConfigError for a split without annotations; for MPII, DatasetError unless its ground-truth file (head
    boxes, for PCKh) is there with one row per person (engine.mpii_eval.mpii_truth)."""
    source = dataset.source
    if source.dataset.layout == "mpii":
        mpii_truth(source)
    elif not source.has_annotations:
        raise ConfigError(f"TRAIN.VAL_FREQ: the split DATASET.TEST={cfg.DATASET.TEST} has no annotations to score")


def validate(cfg: CfgNode, model: nn.Module, dataset, device: torch.device, keypoints: KeypointSpec,
             progress: bool = True) -> dict:
    """The metrics of `model` (in training, put back by the caller) on the test split `dataset` (an
    EvalDataset or MpiiEvalDataset) as `higherhrnet eval` scores it: a bottom-up network through a raw
    Predictor, TEST.IMAGES_PER_GPU images a batch; a top-down network on COCO's layout on the boxes the config
    names (person_boxes.boxes_from_config), with the official rescoring and OKS-NMS (evaluate_top_down); on
    MPII's layout on MPII's people with PCKh and PCK (evaluate_mpii_split). Under torchrun every rank calls it:
    the ranks share the images (bottom-up) or the batches of crops (top-down), and each gets the metrics of the
    whole split."""
    if not model_entry(cfg.MODEL.NAME).top_down:
        predictor = Predictor.from_model(cfg, model, device=device, keypoints=keypoints, raw=True)
        metrics, _ = evaluate(predictor, dataset, cfg.TEST.IMAGES_PER_GPU, 0, progress=progress, desc="validating",
                              leave=False)
        return metrics
    model.eval()
    source = dataset.source
    if source.dataset.layout == "mpii":
        metrics, _ = evaluate_mpii_split(cfg, model, source, device, progress=progress)
        return metrics
    boxes = boxes_from_config(cfg, source.coco)
    metrics, _ = evaluate_top_down(model, source, boxes, TopDownParams.from_config(cfg, keypoints), cfg.TEST.OKS_THRE,
                                   device=device, progress=progress, soft_nms=cfg.TEST.SOFT_NMS)
    return metrics
