"""GPU figures for training and inference, and a smoke check of the CUDA code paths.

    python benchmarks/gpu.py                                  # W32-512 recipe, batch 12 (the official per GPU)
    python benchmarks/gpu.py --batch 24 --steps 30 --json gpu.json
    python benchmarks/gpu.py --skip-smoke                     # the measurements only
    python benchmarks/gpu.py --cpu-check                      # no GPU: run every step tiny on the CPU

Measured on the first CUDA device (CUDA_VISIBLE_DEVICES picks it), with synthetic COCO-format data (640 x 480
images, generated into a temporary folder):
- training: images/s of the training step (forward, losses, backward, Adam) on ready batches, in float32 and
  with mixed precision (FP16.ENABLED: torch.autocast + GradScaler), each in the contiguous memory format (the
  default on CUDA) and channels-last (TRAIN.CHANNELS_LAST always), and the peak GPU memory of each;
- data loading: items/s of the training DataLoader (augmentation, targets) with 0, 2, 4, ... workers;
- inference: images/s of the Predictor (single scale + flip) on a 640 x 480 image, BatchNorm folded, batch 1
  and batch 8;
- smoke check: `higherhrnet train` under torchrun (1 process, DIST_BACKEND nccl) with mixed precision for a
  few iterations and a validation, then `higherhrnet eval` of the result, both on CUDA.
Without a CUDA device it says so and exits with status 1, measuring nothing; --cpu-check then runs every
step on the CPU with tiny sizes (gloo instead of nccl, no mixed precision), to check the script itself.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

import higherhrnet
from higherhrnet.data import build_dataset
from higherhrnet.data.synthetic import SyntheticSpec, write_synthetic_coco
from higherhrnet.engine import Trainer

from common import machine_description

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


DEVICE = "cuda"


def synchronize() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def reset_peak() -> None:
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2 ** 30 if DEVICE == "cuda" else float("nan")


def training_rate(cfg, cfg_path: str, steps: int, repeats: int) -> tuple[float, float]:
    """(images/s, peak GPU memory in GiB) of the training step on one ready batch."""
    trainer = Trainer(cfg, cfg_path, device=DEVICE)
    batch = next(iter(trainer.loader))
    size = batch[0].shape[0]
    loop = trainer.step_loop()
    reset_peak()
    rates = []
    for repeat in range(repeats + 1):
        synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            loop.run_step(batch)
        synchronize()
        if repeat:                                  # the first round warms up cuDNN's algorithm search
            rates.append(steps * size / (time.perf_counter() - start))
    peak = peak_gib()
    trainer.close()
    return statistics.median(rates), peak


def loader_rate(cfg, workers: int, items: int) -> float:
    """Items/s of the training DataLoader with `workers` processes (batch 1, so items are counted exactly)."""
    dataset = build_dataset(cfg, is_train=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, shuffle=True, num_workers=workers,
                                         pin_memory=DEVICE == "cuda", persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)                                   # workers started
    start = time.perf_counter()
    count = 0
    while count < items:
        try:
            next(iterator)
        except StopIteration:
            iterator = iter(loader)
            continue
        count += 1
    return count / (time.perf_counter() - start)


def inference_rate(cfg, image: np.ndarray, batch: int, repeats: int) -> float:
    model = higherhrnet.build_model(cfg).eval()
    predictor = higherhrnet.Predictor.from_model(cfg, model, device=DEVICE, raw=True)
    images = [image] * batch
    predictor(images)
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor(images)
        synchronize()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def smoke(cfg_path: str, root: str) -> dict:
    """torchrun (1 process, nccl) training with AMP and validation, then eval, on CUDA; exit statuses."""
    common = ["DATASET.ROOT", root, "DATASET.TRAIN", "train", "DATASET.TEST", "val", "WORKERS", "2",
              "TRAIN.IMAGES_PER_GPU", "4", "TRAIN.END_EPOCH", "1", "TRAIN.MAX_ITERS_PER_EPOCH", "5",
              "OUTPUT_DIR", f"{root}/output", "LOG_DIR", f"{root}/log", "AUTO_RESUME", "False"]
    amp = ["FP16.ENABLED", "True", "DIST_BACKEND", "nccl"] if DEVICE == "cuda" else []
    # torchrun's environment variables make it distributed even with one process: DDP, a process group.
    train = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                            "-m", "higherhrnet", "train", "--cfg", cfg_path, "--device", DEVICE, *amp,
                            "TRAIN.VAL_FREQ", "1", *common],
                           capture_output=True, text=True, cwd=REPO, timeout=1800)
    validated = "validation: AP" in train.stderr
    weights = next((os.path.join(d, f) for d, _, files in os.walk(os.path.join(root, "output"))
                    for f in files if f == "final_state.pth"), "final_state.pth (not written)")
    evaluation = subprocess.run([sys.executable, "-m", "higherhrnet", "eval", "--cfg", cfg_path, "--weights", weights,
                                 "--device", DEVICE, "--out", f"{root}/eval", *common],
                                capture_output=True, text=True, cwd=REPO, timeout=1800)
    return {"train_exit": train.returncode, "validated_during_training": validated,
            "eval_exit": evaluation.returncode, "train_log_tail": train.stderr[-1500:],
            "eval_log_tail": (evaluation.stdout + evaluation.stderr)[-1500:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", help="experiment config (default: the W32-512 recipe; with --cpu-check the tiny "
                                      "synthetic one)")
    parser.add_argument("--batch", type=int, default=12, help="training images per step (official: 12 per GPU)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", help="loader workers to try (default 0, 2, 4, ...)")
    parser.add_argument("--images", type=int, default=64, help="synthetic training images")
    parser.add_argument("--skip-smoke", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--cpu-check", action="store_true",
                        help="no GPU: run every step on the CPU with tiny sizes, to check this script")
    args = parser.parse_args(argv)
    global DEVICE
    args.cfg = args.cfg or os.path.join(REPO, "experiments/synthetic/w16_256_tiny.yaml" if args.cpu_check
                                        else "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    if args.cpu_check:
        DEVICE = "cpu"
        args.batch, args.steps, args.repeats, args.images = 2, 1, 1, 8
    elif not torch.cuda.is_available():
        print("no CUDA device is available: benchmarks/gpu.py measures on a GPU and measured nothing here "
              f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); --cpu-check runs it tiny on the CPU",
              file=sys.stderr)
        return 1
    results = {"machine": machine_description(), "device": DEVICE, "torch": torch.__version__,
               "cuda": torch.version.cuda, "config": args.cfg}
    if DEVICE == "cuda":
        props = torch.cuda.get_device_properties(0)
        results.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                       cudnn=torch.backends.cudnn.version())
        print(f"{props.name} ({results['gpu_memory_gib']} GiB), torch {torch.__version__}, CUDA {torch.version.cuda}")
    cpus = os.cpu_count() or 1
    workers = args.workers or sorted({0, 2, 4, *(w for w in (8, 16) if w <= cpus)})
    with tempfile.TemporaryDirectory() as root:
        write_synthetic_coco(root, {"train": args.images, "val": 8}, seed=0, progress=False,
                             spec=SyntheticSpec(image_size=(640, 480), max_people=8, min_height=60, max_height=420))
        opts = ["DATASET.DATASET", "synthetic", "DATASET.DATASET_TEST", "synthetic", "DATASET.ROOT", root,
                "DATASET.TRAIN", "train", "DATASET.TEST", "val", "TRAIN.IMAGES_PER_GPU", str(args.batch),
                "WORKERS", "0", "OUTPUT_DIR", f"{root}/bench", "LOG_DIR", f"{root}/bench-log", "AUTO_RESUME", "False",
                "TRAIN.VAL_FREQ", "0"]
        # float32 and mixed precision, each in the contiguous layout (the CUDA default) and channels-last.
        variants = [(precision, layout) for precision in ("fp32", "amp") for layout in ("contiguous", "channels_last")]
        for precision, layout in variants if DEVICE == "cuda" else variants[:1]:
            cfg = higherhrnet.load_cfg(args.cfg, opts + ["FP16.ENABLED", str(precision == "amp"), "TRAIN.CHANNELS_LAST",
                                                         "always" if layout == "channels_last" else "never"])
            rate, peak = training_rate(cfg, args.cfg, args.steps, args.repeats)
            key = precision if layout == "contiguous" else f"{precision}_channels_last"
            results[f"train_images_per_s_{key}"] = round(rate, 2)
            results[f"train_peak_gib_{key}"] = round(peak, 2)
            print(f"training step, batch {args.batch}, {'float32' if precision == 'fp32' else 'mixed precision'}, "
                  f"{layout.replace('_', '-')}: {rate:.1f} images/s, peak memory {peak:.2f} GiB")
        cfg = higherhrnet.load_cfg(args.cfg, opts)
        results["loader_items_per_s"] = {}
        for w in workers:
            rate = loader_rate(cfg, w, items=max(64, 16 * max(w, 1)))
            results["loader_items_per_s"][str(w)] = round(rate, 1)
            print(f"data loading, {w} workers: {rate:.1f} items/s")
        image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
        for batch in (1, 8):
            rate = inference_rate(cfg, image, batch, args.repeats * 3)
            results[f"inference_images_per_s_batch{batch}"] = round(rate, 2)
            print(f"inference (640 x 480, single scale + flip, folded), batch {batch}: {rate:.1f} images/s")
        if not args.skip_smoke:
            results["smoke"] = smoke(args.cfg, root)
            ok = results["smoke"]["train_exit"] == 0 and results["smoke"]["eval_exit"] == 0 and \
                results["smoke"]["validated_during_training"]
            paths = "nccl, AMP" if DEVICE == "cuda" else "gloo, float32"
            print(f"smoke check (torchrun 1 process, {paths}, validation; eval) on {DEVICE}: {'ok' if ok else 'FAILED'}")
            if not ok:
                print(results["smoke"]["train_log_tail"], results["smoke"]["eval_log_tail"], sep="\n", file=sys.stderr)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0 if args.skip_smoke or results.get("smoke", {}).get("train_exit") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
