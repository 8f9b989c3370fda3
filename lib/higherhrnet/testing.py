"""A painted network for tests and benchmarks: it stands in for a trained network on one known scene.

Given any test-time input of the scene's image (any test scale, flipped or not), `PaintedNetwork` returns the
maps a well-trained network would: Gaussian heatmaps centred on the true joints (sub-pixel), and tag maps in
which every pixel carries the tag of the person whose joint of that type is nearest, laid out as the output
specs say. With `model` it also runs that network on the input first, so that timings include a real forward.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .geometry import apply_affine, get_affine_transform, multi_scale_size
from .outputs import OutputSpec

__all__ = ["PaintedNetwork"]


class PaintedNetwork(nn.Module):
    """forward(x (N, 3, h, w)) -> one (N, C_i, h / stride_i, w / stride_i) map per output spec.

    people (P, J, 2) or (P, J, 3): joints in the scene image's pixels (x, y[, visibility]; joints with
    visibility <= 0 are not painted). image_size (W, H) of the scene image; input_size and scale_factors
    as the config's DATASET.INPUT_SIZE and TEST.SCALE_FACTOR, which tell which crop an input is. The first
    input seen at a size is taken as unflipped and any other input of that size as its mirror (the test
    pipeline passes an image before its mirror). flip_index (J,): the keypoint set's flip permutation.

    sigma: heatmap Gaussian sigma in output pixels. tag_values (P,): each person's tag (default 4 * p).
    weak_fraction: that fraction of joints (drawn with `seed`) is painted at weak_factor of full height,
    below the detection threshold, as a network unsure of a joint. heat_noise: uniform noise in
    [0, heat_noise) added to heatmaps; tag_noise: normal noise of that std added to tag maps.
    model: run it on every input (its outputs are discarded); forward_seconds accumulates its time.
    """

    def __init__(self, people: np.ndarray, image_size: tuple[int, int], input_size: int,
                 scale_factors: Sequence[float], outputs: Sequence[OutputSpec], flip_index: Sequence[int], *,
                 sigma: float = 2.0, tag_values: Sequence[float] | None = None, weak_fraction: float = 0.0,
                 weak_factor: float = 0.06, heat_noise: float = 0.0, tag_noise: float = 0.0,
                 model: nn.Module | None = None, seed: int = 0):
        super().__init__()
        people = np.asarray(people, np.float64)
        if people.ndim != 3 or people.shape[2] not in (2, 3):
            raise ValueError(f"people must be (P, J, 2) or (P, J, 3), got {people.shape}")
        if people.shape[2] == 2:
            people = np.concatenate([people, np.ones(people.shape[:2] + (1,))], axis=2)
        self.people = people
        self.image_size, self.input_size = tuple(image_size), input_size
        self.scale_factors = list(scale_factors)
        self.outputs, self.flip_index = tuple(outputs), np.asarray(flip_index)
        self.sigma = sigma
        self.tag_values = np.asarray(4.0 * np.arange(len(people)) if tag_values is None else tag_values, np.float64)
        rng = np.random.default_rng(seed)
        self.strength = np.where(rng.random(people.shape[:2]) < weak_fraction, weak_factor, 1.0)
        self.heat_noise, self.tag_noise = heat_noise, tag_noise
        self.rng = rng
        self.model = model
        self.forward_seconds = 0.0
        self._first: dict = {}
        self._maps: dict = {}

    def _crop(self, width: int, height: int):
        w, h = self.image_size
        for s in self.scale_factors:
            size, center, scale = multi_scale_size(w, h, self.input_size, s, min(self.scale_factors))
            if size == (width, height):
                return center, scale
        raise ValueError(f"an input of {width}x{height} is none of the scene's test scales {self.scale_factors}")

    def _render(self, width: int, height: int, mirrored: bool) -> list[torch.Tensor]:
        center, scale = self._crop(width, height)
        joints = self.people.copy()
        joints[..., :2] = apply_affine(self.people[..., :2], get_affine_transform(center, scale, 0, (width, height)))
        strength = self.strength
        if mirrored:
            joints, strength = joints[:, self.flip_index], strength[:, self.flip_index]
            joints[..., 0] = width - 1 - joints[..., 0]
        return [torch.from_numpy(self._paint(joints, strength, spec, width, height))[None] for spec in self.outputs]

    def _paint(self, joints: np.ndarray, strength: np.ndarray, spec: OutputSpec, width: int, height: int):
        """(C, h, w) float32 maps of one output."""
        h, w = int(height // spec.stride), int(width // spec.stride)
        num_joints = joints.shape[1]
        ys, xs = np.mgrid[0:h, 0:w]
        heat = np.zeros((num_joints, h, w), np.float64)
        nearest_tag = np.zeros((num_joints, h, w), np.float64)
        nearest = np.full((num_joints, h, w), np.inf)
        for person, (pose, power) in enumerate(zip(joints, strength)):
            for j in range(num_joints):
                if pose[j, 2] <= 0:
                    continue
                d2 = (xs - pose[j, 0] / spec.stride) ** 2 + (ys - pose[j, 1] / spec.stride) ** 2
                heat[j] = np.maximum(heat[j], power[j] * np.exp(-d2 / (2 * self.sigma ** 2)))
                closer = d2 < nearest[j]
                nearest[j][closer] = d2[closer]
                nearest_tag[j][closer] = self.tag_values[person]
        if self.heat_noise:
            heat += self.rng.uniform(0, self.heat_noise, heat.shape)
        maps = [np.zeros((spec.scale_channels, h, w)), heat]   # SWAHR's scale maps: 0, unused at test time
        if spec.has_tags:
            if not spec.tag_per_joint:
                nearest_tag = np.take_along_axis(nearest_tag, nearest.argmin(axis=0)[None], axis=0)
            if self.tag_noise:
                nearest_tag = nearest_tag + self.rng.normal(0, self.tag_noise, nearest_tag.shape)
            maps.append(nearest_tag)
        maps.append(np.zeros((spec.unused_channels, h, w)))
        return np.concatenate(maps).astype(np.float32)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.model is not None:
            start = time.perf_counter()
            self.model(x)
            self.forward_seconds += time.perf_counter() - start
        height, width = x.shape[2], x.shape[3]
        first = self._first.setdefault((height, width), x[0].clone())
        mirrored = not torch.equal(x[0], first)
        key = (height, width, mirrored)
        if key not in self._maps:
            self._maps[key] = self._render(width, height, mirrored)
        return [m.expand(x.shape[0], -1, -1, -1) for m in self._maps[key]]
