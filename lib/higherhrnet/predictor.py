"""Predictor: image(s) in, people out.

    predictor = higherhrnet.Predictor("experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml",
                                      "models/pose_higher_hrnet_w32_512.pth")
    people = predictor(image_rgb)            # list[Person]
    batch = predictor([img1, img2])          # list[list[Person]], same as one at a time
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .config import CfgNode, ConfigError, load_cfg
from .core.inference import InferenceParams, infer
from .core.onnx_backend import (OnnxRuntimeNetwork, check_output_channels, create_session, export_onnx,
                                require)
from .geometry import multi_scale_size
from .keypoints import KeypointSpec, keypoints_from_cfg
from .models import ChannelsLast, build_model, fold_batchnorm, model_output_channels

__all__ = ["Person", "Predictor", "oks_nms", "BACKENDS", "DEFAULT_MAX_INPUT_PIXELS"]

BACKENDS = ("torch", "onnxruntime")

# About 36 times a 512 x 512 input: a few GB of activations for HigherHRNet-W32.
DEFAULT_MAX_INPUT_PIXELS = 3072 * 3072


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
        """A COCO keypoint result: image_id, category_id, keypoints [x, y, v] * J, score, bbox from the
        keypoints' extent. Plain Python numbers (JSON-serialisable)."""
        kpts = self.keypoints.astype(np.float64)
        x0, y0 = kpts[:, 0].min(), kpts[:, 1].min()
        x1, y1 = kpts[:, 0].max(), kpts[:, 1].max()
        return {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "keypoints": [float(v) for v in kpts.reshape(-1)],
            "score": float(self.score),
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        }


def _oks(a: np.ndarray, b: np.ndarray, sigmas: np.ndarray, area: float) -> float:
    """OKS between two (J, 3) poses, area from the first, COCO's formula over all joints."""
    variances = (2 * sigmas) ** 2
    d2 = ((a[:, :2] - b[:, :2]) ** 2).sum(1)
    return float(np.mean(np.exp(-d2 / variances / (area + np.spacing(1)) / 2)))


def oks_nms(people: list[Person], sigmas: np.ndarray, threshold: float) -> list[Person]:
    """Drop people whose OKS with a higher-scoring kept person exceeds `threshold`."""
    order = sorted(range(len(people)), key=lambda i: -people[i].score)
    kept: list[int] = []
    for i in order:
        kp = people[i].keypoints
        visible = kp[:, 2] > 0
        for k in kept:
            ref = people[k].keypoints
            extent = ref[ref[:, 2] > 0, :2] if (ref[:, 2] > 0).any() else ref[:, :2]
            area = float(np.prod(extent.max(0) - extent.min(0)))
            if visible.any() and _oks(ref, kp, sigmas, area) > threshold:
                break
        else:
            kept.append(i)
    return [people[i] for i in sorted(kept)]


class Predictor:
    """Multi-person pose estimation with a trained network (HigherHRNet, or any MODEL.NAME build_model knows).

    cfg: a config (CfgNode) or the path of an experiment YAML file.
    weights: path of a checkpoint (any layout `load_checkpoint` accepts) or a loaded state dict; with the
    onnxruntime backend also a .onnx file from tools/export_onnx.py.
    device: "cpu" (default), "cuda", "cuda:1", ... opts: KEY VALUE overrides when cfg is a path.
    oks_nms_threshold: drop duplicate poses with OKS above it (None, the default and the reference
    behaviour: keep all).
    backend: "torch" (default) runs the network in PyTorch; "onnxruntime" runs it in an onnxruntime
    session (a checkpoint is exported to ONNX in memory first, which takes seconds). The rest of the
    pipeline is the same; heatmaps and tags agree up to float rounding.
    fold_bn: torch backend: run a copy of the network with every BatchNorm folded into the convolution
    before it, on CPU in channels-last memory format (default; same outputs up to float rounding, faster).
    fold_bn=False runs the network as given, tensor operation for tensor operation as the reference. The
    ONNX export always folds.
    onnx_threads: onnxruntime intra-op threads (default: torch.get_num_threads()).

    max_input_pixels: refuse images whose network input (largest test scale) would exceed this many
    pixels, instead of running out of memory. The input's short side is INPUT_SIZE x scale whatever the
    image size, so only extreme aspect ratios (panoramas) reach it.
    """

    max_input_pixels = DEFAULT_MAX_INPUT_PIXELS

    def __init__(self, cfg: CfgNode | str | os.PathLike, weights: str | os.PathLike | Mapping,
                 device: str | torch.device | None = None, opts: Sequence[str] = (),
                 keypoints: KeypointSpec | None = None, oks_nms_threshold: float | None = None, *,
                 backend: str = "torch", fold_bn: bool = True, onnx_threads: int | None = None):
        if not isinstance(cfg, CfgNode):
            cfg = load_cfg(cfg, opts)
        elif opts:
            raise ValueError("opts are only used when cfg is a file path; merge them into the CfgNode instead")
        _check_backend(backend)
        if isinstance(weights, (str, os.PathLike)) and os.fspath(weights).lower().endswith(".onnx"):
            if backend != "onnxruntime":
                raise ValueError(f"{os.fspath(weights)} is an ONNX model: use backend='onnxruntime' (the torch "
                                 f"backend needs a PyTorch checkpoint)")
            network = OnnxRuntimeNetwork(create_session(weights, _device(device), onnx_threads))
            check_output_channels(network, model_output_channels(cfg), os.fspath(weights))
            self._setup(cfg, network, device, keypoints, oks_nms_threshold, "onnxruntime", False, onnx_threads)
            return
        model = build_model(cfg)
        load_checkpoint(model, weights)
        self._setup(cfg, model, device, keypoints, oks_nms_threshold, backend, fold_bn, onnx_threads)

    @classmethod
    def from_model(cls, cfg: CfgNode, model: torch.nn.Module, device: str | torch.device | None = None,
                   keypoints: KeypointSpec | None = None, oks_nms_threshold: float | None = None, *,
                   backend: str = "torch", fold_bn: bool = True, onnx_threads: int | None = None) -> "Predictor":
        """A Predictor around a network you already have: any module returning the outputs the config's
        per-output LOSS.* / TEST.WITH_* lists describe (heatmaps first, then tags).

        The model is switched to eval mode; with fold_bn or the onnxruntime backend the Predictor runs a
        folded copy (or an export) of it, so later changes to the model do not reach the Predictor.
        """
        _check_backend(backend)
        self = cls.__new__(cls)
        self._setup(cfg, model, device, keypoints, oks_nms_threshold, backend, fold_bn, onnx_threads)
        return self

    def _setup(self, cfg, model, device, keypoints, oks_nms_threshold, backend, fold_bn, onnx_threads) -> None:
        self.cfg = cfg
        self.keypoints = keypoints or _keypoints_of(cfg)
        self.params = InferenceParams.from_cfg(cfg, self.keypoints)
        self.device = _device(device)
        self.backend = backend
        model = model.eval()
        if isinstance(model, OnnxRuntimeNetwork):
            self.model, self.backend = model, "onnxruntime"
        elif backend == "onnxruntime":
            require("onnxruntime")   # before the export, which takes seconds
            size = self.params.input_size
            onnx_model = export_onnx(fold_batchnorm(model), input_size=(size, size))
            self.model = OnnxRuntimeNetwork(create_session(onnx_model, self.device, onnx_threads))
        elif fold_bn:
            folded = fold_batchnorm(model).to(self.device)
            self.model = ChannelsLast(folded) if self.device.type == "cpu" else folded
        else:
            self.model = model.to(self.device)
        self.oks_nms_threshold = oks_nms_threshold

    def __call__(self, images: np.ndarray | Sequence[np.ndarray]):
        """One (H, W, 3) uint8 RGB image -> list[Person]; a list of images -> list of those."""
        if isinstance(images, np.ndarray):
            return self.predict_batch([images])[0]
        return self.predict_batch(images)

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

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[list[Person]]:
        """People for each image; images of equal size share network passes."""
        for i, image in enumerate(images):
            check_image(image, f"image {i}")
            self._check_input_size(image, f"image {i}")
        results = infer(self.model, images, self.params, self.device)
        out = []
        for result in results:
            people = [
                Person(keypoints=person[:, :3].copy(), score=float(score), tags=person[:, 3:].copy())
                for person, score in zip(result.persons, result.scores)
            ]
            if self.oks_nms_threshold is not None:
                people = oks_nms(people, self.keypoints.sigmas_array, self.oks_nms_threshold)
            out.append(people)
        return out


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: expected one of {list(BACKENDS)}")


def _device(device: str | torch.device | None) -> torch.device:
    device = torch.device(device or "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} requested but CUDA is not available; use device='cpu'")
    return device


def _keypoints_of(cfg: CfgNode) -> KeypointSpec:
    try:
        return keypoints_from_cfg(cfg)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def check_image(image: np.ndarray, name: str = "image") -> None:
    """Raise ValueError unless `image` is an (H, W, 3) uint8 array with H, W >= 1."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name}: expected a NumPy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected shape (H, W, 3) RGB, got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8, got {image.dtype} (convert and scale to 0..255)")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name}: empty image {image.shape}")
