"""End-to-end Predictor time (single scale + flip) with each network backend, measured interleaved.

    python benchmarks/pipeline_ab.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml --people 1

The scene and the oracle maps are those of inference.py; every round runs the whole pipeline once with each
network: PyTorch eager (the network as the official code runs it), the Predictor's default (BatchNorm
folded, channels-last on CPU) and onnxruntime (when installed). Reports the median seconds per image and the
speed-up over eager. The decoding after the network is this project's in all three; add the reference's
REFINE time from grouping.py to the eager figure to estimate the official pipeline.
"""
from __future__ import annotations

import argparse

import higherhrnet
from higherhrnet.keypoints import keypoints_from_cfg
from higherhrnet.models import output_targets

from common import OracleNetwork, interleaved_times, machine_description, print_speedups, scene_with_people


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    parser.add_argument("--people", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args(argv)
    cfg = higherhrnet.load_cfg(args.cfg, ["TEST.FLIP_TEST", "True", "TEST.SCALE_FACTOR", "[1.0]"])
    model = higherhrnet.build_model(cfg).eval()
    keypoints = keypoints_from_cfg(cfg)
    strides = [cfg.DATASET.INPUT_SIZE // cfg.DATASET.OUTPUT_SIZE[t] for t in output_targets(cfg)]
    image, gt = scene_with_people(args.people, seed=args.people)
    networks = {"PyTorch eager": model, "Predictor default": higherhrnet.Predictor.from_model(cfg, model).model}
    try:
        networks["onnxruntime"] = higherhrnet.Predictor.from_model(cfg, model, backend="onnxruntime").model
    except ImportError:
        print("onnxruntime not installed: skipped")
    predictors = {}
    for name, network in networks.items():
        oracle = OracleNetwork(network, cfg.MODEL.NUM_JOINTS, strides, cfg.LOSS.WITH_AE_LOSS)
        predictor = higherhrnet.Predictor.from_model(cfg, oracle, fold_bn=False)
        oracle.set_scene(image, gt, cfg.DATASET.INPUT_SIZE, predictor.params.scale_factors, keypoints.flip_index)
        predictors[name] = predictor
    times = interleaved_times({name: (lambda p=p: p(image)) for name, p in predictors.items()}, args.repeats)
    print(f"machine: {machine_description()}")
    print(f"{args.cfg}, {args.people} people, single scale + flip, {args.repeats} interleaved rounds\n")
    print_speedups(times, "PyTorch eager", "network")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
