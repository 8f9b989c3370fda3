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
    boxes_from_poses(keypoints)                   person boxes around poses found otherwise (a bottom-up
                                                  model's people, for refinement)

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
from .geometry import get_affine_transform, warp_image
from .keypoints import KeypointSpec
from .models.registry import model_entry
from .normalization import IMAGENET_MEAN, IMAGENET_STD, normalization_from_config, normalize
from .oks import pose_box, visible_joints

__all__ = ["PIXEL_STD", "BOX_PADDING", "TopDownParams", "PersonPoses", "box_to_center_scale", "crop_people",
           "normalize_crops", "flip_test_heatmaps", "max_predictions", "final_predictions", "rescore",
           "coco_results", "estimate_poses", "poses_of_crops", "POSE_BOX_MARGIN", "MIN_POSE_BOX", "boxes_from_poses"]

PIXEL_STD = 200.0   # a scale of 1 is 200 image pixels
BOX_PADDING = 1.25  # the crop is 1.25 times the (aspect-fixed) box
# A box around a pose's joints is tight around the joints' centres: the head's top, the hands and the feet reach
# beyond them. boxes_from_poses widens it by this share of its size on each side (a detector's box is about that
# much larger than the joints' box on COCO), and makes each side at least MIN_POSE_BOX pixels (one joint, or
# joints on a line, would give an empty crop).
POSE_BOX_MARGIN = 0.1
MIN_POSE_BOX = 16.0


@dataclass(frozen=True)
class TopDownParams:
    """Everything the top-down pipeline needs, as plain values.

    image_size: (width, height) of the network's input crop (MODEL.IMAGE_SIZE). flip_index: (J,) joint
    permutation of a horizontal flip (the KeypointSpec's). flip_test / shift_heatmap / post_process: TEST.*.
    mean / std: the input normalisation after pixels / 255 (None: none). color_rgb: the network sees RGB
    (DATASET.COLOR_RGB; False: BGR, the official default). batch_size: crops per forward pass
    (TEST.BATCH_SIZE_PER_GPU). in_vis_thre: joints above it count in a person's score (TEST.IN_VIS_THRE).
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

    @classmethod
    def from_config(cls, cfg: CfgNode, keypoints: KeypointSpec) -> "TopDownParams":
        """MODEL.IMAGE_SIZE, TEST.* and the input normalisation of a top-down config (MODEL.NAME pose_hrnet);
        ConfigError for a bottom-up one or a keypoint set that does not fit."""
        if not model_entry(cfg.MODEL.NAME).top_down:
            raise ConfigError(f"MODEL.NAME {cfg.MODEL.NAME} is a bottom-up network (whole images in, everyone's "
                              f"heatmaps and tags out): run it with higherhrnet.inference or the Predictor; the "
                              f"top-down pipeline needs a top-down network such as pose_hrnet")
        if keypoints.num_joints != cfg.MODEL.NUM_JOINTS:
            raise ConfigError(f"keypoint spec {keypoints.name!r} has {keypoints.num_joints} joints but "
                              f"MODEL.NUM_JOINTS is {cfg.MODEL.NUM_JOINTS}")
        mean, std = normalization_from_config(cfg)
        test = cfg.TEST
        return cls(image_size=(int(cfg.MODEL.IMAGE_SIZE[0]), int(cfg.MODEL.IMAGE_SIZE[1])),
                   flip_index=tuple(int(i) for i in keypoints.flip_index), flip_test=test.FLIP_TEST,
                   shift_heatmap=test.SHIFT_HEATMAP, post_process=test.POST_PROCESS, mean=mean, std=std,
                   color_rgb=cfg.DATASET.COLOR_RGB, batch_size=test.BATCH_SIZE_PER_GPU, in_vis_thre=test.IN_VIS_THRE)


class PersonPoses(NamedTuple):
    """One image's people, one row per box, in the boxes' order.

    keypoints (N, J, 3) float32: x, y in image pixels and the heatmap maximum (the joint's score).
    centers (N, 2), scales (N, 2) float32: the crops they were found in (`box_to_center_scale`).
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
    as the official ToTensor + Normalize. color_rgb False: the channels are reversed first (BGR, as the
    official code feeds the network when DATASET.COLOR_RGB is false; mean and std still apply in their order)."""
    if not color_rgb:
        crops = crops[..., ::-1]
    if len(crops) == 0:
        return torch.zeros((0, 3, *crops.shape[1:3]), dtype=torch.float32)
    return torch.stack([normalize(np.ascontiguousarray(crop), mean, std) for crop in crops])


def _heatmap_output(outputs: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    # A network that returns a list (an ONNX runtime session) gives its last output, as the official validate.
    return outputs if isinstance(outputs, torch.Tensor) else outputs[-1]


@torch.inference_mode()
def flip_test_heatmaps(network: nn.Module, batch: torch.Tensor, flip_index: Sequence[int] | None = None,
                       shift_heatmap: bool = True) -> torch.Tensor:
    """(N, 3, H, W) input -> (N, J, H/4, W/4) float32 heatmaps, on the batch's device.

    flip_index None: the network's heatmaps of `batch`. Otherwise (FLIP_TEST) they are averaged with those of
    the mirrored batch, flipped back (columns reversed, joint channels permuted by flip_index) and, with
    shift_heatmap, moved one column right (column 0 keeps its value): (heatmaps + flipped) * 0.5, the
    official operations in their order.
    """
    heatmaps = _heatmap_output(network(batch))
    if flip_index is None:
        return heatmaps
    flipped = _heatmap_output(network(batch.flip(3))).flip(3)[:, list(flip_index)]
    if shift_heatmap:
        flipped[:, :, :, 1:] = flipped.clone()[:, :, :, :-1]
    return (heatmaps + flipped) * 0.5


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
        ni, ji = np.nonzero(inside)
        hm, x, y = heatmaps[ni, ji], px[ni, ji], py[ni, ji]
        rows = np.arange(len(ni))
        diff = np.stack([hm[rows, y, x + 1] - hm[rows, y, x - 1], hm[rows, y + 1, x] - hm[rows, y - 1, x]], axis=1)
        coords[ni, ji] += np.sign(diff) * np.float32(0.25)
    preds = np.empty_like(coords)
    for i in range(n):
        inverse = get_affine_transform(centers[i], scales[i], 0, (width, height), inv=True)
        x, y = coords[i, :, 0].astype(np.float64), coords[i, :, 1].astype(np.float64)
        preds[i, :, 0] = inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]
        preds[i, :, 1] = inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]
    return preds, maxvals


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
    return poses_of_crops(network, lambda start, stop: crop_people(image, centers[start:stop], scales[start:stop],
                                                                   params.image_size),
                          centers, scales, params, device)


def poses_of_crops(network: nn.Module, crops: Callable[[int, int], np.ndarray], centers: np.ndarray,
                   scales: np.ndarray, params: TopDownParams, device: torch.device | str | None = None,
                   batches: Callable[[Iterable[int]], Iterable[int]] = iter) -> PersonPoses:
    """The network's stages for N people whose crops `crops(start, stop)` gives ((stop - start, h, w, 3) uint8
    RGB, h x w = params.image_size, from their centers / scales (N, 2)): params.batch_size crops a forward
    pass, in order, flip test as params says, final predictions in image pixels. `batches` wraps the batch
    starts (e.g. a progress bar). Shared by estimate_poses (one image) and the evaluation (boxes across images)."""
    if device is None:
        param = next(network.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    flip_index = params.flip_index if params.flip_test else None
    width, height = params.image_size
    parts = [np.zeros((0, len(params.flip_index), height // 4, width // 4), dtype=np.float32)]
    for start in batches(range(0, len(centers), params.batch_size)):
        batch = normalize_crops(crops(start, min(start + params.batch_size, len(centers))), params.mean, params.std,
                                params.color_rgb).to(device)
        parts.append(flip_test_heatmaps(network, batch, flip_index, params.shift_heatmap).float().cpu().numpy())
    preds, maxvals = final_predictions(np.concatenate(parts[1:] or parts), centers, scales, params.post_process)
    return PersonPoses(np.concatenate([preds, maxvals], axis=2), centers, scales)


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
