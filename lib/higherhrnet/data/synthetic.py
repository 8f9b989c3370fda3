"""A synthetic COCO-format keypoint dataset: stick people on textured backgrounds.

Every scene exercises what bottom-up pose estimation is for: several people of very different sizes,
varied poses, people overlapping (occluded joints get visibility 1) and cut by the border (joints outside
get 0), crowd regions (iscrowd=1, masked in training), unlabelled small people (num_keypoints 0), and a
face that tells front from back, so that left and right are decidable as with real people.

    write_synthetic_coco("data/synthetic")            # train and val splits, COCO layout
    write_synthetic_mpii("data/synthetic_mpii")       # the same figures as single MPII people, bearpaw's layout
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from ..fileio import WriteError, write_bytes, write_json
from ..keypoints import COCO_KEYPOINTS, MPII_KEYPOINTS

__all__ = ["SyntheticSpec", "MPII_SPEC", "write_synthetic_coco", "write_synthetic_mpii", "render_scene",
           "mpii_people"]

J = 17
I = {name: i for i, name in enumerate(COCO_KEYPOINTS.names)}


@dataclass(frozen=True)
class SyntheticSpec:
    image_size: tuple[int, int] = (256, 256)   # width, height
    max_people: int = 4
    min_height: float = 50.0                   # person heights in pixels (labelled people)
    max_height: float = 220.0
    crowd_prob: float = 0.2
    unlabelled_prob: float = 0.25
    # Images with nobody in them: a uniform colour (black and white included), a plain gradient, or the
    # usual textured background, so that a model learns that featureless images hold no people.
    empty_prob: float = 0.0
    # Where the labelled people's mid-hips go: ((x_low, y_low), (x_high, y_high)) as fractions of the image's
    # width and height; beyond the left and right borders by default, so that people are cut by them.
    hips_area: tuple[tuple[float, float], tuple[float, float]] = ((-0.05, 0.15), (1.05, 1.0))


def _person(rng: np.random.Generator, height: float, center: np.ndarray, front: bool) -> np.ndarray:
    """(J, 2) joint positions of a person standing at `center` (mid-hip), in image pixels."""
    h = height
    lean = rng.normal(0, 0.12)
    up = np.array([math.sin(lean), -math.cos(lean)])
    side = np.array([-up[1], up[0]])              # image-right for an upright person
    hips_mid = center
    neck = hips_mid + up * 0.32 * h
    # Facing the viewer, the person's left is on the image right.
    s = 1.0 if front else -1.0
    shoulder_l = neck + side * s * 0.11 * h
    shoulder_r = neck - side * s * 0.11 * h
    hip_l = hips_mid + side * s * 0.08 * h
    hip_r = hips_mid - side * s * 0.08 * h
    head = neck + up * 0.11 * h
    pts = np.zeros((J, 2))
    pts[I["nose"]] = head + up * -0.01 * h
    pts[I["left_eye"]] = head + up * 0.02 * h + side * s * 0.025 * h
    pts[I["right_eye"]] = head + up * 0.02 * h - side * s * 0.025 * h
    pts[I["left_ear"]] = head + side * s * 0.05 * h
    pts[I["right_ear"]] = head - side * s * 0.05 * h
    pts[I["left_shoulder"]], pts[I["right_shoulder"]] = shoulder_l, shoulder_r
    pts[I["left_hip"]], pts[I["right_hip"]] = hip_l, hip_r

    def limb(start, base_angle, spread, length1, length2):
        a1 = base_angle + rng.uniform(-spread, spread)
        a2 = a1 + rng.uniform(-1.6, 1.6) * 0.6
        mid = start + length1 * np.array([math.cos(a1), math.sin(a1)])
        end = mid + length2 * np.array([math.cos(a2), math.sin(a2)])
        return mid, end

    down = math.atan2(-up[1], -up[0])
    for name, shoulder, sign in (("left", shoulder_l, s), ("right", shoulder_r, -s)):
        elbow, wrist = limb(shoulder, down - sign * 0.5, 1.4, 0.17 * h, 0.15 * h)
        pts[I[f"{name}_elbow"]], pts[I[f"{name}_wrist"]] = elbow, wrist
    for name, hip, sign in (("left", hip_l, s), ("right", hip_r, -s)):
        knee, ankle = limb(hip, down - sign * 0.15, 0.45, 0.23 * h, 0.22 * h)
        pts[I[f"{name}_knee"]], pts[I[f"{name}_ankle"]] = knee, ankle
    return pts


def _colors(rng):
    shirt = tuple(int(v) for v in rng.integers(40, 255, 3))
    pants = tuple(int(v) for v in rng.integers(20, 200, 3))
    skin = tuple(int(v) for v in np.array([200, 160, 130]) * rng.uniform(0.5, 1.1))
    return shirt, pants, skin


def _draw_person(canvas: np.ndarray, mask: np.ndarray, pts: np.ndarray, height: float, front: bool, rng) -> None:
    """Paint one person on canvas (RGB) and its silhouette on mask (uint8)."""
    shirt, pants, skin = _colors(rng)
    t = max(2, int(round(height * 0.045)))
    p = lambda name: tuple(int(round(v)) for v in pts[I[name]])

    def seg(a, b, color, thick):
        cv2.line(canvas, p(a), p(b), color, thick, cv2.LINE_AA)
        cv2.line(mask, p(a), p(b), 1, thick)

    # torso as a filled quad
    quad = np.array([pts[I["left_shoulder"]], pts[I["right_shoulder"]], pts[I["right_hip"]], pts[I["left_hip"]]])
    cv2.fillConvexPoly(canvas, np.round(quad).astype(np.int32), shirt, cv2.LINE_AA)
    cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 1)
    for side in ("left", "right"):
        seg(f"{side}_hip", f"{side}_knee", pants, t + 1)
        seg(f"{side}_knee", f"{side}_ankle", pants, t)
        seg(f"{side}_shoulder", f"{side}_elbow", shirt, t)
        seg(f"{side}_elbow", f"{side}_wrist", skin, max(2, t - 1))
        cv2.circle(canvas, p(f"{side}_ankle"), max(1, t // 2 + 1), (30, 30, 30), -1)
    neck = (pts[I["left_shoulder"]] + pts[I["right_shoulder"]]) / 2
    head = (pts[I["left_ear"]] + pts[I["right_ear"]]) / 2
    cv2.line(canvas, tuple(np.round(neck).astype(int)), tuple(np.round(head).astype(int)), skin, t)
    radius = max(2, int(round(height * 0.065)))
    center = tuple(np.round(head).astype(int))
    hair = (40, 25, 10)
    if front:
        cv2.circle(canvas, center, radius, skin, -1, cv2.LINE_AA)
        cv2.ellipse(canvas, center, (radius, radius), 0, 180, 360, hair, max(1, radius // 3))
        for eye in ("left_eye", "right_eye"):
            cv2.circle(canvas, p(eye), max(1, radius // 4), (20, 20, 60), -1)
        cv2.circle(canvas, p("nose"), max(1, radius // 5), (150, 60, 60), -1)
    else:
        cv2.circle(canvas, center, radius, hair, -1, cv2.LINE_AA)
    cv2.circle(mask, center, radius, 1, -1)
    cv2.line(mask, tuple(np.round(neck).astype(int)), tuple(np.round(head).astype(int)), 1, t)


def _background(rng, w, h) -> np.ndarray:
    base = rng.integers(30, 220, 3).astype(np.float32)
    low = cv2.resize(rng.normal(0, 40, (6, 6, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    image = np.clip(base + low + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)
    for _ in range(rng.integers(3, 9)):
        color = tuple(int(v) for v in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            cv2.rectangle(image, (int(x0), int(y0)), (int(x0 + rng.integers(10, w // 2)), int(y0 + rng.integers(10, h // 3))),
                          color, -1)
        else:
            cv2.circle(image, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(5, w // 6)), color, -1)
    return image


def _empty_scene(rng, w, h) -> np.ndarray:
    """(H, W, 3) uint8: black, white, another uniform colour, a gradient or a textured background; no people."""
    kind = rng.integers(0, 5)
    if kind == 0:
        return np.zeros((h, w, 3), np.uint8)
    if kind == 1:
        return np.full((h, w, 3), 255, np.uint8)
    if kind == 2:
        return np.broadcast_to(rng.integers(0, 256, 3).astype(np.uint8), (h, w, 3)).copy()
    if kind == 3:
        a, b = rng.integers(0, 256, (2, 3)).astype(np.float32)
        ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        return np.broadcast_to(a + (b - a) * ramp, (h, w, 3)).round().astype(np.uint8)
    return _background(rng, w, h)


def _uncompressed_rle(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE of a binary mask: run lengths in column-major order, zeros first."""
    flat = mask.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat[0] == 1 else runs


def _polygons(mask: np.ndarray) -> list[list[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def _draw_scene(rng: np.random.Generator, spec: SyntheticSpec) -> tuple[np.ndarray, list[dict]]:
    """One image (H, W, 3) uint8 RGB and what is in it, far to near: records of kind "crowd" (mask), "labelled"
    and "unlabelled" people (mask: what is seen of them, pts (J, 2) COCO joints in image pixels, front)."""
    w, h = spec.image_size
    if spec.empty_prob > 0 and rng.random() < spec.empty_prob:
        return _empty_scene(rng, w, h), []
    image = _background(rng, w, h)
    people = []
    n = int(rng.integers(1, spec.max_people + 1))
    for k in range(n):
        # Log-uniform heights: large and small people in the same image.
        height = float(np.exp(rng.uniform(np.log(spec.min_height), np.log(spec.max_height))))
        (x_low, y_low), (x_high, y_high) = spec.hips_area
        center = rng.uniform([x_low * w, y_low * h], [x_high * w, y_high * h])
        people.append(("labelled", height, center))
    if rng.random() < spec.unlabelled_prob:
        people.append(("unlabelled", float(rng.uniform(18, 30)), rng.uniform([0.1 * w, 0.2 * h], [0.9 * w, 0.8 * h])))
    crowd_box = None
    if rng.random() < spec.crowd_prob:
        cw, ch = int(rng.integers(w // 5, w // 3)), int(rng.integers(h // 8, h // 5))
        cx, cy = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
        crowd_box = (cx, cy, cw, ch)
    # Far people first, so that nearer (lower) people are drawn over them.
    people.sort(key=lambda item: item[2][1])

    records = []
    if crowd_box is not None:
        cx, cy, cw, ch = crowd_box
        crowd_mask = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(5, 12))):
            ph = float(rng.uniform(0.5, 0.9) * ch)
            center = np.array([rng.uniform(cx + 0.1 * cw, cx + 0.9 * cw), cy + 0.62 * ph + rng.uniform(0, ch - ph)])
            layer = np.zeros((h, w), np.uint8)
            _draw_person(image, layer, _person(rng, ph, center, rng.random() < 0.5), ph, True, rng)
            crowd_mask |= layer
        crowd_mask[cy:cy + ch, cx:cx + cw] = 1
        records.append({"kind": "crowd", "mask": crowd_mask})
    for kind, height, center in people:
        front = bool(rng.random() < 0.6)
        pts = _person(rng, height, center, front)
        layer = np.zeros((h, w), np.uint8)
        _draw_person(image, layer, pts, height, front, rng)
        for record in records:
            if "mask" in record and record["kind"] != "crowd":
                record["mask"] &= ~layer.astype(bool)
        records.append({"kind": kind, "mask": layer.astype(bool), "pts": pts, "front": front})
    return image, records


def _covered_by_later(records: list[dict], index: int, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: where the records after `index` (nearer ones) hide record `index`."""
    later = np.zeros(shape, bool)
    for other in records[index + 1:]:
        later |= other["mask"]
    return later


def render_scene(rng: np.random.Generator, spec: SyntheticSpec):
    """One image (H, W, 3) uint8 RGB and its annotations (dicts without ids)."""
    image, records = _draw_scene(rng, spec)
    h, w = image.shape[:2]
    annotations = []
    for idx, record in enumerate(records):
        mask = record["mask"].astype(np.uint8)
        area = float(mask.sum())
        if area == 0:
            continue
        ys, xs = np.nonzero(mask)
        bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
        ann = {"iscrowd": 0, "area": area, "bbox": bbox, "category_id": 1, "segmentation": _polygons(mask),
               "keypoints": [0.0] * (3 * J), "num_keypoints": 0}
        if record["kind"] == "crowd":
            ann.update(iscrowd=1, segmentation={"size": [h, w], "counts": _uncompressed_rle(mask)})
        elif record["kind"] == "labelled":
            later = _covered_by_later(records, idx, (h, w))
            kpts = np.zeros((J, 3))
            for j, (x, y) in enumerate(record["pts"]):
                xi, yi = int(math.floor(x)), int(math.floor(y))
                if not (0 <= x < w and 0 <= y < h):
                    continue                       # outside the image: unlabelled (0, 0, 0)
                if not record["front"] and j in (I["nose"], I["left_eye"], I["right_eye"]):
                    continue                       # the face is not visible from behind
                kpts[j] = (x, y, 1 if later[yi, xi] else 2)
            ann["keypoints"] = [round(float(v), 2) for v in kpts.reshape(-1)]
            ann["num_keypoints"] = int((kpts[:, 2] > 0).sum())
        annotations.append(ann)
    return image, annotations


def _write_jpeg(image: np.ndarray, path: str) -> None:
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode synthetic image {os.path.basename(path)}")
    write_bytes(jpeg.tobytes(), path)


def write_synthetic_coco(out_dir: str, splits: dict[str, int] | None = None, seed: int = 0,
                         spec: SyntheticSpec = SyntheticSpec(), progress: bool = True) -> dict[str, str]:
    """Write `out_dir/annotations/person_keypoints_<split>.json` and `out_dir/images/<split>/*.jpg`.

    splits: {name: number of images}, default {"train": 1600, "val": 200}. The same seed gives the same
    files. Returns {split: annotation file}. A file that cannot be written (a full disk): WriteError naming it
    and saying what is kept (the splits finished, the images of the split it was writing).
    """
    from tqdm import tqdm

    splits = splits or {"train": 1600, "val": 200}
    written: dict[str, str] = {}
    categories = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_KEYPOINTS.names),
                   "skeleton": (COCO_KEYPOINTS.skeleton_indices + 1).tolist()}]
    split, count, images = "", 0, []
    try:
        for s_index, (split, count) in enumerate(splits.items()):
            image_dir = os.path.join(out_dir, "images", split)
            os.makedirs(image_dir, exist_ok=True)
            os.makedirs(os.path.join(out_dir, "annotations"), exist_ok=True)
            images, annotations = [], []
            for i in tqdm(range(count), desc=f"synthetic {split}", disable=not progress):
                rng = np.random.default_rng((seed, s_index, i))
                image, anns = render_scene(rng, spec)
                image_id = (s_index + 1) * 1_000_000 + i
                name = f"{image_id:012d}.jpg"
                _write_jpeg(image, os.path.join(image_dir, name))
                images.append({"id": image_id, "file_name": name, "width": image.shape[1],
                               "height": image.shape[0]})
                for ann in anns:
                    ann.update(id=len(annotations) + 1, image_id=image_id)
                    annotations.append(ann)
            path = os.path.join(out_dir, "annotations", f"person_keypoints_{split}.json")
            write_json({"info": {"description": "higherhrnet synthetic people", "seed": seed},
                        "images": images, "annotations": annotations, "categories": categories}, path)
            written[split] = path
    except OSError as e:
        done = ", ".join(f"{name} ({path})" for name, path in written.items())
        finished = f"the complete split{'s' if len(written) > 1 else ''} {done}; " if done else ""
        kept = (f"kept in {out_dir}: {finished}{len(images)} of the {count} {split} images, without their annotation "
                f"file (the same command writes the same files again)")
        raise WriteError.from_error(getattr(e, "filename", None) or out_dir, e).keeping(kept) from None
    return written


# Single people for MPII: one to three large figures, mostly on the image (MPII's people are a good part of the
# photo), no crowd.
MPII_SPEC = SyntheticSpec(max_people=3, min_height=90.0, max_height=230.0, crowd_prob=0.0,
                          hips_area=((0.15, 0.45), (0.85, 0.8)))

# The figure's head (data/synthetic.py's _person and _draw_person): a circle of radius 0.065 x the figure's height
# around the ears' midpoint, which is 0.11 x the height above the shoulders' midpoint.
_HEAD_RADIUS_PER_NECK = 0.065 / 0.11
_NECK_PER_HEIGHT = 0.11
# MPII's person centre (objpos) sits about the belly: the code's crop, centred 15 x scale px (0.075 height) lower
# and 1.25 heights high, then holds the figure from head to feet with its limbs.
_OBJPOS_ABOVE_PELVIS = 0.1


def mpii_people(records: list[dict], width: int, height: int) -> list[dict]:
    """The labelled people of one scene (_draw_scene's records) as MPII annotates a person, in MPII's 1-based
    frame (this package's frame + 1): joints (16, 3) x, y, is_visible in MPII's order ([0, 0, 0] for a joint
    outside the image; is_visible 0 where a nearer figure hides it), labelled (16,) bool (in the image), objpos [x, y] (whole pixels, as MPII's),
    scale (the figure's height / 200), head_box [[x1, y1], [x2, y2]] (the head circle's square). People whose
    objpos is outside the image are left out (MPII's centres are on the photo).

    From the COCO stick figure: ankles, knees, hips, wrists, elbows, shoulders as they are; pelvis the hips'
    midpoint, thorax the shoulders' midpoint; the head circle's lowest point is the upper neck, its highest the
    head top (on the line from the thorax through the head's centre)."""
    people = []
    for index, record in enumerate(records):
        if record["kind"] != "labelled":
            continue
        pts = record["pts"]
        joint = {name: pts[I[name]] for name in I}
        thorax = (joint["left_shoulder"] + joint["right_shoulder"]) / 2
        head = (joint["left_ear"] + joint["right_ear"]) / 2
        pelvis = (joint["left_hip"] + joint["right_hip"]) / 2
        neck_to_head = head - thorax
        figure_height = float(np.linalg.norm(neck_to_head)) / _NECK_PER_HEIGHT
        up = neck_to_head / np.linalg.norm(neck_to_head)
        radius = _HEAD_RADIUS_PER_NECK * float(np.linalg.norm(neck_to_head))
        points = {"pelvis": pelvis, "thorax": thorax, "upper_neck": head - up * radius,
                  "head_top": head + up * radius}
        for side, coco_side in (("r", "right"), ("l", "left")):
            for part in ("ankle", "knee", "hip", "wrist", "elbow", "shoulder"):
                points[f"{side}_{part}"] = joint[f"{coco_side}_{part}"]
        objpos = np.round(pelvis + up * _OBJPOS_ABOVE_PELVIS * figure_height)
        if not (0 <= objpos[0] < width and 0 <= objpos[1] < height):
            continue
        later = _covered_by_later(records, index, (height, width))
        joints = np.zeros((MPII_KEYPOINTS.num_joints, 3))
        labelled = np.zeros(MPII_KEYPOINTS.num_joints, bool)
        for j, name in enumerate(MPII_KEYPOINTS.names):
            x, y = points[name]
            if 0 <= x < width and 0 <= y < height:
                labelled[j] = True
                joints[j] = (x + 1, y + 1, 0 if later[int(math.floor(y)), int(math.floor(x))] else 1)
        people.append({"joints": np.round(joints, 3), "labelled": labelled, "objpos": objpos + 1,
                       "scale": round(figure_height / 200, 3),
                       "head_box": np.round(np.array([head - radius, head + radius]) + 1, 3)})
    return people


def _bearpaw_entry(person: dict, others: list[dict], name: str, image: np.ndarray, validation: bool,
                   image_index: int, person_index: int) -> dict:
    """One person as bearpaw's mpii_annotations.json writes it (miscs/gen_mpii.m's fields)."""
    return {"dataset": "MPI", "isValidation": float(validation), "img_paths": name,
            "img_width": float(image.shape[1]), "img_height": float(image.shape[0]),
            "objpos": person["objpos"].tolist(), "joint_self": person["joints"].tolist(),
            "scale_provided": person["scale"], "joint_others": [o["joints"].tolist() for o in others],
            "scale_provided_other": [o["scale"] for o in others], "objpos_other": [o["objpos"].tolist() for o in others],
            "annolist_index": float(image_index), "people_index": float(person_index),
            "numOtherPeople": float(len(others))}


def write_synthetic_mpii(out_dir: str, splits: dict[str, int] | None = None, seed: int = 0,
                         spec: SyntheticSpec = MPII_SPEC, progress: bool = True) -> dict[str, str]:
    """Write a synthetic MPII data set in bearpaw/pytorch-pose's layout (DATASET.DATASET synthetic_mpii):
    `out_dir/mpii_annotations.json` (every person of both splits, isValidation 1 for those of the "val" images,
    see `mpii_people`), `out_dir/images/*.jpg` (MPII-like 9-digit names) and `out_dir/detections_our_format.mat`,
    MPII's evaluation file for the validation people in the annotation file's order (data.mpii.
    write_mpii_ground_truth: their joints, the unlabelled ones as missing, their head boxes).

    splits: {"train": images, "val": images}, default {"train": 1600, "val": 200} (about a minute); a person's
    split is its image's. The same seed gives the same files. Returns {"annotations": file, "ground_truth": file}.
    A file that cannot be written: WriteError naming it (the same command writes the same files again).
    """
    from tqdm import tqdm

    from .mpii import write_mpii_ground_truth

    splits = splits or {"train": 1600, "val": 200}
    unknown = sorted(set(splits) - {"train", "val"})
    if unknown:
        raise ValueError(f"bearpaw's MPII layout has the splits train and val, not {unknown}")
    entries, truth = [], []
    try:
        image_dir = os.path.join(out_dir, "images")
        os.makedirs(image_dir, exist_ok=True)
        for s_index, (split, count) in enumerate(splits.items()):
            for i in tqdm(range(count), desc=f"synthetic mpii {split}", disable=not progress):
                image, records = _draw_scene(np.random.default_rng((seed, s_index, i)), spec)
                image_index = (s_index + 1) * 1_000_000 + i
                name = f"{image_index:09d}.jpg"
                _write_jpeg(image, os.path.join(image_dir, name))
                people = mpii_people(records, image.shape[1], image.shape[0])
                for p, person in enumerate(people):
                    others = people[:p] + people[p + 1:]
                    entries.append(_bearpaw_entry(person, others, name, image, split == "val", image_index, p + 1))
                    if split == "val":
                        truth.append(person)
        annotations = os.path.join(out_dir, "mpii_annotations.json")
        write_json(entries, annotations)
        ground_truth = os.path.join(out_dir, "detections_our_format.mat")
        write_mpii_ground_truth(ground_truth, np.array([p["joints"][:, :2] for p in truth]).reshape(-1, 16, 2),
                                np.array([~p["labelled"] for p in truth]).reshape(-1, 16),
                                np.array([p["head_box"] for p in truth]).reshape(-1, 2, 2))
    except OSError as e:
        raise WriteError.from_error(getattr(e, "filename", None) or out_dir, e).keeping(
            f"kept in {out_dir}: what was written so far (the same command writes the same files again)") from None
    return {"annotations": annotations, "ground_truth": ground_truth}
