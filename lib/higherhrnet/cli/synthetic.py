"""Write the synthetic keypoint dataset (train and val splits), in COCO's format or as single MPII people.

    higherhrnet make-synthetic --out data/synthetic
    higherhrnet make-synthetic --out data/synthetic --train 5000 --val 500 --seed 1
    higherhrnet make-synthetic --out data/synthetic_mpii --format mpii --train 200 --val 40

COCO: DIR/annotations/person_keypoints_{train,val}.json and DIR/images/{train,val}/*.jpg, exactly COCO's
layout (DATASET.DATASET synthetic). MPII (DATASET.DATASET synthetic_mpii): bearpaw/pytorch-pose's layout,
DIR/mpii_annotations.json (every person, isValidation 1 for those of the val images), DIR/images/*.jpg and
DIR/detections_our_format.mat (MPII's validation ground truth with head boxes, for PCKh); 1 to 3 people an
image. Deterministic for a given seed. A file that cannot be written (a full disk) stops it with one line
naming the file and what is kept (exit status 2).
"""
from __future__ import annotations

import argparse
import os

from .common import CommandError, UsageError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (DATASET.ROOT for training)")
    parser.add_argument("--train", type=int, default=1600, help="training images (default 1600)")
    parser.add_argument("--val", type=int, default=200, help="validation images (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("W", "H"), help="image size")
    parser.add_argument("--empty", type=float, default=0.0, metavar="P",
                        help="fraction of images with nobody in them: uniform colours (black, white, ...), "
                             "gradients or plain backgrounds (default 0; COCO format only)")
    parser.add_argument("--format", choices=("coco", "mpii"), default="coco",
                        help="coco: COCO's files, several people an image (default); mpii: bearpaw's MPII files, "
                             "one record a person, with the validation ground truth for PCKh")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from dataclasses import replace

    from ..data.synthetic import MPII_SPEC, SyntheticSpec, write_synthetic_coco, write_synthetic_mpii

    if overrides:
        raise UsageError(f"make-synthetic takes no config overrides, got {' '.join(overrides)}")
    if args.train < 0 or args.val < 0 or min(args.size) < 32:
        raise UsageError("--train/--val must be >= 0 and --size at least 32 x 32")
    if not 0.0 <= args.empty <= 1.0:
        raise UsageError(f"--empty must be a fraction between 0 and 1, got {args.empty}")
    if args.format == "mpii" and args.empty:
        raise UsageError("--empty is for the COCO format: an MPII record is a person")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise CommandError(f"cannot create {args.out}: {e.strerror}") from None
    splits = {"train": args.train, "val": args.val}
    try:
        if args.format == "mpii":
            files = write_synthetic_mpii(args.out, splits, seed=args.seed,
                                         spec=replace(MPII_SPEC, image_size=tuple(args.size)))
        else:
            files = write_synthetic_coco(args.out, splits, seed=args.seed,
                                         spec=SyntheticSpec(image_size=tuple(args.size), empty_prob=args.empty))
    except OSError as e:        # fileio.WriteError: the file, why, and what is kept
        raise CommandError(str(e)) from None
    for what, path in files.items():
        print(f"{what}: {path}")
    return 0
