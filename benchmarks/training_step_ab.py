"""CPU training step variants, measured interleaved: memory format, bfloat16 autocast, torch.compile.

    python benchmarks/training_step_ab.py                               # W32-512 recipe, batch 2
    python benchmarks/training_step_ab.py --batch 4 --repeats 5 --compile

Every round runs one training step (forward, losses, backward, Adam) with each variant in turn on the same
ready batch, each variant with its own copy of the initial weights. Variants: the network as the official
code runs it (float32, contiguous: TRAIN.CHANNELS_LAST never), channels-last memory format (the default on
the CPU), bfloat16 autocast (TRAIN.CPU_AUTOCAST bf16), both, and with --compile torch.compile of the
channels-last network (compiled before timing; the compile time is reported separately).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

import higherhrnet
from higherhrnet.data.synthetic import SyntheticSpec, write_synthetic_coco
from higherhrnet.engine import Trainer

from common import interleaved_times, machine_description, print_speedups

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def variant(cfg, cfg_path: str, opts: list[str], batch, compiled: bool = False):
    """A function running one training step of a freshly built trainer with `opts`."""
    trainer = Trainer(higherhrnet.load_cfg(cfg_path, cfg + opts), cfg_path, device="cpu")
    loop = trainer.step_loop()
    if compiled:
        loop.network = torch.compile(trainer.net)
    return lambda: loop.run_step(batch)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default=os.path.join(REPO, "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        write_synthetic_coco(root, {"train": max(args.batch, 4)}, seed=0, progress=False,
                             spec=SyntheticSpec(image_size=(640, 480), max_people=8, min_height=60, max_height=420))
        cfg = ["DATASET.DATASET", "synthetic", "DATASET.ROOT", root, "DATASET.TRAIN", "train", "WORKERS", "0",
               "TRAIN.IMAGES_PER_GPU", str(args.batch), "OUTPUT_DIR", f"{root}/out", "LOG_DIR", f"{root}/log",
               "AUTO_RESUME", "False", "TRAIN.VAL_FREQ", "0"]
        first = Trainer(higherhrnet.load_cfg(args.cfg, cfg), args.cfg, device="cpu")
        batch = next(iter(first.loader))
        runs = {
            "float32, contiguous (official)": variant(cfg, args.cfg, ["TRAIN.CHANNELS_LAST", "never"], batch),
            "channels-last (the default on the CPU)": variant(cfg, args.cfg, ["TRAIN.CHANNELS_LAST", "always"], batch),
            "bfloat16 autocast": variant(cfg, args.cfg, ["TRAIN.CHANNELS_LAST", "never", "TRAIN.CPU_AUTOCAST", "bf16"],
                                         batch),
            "channels-last + bfloat16": variant(cfg, args.cfg, ["TRAIN.CHANNELS_LAST", "always",
                                                                "TRAIN.CPU_AUTOCAST", "bf16"], batch),
        }
        if args.compile:
            compiled = variant(cfg, args.cfg, ["TRAIN.CHANNELS_LAST", "always"], batch, compiled=True)
            start = time.perf_counter()
            compiled()
            print(f"torch.compile: first step (compilation) {time.perf_counter() - start:.1f} s")
            runs["channels-last, torch.compile"] = compiled
        times = interleaved_times(runs, args.repeats)
    print(f"machine: {machine_description()}")
    print(f"{args.cfg}, batch {args.batch}, one training step per round, {args.repeats} interleaved rounds\n")
    print_speedups(times, "float32, contiguous (official)", "training step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
