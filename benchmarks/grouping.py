"""Grouping time per step, and REFINE as the reference computes it, on the maps of the benchmark scenes.

    python benchmarks/grouping.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml

For each scene (1 and 30 people, single scale and single scale + flip) the aggregated maps that the
decoder receives are taken from a real Predictor's first stage (Predictor.maps), then each grouping step is
timed on them: NMS, top-k, matching, ADJUST, REFINE and the whole `group`. The last column times REFINE
the way the reference code computes it (a NumPy transcription of its loop: a full-map tag distance and
argmax for every joint of every person, missing or not), on the same maps, run once.
"""
from __future__ import annotations

import argparse

import numpy as np

import higherhrnet
from higherhrnet.codec import grouping as G

from common import machine_description, median_time, painted_predictor, scene_with_people


def captured_maps(cfg_path: str, people: int, flip: bool):
    """(heatmaps, tags, GroupingParams) that `group` receives for the benchmark scene."""
    cfg = higherhrnet.load_cfg(cfg_path, ["TEST.FLIP_TEST", str(flip), "TEST.SCALE_FACTOR", "[1.0]"])
    image, gt = scene_with_people(people, seed=people)
    predictor, _ = painted_predictor(cfg, higherhrnet.build_model(cfg).eval(), image, gt)
    maps = predictor.maps([image])[0]          # the pipeline's first stage; inference.decode_people groups these
    return maps.heatmaps.float().cpu(), maps.tags.float().cpu(), predictor.params.grouping


def reference_refine(persons: np.ndarray, heat: np.ndarray, tags: np.ndarray) -> None:
    """The reference's REFINE loop, timing only: every joint of every person gets a full-map search."""
    if tags.shape[0] != heat.shape[0]:
        tags = np.repeat(tags, heat.shape[0], axis=0)
    for person in persons:
        found = person[:, 2] > 0
        mean = tags[np.nonzero(found)[0], person[found, 1].astype(int), person[found, 0].astype(int)].mean(axis=0)
        for j in range(heat.shape[0]):
            dist = ((tags[j] - mean[None, None, :]) ** 2).sum(axis=2) ** 0.5
            np.unravel_index(np.argmax(heat[j] - np.round(dist)), heat[j].shape)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"machine: {machine_description()}\n{args.cfg}; median of {args.repeats} runs after 1 warm-up, ms\n")
    print("| scene | people found | missing joints | NMS | top-k | matching | ADJUST | REFINE | whole group "
          "| reference-style REFINE |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for people, flip in ((1, False), (1, True), (30, False), (30, True)):
        heat, tags, p = captured_maps(args.cfg, people, flip)
        heat_np = heat.numpy()
        nms = G.nms(heat[None], p.nms_kernel, p.nms_padding)
        values, xy, tag_vectors = G.top_k(nms, tags[None], p.max_num_people)
        matched = G.match_by_tag(values[0], xy[0], tag_vectors[0], p)
        adjusted = G.adjust(matched, heat_np)
        steps = [
            lambda: G.nms(heat[None], p.nms_kernel, p.nms_padding),
            lambda: G.top_k(nms, tags[None], p.max_num_people),
            lambda: G.match_by_tag(values[0], xy[0], tag_vectors[0], p),
            lambda: G.adjust(matched, heat_np),
            lambda: G.refine(adjusted, heat, tags),
            lambda: G.group(heat, tags, p),
        ]
        ms = [1000 * median_time(step, args.repeats) for step in steps]
        reference = 1000 * median_time(lambda: reference_refine(adjusted, heat_np, tags.numpy()), 1, warmup=0)
        scene = f"{people} {'person' if people == 1 else 'people'}, {'single scale + flip' if flip else 'single scale'}"
        print(f"| {scene} | {len(adjusted)} | {int((adjusted[:, :, 2] == 0).sum())} | "
              + " | ".join(f"{t:.1f}" for t in ms) + f" | {reference:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
