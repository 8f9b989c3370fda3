"""Drawing people on images."""
from __future__ import annotations

import colorsys
from typing import Sequence

import cv2
import numpy as np

from .keypoints import KeypointSpec

__all__ = ["person_color", "draw_people"]


def person_color(index: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB colour per person (golden-ratio hue steps)."""
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _side_of_joints(keypoints: KeypointSpec) -> np.ndarray:
    """(J,) -1 for the first joint of each flip pair (COCO: left), +1 for the second, 0 for unpaired joints."""
    side = np.zeros(keypoints.num_joints, np.int64)
    for first, second in keypoints.flip_pairs:
        side[keypoints.index(first)], side[keypoints.index(second)] = -1, 1
    return side


def _shades(color: tuple[int, int, int]) -> dict[int, tuple[int, int, int]]:
    """The person's colour for each side: lightened for -1 (left), darkened for +1 (right), as is for 0."""
    base = np.array(color, np.float64)
    light = base + (255 - base) * 0.55
    dark = base * 0.5
    return {-1: tuple(int(v) for v in light), 0: tuple(int(v) for v in base), 1: tuple(int(v) for v in dark)}


def draw_people(image: np.ndarray, people: Sequence, keypoints: KeypointSpec, threshold: float = 0.2,
                ids: Sequence[int] | None = None, labels: bool = False) -> np.ndarray:
    """A copy of `image` (H, W, 3) uint8 RGB with every person's skeleton drawn.

    people: objects with .keypoints (J, 3) x, y, value in image pixels. Joints whose value is below
    `threshold` are not drawn, nor are links touching them. Each person has its own colour, chosen by
    ids[i] (e.g. a track id, so that a person keeps it from frame to frame) or by position in the list;
    limbs and joints of the left side (the first joint of each flip pair) are drawn lighter, those of the
    right side darker. labels: write "#id" above each person.
    """
    canvas = np.ascontiguousarray(image.copy())
    h, w = canvas.shape[:2]
    thickness = max(2, int(round(min(h, w) / 250)))
    radius = thickness + 1
    links = keypoints.skeleton_indices
    side = _side_of_joints(keypoints)
    for i, person in enumerate(people):
        identity = int(ids[i]) if ids is not None else i
        shades = _shades(person_color(identity))
        kpts = np.asarray(person.keypoints)
        shown = (kpts[:, 2] >= threshold) & np.isfinite(kpts[:, :2]).all(axis=1)
        for a, b in links:
            if shown[a] and shown[b]:
                pa = tuple(int(round(v)) for v in kpts[a, :2])
                pb = tuple(int(round(v)) for v in kpts[b, :2])
                # A link between the two sides (e.g. shoulder to shoulder) is drawn in the person's colour.
                link_side = side[a] if side[a] == side[b] else 0
                cv2.line(canvas, pa, pb, shades[int(link_side)], thickness, cv2.LINE_AA)
        for j in np.nonzero(shown)[0]:
            center = tuple(int(round(v)) for v in kpts[j, :2])
            cv2.circle(canvas, center, radius, shades[int(side[j])], -1, cv2.LINE_AA)
            cv2.circle(canvas, center, radius, (255, 255, 255), max(1, thickness // 2), cv2.LINE_AA)
        if labels and shown.any():
            x, y = kpts[shown, 0].min(), kpts[shown, 1].min()
            scale = max(0.35, min(h, w) / 900)
            cv2.putText(canvas, f"#{identity}", (int(x), max(int(y) - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        shades[0], max(1, thickness), cv2.LINE_AA)
    return canvas
