"""Drawing people on images."""
from __future__ import annotations

import colorsys
from typing import Sequence

import cv2
import numpy as np

from .keypoints import KeypointSpec
from .oks import visible_joints

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

    people: objects with .keypoints (J, 3) x, y, value in image pixels. Only the joints visible at
    `threshold` are drawn (oks.visible_joints: value >= threshold and > 0, the joints Person.box
    surrounds), and the links between two of them. Each person has its own colour, chosen by
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
        shown = visible_joints(kpts, threshold)
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


# Pictures of network outputs (TensorBoard's validation images, debugging). Arrays in, (H, W, 3) uint8 RGB out.
__all__ += ["colorize", "heatmap_grid", "tag_map_image"]


def colorize(values: np.ndarray, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """(H, W) float values -> (H, W, 3) uint8 RGB in OpenCV's "turbo" colour map: `low` and below dark purple,
    `high` and above dark red. NaN shows as `low`."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"colorize: expected an (H, W) array, got shape {values.shape}")
    if not high > low:
        raise ValueError(f"colorize: high ({high}) must be above low ({low})")
    scaled = np.nan_to_num((values - low) / (high - low), nan=0.0)
    levels = np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)
    return np.ascontiguousarray(cv2.applyColorMap(levels, cv2.COLORMAP_TURBO)[:, :, ::-1])


def heatmap_grid(heatmaps: np.ndarray, columns: int | None = None, tile_side: int = 128,
                 gap: int = 2) -> np.ndarray:
    """heatmaps (J, H, W), values about 0..1 -> one (H', W', 3) uint8 RGB image of J + 1 tiles, row by row:
    the maximum over joints, then joints 0 .. J-1, each coloured by `colorize(map, 0, 1)`.

    Each tile is resized so that its longer side is `tile_side` (aspect ratio kept: h x w); tiles are
    separated by `gap` black pixels. columns: tiles per row (default ceil(sqrt(J + 1))). The result is
    (rows x (h + gap) - gap, columns x (w + gap) - gap, 3) with rows = ceil((J + 1) / columns).
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if heatmaps.ndim != 3 or min(heatmaps.shape) < 1:
        raise ValueError(f"heatmap_grid: expected (J, H, W) heatmaps with J, H, W >= 1, got shape {heatmaps.shape}")
    maps = np.concatenate([heatmaps.max(axis=0, keepdims=True), heatmaps])
    count, h, w = maps.shape
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = -(-count // columns)
    scale = tile_side / max(h, w)
    th, tw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    grid = np.zeros((rows * (th + gap) - gap, columns * (tw + gap) - gap, 3), np.uint8)
    for i, heatmap in enumerate(maps):
        tile = heatmap if (th, tw) == (h, w) else cv2.resize(heatmap, (tw, th), interpolation=cv2.INTER_AREA
                                                             if scale < 1 else cv2.INTER_LINEAR)
        y, x = (i // columns) * (th + gap), (i % columns) * (tw + gap)
        grid[y:y + th, x:x + tw] = colorize(tile)
    return grid


def tag_map_image(tags: np.ndarray, heatmaps: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """What associative embedding sees: tags (J, H, W) (one map per joint) or (1, H, W) (one shared map),
    heatmaps (J, H, W) -> (H, W, 3) uint8 RGB.

    At each pixel, the tag of the joint whose heatmap is highest there, as a hue (the smallest tag shown red,
    the largest violet; joints of one person, whose tags agree, share a colour), brighter where that heatmap
    is higher; black where every heatmap is below `threshold`.
    """
    tags = np.asarray(tags, dtype=np.float32)
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if heatmaps.ndim != 3 or tags.ndim != 3 or tags.shape[1:] != heatmaps.shape[1:] \
            or tags.shape[0] not in (1, heatmaps.shape[0]):
        raise ValueError(f"tag_map_image: expected tags (J or 1, H, W) and heatmaps (J, H, W) of the same H, W; "
                         f"got tags {tags.shape} and heatmaps {heatmaps.shape}")
    joint = heatmaps.argmax(axis=0)
    peak = np.take_along_axis(heatmaps, joint[None], axis=0)[0]
    tag = tags[0] if tags.shape[0] == 1 else np.take_along_axis(tags, joint[None], axis=0)[0]
    shown = (peak >= threshold) & np.isfinite(tag)
    hsv = np.zeros(peak.shape + (3,), np.uint8)
    if shown.any():
        low, high = float(tag[shown].min()), float(tag[shown].max())
        spread = (tag - low) / (high - low) if high > low else np.zeros_like(tag)
        # OpenCV's 8-bit hue runs 0..179 (half degrees); stop at violet (~270 degrees) so that the two ends
        # of the range do not meet in red.
        hsv[..., 0] = np.where(shown, np.round(np.clip(spread, 0, 1) * 135), 0).astype(np.uint8)
        hsv[..., 1] = 255
        # A quarter of full brightness at least, so that weak detections still show their colour.
        hsv[..., 2] = np.where(shown, np.round(64 + np.clip(peak, 0, 1) * 191), 0).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
