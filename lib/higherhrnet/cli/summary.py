"""Print a network's parameters, multiply-adds and output shapes.

    higherhrnet summary --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml
    higherhrnet summary --cfg CFG --input-size 640 480 MODEL.NUM_JOINTS 14 DATASET.NUM_JOINTS 14
    higherhrnet summary --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml     # top-down: the person crop
"""
from __future__ import annotations

import argparse
import json

from .common import CommandError, UsageError, add_config_options, add_threads_option, set_threads

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, device=False)
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"),
                        help="input width and height (default: DATASET.INPUT_SIZE square; MODEL.IMAGE_SIZE for a "
                             "top-down network)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    add_threads_option(parser)


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    import torch

    from .. import ConfigError, build_model, load_cfg
    from ..models.registry import input_size, model_entry
    from ..models.summary import summarize

    set_threads(args.threads)
    try:
        cfg = load_cfg(args.cfg, overrides)
    except ConfigError as e:
        raise CommandError(str(e)) from None
    width, height = args.input_size or input_size(cfg)
    if width % 32 or height % 32 or width <= 0 or height <= 0:
        raise UsageError(f"--input-size must be positive multiples of 32, got {width} x {height}")
    torch.manual_seed(0)
    summary = summarize(build_model(cfg), (1, 3, height, width))

    if args.json:
        print(json.dumps({
            "config": args.cfg, "input_shape": list(summary.input_shape),
            "num_parameters": summary.num_parameters, "gmacs": summary.macs / 1e9,
            "gflops_official_count": summary.official_flops / 1e9,
            "output_shapes": [list(s) for s in summary.output_shapes],
            "per_module": {k: {"parameters": p, "gmacs": m / 1e9} for k, (p, m) in summary.per_module.items()},
        }, indent=2))
        return 0

    print(f"{cfg.MODEL.NAME}  ({args.cfg})")
    print(f"input: {list(summary.input_shape)} (N, C, H, W)")
    print(f"{'module':<16}{'parameters':>14}{'GMACs':>10}")
    for name, (params, macs) in summary.per_module.items():
        if params or macs:
            print(f"{name:<16}{params:>14,}{macs / 1e9:>10.2f}")
    print("-" * 40)
    print(f"{'total':<16}{summary.num_parameters:>14,}{summary.macs / 1e9:>10.2f}")
    print(f"parameters: {summary.num_parameters / 1e6:.1f}M")
    print(f"GFLOPs (official count, conv weights x output pixels): {summary.official_flops / 1e9:.1f}")
    if model_entry(cfg.MODEL.NAME).top_down:
        # deep-high-resolution-net.pytorch's get_model_summary divides the same count by 1024**3.
        print(f"GFLOPs as the top-down HRNet README reports them (the same count / 2**30): "
              f"{summary.official_flops / 2 ** 30:.1f}")
    print(f"GMACs (exact multiply-adds of convolutions): {summary.macs / 1e9:.1f}")
    for i, shape in enumerate(summary.output_shapes):
        print(f"output {i}: {list(shape)}  (stride {height // shape[2]})")
    return 0
