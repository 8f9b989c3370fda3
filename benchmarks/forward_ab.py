"""Forward-pass time of the network variants, measured interleaved so that they are compared fairly.

    python benchmarks/forward_ab.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml --repeats 10

On a shared or frequency-scaling machine, timing one variant after another lets the machine's state drift
between them. Here every round runs each variant once, in turn; the report gives each variant's median
over the rounds and its ratio to PyTorch eager (the network as the official code runs it). Variants:
PyTorch eager, BatchNorm folded, folded + channels-last, folded + channels-last with the convolutions'
ReLUs and additions fused into them (the Predictor's default on CPU), and onnxruntime when it is installed.

With --floor, the same run first measures the compute floor (compute_floor.py: the network's MACs at the
best 3x3-convolution throughput) and gives every variant as a multiple of it, median and minimum over the
rounds, so that floor and forward passes come from the same minutes of the same machine. It also says how
many CPUs other processes kept busy while it ran.
"""
from __future__ import annotations

import argparse

import torch

import higherhrnet
from higherhrnet.models import ChannelsLast, fold_batchnorm
from higherhrnet.models.fuse import fuse_conv_pointwise
from higherhrnet.models.summary import summarize
from higherhrnet.threads import CpuTimes, busy_between

from common import interleaved_times, machine_description, print_speedups
from compute_floor import conv_throughput


def variants(model: torch.nn.Module, size: int) -> dict:
    nets = {
        "PyTorch eager": model,
        "BatchNorm folded": fold_batchnorm(model),
        "folded + channels-last": ChannelsLast(fold_batchnorm(model)),
        "folded + channels-last + ReLU/add fused (Predictor default on CPU)":
            ChannelsLast(fuse_conv_pointwise(fold_batchnorm(model))),
    }
    try:
        from higherhrnet.models.onnx import OnnxRuntimeNetwork, create_session, export_onnx
        onnx_model = export_onnx(fold_batchnorm(model), input_size=(size, size))
        nets["onnxruntime"] = OnnxRuntimeNetwork(create_session(onnx_model, torch.device("cpu"), None))
    except ImportError:
        print("onnxruntime not installed: skipped")
    return nets


@torch.inference_mode()
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    parser.add_argument("--repeats", type=int, default=10, help="rounds (each variant once per round)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--floor", action="store_true", help="measure the compute floor in the same run")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = higherhrnet.load_cfg(args.cfg)
    size = cfg.DATASET.INPUT_SIZE
    model = higherhrnet.build_model(cfg).eval()
    nets = variants(model, size)
    x = torch.randn(1, 3, size, size)
    before = CpuTimes.read()
    floor = None
    if args.floor:
        rates = conv_throughput()
        peak = max(rates.values())
        macs = summarize(model, (1, 3, size, size)).macs
        floor = 2 * macs / (peak * 1e9)
    times = interleaved_times({name: (lambda net=net: net(x)) for name, net in nets.items()}, args.repeats)
    after = CpuTimes.read()
    print(f"machine: {machine_description()}")
    print(f"{args.cfg} at {size}x{size}, {args.repeats} interleaved rounds")
    if before and after:
        print(f"other processes kept {busy_between(before, after):.2f} CPUs busy on average during the run")
    if floor:
        print("3x3 conv GFLOP/s: " + ", ".join(f"{c} ch {s}x{s} {layout} {rate:.1f}"
                                               for (c, s, layout), rate in rates.items()))
        print(f"compute floor: {macs / 1e9:.1f} GMACs at {peak:.1f} GFLOP/s = {floor:.3f} s")
    print()
    print_speedups(times, "PyTorch eager", "variant", floor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
