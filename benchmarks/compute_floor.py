"""The compute floor of a forward pass on this machine.

    python benchmarks/compute_floor.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml

Measures the sustained throughput of 3x3 convolutions shaped like HRNet-W32's (channels x resolution
pairs of its four branches at a 512 input, batch 1), in both memory formats (contiguous and channels-last),
takes the best as this machine's conv throughput
(GFLOP/s, 2 FLOPs per multiply-add), and divides the model's multiply-adds by it: no forward pass can
be faster than that floor. Then times the real forward pass (eager, BatchNorm folded, folded + channels-last,
and the Predictor's default) one after the other and reports each as a ratio to the floor; forward_ab.py
--floor does the same with the variants interleaved, forward_layers.py splits the forward by layer.
"""
from __future__ import annotations

import argparse
import itertools

import torch
import torch.nn.functional as F

import higherhrnet
from higherhrnet.models import ChannelsLast, fold_batchnorm, prepare_network
from higherhrnet.models.summary import summarize

from common import machine_description, median_time

# (channels, side): HRNet-W32's branches at a 512 x 512 input.
SHAPES = ((32, 128), (64, 64), (128, 32), (256, 16))
LAYOUTS = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}


@torch.inference_mode()
def conv_throughput(repeats: int = 5) -> dict[tuple[int, int, str], float]:
    """GFLOP/s of a 3x3, stride 1, padding 1 convolution for each (channels, side) in SHAPES and each
    memory format."""
    results = {}
    for (channels, side), layout in itertools.product(SHAPES, LAYOUTS):
        x = torch.randn(1, channels, side, side).contiguous(memory_format=LAYOUTS[layout])
        weight = (torch.randn(channels, channels, 3, 3) * 0.01).contiguous(memory_format=LAYOUTS[layout])
        # Enough convolutions per timed run that the run lasts long enough to measure.
        count = max(1, int(2e9 / (9 * channels * channels * side * side)))

        def run():
            y = x
            for _ in range(count):
                y = F.conv2d(y, weight, padding=1)
            return y

        seconds = median_time(run, repeats, warmup=1)
        results[(channels, side, layout)] = 2 * 9 * channels * channels * side * side * count / seconds / 1e9
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine_description()}")
    rates = conv_throughput(args.repeats)
    for (channels, side, layout), rate in rates.items():
        print(f"3x3 conv, {channels} channels, {side}x{side}, {layout}: {rate:.1f} GFLOP/s")
    peak = max(rates.values())

    cfg = higherhrnet.load_cfg(args.cfg)
    size = cfg.DATASET.INPUT_SIZE
    model = higherhrnet.build_model(cfg).eval()
    macs = summarize(model, (1, 3, size, size)).macs
    floor = 2 * macs / (peak * 1e9)
    print(f"\n{args.cfg}: {macs / 1e9:.1f} GMACs at {size}x{size}; floor at {peak:.1f} GFLOP/s: {floor:.3f} s")
    x = torch.randn(1, 3, size, size)
    variants = [("eager", model)]
    variants.append(("BatchNorm folded", fold_batchnorm(model)))
    variants.append(("BatchNorm folded, channels-last", ChannelsLast(fold_batchnorm(model))))
    variants.append(("the Predictor's default on CPU (folded, channels-last, ReLU/add fused)",
                     prepare_network(model, torch.device("cpu"))))
    with torch.inference_mode():
        for name, net in variants:
            seconds = median_time(lambda: net(x), args.repeats, warmup=1)
            print(f"forward ({name}): {seconds:.3f} s = {seconds / floor:.2f} x the floor")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
