"""Training data pipeline per item: this project's TrainingDataset against the official code's own dataset class,
interleaved, in CPU time.

    python data_pipeline.py --official /tmp/official-hhrnet      # coco-mini's 4 COCO images, W32-512 recipe
    python data_pipeline.py --official /tmp/official-hhrnet --root data/coco --split val2017 --items 400

--official: a checkout of HRNet/HigherHRNet-Human-Pose-Estimation (its lib/ and experiments/), kept outside this
project; nothing of it is copied here. The official item is its own lib/dataset CocoKeypoints.__getitem__ as its
build_dataset(cfg, is_train=True) makes it: cv2.imread, the ignore mask, RandomAffineTransform,
RandomHorizontalFlip, ToTensor + Normalize (torchvision.transforms.functional), HeatmapGenerator and
JointsGenerator per output size, configured by its own config code from its own
experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml. The official code imports torchvision (for to_tensor
and normalize), json_tricks (only to write results in evaluation) and crowdposetools (only for its CrowdPose
classes): torchvision must be importable (a build matching your torch, or a module providing
torchvision.transforms.functional on PYTHONPATH); the other two, when missing, are replaced by empty modules,
as nothing timed here uses them.

One process, one thread (what each DataLoader worker does: torch.set_num_threads(1), one OpenCV thread).
Every round produces one item of the same image with each pipeline in turn, so a machine whose speed drifts
affects all alike; the time per item is CPU time (time.process_time), which the other work of a shared machine
does not add to. Rows:
- official: the official code itself, augmentation on (its global random / np.random, seeded once).
- ours (images cached): TrainingDataset as training runs it on a split that fits DATASET.IMAGE_CACHE_MB
  (the 4 coco-mini images do): decoded images and masks kept by the worker.
- ours (no cache): DATASET.IMAGE_CACHE_MB 0, every item read and decoded again (a split such as COCO train,
  which does not fit).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import statistics
import subprocess
import sys
import time
import types

import cv2
import numpy as np
import torch

import higherhrnet
from higherhrnet.data import build_dataset

from common import interleaved_times, machine_description

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COCO_MINI = os.path.join(os.path.dirname(REPO), "shared", "data", "coco-mini")
RECIPE = "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml"   # the same path in both repositories
# What a checkout must hold to be the official code, as this script uses it.
OFFICIAL_FILES = ("lib/dataset/COCOKeypoints.py", "lib/dataset/COCODataset.py", "lib/dataset/build.py",
                  "lib/dataset/transforms/transforms.py", "lib/dataset/target_generators/target_generators.py",
                  "lib/config/default.py", RECIPE)


class OfficialCodeError(Exception):
    """The --official path is not a usable checkout of the official code; the message says why and what to do."""


def load_official(checkout: str, root: str, split: str):
    """(the official training dataset (its CocoKeypoints), its cfg) from the checkout at `checkout`, for the
    COCO-format data at root / split. OfficialCodeError when the checkout or torchvision is missing."""
    checkout = os.path.abspath(checkout)
    missing = [f for f in OFFICIAL_FILES if not os.path.isfile(os.path.join(checkout, f))]
    if missing:
        raise OfficialCodeError(
            f"{checkout} is not a checkout of HRNet/HigherHRNet-Human-Pose-Estimation (missing: {', '.join(missing)}); "
            f"get one outside this project, e.g. git clone "
            f"https://github.com/HRNet/HigherHRNet-Human-Pose-Estimation /tmp/official-hhrnet, and pass its path")
    try:
        import torchvision.transforms.functional  # noqa: F401
    except ImportError as e:
        raise OfficialCodeError(
            f"the official transforms import torchvision ({e}): install the torchvision build that matches torch "
            f"{torch.__version__}, or put a module providing torchvision.transforms.functional.to_tensor and "
            f"normalize on PYTHONPATH") from None
    for name in ("json_tricks", "crowdposetools", "crowdposetools.cocoeval"):
        try:
            __import__(name)
        except ImportError:
            # Imported at module level by the official COCODataset (evaluation output) and CrowdPose classes;
            # neither is called when building or reading a COCO training item.
            sys.modules[name] = types.ModuleType(name)
    sys.modules["crowdposetools"].cocoeval = sys.modules["crowdposetools.cocoeval"]
    sys.modules["crowdposetools.cocoeval"].COCOeval = getattr(sys.modules["crowdposetools.cocoeval"], "COCOeval", None)
    # The official lib is a set of top-level packages (config, dataset, utils): first on the path, so that a
    # module of the same name elsewhere does not shadow them.
    sys.path.insert(0, os.path.join(checkout, "lib"))
    from config import cfg as official_defaults          # the official lib/config
    from dataset.build import build_dataset as official_build   # the official lib/dataset
    cfg = official_defaults.clone()
    cfg.defrost()
    cfg.merge_from_file(os.path.join(checkout, RECIPE))
    cfg.merge_from_list(["DATASET.ROOT", root, "DATASET.TRAIN", split])
    cfg.freeze()
    with contextlib.redirect_stdout(io.StringIO()):     # pycocotools' progress lines
        return official_build(cfg, is_train=True), cfg


def check_same_recipe(official_cfg, ours) -> None:
    """SystemExit unless both pipelines make items of the same recipe (sizes, sigma, augmentation ranges)."""
    d, a = official_cfg.DATASET, ours.augment
    theirs = (d.INPUT_SIZE, list(d.OUTPUT_SIZE), float(d.SIGMA), d.MAX_NUM_PEOPLE, d.MIN_SCALE, d.MAX_SCALE,
              d.MAX_ROTATION, d.MAX_TRANSLATE, d.SCALE_TYPE, d.FLIP)
    mine = (ours.input_size, list(ours.output_sizes), float(ours.sigma), ours.max_people, a.min_scale, a.max_scale,
            a.max_rotation, a.max_translate, a.scale_type, a.flip_prob)
    if theirs != mine:
        raise SystemExit(f"the recipes differ: official {theirs}, ours {mine}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", required=True,
                        help="path of a checkout of HRNet/HigherHRNet-Human-Pose-Estimation (outside this project)")
    parser.add_argument("--cfg", default=os.path.join(REPO, RECIPE), help="this project's recipe")
    parser.add_argument("--root", default=COCO_MINI, help="a COCO-format data root (default: coco-mini)")
    parser.add_argument("--split", default="val2017")
    parser.add_argument("--items", type=int, default=200, help="items per pipeline (interleaved rounds)")
    args = parser.parse_args(argv)
    try:
        if not os.path.isdir(args.root):
            raise OfficialCodeError(f"{args.root} not found (pass --root and --split of a COCO-format data set)")
        official, official_cfg = load_official(args.official, args.root, args.split)
    except OfficialCodeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    random.seed(0)
    np.random.seed(0)
    opts = ["DATASET.ROOT", args.root, "DATASET.TRAIN", args.split]
    cfg = higherhrnet.load_cfg(args.cfg, opts)
    cached = build_dataset(cfg)
    plain = build_dataset(higherhrnet.load_cfg(args.cfg, opts + ["DATASET.IMAGE_CACHE_MB", "0"]))
    check_same_recipe(official_cfg, plain)
    if sorted(official.ids) != sorted(plain.source.ids):
        raise SystemExit("the two datasets hold different images")
    n = len(official)
    # Round k makes an item of the same image with every pipeline: the official order of image ids, mapped
    # to our indices.
    ours_index = [plain.source.ids.index(image_id) for image_id in official.ids]
    theirs_item, our_item = official[0], cached[(0, ours_index[0])]
    shapes = [lambda item: tuple(item[0].shape)] + [lambda item, i=i: [tuple(x.shape) for x in item[i]]
                                                     for i in (1, 2, 3)]
    if [s(theirs_item) for s in shapes] != [s(our_item) for s in shapes]:
        raise SystemExit(f"the items differ in shape: official {[s(theirs_item) for s in shapes]}, "
                         f"ours {[s(our_item) for s in shapes]}")
    counters = {"official": 0, "ours (images cached)": 0, "ours (no cache)": 0}

    def step(name, fn):
        def run():
            k = counters[name]
            counters[name] += 1
            return fn(k)
        return run

    runs = {"official": step("official", lambda k: official[k % n]),
            "ours (images cached)": step("ours (images cached)", lambda k: cached[(k // n, ours_index[k % n])]),
            "ours (no cache)": step("ours (no cache)", lambda k: plain[(k // n, ours_index[k % n])])}
    times = interleaved_times(runs, args.items, clock=time.process_time)
    print(f"machine: {machine_description()}; one thread, one process (a loader worker); OpenCV {cv2.__version__}")
    print(f"official code: {os.path.abspath(args.official)}{official_revision(args.official)}")
    print(f"{args.cfg}: input {cfg.DATASET.INPUT_SIZE}, targets {list(plain.output_sizes)}; {n} images of "
          f"{args.root} ({args.split}); {args.items} interleaved rounds, CPU time per item\n")
    reference = statistics.median(times["official"])
    print("| pipeline | CPU ms per item (median) | min - max ms | items/s per worker | speed-up vs official |")
    print("| --- | --- | --- | --- | --- |")
    for name, t in times.items():
        median = statistics.median(t)
        print(f"| {name} | {median * 1000:.2f} | {min(t) * 1000:.2f} - {max(t) * 1000:.2f} | {1 / median:.0f} "
              f"| {reference / median:.2f} |")
    return 0


def official_revision(checkout: str) -> str:
    """', commit <hash>' when the checkout is a git work tree, else ''."""
    try:
        out = subprocess.run(["git", "-C", checkout, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return f", commit {out.stdout.strip()}" if out.returncode == 0 and out.stdout.strip() else ""


if __name__ == "__main__":
    sys.exit(main())
