"""Top-down training data (MODEL.NAME pose_hrnet), as the official deep-high-resolution-net.pytorch builds it:
one item per annotated person, cropped around its box.

`person_instances` is the official COCODataset's list of training people (its box cleaning and filters, the
box's centre and scale; SELECT_DATA's filter in `select_instances`); `TopDownTrainingDataset` is
JointsDataset.__getitem__ in training: half-body crop, scale, rotation and flip, the affine crop, the
Gaussian targets with their weights (codec.targets.topdown_targets) and the normalised input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..codec.targets import topdown_targets
from ..geometry import apply_affine, get_affine_transform, warp_image
from ..normalization import IMAGENET_MEAN, IMAGENET_STD, normalize
from ..topdown import PIXEL_STD, box_to_center_scale
from .coco import CocoKeypoints

__all__ = ["TopDownAugment", "PersonInstance", "person_annotations", "person_instances", "select_instances", "half_body_center_scale",
           "flip_joints", "TopDownTrainingDataset"]


@dataclass(frozen=True)
class TopDownAugment:
    """The official training augmentation (DATASET.*): scale x clip(1 + N(0, 1) scale_factor, 1 +- scale_factor);
    with probability rotation_prob a rotation of clip(N(0, 1) rot_factor, +-2 rot_factor) degrees; a horizontal
    flip with probability flip_prob; with probability prob_half_body, for a person with more than
    num_joints_half_body labelled joints, a crop around the upper or the lower body."""

    scale_factor: float = 0.35
    rot_factor: float = 45.0
    flip_prob: float = 0.5
    prob_half_body: float = 0.3
    num_joints_half_body: int = 8
    rotation_prob: float = 0.6


@dataclass(frozen=True)
class PersonInstance:
    """One training person: index of its image in the source, centre (2,) and scale (2,) float32 (the official
    _box2cs of its cleaned box), joints (J, 3) float64 x, y in image pixels and visibility 0 / 1."""

    image_index: int
    center: np.ndarray
    scale: np.ndarray
    joints: np.ndarray


def person_annotations(coco, image_id: int, categories) -> list[tuple[dict, tuple]]:
    """(annotation, clean box x, y, w, h) of each person of one image of a pycocotools COCO split, filtered as
    the official code filters them for training and for its ground-truth test boxes
    (_load_coco_keypoint_annotation_kernal): non-crowd annotations of `categories` whose box, clipped to the
    image ([x1, y1] at least 0, [x2, y2] at most width - 1 / height - 1 with x2 = x1 + max(0, w - 1)), is not
    empty, with a positive area and at least one keypoint value above 0; in the annotation file's order."""
    info = coco.loadImgs(image_id)[0]
    width, height = info["width"], info["height"]
    people = []
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False)):
        x, y, w, h = ann["bbox"]
        x1, y1 = max(0, x), max(0, y)
        x2 = min(width - 1, x1 + max(0, w - 1))
        y2 = min(height - 1, y1 + max(0, h - 1))
        if not (ann.get("area", 0) > 0 and x2 >= x1 and y2 >= y1):
            continue
        if ann["category_id"] not in categories or max(ann.get("keypoints") or [0]) == 0:
            continue
        people.append((ann, (x1, y1, x2 - x1, y2 - y1)))
    return people


def person_instances(source: CocoKeypoints, image_size: Sequence[int]) -> list[PersonInstance]:
    """The people of every image of the source (person_annotations of the keypoint categories), as the official
    COCO training set has them. Visibility 2 counts as 1. image_size (width, height): the crop's aspect
    ratio."""
    categories = {c["id"] for c in source.coco.loadCats(source.coco.getCatIds()) if "keypoints" in c}
    num_joints = source.keypoints.num_joints
    people = []
    for index, image_id in enumerate(source.ids):
        for ann, box in person_annotations(source.coco, image_id, categories):
            joints = np.array(ann["keypoints"], dtype=np.float64).reshape(num_joints, 3)
            joints[:, 2] = np.minimum(joints[:, 2], 1)
            centers, scales = box_to_center_scale([box], image_size)
            people.append(PersonInstance(index, centers[0], scales[0], joints))
    return people


def select_instances(people: Sequence[PersonInstance]) -> list[PersonInstance]:
    """DATASET.SELECT_DATA, the official select_data: keep a person when the OKS-like similarity of its
    labelled joints' mean to its box centre, exp(-d^2 / (2 0.2^2 area)), exceeds 0.2 / 16 (n - 1) + 0.45 for
    n labelled joints (area: of the padded scale, in pixels^2)."""
    kept = []
    for person in people:
        labelled = person.joints[:, 2] > 0
        count = int(labelled.sum())
        if count == 0:
            continue
        joints_center = person.joints[labelled, :2].sum(axis=0) / count
        area = person.scale[0] * person.scale[1] * PIXEL_STD ** 2
        distance = np.linalg.norm(joints_center - np.asarray(person.center), 2)
        similarity = np.exp(-1.0 * distance ** 2 / (0.2 ** 2 * 2.0 * area))
        if similarity > (0.2 / 16) * count + 0.45 - 0.2 / 16:
            kept.append(person)
    return kept


def half_body_center_scale(joints: np.ndarray, upper_body: np.ndarray, aspect_ratio: float,
                           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """The official half_body_transform: the labelled joints (joints (J, 3), visibility > 0) split into upper
    body (upper_body (J,) bool) and the rest; the upper body is chosen when a standard normal draw is below 0.5
    (as the official code draws it: about 69%) and it has more than 2 joints, else the lower body when it has
    more than 2, else the upper. Returns centre (the chosen joints' mean) and scale (their extent widened to
    the aspect ratio, / 200, x 1.5) float32, or None when fewer than 2 joints were chosen."""
    labelled = joints[:, 2] > 0
    upper = joints[labelled & upper_body, :2]
    lower = joints[labelled & ~upper_body, :2]
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        chosen = upper
    else:
        chosen = lower if len(lower) > 2 else upper
    if len(chosen) < 2:
        return None
    chosen = chosen.astype(np.float32)
    center = chosen.mean(axis=0)
    w, h = chosen.max(axis=0) - chosen.min(axis=0)
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / PIXEL_STD, h * 1.0 / PIXEL_STD], dtype=np.float32) * 1.5
    return center, scale


def flip_joints(joints: np.ndarray, width: int, flip_index: np.ndarray) -> np.ndarray:
    """(J, 3) joints of an image `width` pixels wide -> those of its mirror image: x -> width - 1 - x, left and
    right joints (and their visibility) swapped (the official fliplr_joints)."""
    flipped = joints[flip_index].copy()
    flipped[:, 0] = width - flipped[:, 0] - 1
    return flipped


class TopDownTrainingDataset(Dataset):
    """One item per person of `people`, as the official JointsDataset builds training items:
    (image (3, H, W) float32 normalised, [heatmaps (J, h, w)], [target weights (J, 1)], []) for MODEL.IMAGE_SIZE
    (W, H) and MODEL.HEATMAP_SIZE (w, h); the lists hold the one target set of the network's one output (the
    last, empty one: no tags). The image is pixels / 255, then (x - mean) / std; color_rgb False reverses the
    channels first (BGR, the official default). joint_weights (J,): multiplies the target weights
    (LOSS.USE_DIFFERENT_JOINTS_WEIGHT). Augmentation is drawn from (seed, epoch, index), as
    coco.TrainingDataset draws it; an item is dataset[index] or dataset[(epoch, index)].
    """

    def __init__(self, source: CocoKeypoints, people: Sequence[PersonInstance], image_size: Sequence[int],
                 heatmap_size: Sequence[int], sigma: float, augment: TopDownAugment,
                 mean: Sequence[float] | None = IMAGENET_MEAN, std: Sequence[float] | None = IMAGENET_STD,
                 color_rgb: bool = True, joint_weights: Sequence[float] | None = None, seed: int = 0):
        self.source, self.people = source, list(people)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma, self.augment = sigma, augment
        self.mean, self.std, self.color_rgb, self.seed = mean, std, color_rgb, seed
        self.joint_weights = None if joint_weights is None else np.asarray(joint_weights, np.float32).reshape(-1, 1)
        self.flip_index = source.keypoints.flip_index
        self.upper_body = source.keypoints.upper_body_mask
        self.aspect_ratio = self.image_size[0] * 1.0 / self.image_size[1]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.people)

    def crop(self, image: np.ndarray, person: PersonInstance,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One random augmentation of a person: (crop (H, W, 3) uint8, joints (J, 3) in crop pixels and
        visibility, (2, 3) image -> crop matrix, of the flipped image when it flips)."""
        joints, center, scale = person.joints.copy(), np.array(person.center), np.array(person.scale)
        a = self.augment
        if (joints[:, 2].sum() > a.num_joints_half_body and rng.random() < a.prob_half_body):
            half = half_body_center_scale(joints, self.upper_body, self.aspect_ratio, rng)
            if half is not None:
                center, scale = half
        scale = scale * np.clip(rng.standard_normal() * a.scale_factor + 1, 1 - a.scale_factor, 1 + a.scale_factor)
        rotation = np.clip(rng.standard_normal() * a.rot_factor, -a.rot_factor * 2, a.rot_factor * 2) \
            if rng.random() < a.rotation_prob else 0
        if rng.random() < a.flip_prob:
            image = image[:, ::-1]
            joints = flip_joints(joints, image.shape[1], self.flip_index)
            center[0] = image.shape[1] - center[0] - 1
        matrix = get_affine_transform(center, scale, rotation, self.image_size)
        crop = warp_image(np.ascontiguousarray(image), matrix, self.image_size)
        joints[:, :2] = apply_affine(joints[:, :2], matrix)
        return crop, joints, matrix

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        rng = np.random.default_rng((self.seed, epoch, index))
        person = self.people[index]
        crop, joints, _ = self.crop(self.source.load_image(person.image_index), person, rng)
        heatmaps, weights = topdown_targets(joints[:, :2], joints[:, 2], self.image_size, self.heatmap_size,
                                            self.sigma)
        if self.joint_weights is not None:
            weights = weights * self.joint_weights
        if not self.color_rgb:
            crop = np.ascontiguousarray(crop[..., ::-1])
        return normalize(crop, self.mean, self.std), [torch.from_numpy(heatmaps)], [torch.from_numpy(weights)], []
