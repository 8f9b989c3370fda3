"""Checks of a COCO-format data set before anything reads it for training or evaluation: every annotation has
one (x, y, visibility) triple per joint, every image the split lists exists and its header gives the size the
annotation file says. Each check reports all it finds in one line (how many, the first few named), so that a
bad file stops a run at its start rather than hours into it, or in a DataLoader worker's traceback.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ..errors import OneLineError
from ..images import ImageError, read_image, read_image_size
from ..keypoints import KeypointSpec

__all__ = ["DatasetError", "check_keypoint_counts", "check_images"]

# Examples named in a message; the rest are counted.
_NAMED = 3


class DatasetError(OneLineError):
    """A dataset file is missing or malformed; the message names the file and the problem."""


def check_keypoint_counts(annotations: Sequence[dict], keypoints: KeypointSpec, where: str) -> None:
    """DatasetError (naming `where`, the annotation file) unless every annotation has 3 keypoint values
    (x, y, visibility) per joint of `keypoints`; all annotations are checked, and the message counts those that
    do not and names the first few by id."""
    expected = 3 * keypoints.num_joints
    values = (annotation.get("keypoints", []) for annotation in annotations)
    counts = np.fromiter((len(v) if isinstance(v, list) else -1 for v in values), dtype=np.int64,
                         count=len(annotations))
    wrong = np.flatnonzero(counts != expected)
    if len(wrong) == 0:
        return
    named = ", ".join(f"annotation {annotations[i].get('id')} has "
                      + (f"{counts[i]}" if counts[i] >= 0 else "no list of keypoint values") for i in wrong[:_NAMED])
    raise DatasetError(f"{where}: {len(wrong)} of {len(annotations)} annotations do not have {expected} keypoint "
                       f"values (x, y, visibility for each of the {keypoints.num_joints} joints of "
                       f"{keypoints.name!r}): {named}{', ...' if len(wrong) > _NAMED else ''}")


def check_images(images: Sequence[dict], image_dir: str, where: str, progress: bool = False) -> None:
    """DatasetError unless every image entry of `images` (the annotation file's "images" dicts) names an
    existing file under image_dir whose size is the entry's width x height, as the loader reads it: stored
    pixels, EXIF orientation ignored (read_image(path, exif=False); COCO's annotations are in stored pixels).
    The size comes from the file's header (images.read_image_size; formats it cannot read are decoded), so
    damaged pixel data is found only by the loader. where: the annotation file, for the message.
    progress: a tqdm bar when the check takes over two seconds."""
    # One file after the other: threads measured no faster here (2 cores, a local disk; docs/training-reference.md).
    with tqdm(images, desc="checking images", unit="image", delay=2.0, disable=not progress, leave=False) as bar:
        found = [_image_problem(entry, image_dir) for entry in bar]
    problems: dict[str, list[str]] = {}
    for problem in found:
        if problem is not None:
            problems.setdefault(problem[0], []).append(problem[1])
    if not problems:
        return
    parts = [f"{len(named)} {kind} ({', '.join(named[:_NAMED])}{', ...' if len(named) > _NAMED else ''})"
             for kind, named in problems.items()]
    count = sum(len(named) for named in problems.values())
    raise DatasetError(f"{image_dir}: {count} of {len(images)} images listed in {where} cannot be used: "
                       f"{'; '.join(parts)}")


def _image_problem(entry: dict, image_dir: str) -> tuple[str, str] | None:
    """None when the entry's file is there with the entry's size; else (what is wrong, the file and detail)."""
    name = entry.get("file_name")
    if not name:
        return "without a file_name", f"image id {entry.get('id')}"
    path = os.path.join(image_dir, name)
    try:
        size = read_image_size(path, exif=False)
        if size is None:     # a format without a header reader: decoded
            height, width = read_image(path, exif=False).shape[:2]
            size = (width, height)
    except ImageError as e:
        if not os.path.exists(path):
            return "missing", name
        return "unreadable", f"{name}: {str(e).removeprefix(f'{path}: ')}"
    annotated = (entry.get("width"), entry.get("height"))
    if None in annotated:
        return "without width and height in the annotation file", f"image id {entry.get('id')}"
    if tuple(size) != annotated:
        return "not of the annotated size", f"{name} is {size[0]}x{size[1]}, annotated {annotated[0]}x{annotated[1]}"
    return None
