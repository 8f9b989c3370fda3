"""Shared pieces of the benchmarks: synthetic scenes with a known number of people, and a painted network
(higherhrnet.testing.PaintedNetwork, shared with the tests) that runs the real forward pass but returns maps
rendered from the ground truth, so that aggregation, grouping and back-projection see realistic heatmaps
and tags even with untrained weights.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

import higherhrnet
from higherhrnet.data import keypoints_from_config
from higherhrnet.data.synthetic import SyntheticSpec, render_scene
from higherhrnet.models import build_output_specs
from higherhrnet.testing import PaintedNetwork


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


def interleaved_times(runs: dict[str, Callable[[], object]], repeats: int,
                      clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds of each fn in `runs` over `repeats` rounds, every round running each fn once in turn (after
    one untimed warm-up each), so that a machine whose speed drifts affects all alike. clock: wall-clock by
    default; time.process_time gives this process's CPU time, which other work on a shared machine does not
    add to (only slows, through shared caches and memory bandwidth)."""
    for fn in runs.values():
        fn()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return times


def print_speedups(times: dict[str, list[float]], baseline: str, label: str, floor: float | None = None) -> None:
    """Markdown table of interleaved_times' results: median, range and speed-up over `baseline`; with
    `floor` (seconds), each variant's median and minimum as multiples of it too (on a shared machine the
    minimum is the round least disturbed by other processes)."""
    floor_head, floor_rule = (" x floor (median) | x floor (min) |", " --- | --- |") if floor else ("", "")
    print(f"| {label} | median s | min - max s |{floor_head} speed-up vs {baseline} |")
    print(f"| --- | --- | --- |{floor_rule} --- |")
    reference = statistics.median(times[baseline])
    for name, t in times.items():
        median = statistics.median(t)
        ratios = f" {median / floor:.2f} | {min(t) / floor:.2f} |" if floor else ""
        print(f"| {name} | {median:.3f} | {min(t):.3f} - {max(t):.3f} |{ratios} {reference / median:.2f} |")


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


def painted_predictor(cfg, network: nn.Module, image: np.ndarray, keypoints: np.ndarray, seed: int = 0):
    """(Predictor, PaintedNetwork) for a benchmark scene: the painted network (higherhrnet.testing) runs
    `network` on every input, so the forward cost is real, and returns maps a well-trained network would give
    for the scene: Gaussian heatmaps at the labelled joints with a quarter of them too weak to be detected
    (left for REFINE to find), noisy tags. Its forward_seconds accumulates the real forward's time."""
    rng = np.random.default_rng(seed)
    spec = keypoints_from_config(cfg)
    painted = PaintedNetwork(
        keypoints, (image.shape[1], image.shape[0]), cfg.DATASET.INPUT_SIZE, cfg.TEST.SCALE_FACTOR,
        build_output_specs(cfg), spec.flip_index, tag_values=np.arange(len(keypoints)) * 1.5
        + rng.normal(0, 0.1, len(keypoints)), weak_fraction=0.25, heat_noise=0.02, tag_noise=0.05, model=network,
        seed=seed)
    return higherhrnet.Predictor.from_model(cfg, painted, fold_bn=False, raw=True), painted
