"""Evaluate a model with COCO keypoint AP (or CrowdPose's metrics) on a COCO-format split.

    python tools/valid.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml \\
        --weights models/pose_higher_hrnet_w32_512.pth DATASET.ROOT data/coco
    python tools/valid.py --cfg CFG --weights W TEST.SCALE_FACTOR "[2, 1, 0.5]"     # multi-scale
    torchrun --nproc_per_node=4 tools/valid.py --cfg CFG --weights W                   # split across processes
    python tools/valid.py --cfg CFG --weights model.onnx --backend onnxruntime          # the network in onnxruntime

Writes <out>/keypoints_<split>_results.json (COCO results format) and, when the split has annotations,
<out>/metrics_<split>.json, and prints the metrics as a table. --out defaults to the training output
folder of the config. Exit status 2 on bad arguments, config, weights or data.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist

import higherhrnet
from higherhrnet.data import DatasetError, build_dataset
from higherhrnet.data.metrics import EvaluationError
from higherhrnet.engine import evaluate, format_metrics, run_dir
from higherhrnet.engine.build import apply_cudnn_settings
from higherhrnet.fileio import write_json
from higherhrnet.images import ImageError
from higherhrnet.models import BACKENDS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="experiment YAML file")
    parser.add_argument("--weights", help="model checkpoint (or a .onnx file with --backend onnxruntime); default: "
                                          "TEST.MODEL_FILE, else final_state.pth of the config's training output")
    parser.add_argument("--out", help="output folder (default: the config's training output folder)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="run the network in PyTorch (default) or onnxruntime (pip install -e \".[onnx]\")")
    parser.add_argument("--batch-size", type=int, default=None, help="images per forward (default TEST.IMAGES_PER_GPU)")
    parser.add_argument("--workers", type=int, default=None, help="image-loading processes (default WORKERS)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    try:
        cfg = higherhrnet.load_cfg(args.cfg, args.opts)
        out = args.out or run_dir(cfg, args.cfg, cfg.OUTPUT_DIR)
        weights = args.weights or cfg.TEST.MODEL_FILE or os.path.join(out, "final_state.pth")
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if distributed:
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
            if device.startswith("cuda"):
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        apply_cudnn_settings(cfg)
        predictor = higherhrnet.Predictor.from_config(cfg, weights, device=device, backend=args.backend)
        dataset = build_dataset(cfg, is_train=False)
        split = cfg.DATASET.TEST
        metrics, results = evaluate(predictor, dataset, args.batch_size or cfg.TEST.IMAGES_PER_GPU,
                                    cfg.WORKERS if args.workers is None else args.workers,
                                    os.path.join(out, f"keypoints_{split}_results.json"))
    except (higherhrnet.ConfigError, higherhrnet.CheckpointError, DatasetError, ImageError, EvaluationError,
            RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if distributed and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{len(results)} people in {len(dataset)} images -> {os.path.join(out, f'keypoints_{split}_results.json')}")
        if metrics is None:
            print(f"{split} has no annotations: results written, nothing to score")
        else:
            write_json(metrics, os.path.join(out, f"metrics_{split}.json"))
            print(format_metrics(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
