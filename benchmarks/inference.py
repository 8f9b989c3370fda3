"""Per-image inference time, split into stages, for HigherHRNet (by default W32-512).

    python benchmarks/inference.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml
    python benchmarks/inference.py --cfg CFG --people 30 --modes flip --repeats 3 --threads 2

Modes: single scale, single scale + flip, scales [2, 1, 0.5] + flip. Scenes: synthetic 512 x 512 images
with 1, 5 and 30 people. The network runs for real (untrained weights unless --weights); its outputs
are then replaced by maps rendered from the scene's ground truth (see common.painted_predictor), so that
grouping works on realistic heatmaps and tags, with a quarter of the joints too weak to detect and
left to REFINE. Stages: preprocess (resize + normalise), forward, aggregation (resizing, flipping and
averaging outputs), grouping (NMS, top-k, matching, ADJUST, REFINE), back-projection. The Predictor's two
public stages (Predictor.maps, Predictor.people_from_maps) make the total; preprocessing, grouping and
decoding are timed again on their own on the same inputs to split it, and aggregation is what is left of
the first stage. Each number is the median over --repeats runs after a warm-up run. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import cv2
import torch

import higherhrnet
from higherhrnet.codec.grouping import group
from higherhrnet.geometry import get_affine_transform, multi_scale_size, warp_image
from higherhrnet.inference import decode_people
from higherhrnet.normalization import normalize

from common import machine_description, painted_predictor, scene_with_people

MODES = {
    "single": ("single scale", ["TEST.FLIP_TEST", "False", "TEST.SCALE_FACTOR", "[1.0]"]),
    "flip": ("single scale + flip", ["TEST.FLIP_TEST", "True", "TEST.SCALE_FACTOR", "[1.0]"]),
    "multi": ("scales [2, 1, 0.5] + flip", ["TEST.FLIP_TEST", "True", "TEST.SCALE_FACTOR", "[2.0, 1.0, 0.5]"]),
}
STAGES = ("preprocess", "forward", "aggregation", "grouping", "back-projection")


def run(cfg_path: str, opts: list[str], weights: str | None, people: int, repeats: int, backend: str):
    cfg = higherhrnet.load_cfg(cfg_path, opts)
    model = higherhrnet.build_model(cfg).eval()
    if weights:
        higherhrnet.load_checkpoint(model, weights)
    # The network as the Predictor would run it for this backend; the painted network runs it.
    if backend == "torch-eager":
        network = model
    else:
        network = higherhrnet.Predictor.from_model(cfg, model, backend="torch" if backend == "torch-folded"
                                                   else backend).network
    image, gt = scene_with_people(people, seed=people)
    predictor, painted = painted_predictor(cfg, network, image, gt)

    params = predictor.params
    runs = []
    for i in range(repeats + 1):
        painted.forward_seconds = 0.0
        start = time.perf_counter()
        maps = predictor.maps([image])[0]                  # preprocess + forward + aggregation
        mapped = time.perf_counter() - start
        found = predictor.people_from_maps(image, maps)    # grouping + back-projection (+ the Predictor's filters)
        total = time.perf_counter() - start
        forward = painted.forward_seconds
        # The stages inside those two, timed on their own on the same inputs.
        start = time.perf_counter()
        for s in params.scale_factors:
            size, center, scale = multi_scale_size(image.shape[1], image.shape[0], params.input_size, s,
                                                   min(params.scale_factors))
            normalize(warp_image(image, get_affine_transform(center, scale, 0, size), size), params.mean, params.std)
        preprocess = time.perf_counter() - start
        start = time.perf_counter()
        group(maps.heatmaps.float().cpu(), maps.tags.float().cpu(), params.grouping)
        grouping = time.perf_counter() - start
        start = time.perf_counter()
        decode_people(maps, params)
        decoding = time.perf_counter() - start
        times = {"preprocess": preprocess, "forward": forward, "aggregation": mapped - preprocess - forward,
                 "grouping": grouping, "back-projection": max(decoding - grouping, 0.0), "total": total}
        if i > 0:          # the first run is the warm-up
            runs.append(times)
    median = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in (*STAGES, "total")}
    return median, len(found)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    parser.add_argument("--weights", help="trained weights (default: untrained; forward time is the same)")
    parser.add_argument("--people", type=int, nargs="+", default=[1, 5, 30])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--backend", default="torch-folded", choices=["torch-eager", "torch-folded", "onnxruntime"],
                        help="network backend: PyTorch eager, PyTorch with BatchNorm folded (the Predictor's "
                             "default), onnxruntime")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="config overrides")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine_description()}, OpenCV threads {cv2.getNumThreads()}")
    print(f"config: {args.cfg} {' '.join(args.opts)}; backend {args.backend}; median of {args.repeats} runs after 1 warm-up, seconds\n")
    header = ["mode", "people", *STAGES, "total", "found"]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    rows = []
    for mode in args.modes:
        label, opts = MODES[mode]
        for people in args.people:
            median, found = run(args.cfg, [*args.opts, *opts], args.weights, people, args.repeats, args.backend)
            cells = [label, str(people), *(f"{median[s]:.3f}" for s in (*STAGES, "total")), str(found)]
            print("| " + " | ".join(cells) + " |", flush=True)
            rows.append({"mode": mode, "people": people, "found": found, **median})
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": machine_description(), "config": args.cfg, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
