"""Evaluate a model with COCO keypoint AP (or CrowdPose's metrics, or MPII's PCKh) on a split of its data set.

    higherhrnet eval --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml \\
        --weights models/pose_higher_hrnet_w32_512.pth DATASET.ROOT data/coco
    higherhrnet eval --cfg CFG --weights W TEST.SCALE_FACTOR "[2, 1, 0.5]"          # multi-scale
    torchrun --nproc_per_node=4 -m higherhrnet eval --cfg CFG --weights W            # split across processes
    higherhrnet eval --cfg CFG --weights model.onnx --backend onnxruntime             # the network in onnxruntime
    higherhrnet eval --cfg CFG --weights W --refine pose_hrnet_w32_256x192            # bottom-up, then top-down
    higherhrnet eval --cfg experiments/mpii/hourglass/hg_s2_b1.yaml --weights hg_s2_b1_256x256_mpii   # PCKh

Runs the official test pipeline (every grouped person is kept, as the official evaluation does) and writes
<out>/keypoints_<split>_results.json (COCO results format) and, when the split has annotations,
<out>/metrics_<split>.json, then prints the metrics as a table and the time per image (network, grouping and
refinement; image reading in --workers processes overlaps it). --refine re-estimates every person a bottom-up
model finds with a top-down model (as predict --refine does; docs/topdown.md). On MPII (DATASET.DATASET_TEST
mpii, synthetic_mpii) a top-down network sees every annotated person of the split as bearpaw/pytorch-pose tests
it and is scored with PCKh as MPII's script computes it (per body part, Mean, Mean@0.1) and the PCK its training
code prints; the split needs MPII's ground-truth .mat (head boxes); the results are
keypoints_<split>_results.json (each person's image, index and joints in image pixels) and preds_<split>.mat
(bearpaw's preds_valid.mat layout; docs/hourglass.md). --out defaults to a folder named after the
weights, beside them (eval_<weights name>/), so a training run's own files are never overwritten; for weights
that belong to the installation (the bundled model, the repository's models/, the download cache) it is
eval_<name>/ in the current folder, and the command says so. The
output folder is checked before any work; files are written whole (temporary name, then renamed). A file that
cannot be written (a full disk) is named in one line, with what is kept. Running out of memory says to lower
--batch-size.
Exit status 2 on bad arguments, config, weights, data or a file that cannot be written; 130 after Ctrl-C, 143
after SIGTERM.
"""
from __future__ import annotations

import argparse
import os
from time import perf_counter
from typing import NamedTuple

from .common import (CommandError, add_config_options, add_threads_option, check_writable_folder,
                     load_config_and_weights, set_threads)

__all__ = ["add_arguments", "run", "default_output_folder", "shipped_place"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, cfg_required=False,
                       weights="checkpoint, .onnx file (with --backend onnxruntime), URL or registered name; "
                               "default: TEST.MODEL_FILE, else final_state.pth of the config's training output")
    parser.add_argument("--out", help="output folder (default: eval_<weights name>/ beside the weights; for the "
                                      "bundled, models/ or cached weights, in the current folder)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "onnxruntime-int8"), default="torch",
                        help="run the network in PyTorch (default) or onnxruntime (pip install -e \".[onnx]\"); "
                             "onnxruntime-int8: quantized to int8 for the CPU, calibrated on the config's test split "
                             "(else synthetic scenes) the first time, then cached")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per forward (default TEST.IMAGES_PER_GPU); for a top-down model (pose_hrnet) "
                             "person crops per forward (default TEST.BATCH_SIZE_PER_GPU)")
    parser.add_argument("--workers", type=int, default=None, help="image-loading processes (default WORKERS)")
    add_threads_option(parser)
    parser.add_argument("--refine", metavar="MODEL",
                        help="a top-down model (registered name such as pose_hrnet_w32_256x192, or model file) that "
                             "re-estimates each person the bottom-up model finds")


def default_output_folder(weights: str, name: str | None = None) -> str:
    """eval_<weights file name without extension>/ in the weights' folder; for weights that belong to the
    installation (`shipped_place`), eval_<registered name, else file name>/ in the current folder instead."""
    stem = os.path.splitext(os.path.basename(weights))[0]
    if shipped_place(weights):
        return os.path.join(os.getcwd(), f"eval_{name or stem}")
    return os.path.join(os.path.dirname(os.path.abspath(weights)), f"eval_{stem}")


def shipped_place(weights: str) -> str | None:
    """Where weights that are no place for results live, in words: inside the installed package (the bundled
    model; in a checkout lib/higherhrnet/), the repository's models/ folder, or the download cache; else
    None."""
    from ..zoo import cache_dir

    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    checkout = os.path.dirname(os.path.dirname(package))
    places = [(package, "inside the installed higherhrnet package"), (cache_dir(), "in the download cache")]
    if os.path.isfile(os.path.join(checkout, "setup.py")):
        places.append((os.path.join(checkout, "models"), "in the repository's models/ folder"))
    real = os.path.realpath(weights)
    for folder, words in places:
        if os.path.commonpath([real, os.path.realpath(folder)]) == os.path.realpath(folder):
            return words
    return None


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from .. import CheckpointError, ConfigError, Predictor
    from ..data import DatasetError, build_dataset, dataset_splits
    from ..data.metrics import EvaluationError
    from ..devices import memory_error_line, out_of_memory, resolve_device
    from ..engine import evaluate, format_metrics, run_dir
    from ..engine.build import apply_cudnn_settings
    from ..engine.distributed import DistInfo, init_distributed, shutdown_distributed
    from ..fileio import WriteError, write_json
    from ..images import ImageError
    from ..interrupts import same_stop, stopped
    from ..models import model_entry
    from ..zoo import REGISTRY

    set_threads(args.threads)
    # Which process this is (torchrun's environment), before joining the group: only the first checks --out.
    process = DistInfo.from_environment()
    cfg, cfg_path, weights = load_config_and_weights(
        args.cfg, args.weights, overrides,
        default_weights=lambda cfg, path: os.path.join(run_dir(cfg, path, cfg.OUTPUT_DIR), "final_state.pth"))
    out = args.out or default_output_folder(weights, args.weights if args.weights in REGISTRY else None)
    if process.main:
        check_writable_folder(out)
        place = None if args.out else shipped_place(weights)
        if place:
            print(f"results go to {out} (the weights are {place}; --out chooses another folder)")
    batch_size = args.batch_size or cfg.TEST.IMAGES_PER_GPU
    try:
        device = resolve_device(args.device)
        process = init_distributed(device.type, cfg.DIST_BACKEND)
        device = process.process_device(device)
        apply_cudnn_settings(cfg)
        split = dataset_splits(cfg)[1]
        results_file = os.path.join(out, f"keypoints_{split}_results.json")
        workers = cfg.WORKERS if args.workers is None else args.workers
        if model_entry(cfg.MODEL.NAME).top_down:
            if args.refine:
                raise CommandError(f"--refine: MODEL.NAME {cfg.MODEL.NAME} is already a top-down model; --refine "
                                   f"takes a top-down model to run on the people of a bottom-up one")
            batch_size = args.batch_size or cfg.TEST.BATCH_SIZE_PER_GPU
            done = _evaluate_top_down(cfg, weights, device, args, process, batch_size, workers, out, results_file)
        else:
            predictor = Predictor.from_config(cfg, weights, device=device, backend=args.backend, raw=True,
                                              refine=args.refine, threads=args.threads)
            if process.main and getattr(predictor.network, "note", None):
                print(predictor.network.note)
            dataset = build_dataset(cfg, is_train=False)
            start = perf_counter()
            metrics, results = evaluate(predictor, dataset, batch_size, workers, results_file)
            done = _Evaluated(metrics, None if metrics is None else format_metrics(metrics), len(results),
                              len(dataset), perf_counter() - start, [results_file])
    except WriteError as e:
        raise CommandError(str(e.keeping(f"nothing new in {out}"))) from None
    except (ConfigError, CheckpointError, DatasetError, ImageError, EvaluationError, RuntimeError,
            ValueError) as e:
        if out_of_memory(e):
            raise CommandError(f"out of memory with {batch_size} images (top-down: person crops) per batch on {device} "
                               f"({memory_error_line(e)}); lower --batch-size (or TEST.IMAGES_PER_GPU), or evaluate "
                               f"at fewer TEST.SCALE_FACTOR scales") from None
        raise CommandError(str(e)) from None
    except KeyboardInterrupt as e:
        raise same_stop(e, f"{stopped(e)}: evaluation stopped before its results were written; nothing new "
                           f"in {out}") from None
    finally:
        shutdown_distributed(process)
    if process.main:
        print(f"{done.people} people in {done.images} images ({done.seconds / max(1, done.images):.3f} s per image) "
              f"-> {', '.join(done.files)}")
        if done.metrics is None:
            print(f"{split} has no annotations: results written, nothing to score")
        else:
            print(done.table)
            try:
                write_json(done.metrics, os.path.join(out, f"metrics_{split}.json"))
            except WriteError as e:
                raise CommandError(str(e.keeping(f"the results are kept in {', '.join(done.files)}, the metrics "
                                                 f"are printed above"))) from None
    return 0


class _Evaluated(NamedTuple):
    """What an evaluation did: metrics (None: nothing to score) and their table; people found in images;
    seconds of the evaluation itself (the network loaded); files: the results written."""

    metrics: dict | None
    table: str | None
    people: int
    images: int
    seconds: float
    files: list[str]


def _evaluate_top_down(cfg, weights, device, args, process, batch_size, workers, out, results_file) -> _Evaluated:
    """A top-down network, as the official test scores it, crops in batches of batch_size made by `workers`
    processes: on COCO's layout (engine.topdown_eval) on boxes from TEST.USE_GT_BBOX / COCO_BBOX_FILE, results
    in results_file; on MPII's (engine.mpii_eval) on MPII's people, PCKh and PCK, its results files in `out`."""
    import dataclasses

    from .. import build_model, load_checkpoint
    from ..data import build_dataset
    from ..engine import format_metrics
    from ..engine.mpii_eval import evaluate_mpii_split, format_pckh, write_mpii_results
    from ..engine.topdown_eval import evaluate_top_down
    from ..data.registry import keypoints_from_config
    from ..person_boxes import boxes_from_config
    from ..topdown import TopDownParams

    if args.backend != "torch":
        raise CommandError(f"--backend {args.backend}: a top-down model (MODEL.NAME {cfg.MODEL.NAME}) is evaluated "
                           f"in PyTorch only")
    if process.world_size > 1:
        raise CommandError("a top-down model is evaluated in one process (the official test's crop batching); "
                           "run it without torchrun")
    dataset = build_dataset(cfg, is_train=False)
    source = dataset.source
    # The TEST.* settings, checked before the network is loaded (evaluate_mpii_split reads them the same way).
    params = dataclasses.replace(TopDownParams.from_config(cfg, keypoints_from_config(cfg)), batch_size=batch_size)
    network = build_model(cfg)
    load_checkpoint(network, weights)
    network = network.to(device).eval()
    start = perf_counter()
    if source.dataset.layout == "mpii":
        metrics, poses = evaluate_mpii_split(cfg, network, source, device, batch_size, workers, progress=process.main)
        seconds = perf_counter() - start
        files = write_mpii_results(source, poses, out)
        images = len({person.image for person in source.people})
        return _Evaluated(metrics, format_pckh(metrics), len(poses.keypoints), images, seconds, files)
    boxes = boxes_from_config(cfg, source.coco)
    metrics, results = evaluate_top_down(network, source, boxes, params, cfg.TEST.OKS_THRE, results_file,
                                         device, progress=process.main, soft_nms=cfg.TEST.SOFT_NMS, workers=workers)
    return _Evaluated(metrics, None if metrics is None else format_metrics(metrics), len(results), len(dataset),
                      perf_counter() - start, [results_file])
