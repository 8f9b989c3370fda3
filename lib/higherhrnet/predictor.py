"""Predictor: image(s) in, people out.

    predictor = higherhrnet.Predictor.from_config("experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml",
                                                  "models/pose_higher_hrnet_w32_512.pth")
    people = predictor(image_rgb)            # list[Person]
    batch = predictor([img1, img2])          # list[list[Person]], same as one at a time

A Predictor is a thin object around a ready network, the test-time parameters and the keypoint set;
`from_config` (and, as in the first releases, `Predictor(cfg, weights, ...)`) builds those from a config.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint, read_model_meta
from .config import CfgNode, load_cfg
from .data.registry import dataset_info, keypoints_from_config
from .devices import resolve_device
from .geometry import multi_scale_size
from .images import uint16_to_uint8
from .inference import ImageMaps, InferenceParams, decode_people, run_network
from .keypoints import KeypointSpec
from .models import BACKENDS, build_model, build_output_specs, load_onnx_network, prepare_network
from .models.onnx import OnnxRuntimeNetwork
from .models.runtime import check_backend
from .oks import oks_nms, pose_box, visible_joints

__all__ = ["Person", "Predictor", "BACKENDS", "DEFAULT_MAX_INPUT_PIXELS", "CLEAN", "as_rgb_image",
           "synthetic_model_note"]

# About 36 times a 512 x 512 input: a few GB of activations for HigherHRNet-W32.
DEFAULT_MAX_INPUT_PIXELS = 3072 * 3072

# What `higherhrnet predict` shows a person by default: people scoring at least 0.2 (the mean of their 17
# joint values), duplicates (OKS above 0.5 with a higher-scoring person) removed, joints that fall outside
# the image moved onto its nearest pixel with value 0. The Predictor's own defaults keep every grouped person
# as the grouping placed it, as the official evaluation does (AP counts on low-scoring people too):
# Predictor.from_config(cfg, weights, **CLEAN) gives the cleaned results.
CLEAN = {"min_score": 0.2, "oks_nms_threshold": 0.5, "clip_to_image": True}


@dataclass
class Person:
    """keypoints (J, 3) float32: x, y in original image pixels, joint value (heatmap peak).
    score: the person score (mean joint value). tags (J, T): the associative-embedding tags.
    Joints that were never found have value 0; their x, y are still mapped to the image, as the
    reference does."""

    keypoints: np.ndarray
    score: float
    tags: np.ndarray

    def to_coco(self, image_id: int, category_id: int = 1) -> dict:
        """A COCO keypoint result: image_id, category_id, keypoints [x, y, v] * J, score, bbox (x, y, w, h)
        around all the joints (oks.pose_box; COCO's keypoint evaluation does not read it). Plain Python
        numbers (JSON-serialisable)."""
        kpts = self.keypoints.astype(np.float64)
        return {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "keypoints": [float(v) for v in kpts.reshape(-1)],
            "score": float(self.score),
            "bbox": [float(v) for v in pose_box(kpts)],
        }

    def box(self, threshold: float = 0.2) -> tuple[float, float, float, float]:
        """(x, y, w, h) in image pixels around the joints visible at `threshold` (oks.visible_joints: value
        >= threshold and > 0), around all joints when none is; the box OKS uses (oks.pose_box)."""
        x, y, w, h = pose_box(self.keypoints, visible_joints(self.keypoints, threshold))
        return float(x), float(y), float(w), float(h)

    def to_json(self, threshold: float = 0.2) -> dict:
        """Compact, rounded JSON: score, box (x, y, w, h around the joints visible at `threshold`: `box`) and
        keypoints as [x, y, value] triples, pixels to 0.1 and values to 0.001."""
        return {
            "score": round(float(self.score), 3),
            "box": [round(v, 1) for v in self.box(threshold)],
            "keypoints": [[round(float(x), 1), round(float(y), 1), round(float(v), 3)] for x, y, v in self.keypoints],
        }


class Predictor:
    """Multi-person pose estimation with a ready network.

    network: a module returning the outputs `params.outputs` describes (see models/runtime.py's
    prepare_network for a folded / channels-last / onnxruntime network). params: the test-time pipeline's
    parameters. keypoints: the joints the network predicts. device: where inputs go (default: where the
    network's parameters are; from_config and from_model move the network to their `device`, default CUDA
    when available, else the CPU: devices.resolve_device).
    min_score: drop people scoring below it; oks_nms_threshold: drop duplicate poses with OKS above it;
    clip_to_image: a joint outside the image (beyond its outer pixels' edges) is moved to the nearest pixel
    centre and gets value 0, the person's score (the mean of its joint values) losing that joint's share, and
    a person with no joint left inside is dropped. The defaults (0, None, False) keep every grouped person as
    grouping placed it, the official evaluation's behaviour; `CLEAN` holds the values the predict command uses
    for pictures people look at. max_input_pixels: refuse images whose network input (largest test scale) would
    exceed this many pixels, instead of running out of memory; the input's short side is INPUT_SIZE x scale
    whatever the image size, so only extreme aspect ratios (panoramas) reach it. meta: what the weights say
    about themselves (checkpoint.read_model_meta: dataset, keypoints, metrics, ...; {} when unknown).

    `Predictor(cfg, weights, ...)` with a config (or YAML path) first is the same as
    `Predictor.from_config(cfg, weights, ...)`.
    """

    def __init__(self, network: nn.Module | CfgNode | str | os.PathLike, params: InferenceParams | None = None,
                 *args, **kwargs):
        legacy = isinstance(network, (CfgNode, str, os.PathLike))
        # Positional arguments after the first two: (keypoints, device), or in the first releases' call
        # Predictor(cfg, weights, device, opts, keypoints, oks_nms_threshold).
        names = ("device", "opts", "keypoints", "oks_nms_threshold") if legacy else ("keypoints", "device")
        if len(args) > len(names):
            raise TypeError(f"Predictor takes at most {len(names) + 2} positional arguments")
        for name, value in zip(names, args):
            if name in kwargs:
                raise TypeError(f"Predictor got multiple values for argument {name!r}")
            kwargs[name] = value
        unknown = set(kwargs) - {"keypoints", "device", "min_score", "oks_nms_threshold", "max_input_pixels",
                                 "meta", "clip_to_image"}
        if unknown and not legacy:
            raise TypeError(f"unexpected arguments {sorted(unknown)}: they are options of Predictor.from_config, "
                            f"for building a network from a config")
        if legacy:
            options = {k: kwargs.pop(k) for k in ("min_score", "oks_nms_threshold", "max_input_pixels",
                                                  "clip_to_image") if k in kwargs}
            network, params, keypoints, device, meta = _from_config(network, params, **kwargs)
            kwargs = dict(options, keypoints=keypoints, device=device, meta=meta)
        self._init(network, params, **kwargs)

    def _init(self, network: nn.Module, params: InferenceParams, keypoints: KeypointSpec | None = None,
              device: str | torch.device | None = None, min_score: float = 0.0,
              oks_nms_threshold: float | None = None, max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
              meta: Mapping | None = None, clip_to_image: bool = False) -> None:
        if not isinstance(params, InferenceParams) or not isinstance(keypoints, KeypointSpec):
            raise TypeError("Predictor(network, params, keypoints): params must be InferenceParams and keypoints a "
                            "KeypointSpec (or use Predictor.from_config)")
        self.network = network
        self.params = params
        self.keypoints = keypoints
        self.device = _network_device(network) if device is None else resolve_device(device)
        self.min_score = min_score
        self.oks_nms_threshold = oks_nms_threshold
        self.max_input_pixels = max_input_pixels
        self.clip_to_image = clip_to_image
        self.meta = dict(meta or {})

    @classmethod
    def from_config(cls, cfg: CfgNode | str | os.PathLike, weights: str | os.PathLike | Mapping,
                    device: str | torch.device | None = None, opts: Sequence[str] = (),
                    keypoints: KeypointSpec | None = None, oks_nms_threshold: float | None = None, *,
                    backend: str = "torch", fold_bn: bool = True, onnx_threads: int | None = None,
                    min_score: float = 0.0, max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
                    clip_to_image: bool = False) -> "Predictor":
        """A Predictor for a trained network of a config.

        cfg: a config (CfgNode) or the path of an experiment YAML file; opts: KEY VALUE overrides when it
        is a path. weights: path of a checkpoint (any layout `load_checkpoint` accepts) or a loaded state
        dict; with the onnxruntime backend also a .onnx file from tools/export_onnx.py. keypoints: default
        the config's set. backend "torch" (default) or "onnxruntime" (the checkpoint is exported to ONNX
        in memory first, which takes seconds); fold_bn: torch backend, run a BatchNorm-folded copy
        (default; same outputs up to float rounding, faster), False runs the network tensor operation for
        tensor operation as the reference. onnx_threads: onnxruntime intra-op threads (default:
        torch.get_num_threads()). The Predictor's `meta` is the checkpoint's (read_model_meta; {} for
        official weights and ONNX files).
        """
        network, params, keypoints, device, meta = _from_config(cfg, weights, device, opts, keypoints,
                                                                backend=backend, fold_bn=fold_bn,
                                                                onnx_threads=onnx_threads)
        return cls(network, params, keypoints, device, min_score=min_score, oks_nms_threshold=oks_nms_threshold,
                   max_input_pixels=max_input_pixels, meta=meta, clip_to_image=clip_to_image)

    @classmethod
    def from_model(cls, cfg: CfgNode, model: nn.Module, device: str | torch.device | None = None,
                   keypoints: KeypointSpec | None = None, oks_nms_threshold: float | None = None, *,
                   backend: str = "torch", fold_bn: bool = True, onnx_threads: int | None = None,
                   min_score: float = 0.0, max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
                   clip_to_image: bool = False) -> "Predictor":
        """A Predictor around a network you already have: any module returning the outputs the config's
        output specs describe (heatmaps first, then tags).

        The model is switched to eval mode; with fold_bn or the onnxruntime backend the Predictor runs a
        folded copy (or an export) of it, so later changes to the model do not reach the Predictor.
        """
        check_backend(backend)
        keypoints = keypoints or keypoints_from_config(cfg)
        params = InferenceParams.from_config(cfg, keypoints)
        device = resolve_device(device)
        size = params.input_size
        network = prepare_network(model, device, backend, fold_bn, onnx_threads, export_size=(size, size))
        return cls(network, params, keypoints, device, min_score=min_score, oks_nms_threshold=oks_nms_threshold,
                   max_input_pixels=max_input_pixels, clip_to_image=clip_to_image)

    @property
    def backend(self) -> str:
        """"onnxruntime" when the network is an onnxruntime session, else "torch"."""
        return "onnxruntime" if isinstance(self.network, OnnxRuntimeNetwork) else "torch"

    def __call__(self, images: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]):
        """One image -> list[Person]; a list (or tuple) of images -> a list of those.

        An image is an (H, W, 3) uint8 RGB array; (H, W) and (H, W, 1) gray, (H, W, 4) RGBA (alpha dropped),
        uint16 (scaled by 1/257) and torch uint8 tensors on the CPU are converted (as_rgb_image); anything
        else is refused with a ValueError saying what it is and how to convert it.
        """
        if isinstance(images, (list, tuple)):
            return self.predict_batch(images)
        return self.predict_batch([as_rgb_image(images)])[0]

    def _check_input_size(self, image: np.ndarray, name: str) -> None:
        h, w = image.shape[:2]
        p = self.params
        scale = max(p.scale_factors)
        size = multi_scale_size(w, h, p.input_size, scale, min(p.scale_factors))[0]
        if size[0] * size[1] > self.max_input_pixels:
            ratio = max(w, h) / min(w, h)
            raise ValueError(
                f"{name} ({w}x{h}, aspect ratio {ratio:.0f}:1) would need a {size[0]}x{size[1]} network input at "
                f"scale {scale}, over the limit of {self.max_input_pixels} pixels; crop the image or raise "
                f"max_input_pixels")

    def predict_batch(self, images: Sequence[np.ndarray | torch.Tensor]) -> list[list[Person]]:
        """People for each image (in the grouping's order, or by falling score when filtered); images of equal
        size share network passes. Images as __call__ takes them (converted by as_rgb_image)."""
        images = [as_rgb_image(image, f"image {i}") for i, image in enumerate(images)]
        maps = self.maps(images)
        return [self.people_from_maps(image, m, f" for image {i} of the batch" if len(images) > 1 else "")
                for i, (image, m) in enumerate(zip(images, maps))]

    def maps(self, images: Sequence[np.ndarray | torch.Tensor]) -> list[ImageMaps]:
        """The first stage of predict_batch: the network's aggregated heatmaps and tags for each image
        (inference.ImageMaps: in the frame of the resized network input, every TEST.* option applied), what
        grouping reads. Images as __call__ takes them; images of equal size share network passes."""
        images = [as_rgb_image(image, f"image {i}") for i, image in enumerate(images)]
        for i, image in enumerate(images):
            self._check_input_size(image, f"image {i}")
        return run_network(self.network, images, self.params, self.device)

    def people_from_maps(self, image: np.ndarray, maps: ImageMaps, which: str = "") -> list[Person]:
        """The second stage of predict_batch: the people in `maps` (from `maps([image])`), in `image`'s pixels,
        with this Predictor's min_score, OKS-NMS and clip_to_image applied. NonFiniteOutputError when the maps
        hold NaN or infinity (`which` ends its first clause, e.g. " for image 2 of the batch")."""
        persons, scores = decode_people(maps, self.params, which)
        people = [Person(keypoints=person[:, :3].copy(), score=float(score), tags=person[:, 3:].copy())
                  for person, score in zip(persons, scores)]
        if self.clip_to_image:
            height, width = image.shape[:2]
            people = _clip_to_image(people, width, height)
        return self._filter(people)

    def _filter(self, people: list[Person]) -> list[Person]:
        if self.min_score > 0:
            people = [p for p in people if p.score >= self.min_score]
        if self.oks_nms_threshold is not None and people:
            kept = oks_nms(np.stack([p.keypoints for p in people]), np.array([p.score for p in people]),
                           self.keypoints.sigmas_array, self.oks_nms_threshold)
            people = [people[i] for i in kept]
        if self.min_score > 0 or self.oks_nms_threshold is not None:
            people.sort(key=lambda p: -p.score)
        return people


def _from_config(cfg, weights, device=None, opts: Sequence[str] = (), keypoints: KeypointSpec | None = None, *,
                 backend: str = "torch", fold_bn: bool = True, onnx_threads: int | None = None):
    """(network, params, keypoints, device, meta) for Predictor.from_config."""
    if not isinstance(cfg, CfgNode):
        cfg = load_cfg(cfg, opts)
    elif opts:
        raise ValueError("opts are only used when cfg is a file path; merge them into the CfgNode instead")
    check_backend(backend)
    keypoints = keypoints or keypoints_from_config(cfg)
    outputs = build_output_specs(cfg)
    params = InferenceParams.from_config(cfg, keypoints, outputs)
    device = resolve_device(device)
    if isinstance(weights, (str, os.PathLike)) and os.fspath(weights).lower().endswith(".onnx"):
        if backend != "onnxruntime":
            raise ValueError(f"{os.fspath(weights)} is an ONNX model: use backend='onnxruntime' (the torch "
                             f"backend needs a PyTorch checkpoint)")
        return load_onnx_network(weights, outputs, device, onnx_threads), params, keypoints, device, {}
    model = build_model(cfg, outputs)
    meta = read_model_meta(load_checkpoint(model, weights))
    size = params.input_size
    network = prepare_network(model, device, backend, fold_bn, onnx_threads, export_size=(size, size))
    return network, params, keypoints, device, meta


def _network_device(network: nn.Module) -> torch.device:
    """Where a ready network's parameters (or buffers) are: the Predictor does not move a network it is given.
    The CPU for one with neither (an onnxruntime session reads its inputs from host memory)."""
    for tensor in (*network.parameters(), *network.buffers()):
        return tensor.device
    return torch.device("cpu")


def _clip_to_image(people: list[Person], width: int, height: int) -> list[Person]:
    """Joints outside the image ([-0.5, width - 0.5] x [-0.5, height - 0.5], the outer pixels' edges) moved to
    the nearest pixel centre with value 0, the score lowered by their share of the mean; people with no joint
    inside dropped."""
    kept = []
    for person in people:
        xs, ys = person.keypoints[:, 0], person.keypoints[:, 1]
        outside = (xs < -0.5) | (xs > width - 0.5) | (ys < -0.5) | (ys > height - 0.5)
        if outside.all():
            continue
        if outside.any():
            keypoints = person.keypoints.copy()
            score = person.score - float(keypoints[outside, 2].sum()) / len(keypoints)
            keypoints[outside, 0] = np.clip(keypoints[outside, 0], 0, width - 1)
            keypoints[outside, 1] = np.clip(keypoints[outside, 1], 0, height - 1)
            keypoints[outside, 2] = 0
            person = Person(keypoints=keypoints, score=score, tags=person.tags)
        kept.append(person)
    return kept


_IMAGE_LAYOUTS = "(H, W, 3) RGB, (H, W) or (H, W, 1) gray, or (H, W, 4) RGBA"


def as_rgb_image(image, name: str = "image") -> np.ndarray:
    """`image` as the (H, W, 3) uint8 RGB array the network pipeline takes; ValueError naming `name` otherwise.

    Accepted: uint8 arrays laid out (H, W, 3) (returned as they are), (H, W) or (H, W, 1) (gray, repeated to
    RGB), (H, W, 4) (RGBA: alpha dropped); uint16 arrays of those layouts (scaled by 1/257 and rounded, as
    images.read_image reads 16-bit files); torch uint8 tensors on the CPU of those layouts. Refused, with what
    to do: None (what cv2.imread returns for a file it cannot read), float, bool and other integer arrays,
    channel-first (3, H, W) arrays and tensors, empty images, lists (a list of images is a batch: pass it to
    the Predictor itself) and anything else.
    """
    if image is None:
        raise ValueError(f"{name} is None: cv2.imread returns None when it cannot read a file (missing, unreadable "
                         f"or not an image); higherhrnet.images.read_image(path) says which, and returns RGB")
    kind = "array"
    if isinstance(image, torch.Tensor):
        if image.device.type != "cpu":
            raise ValueError(f"{name} is a tensor on {image.device}: pass image.cpu() (the pipeline resizes on the "
                             f"CPU before the network runs on the Predictor's device)")
        if image.dtype != torch.uint8:
            raise ValueError(f"{name} is a {image.dtype} tensor: expected torch.uint8 {_IMAGE_LAYOUTS} pixels "
                             f"0..255")
        image, kind = image.numpy(), "tensor"
    if not isinstance(image, np.ndarray):
        what = ("a list of lists (a nested list is not an image: np.asarray(...) makes it an array)"
                if isinstance(image, (list, tuple)) else type(image).__name__)
        raise ValueError(f"{name}: expected a NumPy array {_IMAGE_LAYOUTS} uint8 (or a list of them, a batch), "
                         f"got {what}")
    if image.size == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if image.dtype == np.bool_:
        raise ValueError(f"{name} is a bool {kind} (a mask?): expected uint8 pixels 0..255; a picture stored as bool "
                         f"converts with image.astype(np.uint8) * 255")
    if np.issubdtype(image.dtype, np.floating):
        low, high = float(np.nanmin(image)), float(np.nanmax(image))
        raise ValueError(f"{name} is a {image.dtype} {kind} (values {low:.3g} to {high:.3g}): expected uint8 pixels "
                         f"0..255; convert with (image * 255).round().clip(0, 255).astype(np.uint8) for values in "
                         f"0..1, or image.round().clip(0, 255).astype(np.uint8) for values in 0..255")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{name} is a {image.dtype} {kind}: expected uint8 pixels 0..255 (or uint16); convert with "
                         f"image.astype(np.uint8) once its values are known to be in 0..255")
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4) and image.shape[0] in (1, 3, 4):
        flip = "image.permute(1, 2, 0)" if kind == "tensor" else "image.transpose(1, 2, 0)"
        raise ValueError(f"{name} of shape {tuple(image.shape)} looks channel-first (C, H, W); the Predictor takes "
                         f"channels last, {_IMAGE_LAYOUTS}: pass {flip}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        hint = "; for a batch pass a list of images: list(images)" if image.ndim == 4 else ""
        raise ValueError(f"{name} has shape {tuple(image.shape)}: expected {_IMAGE_LAYOUTS}{hint}")
    if image.dtype == np.uint16:
        image = uint16_to_uint8(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    # Negative strides (image[:, :, ::-1]) and views reach OpenCV, which needs plain contiguous memory.
    return np.ascontiguousarray(image)


def synthetic_model_note(meta: Mapping) -> str | None:
    """One line to print when a model's metadata (Predictor.meta) says it was trained on a dataset of no real
    people (the synthetic stick figures); None for other models and for models that do not say."""
    dataset = meta.get("dataset")
    if not isinstance(dataset, str) or dataset_info(dataset).real_people:
        return None
    return (f"note: this model was trained on synthetic stick figures (dataset {dataset!r}), not on real photos; "
            f"for photos of people use COCO weights, e.g. "
            f"`higherhrnet predict --weights mmpose_higherhrnet_w32_512 ...` (downloaded once; see README \"Official weights and COCO\")")
