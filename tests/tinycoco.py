"""Write a tiny COCO-format keypoint dataset for tests: stick figures on noise, with known crowd and
unlabelled-person regions."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from higherhrnet import COCO_KEYPOINTS

# A standing person, joints relative to the box (0..1): COCO order.
POSE = np.array([
    [0.50, 0.08], [0.55, 0.05], [0.45, 0.05], [0.60, 0.08], [0.40, 0.08],
    [0.70, 0.22], [0.30, 0.22], [0.80, 0.40], [0.20, 0.40], [0.85, 0.55], [0.15, 0.55],
    [0.62, 0.55], [0.38, 0.55], [0.64, 0.75], [0.36, 0.75], [0.65, 0.97], [0.35, 0.97],
])


def person_annotation(ann_id, image_id, box, visible=None):
    x, y, w, h = box
    xy = POSE * [w, h] + [x, y]
    vis = np.full(17, 2) if visible is None else np.asarray(visible)
    kpts = np.concatenate([xy, vis[:, None]], axis=1)
    kpts[vis == 0] = 0
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "area": float(w * h),
            "bbox": [float(x), float(y), float(w), float(h)], "num_keypoints": int((vis > 0).sum()),
            "keypoints": [float(v) for v in kpts.reshape(-1)],
            "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}


def draw(image, ann):
    kpts = np.array(ann["keypoints"]).reshape(-1, 3)
    for a, b in COCO_KEYPOINTS.skeleton_indices:
        if kpts[a, 2] > 0 and kpts[b, 2] > 0:
            cv2.line(image, tuple(int(v) for v in kpts[a, :2]), tuple(int(v) for v in kpts[b, :2]),
                     (255, 255, 255), 3)
    for j, (x, y, v) in enumerate(kpts):
        if v > 0:
            color = (0, 0, 255) if "left" in COCO_KEYPOINTS.names[j] else (255, 0, 0)
            cv2.circle(image, (int(x), int(y)), 3, color, -1)


def write_tiny_coco(root, split="train", num_images=4, size=(128, 96), people_per_image=2, seed=0,
                    crowd=True, extra_people=0):
    """COCO layout under root; returns the annotation dict. Image i has people_per_image people (plus
    extra_people small ones), one unlabelled person (polygon, num_keypoints 0) and, with crowd, a crowd
    RLE rectangle in the top-left corner."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    w, h = size
    images, anns = [], []
    for i in range(num_images):
        image_id = 100 + i
        image = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
        for p in range(people_per_image + extra_people):
            bw = rng.uniform(20, 35) if p < people_per_image else 8
            bh = bw * 2
            box = [rng.uniform(2, w - bw - 2), rng.uniform(2, h - bh - 2), bw, bh]
            ann = person_annotation(len(anns) + 1, image_id, box)
            anns.append(ann)
            draw(image, ann)
        unlabelled = person_annotation(len(anns) + 1, image_id, [w - 20, h - 30, 15, 25], visible=np.zeros(17))
        anns.append(unlabelled)
        if crowd:
            region = np.zeros((h, w), np.uint8)
            region[:20, :24] = 1
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 1,
                         "area": 480.0, "bbox": [0.0, 0.0, 24.0, 20.0], "num_keypoints": 0,
                         "keypoints": [0.0] * 51,
                         "segmentation": {"counts": _uncompressed(region), "size": [h, w]}})
        name = f"{image_id:012d}.jpg"
        cv2.imwrite(str(root / "images" / split / name), image)
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person",
                            "keypoints": list(COCO_KEYPOINTS.names),
                            "skeleton": (COCO_KEYPOINTS.skeleton_indices + 1).tolist()}]}
    (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(data))
    return data


def _uncompressed(region):
    """COCO's uncompressed RLE counts (column-major runs, starting with zeros)."""
    flat = region.flatten(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return counts


def write_tiny_crowdpose(root, split="train", num_images=3, seed=0):
    """The CrowdPose layout (json/crowdpose_<split>.json, images/ flat, 14 joints, no outlines, a crowdIndex
    per image) made from the COCO stick figures: 12 limb joints, head = nose, neck = mid-shoulder."""
    from higherhrnet.keypoints import CROWDPOSE_KEYPOINTS

    root = Path(root)
    data = write_tiny_coco(root / "_coco", split, num_images=num_images, crowd=False, seed=seed)
    (root / "json").mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for ann in data["annotations"]:
        k = np.array(ann["keypoints"]).reshape(17, 3)
        neck = np.concatenate([(k[5, :2] + k[6, :2]) / 2, [min(k[5, 2], k[6, 2])]])
        k14 = np.concatenate([k[5:17], k[0:1], neck[None]])
        ann["keypoints"] = k14.reshape(-1).tolist()
        ann["num_keypoints"] = int((k14[:, 2] > 0).sum())
        ann.pop("segmentation")
    data["categories"][0]["keypoints"] = list(CROWDPOSE_KEYPOINTS.names)
    data["categories"][0]["skeleton"] = (CROWDPOSE_KEYPOINTS.skeleton_indices + 1).tolist()
    for i, image in enumerate(data["images"]):
        image["crowdIndex"] = 0.3
        (root / "images" / image["file_name"]).write_bytes((root / "_coco/images" / split / image["file_name"]).read_bytes())
    (root / "json" / f"crowdpose_{split}.json").write_text(json.dumps(data))
    return data
