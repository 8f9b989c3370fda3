"""The top-down test pipeline of the HRNet paper's code (deep-high-resolution-net.pytorch), in stages that can
each be used alone. A top-down network (MODEL.NAME pose_hrnet) sees one person's crop and predicts that
person's J heatmaps; the people come from boxes (ground truth, a detector, ...):

    box_to_center_scale(boxes, image_size)        person boxes (x, y, w, h) -> crop centres and scales
    crop_people(image, centers, scales, size)     the affine crops, (N, H, W, 3) uint8
    normalize_crops(crops, mean, std, color_rgb)  the network's input, (N, 3, H, W) float32
    flip_test_heatmaps(network, batch, ...)       heatmaps, averaged with the mirrored crops' (FLIP_TEST,
                                                  SHIFT_HEATMAP), (N, J, H/4, W/4)
    final_predictions(heatmaps, centers, scales)  argmax, the quarter-pixel step (POST_PROCESS), back to image
                                                  pixels: (N, J, 2) x, y and (N, J, 1) heatmap maxima
    rescore(keypoints, box_scores, in_vis_thre)   a person's score: box score x mean confident joint score
    coco_results(image_id, keypoints, ...)        COCO keypoint result records, as the official code writes them
    estimate_poses(network, image, boxes, params) all of the above for one image's boxes, in batches
    estimate_poses_at(network, image, centers, scales, params)   the same for people given by crop centres and
                                                  scales
    boxes_from_poses(keypoints)                   person boxes around poses found otherwise (a bottom-up
                                                  model's people, for refinement)

The stacked hourglass of bearpaw/pytorch-pose (MODEL.NAME stacked_hourglass) goes through the same pipeline with
its own code's test-time stages, chosen by TopDownParams (from_config picks them by MODEL.NAME):

    bearpaw_center_scale(centers, scales)         MPII's person centre and scale -> the crop's (its Mpii
                                                  dataset's adjustment)
    flip_test_heatmaps(..., fusion="sum")         its validate(): the flipped-back heatmaps added, not averaged,
                                                  and not shifted
    bearpaw_final_predictions(heatmaps, ...)      its final_preds: argmax, the quarter-pixel step, half a pixel,
                                                  back to whole image pixels
    bearpaw_max_predictions(heatmaps)             its get_preds: heatmap maxima in its 1-based frame

bearpaw's code works in MATLAB's 1-based frame (MPII's annotations: the first pixel's centre is (1, 1)) and
truncates image positions to integers; its stages do its arithmetic in that frame, and take and return this
project's frame: a centre c here is c + 1 there, computed in float32 as its centres are (exact for every
coordinate of 1 or more, and for -1, so for all of MPII's).

Frames: image pixels follow geometry.py's convention (an integer (x, y) is the centre of that pixel); a box
is COCO's (x, y, w, h), its top-left corner and size in image pixels; a crop's `center` is in image pixels and
its `scale` is (width, height) in units of 200 image pixels (`PIXEL_STD`); heatmap pixels are 1/4 of crop
pixels. Every stage does the official code's arithmetic, in its dtypes (float32 centres, scales and
predictions, float64 boxes), so results agree with it to the last bit given the same network outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from .errors import ConfigError
from . import topdown_bearpaw as bearpaw
from .geometry import get_affine_transform, warp_image
from .keypoints import KeypointSpec
from .models.registry import model_entry
from .normalization import IMAGENET_MEAN, IMAGENET_STD, normalization_from_config, normalize
from .oks import pose_box, visible_joints

__all__ = ["PIXEL_STD", "BOX_PADDING", "TopDownParams", "PersonPoses", "box_to_center_scale", "crop_people",
           "normalize_crops", "flip_test_heatmaps", "max_predictions", "final_predictions", "rescore",
           "coco_results", "estimate_poses", "estimate_poses_at", "poses_of_crops", "POSE_BOX_MARGIN",
           "MIN_POSE_BOX", "boxes_from_poses", "bearpaw_center_scale", "bearpaw_max_predictions",
           "bearpaw_final_predictions", "bearpaw_crop_people", "CROPS", "crop_function", "FINAL_PREDICTIONS",
           "FLIP_FUSIONS"]

PIXEL_STD = 200.0   # a scale of 1 is 200 image pixels
BOX_PADDING = 1.25  # the crop is 1.25 times the (aspect-fixed) box
# A box around a pose's joints is tight around the joints' centres: the head's top, the hands and the feet reach
# beyond them. boxes_from_poses widens it by this share of its size on each side (a detector's box is about that
# much larger than the joints' box on COCO), and makes each side at least MIN_POSE_BOX pixels (one joint, or
# joints on a line, would give an empty crop).
POSE_BOX_MARGIN = 0.1
MIN_POSE_BOX = 16.0
FLIP_FUSIONS = ("mean", "sum")
# The test-time stages of the code a network comes from, where they are not HRNet's (TopDownParams' defaults):
# bearpaw/pytorch-pose's validate() adds the flipped-back heatmaps without a shift and predicts with its
# final_preds, from its own crops.
_TEST_STAGES = {"stacked_hourglass": {"flip_fusion": "sum", "shift_heatmap": False, "predictions": "bearpaw",
                                      "crop": "bearpaw"}}


@dataclass(frozen=True)
class TopDownParams:
    """Everything the top-down pipeline needs, as plain values.

    image_size: (width, height) of the network's input crop (MODEL.IMAGE_SIZE). flip_index: (J,) joint
    permutation of a horizontal flip (the KeypointSpec's). flip_test / shift_heatmap / post_process: TEST.*.
    mean / std: the input normalisation after pixels / 255 (None: none). color_rgb: the network sees RGB
    (DATASET.COLOR_RGB; False: BGR, the official default). batch_size: crops per forward pass
    (TEST.BATCH_SIZE_PER_GPU). in_vis_thre: joints above it count in a person's score (TEST.IN_VIS_THRE).
    flip_fusion: how flip test merges the heatmaps ("mean": HRNet's average, "sum": bearpaw's sum).
    predictions: which final predictions (a FINAL_PREDICTIONS name). crop: which crop (a CROPS name).
    """

    image_size: tuple[int, int]
    flip_index: tuple[int, ...]
    flip_test: bool = True
    shift_heatmap: bool = True
    post_process: bool = True
    mean: tuple[float, float, float] | None = IMAGENET_MEAN
    std: tuple[float, float, float] | None = IMAGENET_STD
    color_rgb: bool = True
    batch_size: int = 32
    in_vis_thre: float = 0.2
    flip_fusion: str = "mean"
    predictions: str = "hrnet"
    crop: str = "affine"

    def __post_init__(self):
        if self.flip_fusion not in FLIP_FUSIONS:
            raise ValueError(f"flip_fusion {self.flip_fusion!r}: expected one of {', '.join(FLIP_FUSIONS)}")
        if self.predictions not in FINAL_PREDICTIONS:
            raise ValueError(f"predictions {self.predictions!r}: expected one of {', '.join(FINAL_PREDICTIONS)}")

    @classmethod
    def from_config(cls, cfg: CfgNode, keypoints: KeypointSpec) -> "TopDownParams":
        """MODEL.IMAGE_SIZE, TEST.* and the input normalisation of a top-down config (MODEL.NAME pose_hrnet,
        stacked_hourglass); ConfigError for a bottom-up one or a keypoint set that does not fit. A
        stacked_hourglass gets bearpaw's stages (flip heatmaps summed, never shifted: TEST.SHIFT_HEATMAP does
        not apply; its final predictions and crop); TEST.FLIP_TEST and POST_PROCESS apply to both."""
        if not model_entry(cfg.MODEL.NAME).top_down:
            raise ConfigError(f"MODEL.NAME {cfg.MODEL.NAME} is a bottom-up network (whole images in, everyone's "
                              f"heatmaps and tags out): run it with higherhrnet.inference or the Predictor; the "
                              f"top-down pipeline needs a top-down network such as pose_hrnet")
        if keypoints.num_joints != cfg.MODEL.NUM_JOINTS:
            raise ConfigError(f"keypoint spec {keypoints.name!r} has {keypoints.num_joints} joints but "
                              f"MODEL.NUM_JOINTS is {cfg.MODEL.NUM_JOINTS}")
        mean, std = normalization_from_config(cfg)
        test = cfg.TEST
        fields = dict(image_size=(int(cfg.MODEL.IMAGE_SIZE[0]), int(cfg.MODEL.IMAGE_SIZE[1])),
                      flip_index=tuple(int(i) for i in keypoints.flip_index), flip_test=test.FLIP_TEST,
                      shift_heatmap=test.SHIFT_HEATMAP, post_process=test.POST_PROCESS, mean=mean, std=std,
                      color_rgb=cfg.DATASET.COLOR_RGB, batch_size=test.BATCH_SIZE_PER_GPU,
                      in_vis_thre=test.IN_VIS_THRE)
        return cls(**{**fields, **_TEST_STAGES.get(cfg.MODEL.NAME, {})})


class PersonPoses(NamedTuple):
    """One image's people, one row per box, in the boxes' order.

    keypoints (N, J, 3) float32: x, y in image pixels and the heatmap maximum (the joint's score).
    centers (N, 2), scales (N, 2): the crops they were found in (float32 from `box_to_center_scale`; float32
    centres and float64 scales from `bearpaw_center_scale`).
    """

    keypoints: np.ndarray
    centers: np.ndarray
    scales: np.ndarray


def box_to_center_scale(boxes: np.ndarray | Sequence[Sequence[float]], image_size: Sequence[int],
                        padding: float = BOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes (N, 4) x, y, w, h in image pixels -> centers (N, 2) and scales (N, 2), float32.

    The centre is the box's; the box is widened or heightened to the input's aspect ratio image_size = (width,
    height), then scale = its (width, height) / 200, times `padding` (1.25): the official `_box2cs`, which
    also leaves the scale unpadded where the centre's x is exactly -1. Boxes are read as float64, as the
    official code reads the numbers of a JSON file.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x, y, w, h = boxes.T
    aspect_ratio = image_size[0] * 1.0 / image_size[1]
    centers = np.stack([x + w * 0.5, y + h * 0.5], axis=1).astype(np.float32)
    wider = w > aspect_ratio * h
    taller = w < aspect_ratio * h
    h = np.where(wider, w * 1.0 / aspect_ratio, h)
    w = np.where(taller, h * aspect_ratio, w)
    scales = np.stack([w * 1.0 / PIXEL_STD, h * 1.0 / PIXEL_STD], axis=1).astype(np.float32)
    padded = centers[:, 0] != -1
    scales[padded] = scales[padded] * np.float32(padding)
    return centers, scales


def bearpaw_center_scale(centers: np.ndarray | Sequence[Sequence[float]],
                         scales: np.ndarray | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """MPII's people -> the crops bearpaw's Mpii dataset takes them at (before augmentation): centers (N, 2)
    float32 and scales (N, 2) float64 (its square crop's side / 200, twice).

    centers (N, 2): each person's position (MPII's objpos) in this project's image pixels (objpos - 1).
    scales (N,): MPII's scale (scale_provided: about the person's height / 200). Each person goes through
    topdown_bearpaw.person_center_scale in MATLAB's frame (the position rounded to float32 there, as its
    torch.Tensor; 15 x scale pixels down and the scale x 1.25 "to avoid cropping limbs", unless the centre's x
    is -1 there, -2 here), and back (- 1, exact); the scale stays a float64, as its data loader batches it.
    """
    matlab = (np.asarray(centers, dtype=np.float64).reshape(-1, 2) + 1.0).astype(np.float32)
    scales = np.asarray(scales, dtype=np.float64).reshape(-1)
    moved_centers, moved_scales = np.empty_like(matlab), np.empty_like(scales)
    for i, (center, scale) in enumerate(zip(matlab, scales)):
        moved_centers[i], moved_scales[i] = bearpaw.person_center_scale(center, float(scale))
    return moved_centers - np.float32(1), np.stack([moved_scales, moved_scales], axis=1)


def crop_people(image: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                image_size: Sequence[int]) -> np.ndarray:
    """(H_img, W_img, C) image -> (N, H, W, C) crops of image_size = (W, H), one per centre and scale: the
    official test-time crop (geometry.get_affine_transform, bilinear, 0 outside the image)."""
    width, height = int(image_size[0]), int(image_size[1])
    crops = np.zeros((len(centers), height, width, *image.shape[2:]), dtype=image.dtype)
    for i, (center, scale) in enumerate(zip(centers, scales)):
        crops[i] = warp_image(image, get_affine_transform(center, scale, 0, (width, height)), (width, height))
    return crops


def normalize_crops(crops: np.ndarray, mean: Sequence[float] | None = IMAGENET_MEAN,
                    std: Sequence[float] | None = IMAGENET_STD, color_rgb: bool = True) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB crops -> (N, 3, H, W) float32 network input: pixels / 255, then (x - mean) / std,
    as the official ToTensor + Normalize. Float crops hold pixels / 255 already (a crop that resamples the
    image as floats, as bearpaw's does): (x - mean) / std in float32. color_rgb False: the channels are
    reversed first (BGR, as the official code feeds the network when DATASET.COLOR_RGB is false; mean and std
    still apply in their order)."""
    if not color_rgb:
        crops = crops[..., ::-1]
    if len(crops) == 0:
        return torch.zeros((0, 3, *crops.shape[1:3]), dtype=torch.float32)
    if np.issubdtype(crops.dtype, np.floating):
        batch = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).float()
        if mean is None:
            return batch
        batch = batch.sub(torch.tensor(mean, dtype=torch.float32)[:, None, None])
        # bearpaw's color_normalize subtracts its mean only (std None, or 1: the same floats).
        return batch if std is None else batch.div(torch.tensor(std, dtype=torch.float32)[:, None, None])
    return torch.stack([normalize(np.ascontiguousarray(crop), mean, std) for crop in crops])


# The crops the pipeline can take (TopDownParams.crop): crop(image, centers, scales, image_size) -> (N, H, W, 3)
# crops of an (H_img, W_img, 3) uint8 RGB image, uint8 or float (pixels / 255); centers (N, 2) in image pixels
# of this project's frame, scales (N, 2), image_size (W, H).
def bearpaw_crop_people(image: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                       image_size: Sequence[int]) -> np.ndarray:
    """(H_img, W_img, 3) uint8 RGB image -> (N, H, W, 3) float32 crops (pixels / 255): bearpaw's test-time crop
    (topdown_bearpaw.crop_people: resized, sliced at whole pixels, resized) of people at centers (N, 2) float32 in
    this project's frame and scales (N, 2) (bearpaw_center_scale's; both columns its one scale). The centres go
    into MATLAB's frame in float32 (+ 1, exact for its people); the scale is a Python float there, as its test
    items are cropped."""
    matlab = np.asarray(centers, dtype=np.float32) + np.float32(1)
    return bearpaw.crop_people(image, matlab, [float(scale) for scale in np.asarray(scales)[:, 0]], image_size)


CROPS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, Sequence[int]], np.ndarray]] = {
    "affine": crop_people, "bearpaw": bearpaw_crop_people}


def crop_function(name: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray, Sequence[int]], np.ndarray]:
    """CROPS[name]; ValueError naming the known crops otherwise."""
    if name not in CROPS:
        raise ValueError(f"no crop named {name!r} (TopDownParams.crop): known crops are {', '.join(CROPS)}")
    return CROPS[name]


def _heatmap_output(outputs: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    # A network that returns a list (an ONNX runtime session) gives its last output, as the official validate.
    return outputs if isinstance(outputs, torch.Tensor) else outputs[-1]


@torch.inference_mode()
def flip_test_heatmaps(network: nn.Module, batch: torch.Tensor, flip_index: Sequence[int] | None = None,
                       shift_heatmap: bool = True, fusion: str = "mean") -> torch.Tensor:
    """(N, 3, H, W) input -> (N, J, H/4, W/4) float32 heatmaps, on the batch's device. A network with several
    outputs (a list: the stacks of a stacked hourglass) gives its last.

    flip_index None: the network's heatmaps of `batch`. Otherwise (FLIP_TEST) they are merged with those of
    the mirrored batch, flipped back (columns reversed, joint channels permuted by flip_index) and, with
    shift_heatmap, moved one column right (column 0 keeps its value). fusion "mean": (heatmaps + flipped) *
    0.5, HRNet's operations in their order; "sum": heatmaps + flipped, bearpaw's validate().
    """
    heatmaps = _heatmap_output(network(batch))
    if flip_index is None:
        return heatmaps
    flipped = _heatmap_output(network(batch.flip(3))).flip(3)[:, list(flip_index)]
    if shift_heatmap:
        flipped[:, :, :, 1:] = flipped.clone()[:, :, :, :-1]
    return heatmaps + flipped if fusion == "sum" else (heatmaps + flipped) * 0.5


def max_predictions(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, J, H, W) heatmaps -> coords (N, J, 2) float32 x, y of each joint's maximum in heatmap pixels (the
    first one in row-major order on ties), and maxvals (N, J, 1). Joints whose maximum is not positive get
    (0, 0), as the official get_max_preds."""
    heatmaps = np.asarray(heatmaps)
    n, j, height, width = heatmaps.shape
    flat = heatmaps.reshape(n, j, height * width)
    index = np.argmax(flat, axis=2) if flat.shape[2] else np.zeros((n, j), dtype=np.int64)
    maxvals = np.take_along_axis(flat, index[..., None], axis=2)
    coords = np.stack([index % width, index // width], axis=2).astype(np.float32)
    coords *= (maxvals > 0.0).astype(np.float32)
    return coords, maxvals


def _step_toward_higher_neighbour(heatmaps: np.ndarray, coords: np.ndarray, px: np.ndarray, py: np.ndarray,
                                  inside: np.ndarray) -> None:
    # coords (N, J, 2) float32 += a quarter pixel toward the higher of the two neighbours of heatmap pixel (px,
    # py), in x and in y separately (not at all on a tie), where `inside`: both official codes' step.
    ni, ji = np.nonzero(inside)
    hm, x, y = heatmaps[ni, ji], px[ni, ji], py[ni, ji]
    rows = np.arange(len(ni))
    diff = np.stack([hm[rows, y, x + 1] - hm[rows, y, x - 1], hm[rows, y + 1, x] - hm[rows, y - 1, x]], axis=1)
    coords[ni, ji] += np.sign(diff) * np.float32(0.25)


def final_predictions(heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                      post_process: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(N, J, h, w) heatmaps of crops (centers, scales (N, 2)) -> (N, J, 2) float32 x, y in image pixels and
    (N, J, 1) maxvals: the official get_final_preds.

    post_process (POST_PROCESS): a maximum at (px, py) with 1 < px < w - 1 and 1 < py < h - 1 moves a quarter
    pixel toward the higher of its two neighbours, in x and in y separately (not at all on a tie). Then the
    inverse of the crop's transform for a (w, h) map takes it to image pixels.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    coords, maxvals = max_predictions(heatmaps)
    n, j, height, width = heatmaps.shape
    if post_process and n * j:
        px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
        py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
        inside = (px > 1) & (px < width - 1) & (py > 1) & (py < height - 1)
        _step_toward_higher_neighbour(heatmaps, coords, px, py, inside)
    preds = np.empty_like(coords)
    for i in range(n):
        inverse = get_affine_transform(centers[i], scales[i], 0, (width, height), inv=True)
        x, y = coords[i, :, 0].astype(np.float64), coords[i, :, 1].astype(np.float64)
        preds[i, :, 0] = inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]
        preds[i, :, 1] = inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]
    return preds, maxvals


def bearpaw_max_predictions(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, J, H, W) heatmaps -> coords (N, J, 2) float32 x, y of each joint's maximum in bearpaw's 1-based
    heatmap pixels ((1, 1) is the first pixel), (0, 0) where the maximum is not positive, and maxvals (N, J, 1):
    its get_preds (max_predictions + 1)."""
    coords, maxvals = max_predictions(heatmaps)
    return np.where(maxvals > 0.0, coords + np.float32(1), np.float32(0)), maxvals


def bearpaw_final_predictions(heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                              post_process: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(N, J, h, h) square heatmaps of crops (centers (N, 2) in this project's frame, float32; scales (N, 2),
    both columns bearpaw's one scale) -> (N, J, 2) float32 x, y in image pixels (whole numbers) and (N, J, 1)
    maxvals: bearpaw's final_preds.

    In its 1-based frame: the maximum (bearpaw_max_predictions), with post_process a quarter pixel toward the
    higher neighbour where 1 < x < h and 1 < y < h there (HRNet's step within its own bounds: one pixel more
    on the left and top than final_predictions), plus 0.5, taken to the image by
    topdown_bearpaw.transform_predictions (truncated to whole pixels), then minus 1 into this project's frame
    (exact).
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    n, j, height, width = heatmaps.shape
    if height != width:
        raise ValueError(f"bearpaw's final predictions take square heatmaps, not {height} x {width}")
    coords, maxvals = bearpaw_max_predictions(heatmaps)
    if post_process and n * j:
        px = np.floor(coords[..., 0]).astype(np.int64) - 1
        py = np.floor(coords[..., 1]).astype(np.int64) - 1
        inside = (px > 0) & (px < width - 1) & (py > 0) & (py < height - 1)
        _step_toward_higher_neighbour(heatmaps, coords, px, py, inside)
    coords += np.float32(0.5)
    matlab_centers = np.asarray(centers, dtype=np.float32) + np.float32(1)
    scales = np.asarray(scales, dtype=np.float64)
    preds = np.empty_like(coords)
    for i in range(n):
        # The scale a float64 scalar, as bearpaw's batched meta['scale'] tensor (its divisions then go through
        # the reciprocal: topdown_bearpaw._divide).
        preds[i] = bearpaw.transform_predictions(coords[i], matlab_centers[i], scales[i, 0], (width, width)) - 1
    return preds, maxvals


# Final predictions (TopDownParams.predictions): (heatmaps, centers, scales, post_process) -> (N, J, 2) x, y in
# image pixels and (N, J, 1) heatmap maxima.
FINAL_PREDICTIONS = {"hrnet": final_predictions, "bearpaw": bearpaw_final_predictions}


def rescore(keypoints: np.ndarray, box_scores: np.ndarray | Sequence[float], in_vis_thre: float) -> np.ndarray:
    """(N, J, 3) keypoints and (N,) box scores -> (N,) float64 person scores: the box score times the mean
    score of the joints scoring above in_vis_thre (0 when none does), as the official evaluation rescores
    people, with the arithmetic of its Python loop over NumPy scalars under the NumPy 1.x it was written for:
    each float32 joint score compared with in_vis_thre and summed joint by joint in float64 (a joint scored
    float32 0.2, a hair above 0.2, counts at 0.2; under NumPy 2 that loop would compare and sum in float32)."""
    scores = np.asarray(keypoints)[..., 2]
    confident = scores.astype(np.float64) > float(in_vis_thre)
    total = np.zeros(len(scores), dtype=np.float64)
    for joint in range(scores.shape[1] if scores.ndim == 2 else 0):
        total = total + np.where(confident[:, joint], scores[:, joint].astype(np.float64), 0.0)
    count = confident.sum(axis=1) if scores.ndim == 2 else np.zeros(0, dtype=np.int64)
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return mean * np.asarray(box_scores, dtype=np.float64)


def coco_results(image_id: int, keypoints: np.ndarray, scores: np.ndarray | Sequence[float],
                 centers: np.ndarray | None = None, scales: np.ndarray | None = None,
                 category_id: int = 1) -> list[dict]:
    """COCO keypoint result records, one per person, as the official code writes them: image_id, category_id,
    keypoints (x, y, score for each of the J joints, image pixels), score (e.g. `rescore`'s) and, when given,
    the crop's center and scale. Plain Python numbers."""
    records = []
    for i, (person, score) in enumerate(zip(np.asarray(keypoints, dtype=np.float64), scores)):
        record = {"image_id": int(image_id), "category_id": int(category_id),
                  "keypoints": [float(v) for v in person.reshape(-1)], "score": float(score)}
        if centers is not None:
            record["center"] = [float(v) for v in centers[i]]
        if scales is not None:
            record["scale"] = [float(v) for v in scales[i]]
        records.append(record)
    return records


def estimate_poses(network: nn.Module, image: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]],
                   params: TopDownParams, device: torch.device | str | None = None) -> PersonPoses:
    """Every stage for one (H, W, 3) uint8 RGB image and its person boxes (N, 4) x, y, w, h in image pixels:
    crops in batches of params.batch_size, the network on `device` (default: its parameters'; put it in eval
    mode), flip test as params says, final predictions in image pixels. N may be 0."""
    centers, scales = box_to_center_scale(boxes, params.image_size)
    return estimate_poses_at(network, image, centers, scales, params, device)


def estimate_poses_at(network: nn.Module, image: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                      params: TopDownParams, device: torch.device | str | None = None) -> PersonPoses:
    """estimate_poses for people given by their crops' centers and scales (N, 2) (box_to_center_scale's,
    bearpaw_center_scale's): params.crop's crops of the (H, W, 3) uint8 RGB image, then poses_of_crops."""
    crop = crop_function(params.crop)
    return poses_of_crops(network, lambda start, stop: crop(image, centers[start:stop], scales[start:stop],
                                                            params.image_size),
                          centers, scales, params, device)


def poses_of_crops(network: nn.Module, crops: Callable[[int, int], np.ndarray], centers: np.ndarray,
                   scales: np.ndarray, params: TopDownParams, device: torch.device | str | None = None,
                   batches: Callable[[Iterable[int]], Iterable[int]] = iter,
                   heatmaps_seen: Callable[[int, np.ndarray], None] | None = None) -> PersonPoses:
    """The network's stages for N people whose crops `crops(start, stop)` gives ((stop - start, h, w, 3) RGB,
    uint8 or float as normalize_crops takes them, h x w = params.image_size, from their centers / scales
    (N, 2)): params.batch_size crops a forward pass, in order, flip test as params says, params.predictions'
    final predictions in image pixels, batch by batch. `batches` wraps the batch starts (e.g. a progress bar).
    heatmaps_seen(start, heatmaps): called with each batch's heatmaps ((n, J, h/4, w/4) float32, those the
    predictions are made from), e.g. to score them. Shared by estimate_poses (one image) and the evaluation
    (boxes across images)."""
    if device is None:
        param = next(network.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    flip_index = params.flip_index if params.flip_test else None
    predict = FINAL_PREDICTIONS[params.predictions]
    keypoints = np.zeros((len(centers), len(params.flip_index), 3), dtype=np.float32)
    for start in batches(range(0, len(centers), params.batch_size)):
        stop = min(start + params.batch_size, len(centers))
        batch = normalize_crops(crops(start, stop), params.mean, params.std, params.color_rgb).to(device)
        heatmaps = flip_test_heatmaps(network, batch, flip_index, params.shift_heatmap,
                                      params.flip_fusion).float().cpu().numpy()
        if heatmaps_seen is not None:
            heatmaps_seen(start, heatmaps)
        preds, maxvals = predict(heatmaps, centers[start:stop], scales[start:stop], params.post_process)
        keypoints[start:stop] = np.concatenate([preds, maxvals], axis=2)
    return PersonPoses(keypoints, centers, scales)


def boxes_from_poses(keypoints: np.ndarray, margin: float = POSE_BOX_MARGIN,
                     min_size: float = MIN_POSE_BOX) -> np.ndarray:
    """(N, J, 3) poses (x, y in image pixels, joint value) -> (N, 4) float64 boxes x, y, w, h for the top-down
    pipeline: the box around each pose's joints with a value above 0 (oks.pose_box of oks.visible_joints at 0:
    a bottom-up model's found joints; all finite joints when none is), widened by `margin` x its width and
    height on each side, each side then at least `min_size` around the same centre. box_to_center_scale then
    pads it as it pads any box (aspect ratio, x 1.25). A pose without any finite joint gives a NaN box."""
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(len(keypoints), -1, 3)
    boxes = pose_box(keypoints, visible_joints(keypoints, 0.0))
    centers = boxes[:, :2] + boxes[:, 2:] / 2
    sizes = np.maximum(boxes[:, 2:] * (1 + 2 * margin), min_size)
    return np.concatenate([centers - sizes / 2, sizes], axis=1)
