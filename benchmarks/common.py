"""Shared pieces of the benchmarks: synthetic scenes with a known number of people, and an "oracle"
network that runs the real forward pass but returns maps rendered from the ground truth, so that
aggregation, grouping and back-projection see realistic heatmaps and tags even with untrained weights.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from higherhrnet.codec.targets import heatmap_targets
from higherhrnet.data.synthetic import SyntheticSpec, render_scene
from higherhrnet.geometry import apply_affine, get_affine_transform, multi_scale_size


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads")


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of fn() over `repeats` runs after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_times(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall-clock seconds of each fn in `runs` over `repeats` rounds, every round running each fn once in
    turn (after one untimed warm-up each), so that a machine whose speed drifts affects all alike."""
    for fn in runs.values():
        fn()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def print_speedups(times: dict[str, list[float]], baseline: str, label: str) -> None:
    """Markdown table of interleaved_times' results: median, range and speed-up over `baseline`."""
    print(f"| {label} | median s | min - max s | speed-up vs {baseline} |")
    print("| --- | --- | --- | --- |")
    reference = statistics.median(times[baseline])
    for name, t in times.items():
        median = statistics.median(t)
        print(f"| {name} | {median:.3f} | {min(t):.3f} - {max(t):.3f} | {reference / median:.2f} |")


def scene_with_people(count: int, size: int = 512, seed: int = 0):
    """A synthetic RGB image (size x size) with exactly `count` labelled people and their keypoints
    (count, J, 3) in image pixels (visibility > 0: labelled)."""
    spec = SyntheticSpec(image_size=(size, size), max_people=count, min_height=size * 0.2,
                         max_height=size * 0.8, crowd_prob=0.0, unlabelled_prob=0.0)
    for attempt in range(10_000):
        image, anns = render_scene(np.random.default_rng((seed, count, attempt)), spec)
        people = [a for a in anns if a["num_keypoints"] > 0]
        if len(people) == count:
            return image, np.array([a["keypoints"] for a in people], dtype=np.float64).reshape(count, -1, 3)
    raise RuntimeError(f"no scene with exactly {count} labelled people")


class OracleNetwork(nn.Module):
    """Runs `model` on its input (so the forward cost is real) and returns instead the maps a well
    trained network would give for the current scene: Gaussian heatmaps at the labelled joints, a
    quarter of them too weak to be detected (left for REFINE to find), and tag maps where every pixel
    carries the noisy tag of the person whose joint is nearest. Flipped inputs get the mirrored scene.

    Call `set_scene(image, keypoints, input_size, scale_factors, flip_index)` before each image.
    `forward_seconds` accumulates the time spent in the real forward passes.
    """

    def __init__(self, model: nn.Module, num_joints: int, output_strides: Sequence[int],
                 tag_outputs: Sequence[bool], seed: int = 0):
        super().__init__()
        self.model = model
        self.num_joints = num_joints
        self.strides = list(output_strides)
        self.tag_outputs = list(tag_outputs)
        self.rng = np.random.default_rng(seed)
        self.cache: dict = {}
        self.forward_seconds = 0.0

    def set_scene(self, image: np.ndarray, keypoints: np.ndarray, input_size: int,
                  scale_factors: Sequence[float], flip_index: Sequence[int]) -> None:
        h, w = image.shape[:2]
        weak = self.rng.random(keypoints.shape[:2]) < 0.25
        tags = np.arange(len(keypoints)) * 1.5 + self.rng.normal(0, 0.1, len(keypoints))
        self.cache, self.first_columns = {}, {}
        for s in scale_factors:
            size, center, scale = multi_scale_size(w, h, input_size, s, min(scale_factors))
            trans = get_affine_transform(center, scale, 0, size)
            joints = keypoints.copy()
            joints[..., :2] = apply_affine(keypoints[..., :2], trans)
            mirrored = joints[:, list(flip_index)].copy()
            mirrored[..., 0] = size[0] - 1 - mirrored[..., 0]
            self.cache[(size[1], size[0])] = (
                self._render(joints, weak, tags, size),
                self._render(mirrored, weak[:, list(flip_index)], tags, size),
            )

    def _render(self, joints, weak, tags, size):
        outputs = []
        for stride, with_tags in zip(self.strides, self.tag_outputs):
            side = max(size) // stride
            scaled = joints.copy()
            scaled[..., :2] /= stride
            strong = scaled.copy()
            strong[..., 2] *= ~weak
            faint = scaled.copy()
            faint[..., 2] *= weak
            heat = np.maximum(heatmap_targets(strong, side, 2.0), 0.06 * heatmap_targets(faint, side, 2.0))
            heat += self.rng.uniform(0, 0.02, heat.shape).astype(np.float32)
            maps = [heat]
            if with_tags:
                maps.append(nearest_tags(scaled, tags, side) + self.rng.normal(0, 0.05, heat.shape).astype(np.float32))
            out = np.concatenate(maps)[:, : size[1] // stride, : size[0] // stride]
            outputs.append(torch.from_numpy(np.ascontiguousarray(out))[None])
        return outputs

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        start = time.perf_counter()
        self.model(x)
        self.forward_seconds += time.perf_counter() - start
        key = (x.shape[2], x.shape[3])
        plain, mirrored = self.cache[key]
        # The pipeline passes an input before its mirror: a later input of the same size is the mirror.
        first = self.first_columns.setdefault(key, x[0, :, :, 0].clone())
        flipped = not torch.equal(x[0, :, :, 0], first)
        return [o.expand(x.shape[0], -1, -1, -1) for o in (mirrored if flipped else plain)]


def nearest_tags(joints: np.ndarray, tags: np.ndarray, side: int) -> np.ndarray:
    """(J, side, side) float32: each pixel holds the tag of the person whose joint of that type is nearest."""
    num_joints = joints.shape[1]
    ys, xs = np.mgrid[0:side, 0:side]
    out = np.zeros((num_joints, side, side), np.float32)
    for j in range(num_joints):
        labelled = joints[:, j, 2] > 0
        if not labelled.any():
            continue
        pts = joints[labelled, j, :2]
        d2 = (xs[None] - pts[:, 0, None, None]) ** 2 + (ys[None] - pts[:, 1, None, None]) ** 2
        out[j] = tags[labelled][np.argmin(d2, axis=0)]
    return out
