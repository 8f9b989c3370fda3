"""Forward-pass time of the network variants, measured interleaved so that they are compared fairly.

    python benchmarks/forward_ab.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml --repeats 10

On a shared or frequency-scaling machine, timing one variant after another lets the machine's state drift
between them. Here every round runs each variant once, in turn; the report gives each variant's median
over the rounds and its ratio to PyTorch eager (the network as the official code runs it). Variants:
PyTorch eager, BatchNorm folded, folded + channels-last (the Predictor's default on CPU), and onnxruntime
when it is installed.
"""
from __future__ import annotations

import argparse

import torch

import higherhrnet
from higherhrnet.models import ChannelsLast, fold_batchnorm

from common import interleaved_times, machine_description, print_speedups


def variants(model: torch.nn.Module, size: int) -> dict:
    nets = {
        "PyTorch eager": model,
        "BatchNorm folded": fold_batchnorm(model),
        "folded + channels-last (Predictor default on CPU)": ChannelsLast(fold_batchnorm(model)),
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
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = higherhrnet.load_cfg(args.cfg)
    size = cfg.DATASET.INPUT_SIZE
    nets = variants(higherhrnet.build_model(cfg).eval(), size)
    x = torch.randn(1, 3, size, size)
    times = interleaved_times({name: (lambda net=net: net(x)) for name, net in nets.items()}, args.repeats)
    print(f"machine: {machine_description()}")
    print(f"{args.cfg} at {size}x{size}, {args.repeats} interleaved rounds\n")
    print_speedups(times, "PyTorch eager", "variant")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
