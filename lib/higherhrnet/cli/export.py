"""Export a trained network to ONNX (BatchNorm folded; batch, height and width dynamic) and check it.

    higherhrnet export --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml \\
        --weights models/pose_higher_hrnet_w32_512.pth --out models/pose_higher_hrnet_w32_512.onnx
    higherhrnet export --cfg CFG --weights W --out model.onnx --opset 17 --input-size 640 480
    higherhrnet export --weights synthetic_w16_256 --out w16_int8.onnx --int8 DATASET.ROOT data/synthetic

The file has one input, "image" (N, 3, H, W) float32 (ImageNet-normalised RGB, H and W multiples of 32),
and one output per network output: "output_0" (stride 4: heatmaps then tags), "output_1" (stride 2:
heatmaps); with MODEL.SWAHR each output starts with J scale maps. The config YAML is stored in the model's
metadata ("higherhrnet.config"), with what the model is ("higherhrnet.meta": the model meta of the weights, as
JSON), so that `--weights model.onnx` needs no --cfg later. After writing, the file is checked with onnx.checker and run in onnxruntime
at two input sizes other than the export size, against the PyTorch model; the largest differences are printed.
--int8 writes the model quantized to int8 for the CPU (onnxruntime's static quantization, QDQ format),
calibrated on images of the config's test split (DATASET.ROOT), else on synthetic scenes (the command says
which); its differences to PyTorch are the quantization error, printed but not held to --tolerance.

Exit status: 0 exported and checked, 1 onnxruntime disagrees with PyTorch by more than --tolerance,
2 bad arguments / config / weights / output path, or the export failed.
"""
from __future__ import annotations

import argparse
import os
import time

from .common import (CommandError, UsageError, add_config_options, add_threads_option, check_writable_file,
                     load_config_and_weights, set_threads)

__all__ = ["add_arguments", "run"]

# models/onnx.py's DEFAULT_OPSET, for the help text (that module imports PyTorch; tests check they agree).
HELP_OPSET = 18


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, cfg_required=False, device=False,
                       weights="checkpoint (.pth), URL or registered name; default: TEST.MODEL_FILE of the config")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, help=f"ONNX opset (default {HELP_OPSET})")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"),
                        help="example input traced for the export (default: DATASET.INPUT_SIZE square); the "
                             "exported model takes any size")
    parser.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                        help="torchscript (default, fast) or dynamo (torch.export; needs onnxscript, slower)")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="largest accepted difference between onnxruntime and PyTorch (default 1e-3; not "
                             "applied with --int8)")
    parser.add_argument("--int8", action="store_true",
                        help="quantize to int8 for the CPU, calibrated on the config's test split (DATASET.ROOT), "
                             "else synthetic scenes")
    add_threads_option(parser)


def check_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """Two (W, H) input sizes different from the export size: wider, and narrower but taller."""
    return [(width + 64, height), (max(64, width - 64), height + 128)]


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from .. import CheckpointError, ConfigError, build_model, load_checkpoint
    from ..checkpoint import model_meta, read_model_meta
    from ..data.registry import keypoints_from_config
    from ..fileio import WriteError, write_bytes
    from ..calibration import int8_calibration
    from ..data import DatasetError
    from ..images import ImageError
    from ..inference import InferenceParams
    from ..models import fold_batchnorm
    from ..models.onnx import (DEFAULT_OPSET, OnnxError, OnnxRuntimeNetwork, create_session, export_onnx,
                               max_differences, onnx_metadata)
    from ..models.quantize import calibrate_and_quantize

    set_threads(args.threads)
    opset = args.opset or DEFAULT_OPSET
    if not args.out.lower().endswith(".onnx"):
        raise UsageError(f"--out {args.out}: the file name should end in .onnx")
    check_writable_file(args.out, "--out")
    cfg, _, weights = load_config_and_weights(args.cfg, args.weights, overrides)
    width, height = args.input_size or (cfg.DATASET.INPUT_SIZE, cfg.DATASET.INPUT_SIZE)
    if width <= 0 or height <= 0 or width % 32 or height % 32:
        raise UsageError(f"--input-size must be positive multiples of 32, got {width} x {height}")
    try:
        model = build_model(cfg)
        # What the weights say about themselves (dataset, metrics, epoch), with the config used for the export.
        meta = {**read_model_meta(load_checkpoint(model, weights)), **model_meta(cfg, keypoints_from_config(cfg))}
        model.eval()
        start = time.perf_counter()
        data = export_onnx(fold_batchnorm(model), (width, height), opset, args.exporter, metadata=onnx_metadata(meta))
        if args.int8:
            keypoints = keypoints_from_config(cfg)
            calibration = int8_calibration(cfg, InferenceParams.from_config(cfg, keypoints))
            print(f"int8: calibrating on {calibration.source}; {calibration.settings.describe()}")
            data = calibrate_and_quantize(data, calibration)
        write_bytes(data, args.out)
    except WriteError as e:
        kept = f"the earlier {args.out} is unchanged" if os.path.exists(args.out) else "nothing was written"
        raise CommandError(str(e.keeping(kept))) from None
    except (CheckpointError, ConfigError, OnnxError, OSError, DatasetError, ImageError) as e:
        raise CommandError(str(e)) from None
    quantized = ", calibrated and quantized to int8," if args.int8 else ""
    print(f"{args.out}: {len(data) / 1e6:.1f} MB, opset {opset}, {args.exporter} exporter, traced at "
          f"{width}x{height}{quantized} in {time.perf_counter() - start:.1f} s; onnx.checker: passed")

    try:
        network = OnnxRuntimeNetwork(create_session(args.out))
        print(f"input {network.input_name} [batch, 3, height, width]; outputs "
              + ", ".join(f"{name} ({channels} channels)" for name, channels in zip(network.output_names,
                                                                                      network.output_channels)))
        worst = 0.0
        for size in check_sizes(width, height):
            differences = max_differences(model, network, size, batch_size=2)
            worst = max(worst, *differences)
            print(f"onnxruntime vs PyTorch at {size[0]}x{size[1]} (batch 2{', random input' if args.int8 else ''}): "
                  f"max abs difference "
                  + ", ".join(f"{d:.2e} ({name})" for d, name in zip(differences, network.output_names)))
    except OnnxError as e:
        raise CommandError(f"{args.out} was written but does not run in onnxruntime: {e}", 1) from None
    if args.int8:
        print("(int8: the differences are the quantization error on random input; BENCHMARKS.md measures what it does "
              "to people and AP)")
    if worst > args.tolerance and not args.int8:
        raise CommandError(f"onnxruntime differs from PyTorch by {worst:.2e}, over --tolerance {args.tolerance:g}", 1)
    return 0
