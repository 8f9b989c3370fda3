"""The test-time pipeline, in stages that can each be called on their own:

    scale_outputs(model, batch, params, project_size)   one test scale: network (and mirror) passes, the
                                                        outputs' heatmaps averaged and tags collected
    run_network(model, images, params, device)          every scale, aggregated: one ImageMaps per image
    decode_people(maps, params)                         grouping, then back-projection to image pixels
    infer(model, images, params, device)                run_network + decode_people

Every TEST.* option does what it does in the reference test script; the tensor operations are the same
ones, in the same order, so that results agree with it to floating-point precision.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode

from .codec.grouping import GroupingParams, group
from .errors import ConfigError
from .geometry import apply_affine, get_affine_transform, multi_scale_size, warp_image
from .keypoints import KeypointSpec
from .models.registry import build_output_specs, check_bottom_up
from .normalization import IMAGENET_MEAN, IMAGENET_STD, normalize, normalization_from_config
from .outputs import OutputSpec, check_test_use

__all__ = ["InferenceParams", "ImageMaps", "NonFiniteOutputError", "scale_outputs", "run_network", "decode_people",
           "infer"]


class NonFiniteOutputError(ValueError):
    """The network's outputs for an image hold NaN or infinity: no people can be decoded from them."""


@dataclass(frozen=True)
class InferenceParams:
    """Everything the test pipeline needs, as plain values.

    outputs: the network's OutputSpecs (which channels are heatmaps and tags, and which outputs test time
    averages / reads tags from). flip_index: (J,) joint permutation of a horizontal flip. mean / std: the
    input normalisation after pixels / 255 (None: none).
    """

    input_size: int
    scale_factors: tuple[float, ...]
    flip_test: bool
    flip_index: tuple[int, ...]
    project2image: bool
    outputs: tuple[OutputSpec, ...]
    grouping: GroupingParams
    mean: tuple[float, float, float] | None = IMAGENET_MEAN
    std: tuple[float, float, float] | None = IMAGENET_STD

    @classmethod
    def from_config(cls, cfg: CfgNode, keypoints: KeypointSpec,
                    outputs: Sequence[OutputSpec] | None = None) -> "InferenceParams":
        """TEST.* and the input normalisation of `cfg`; outputs default to build_output_specs(cfg). ConfigError
        for a top-down network (MODEL.NAME pose_hrnet), which `higherhrnet.topdown` runs."""
        check_bottom_up(cfg, "the bottom-up test pipeline (predict, eval, training's validation)")
        if keypoints.num_joints != cfg.DATASET.NUM_JOINTS:
            raise ConfigError(f"keypoint spec {keypoints.name!r} has {keypoints.num_joints} joints but "
                              f"DATASET.NUM_JOINTS is {cfg.DATASET.NUM_JOINTS}")
        scales = tuple(float(s) for s in cfg.TEST.SCALE_FACTOR)
        if len(scales) > 1 and 1.0 not in scales:
            raise ConfigError(f"TEST.SCALE_FACTOR {list(scales)}: with several scales, 1.0 must be one of them "
                              "(tags are taken from scale 1.0)")
        test = cfg.TEST
        mean, std = normalization_from_config(cfg)
        outputs = build_output_specs(cfg) if outputs is None else tuple(outputs)
        check_test_use(outputs)
        return cls(
            input_size=cfg.DATASET.INPUT_SIZE,
            scale_factors=scales,
            flip_test=test.FLIP_TEST,
            flip_index=tuple(int(i) for i in keypoints.flip_index),
            project2image=test.PROJECT2IMAGE,
            outputs=outputs,
            grouping=GroupingParams(
                joint_order=tuple(int(i) for i in keypoints.grouping_indices),
                max_num_people=cfg.DATASET.MAX_NUM_PEOPLE,
                detection_threshold=test.DETECTION_THRESHOLD,
                tag_threshold=test.TAG_THRESHOLD,
                use_detection_val=test.USE_DETECTION_VAL,
                ignore_too_much=test.IGNORE_TOO_MUCH,
                nms_kernel=test.NMS_KERNEL,
                nms_padding=test.NMS_PADDING,
                adjust=test.ADJUST,
                refine=test.REFINE,
            ),
            mean=mean,
            std=std,
        )


class ImageMaps(NamedTuple):
    """One image's aggregated maps, what grouping reads, in their own frame: the image resized to the network
    input (its crop: `center`, `scale`, as geometry.get_affine_transform takes them), at the resolution of the
    network's last output (or of the input with TEST.PROJECT2IMAGE).

    heatmaps (J, H, W): averaged over outputs, flip and scales. tags (J or 1, H, W, T): one tag map per
    pass read (the image's and, with flip test, the mirror's, at scale 1.0).
    """

    heatmaps: torch.Tensor
    tags: torch.Tensor
    center: np.ndarray
    scale: np.ndarray


def _stage_outputs(outputs: Sequence[torch.Tensor], params: InferenceParams, flipped: bool):
    """Resize the outputs in use to the last output's size; average their heatmaps; collect their tag maps.

    An output used for neither (an hourglass stack other than the chosen one) is left out.
    """
    if len(outputs) != len(params.outputs):
        raise ValueError(f"the network gave {len(outputs)} outputs but its output specs describe "
                         f"{len(params.outputs)}")
    last = outputs[-1]
    heatmaps_sum, count, tags = 0, 0, []
    for spec, output in zip(params.outputs, outputs):
        if not (spec.test_heatmaps or spec.test_tags):
            continue
        if len(outputs) > 1 and spec.index != len(outputs) - 1:
            output = F.interpolate(output, size=(last.size(2), last.size(3)), mode="bilinear", align_corners=False)
        if flipped:
            output = torch.flip(output, [3])
        if spec.test_heatmaps:
            heat = spec.heatmaps(output)
            heatmaps_sum = heatmaps_sum + (heat[:, list(params.flip_index)] if flipped else heat)
            count += 1
        if spec.test_tags:
            tag = spec.tags(output)
            if flipped and spec.tag_per_joint:
                tag = tag[:, list(params.flip_index)]
            tags.append(tag)
    return heatmaps_sum / count, tags


def scale_outputs(model: nn.Module, batch: torch.Tensor, params: InferenceParams,
                  project_size: tuple[int, int] | None):
    """Network outputs for one test scale.

    batch (N, 3, h, w). Returns heatmaps: list of (N, J, H', W') (the image's, then the mirror's), tags:
    list of (N, J or 1, H', W') in the same order. Maps are at the resolution of the network's last output
    (1/2 of the input for HigherHRNet, 1/4 for the hourglass), or at project_size = (W, H) when given
    (PROJECT2IMAGE).
    """
    heatmaps_avg, tags = _stage_outputs(model(batch), params, flipped=False)
    heatmaps = [heatmaps_avg]
    if params.flip_test:
        heatmaps_flip, tags_flip = _stage_outputs(model(torch.flip(batch, [3])), params, flipped=True)
        heatmaps.append(heatmaps_flip)
        tags += tags_flip
    if project_size is not None:
        size = (project_size[1], project_size[0])
        heatmaps = [F.interpolate(h, size=size, mode="bilinear", align_corners=False) for h in heatmaps]
        tags = [F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in tags]
    return heatmaps, tags


def _size_key(image: np.ndarray, params: InferenceParams):
    h, w = image.shape[:2]
    min_scale = min(params.scale_factors)
    return tuple(multi_scale_size(w, h, params.input_size, s, min_scale)[0] for s in params.scale_factors)


@torch.inference_mode()
def run_network(model: nn.Module, images: Sequence[np.ndarray], params: InferenceParams,
                device: torch.device | str = "cpu"):
    """Aggregated maps for each image: list of (heatmaps (J, H, W), tags (J or 1, H, W, T), center, scale).

    Images whose network inputs have the same sizes at every scale go through the network together.
    """
    results: list = [None] * len(images)
    groups: dict = defaultdict(list)
    for i, image in enumerate(images):
        groups[_size_key(image, params)].append(i)
    min_scale = min(params.scale_factors)
    for indices in groups.values():
        final_heatmaps, tags_list = None, []
        base_sizes = []
        for i in indices:
            h, w = images[i].shape[:2]
            base_sizes.append(multi_scale_size(w, h, params.input_size, 1.0, min_scale)[0])
        base_size = base_sizes[0]
        for s in sorted(params.scale_factors, reverse=True):
            tensors, crops = [], []
            for i in indices:
                h, w = images[i].shape[:2]
                size, center, scale = multi_scale_size(w, h, params.input_size, s, min_scale)
                resized = warp_image(images[i], get_affine_transform(center, scale, 0, size), size)
                tensors.append(normalize(resized, params.mean, params.std))
                crops.append((center, scale))
            batch = torch.stack(tensors).to(device)
            heatmaps, tags = scale_outputs(model, batch, params, base_size if params.project2image else None)
            if s == 1 or len(params.scale_factors) == 1:
                if final_heatmaps is not None and not params.project2image:
                    tags = [F.interpolate(t, size=final_heatmaps.shape[2:], mode="bilinear", align_corners=False)
                            for t in tags]
                tags_list += [t.unsqueeze(4) for t in tags]
            heatmaps_avg = (heatmaps[0] + heatmaps[1]) / 2.0 if params.flip_test else heatmaps[0]
            if final_heatmaps is None:
                final_heatmaps = heatmaps_avg
            elif params.project2image:
                final_heatmaps = final_heatmaps + heatmaps_avg
            else:
                final_heatmaps = final_heatmaps + F.interpolate(
                    heatmaps_avg, size=final_heatmaps.shape[2:], mode="bilinear", align_corners=False)
        if len(params.scale_factors) > 1:   # x / 1.0 is x: a pass over (N, J, H, W) at the input's size saved
            final_heatmaps = final_heatmaps / float(len(params.scale_factors))
        tags = torch.cat(tags_list, dim=4)
        for k, i in enumerate(indices):
            # The reference keeps the crop of the last (smallest) scale for the back-projection.
            center, scale = crops[k]
            results[i] = ImageMaps(final_heatmaps[k], tags[k], center, scale)
    return results


def decode_people(maps: ImageMaps, params: InferenceParams, which: str = "") -> tuple[np.ndarray, np.ndarray]:
    """People from one image's maps: persons (P, J, 3 + T) float32 (x, y in ORIGINAL image pixels, joint
    value, tags) and scores (P,) float32, in the grouping's order.

    Raises NonFiniteOutputError when the heatmaps or tags hold NaN or infinity (broken weights, or an
    overflow): grouping would silently find nobody, or people at NaN positions. `which` ends its first clause
    (e.g. " for image 3 of the batch").
    """
    heatmaps = maps.heatmaps.float().cpu()
    tags = maps.tags.float().cpu()
    _check_finite(which, heatmaps, tags)
    persons, scores = group(heatmaps, tags, params.grouping)
    if len(persons):
        size = (heatmaps.shape[2], heatmaps.shape[1])
        inverse = get_affine_transform(maps.center, maps.scale, 0, size, inv=True)
        persons[:, :, :2] = apply_affine(persons[:, :, :2], inverse)
    return persons, scores


def infer(model: nn.Module, images: Sequence[np.ndarray], params: InferenceParams,
          device: torch.device | str = "cpu") -> list[tuple[np.ndarray, np.ndarray]]:
    """(persons, scores) of `decode_people` for each (H, W, 3) uint8 RGB image."""
    maps = run_network(model, images, params, device)
    return [decode_people(m, params, f" for image {i} of the batch" if len(images) > 1 else "")
            for i, m in enumerate(maps)]


def _check_finite(which: str, heatmaps: torch.Tensor, tags: torch.Tensor) -> None:
    # A finite sum proves every value finite (NaN and infinity carry through a sum), in one pass over the maps
    # where isfinite(...).all() makes two and a boolean copy (5% of a video frame's time with the bundled
    # model); only a sum that is not finite (a bad value, or finite values overflowing) needs the full count.
    if all(bool(torch.isfinite(t.sum())) for t in (heatmaps, tags)):
        return
    bad = [f"{int((~torch.isfinite(t)).sum())} of {t.numel()} {what} values"
           for what, t in (("heatmap", heatmaps), ("tag", tags)) if not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteOutputError(f"the network's outputs{which} hold NaN or infinite values "
                                   f"({' and '.join(bad)}), so no people can be found; the weights are broken (a "
                                   f"diverged training?) or the computation overflowed")
