"""End-to-end Predictor time (single scale + flip) with each network backend, measured interleaved.

    python benchmarks/pipeline_ab.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml --people 1

The scene and the painted maps are those of inference.py; every round runs the whole pipeline once with each
network: PyTorch eager (the network as the official code runs it), the Predictor's default (BatchNorm
folded, channels-last on CPU) and onnxruntime (when installed). Reports the median seconds per image and the
speed-up over eager. The decoding after the network is this project's in all three; add the reference's
REFINE time from grouping.py to the eager figure to estimate the official pipeline.
"""
from __future__ import annotations

import argparse

import higherhrnet

from common import interleaved_times, machine_description, painted_predictor, print_speedups, scene_with_people


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    parser.add_argument("--people", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args(argv)
    cfg = higherhrnet.load_cfg(args.cfg, ["TEST.FLIP_TEST", "True", "TEST.SCALE_FACTOR", "[1.0]"])
    model = higherhrnet.build_model(cfg).eval()
    image, gt = scene_with_people(args.people, seed=args.people)
    networks = {"PyTorch eager": model, "Predictor default": higherhrnet.Predictor.from_model(cfg, model).network}
    try:
        networks["onnxruntime"] = higherhrnet.Predictor.from_model(cfg, model, backend="onnxruntime").network
    except ImportError:
        print("onnxruntime not installed: skipped")
    predictors = {}
    for name, network in networks.items():
        predictors[name], _ = painted_predictor(cfg, network, image, gt)
    times = interleaved_times({name: (lambda p=p: p(image)) for name, p in predictors.items()}, args.repeats)
    print(f"machine: {machine_description()}")
    print(f"{args.cfg}, {args.people} people, single scale + flip, {args.repeats} interleaved rounds\n")
    print_speedups(times, "PyTorch eager", "network")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
