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


def draw_people(image: np.ndarray, people: Sequence, keypoints: KeypointSpec, threshold: float = 0.2) -> np.ndarray:
    """A copy of `image` (H, W, 3) uint8 RGB with every person's skeleton drawn in its own colour.

    people: objects with .keypoints (J, 3) x, y, value in image pixels. Joints whose value is below
    `threshold` are not drawn, nor are links touching them.
    """
    canvas = np.ascontiguousarray(image.copy())
    h, w = canvas.shape[:2]
    thickness = max(1, int(round(min(h, w) / 250)))
    radius = thickness + 1
    links = keypoints.skeleton_indices
    for i, person in enumerate(people):
        color = person_color(i)
        kpts = np.asarray(person.keypoints)
        shown = (kpts[:, 2] >= threshold) & np.isfinite(kpts[:, :2]).all(axis=1)
        for a, b in links:
            if shown[a] and shown[b]:
                pa = tuple(int(round(v)) for v in kpts[a, :2])
                pb = tuple(int(round(v)) for v in kpts[b, :2])
                cv2.line(canvas, pa, pb, color, thickness, cv2.LINE_AA)
        for j in np.nonzero(shown)[0]:
            center = tuple(int(round(v)) for v in kpts[j, :2])
            cv2.circle(canvas, center, radius, color, -1, cv2.LINE_AA)
            cv2.circle(canvas, center, radius, (255, 255, 255), max(1, thickness // 2), cv2.LINE_AA)
    return canvas
