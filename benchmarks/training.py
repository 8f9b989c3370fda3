"""Training throughput: the step (forward, loss, backward, optimiser) and the data pipeline.

    python benchmarks/training.py                                   # W32-512 recipe, batch 2, CUDA if available
    python benchmarks/training.py --batch 12 --device cuda          # the official per-GPU batch

Data comes from the synthetic generator (640 x 480 images, COCO layout, in a temporary folder), read
through the training Dataset of the config: augmentation, heatmap and tag targets, as in training.
- data pipeline: samples/s of one worker (Dataset items produced in this process);
- training step: samples/s of the training loop's step (TrainLoop.run_step) on a ready batch (no data
  loading), median of --repeats rounds of --steps steps after a warm-up round.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

import higherhrnet
from higherhrnet.data import build_dataset
from higherhrnet.data.synthetic import SyntheticSpec, write_synthetic_coco
from higherhrnet.devices import resolve_device
from higherhrnet.engine import Trainer
from higherhrnet.models import build_output_specs
from higherhrnet.outputs import target_sizes

from common import machine_description


def data_throughput(cfg, count: int) -> float:
    dataset = build_dataset(cfg, is_train=True)
    dataset[0]
    start = time.perf_counter()
    for i in range(count):
        dataset[i % len(dataset)]
    return count / (time.perf_counter() - start)


def step_throughput(cfg, cfg_path: str, device: str, steps: int, repeats: int) -> float:
    """Samples/s of TrainLoop.run_step (forward, losses, backward, optimiser step) on one ready batch."""
    trainer = Trainer(cfg, cfg_path, device=device)
    batch = next(iter(trainer.loader))
    size = batch[0].shape[0]
    loop = trainer.step_loop()
    rates = []
    for repeat in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            loop.run_step(batch)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if repeat > 0:        # the first round is the warm-up
            rates.append(steps * size / (time.perf_counter() - start))
    trainer.close()
    return statistics.median(rates)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    parser.add_argument("--batch", type=int, default=2, help="images per step (official: 12 per GPU)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--steps", type=int, default=3, help="steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20, help="dataset items timed for the data pipeline")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    args.device = str(resolve_device(args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine_description()}, device {args.device}")
    with tempfile.TemporaryDirectory() as root:
        write_synthetic_coco(root, {"train": max(args.batch, 8)}, seed=0,
                             spec=SyntheticSpec(image_size=(640, 480), max_people=8, min_height=60, max_height=420),
                             progress=False)
        cfg = higherhrnet.load_cfg(args.cfg, [
            "DATASET.ROOT", root, "DATASET.TRAIN", "train", "TRAIN.IMAGES_PER_GPU", str(args.batch),
            "WORKERS", "0", "OUTPUT_DIR", f"{root}/output", "LOG_DIR", f"{root}/log", "AUTO_RESUME", "False",
            "TRAIN.VAL_FREQ", "0"])
        data_rate = data_throughput(cfg, args.samples)
        print(f"data pipeline ({cfg.DATASET.INPUT_SIZE} input, targets at {list(target_sizes(build_output_specs(cfg)))}): "
              f"{data_rate:.1f} samples/s per worker")
        step_rate = step_throughput(cfg, args.cfg, args.device, args.steps, args.repeats)
        print(f"training step (batch {args.batch}, {args.device}): {step_rate:.2f} samples/s")
        print(f"workers needed to keep the step fed: {step_rate / data_rate:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
