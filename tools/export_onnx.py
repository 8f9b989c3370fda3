"""Export a trained network to ONNX (BatchNorm folded; batch, height and width dynamic) and check it.

    python tools/export_onnx.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml \\
        --weights models/pose_higher_hrnet_w32_512.pth --out models/pose_higher_hrnet_w32_512.onnx
    python tools/export_onnx.py --cfg CFG --weights W --out model.onnx --opset 17 --input-size 640 480

The file has one input, "image" (N, 3, H, W) float32 (ImageNet-normalised RGB, H and W multiples of 32),
and one output per network output: "output_0" (stride 4: heatmaps then tags), "output_1" (stride 2:
heatmaps). The config YAML is stored in the model's metadata ("higherhrnet.config"). After writing, the
file is checked with onnx.checker and run in onnxruntime at two input sizes other than the export size,
against the PyTorch model; the largest differences are printed.

Exit status: 0 exported and checked, 1 onnxruntime disagrees with PyTorch by more than --tolerance,
2 bad arguments / config / weights / output path, or the export failed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


import higherhrnet
from higherhrnet.fileio import write_bytes
from higherhrnet.models.onnx import (DEFAULT_OPSET, EXPORTERS, OnnxError, OnnxRuntimeNetwork, create_session,
                                     export_onnx, max_differences)
from higherhrnet.models import fold_batchnorm


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="experiment YAML file")
    parser.add_argument("--weights", help="model checkpoint (.pth); default: TEST.MODEL_FILE of the config")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"),
                        help="example input traced for the export (default: DATASET.INPUT_SIZE square); the "
                             "exported model takes any size")
    parser.add_argument("--exporter", choices=EXPORTERS, default="torchscript",
                        help="torchscript (default, fast) or dynamo (torch.export; needs onnxscript, slower)")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="largest accepted difference between onnxruntime and PyTorch (default 1e-3)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser.parse_args(argv)


def fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def check_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """Two (W, H) input sizes different from the export size: wider, and narrower but taller."""
    return [(width + 64, height), (max(64, width - 64), height + 128)]


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.out.lower().endswith(".onnx"):
        return fail(f"--out {args.out}: the file name should end in .onnx")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        return fail(f"--out {args.out}: folder {folder} does not exist or is not writable")
    try:
        cfg = higherhrnet.load_cfg(args.cfg, args.opts)
        width, height = args.input_size or (cfg.DATASET.INPUT_SIZE, cfg.DATASET.INPUT_SIZE)
        if width <= 0 or height <= 0 or width % 32 or height % 32:
            return fail(f"--input-size must be positive multiples of 32, got {width} x {height}")
        weights = args.weights or cfg.TEST.MODEL_FILE
        if not weights:
            return fail("no weights: pass --weights or set TEST.MODEL_FILE")
        model = higherhrnet.build_model(cfg)
        higherhrnet.load_checkpoint(model, weights)
        model.eval()
        folded = fold_batchnorm(model)
        start = time.perf_counter()
        data = export_onnx(folded, (width, height), args.opset, args.exporter,
                           metadata={"higherhrnet.config": cfg.dump(), "higherhrnet.version": higherhrnet.__version__})
        write_bytes(data, args.out)
    except (higherhrnet.ConfigError, higherhrnet.CheckpointError, OnnxError, OSError) as e:
        return fail(str(e))
    print(f"{args.out}: {len(data) / 1e6:.1f} MB, opset {args.opset}, {args.exporter} exporter, traced at "
          f"{width}x{height} in {time.perf_counter() - start:.1f} s; onnx.checker: passed")

    try:
        network = OnnxRuntimeNetwork(create_session(args.out))
        print(f"input {network.input_name} [batch, 3, height, width]; outputs "
              + ", ".join(f"{name} ({channels} channels)" for name, channels in zip(network.output_names,
                                                                                      network.output_channels)))
        worst = 0.0
        for size in check_sizes(width, height):
            differences = max_differences(model, network, size, batch_size=2)
            worst = max(worst, *differences)
            print(f"onnxruntime vs PyTorch at {size[0]}x{size[1]} (batch 2): max abs difference "
                  + ", ".join(f"{d:.2e} ({name})" for d, name in zip(differences, network.output_names)))
    except OnnxError as e:
        return fail(f"{args.out} was written but does not run in onnxruntime: {e}", 1)
    if worst > args.tolerance:
        return fail(f"onnxruntime differs from PyTorch by {worst:.2e}, over --tolerance {args.tolerance:g}", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
