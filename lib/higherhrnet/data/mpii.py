"""MPII Human Pose, single person, top down: its annotation files, its validation ground truth, and the training
items of the stacked hourglass code (bearpaw/pytorch-pose, pose/datasets/mpii.py).

Annotation files (the layout is told by the entries' keys):
    bearpaw's mpii_annotations.json   one list of people, both splits: img_paths, objpos [x, y], scale_provided,
                                      joint_self (16 x [x, y, visible]), isValidation (1: validation), ...
    mmpose's mpii_{split}.json        one list per split: image, center [x, y], scale, joints (16 x [x, y]),
                                      joints_vis (16) (HRNet's files; absent from a test split's)
Both write MPII's own numbers: MATLAB's 1-based pixels (the top-left pixel is (1, 1)), a person's scale its height
/ 200 px; neither applies the centre and scale adjustment that every MPII loader makes (topdown_bearpaw.
person_center_scale). An `MpiiPerson` keeps them so, in that frame; this package's frame (geometry.py) is one less.
A joint's visibility is bearpaw's MPII is_visible (0 also for a labelled but occluded joint; an unlabelled joint
is [0, 0, 0]) or mmpose's joints_vis (labelled).

The validation ground truth PCKh needs is MPII's evaluation file (bearpaw's evaluation/data/
detections_our_format.mat, mmpose's mpii_gt_val.mat): `read_mpii_ground_truth`. Its people are the validation
people in the order of the annotation file.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..fileio import atomic_write
from ..images import DamagedImageError, read_image
from ..keypoints import MPII_KEYPOINTS, KeypointSpec
from ..topdown import normalize_crops
from ..topdown_bearpaw import (crop_image, draw_gaussian, image_to_float, mirror_joints, person_center_scale,
                               transform_point)
from .checks import DatasetError
from .registry import DatasetInfo, dataset_info

__all__ = ["MPII_MEAN", "MPII_SPLITS", "GROUND_TRUTH_FILES", "GROUND_TRUTH_JOINT_NAMES", "MpiiPerson",
           "read_mpii_annotations", "MpiiGroundTruth", "read_mpii_ground_truth", "write_mpii_ground_truth",
           "MpiiAnnotations",
           "MpiiAugment", "MpiiDraws", "draw_augmentation", "mpii_sample", "mpii_targets",
           "mpii_test_targets", "MpiiTrainingDataset", "MpiiEvalDataset"]

# MPII's mean training pixel (RGB, in [0, 1]): bearpaw/pytorch-pose's data/mpii/mean.pth.tar, the float32 values
# its Mpii dataset subtracts from every input.
MPII_MEAN = (0.440442830324173, 0.4440267086029053, 0.4326828420162201)
# Split names of bearpaw's one-file layout (isValidation 0 / 1).
MPII_SPLITS = ("train", "val")
# The validation ground truth in a DATASET.ROOT, mmpose's layout first.
GROUND_TRUTH_FILES = (os.path.join("annotations", "mpii_gt_val.mat"), "detections_our_format.mat")

_BEARPAW_KEYS = ("img_paths", "objpos", "scale_provided", "joint_self", "isValidation")
_MMPOSE_KEYS = ("image", "center", "scale")


@dataclass(frozen=True)
class MpiiPerson:
    """One annotated person, as the annotation file gives it (MPII's 1-based frame).

    image: the image file, relative to the image folder. center (2,) float64: x, y of MPII's person centre
    (objpos). scale: the person's height / 200 px. joints (J, 3) float64: x, y and visibility. split: "train"
    or "val" (bearpaw's isValidation) or the split the mmpose file was read as.
    """

    image: str
    center: np.ndarray
    scale: float
    joints: np.ndarray
    split: str


def _number_array(entry: dict, key: str, shape: tuple[int, ...], where: str, what: str) -> np.ndarray:
    try:
        value = np.array(entry[key], dtype=np.float64)
    except KeyError:
        raise DatasetError(f"{where}: missing key {key!r}") from None
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: {key!r} must be {what}, got {str(entry[key])[:60]}") from None
    if value.shape != shape:
        raise DatasetError(f"{where}: {key!r} must be {what}, got shape {value.shape}")
    return value


def _number(entry: dict, key: str, where: str) -> float:
    value = entry.get(key)
    if value is None:
        raise DatasetError(f"{where}: missing key {key!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatasetError(f"{where}: {key!r} must be a number, got {value!r}")
    return float(value)


def _text(entry: dict, key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise DatasetError(f"{where}: {key!r} must be an image file name, got {value!r}")
    return value


def _bearpaw_person(entry: dict, where: str, num_joints: int) -> MpiiPerson:
    joints = _number_array(entry, "joint_self", (num_joints, 3), where, f"{num_joints} x [x, y, visible]")
    # The official split test is `isValidation == True`: 1 (or 1.0, true) is validation, anything else training.
    split = "val" if entry["isValidation"] == True else "train"     # noqa: E712
    return MpiiPerson(_text(entry, "img_paths", where), _number_array(entry, "objpos", (2,), where, "[x, y]"),
                      _number(entry, "scale_provided", where), joints, split)


def _mmpose_person(entry: dict, where: str, num_joints: int, split: str) -> MpiiPerson:
    joints = np.zeros((num_joints, 3))
    if "joints" in entry or "joints_vis" in entry:
        joints[:, :2] = _number_array(entry, "joints", (num_joints, 2), where, f"{num_joints} x [x, y]")
        joints[:, 2] = _number_array(entry, "joints_vis", (num_joints,), where, f"{num_joints} numbers")
    return MpiiPerson(_text(entry, "image", where), _number_array(entry, "center", (2,), where, "[x, y]"),
                      _number(entry, "scale", where), joints, split)


def read_mpii_annotations(path: str, split: str, num_joints: int = 16) -> tuple[list[MpiiPerson], str]:
    """The people of `split` in an MPII annotation file, in the file's order, and its layout ("bearpaw" or
    "mmpose", told by the first entry's keys; "empty" for a file of no people). bearpaw's file holds both splits:
    `split` must be "train" or "val". mmpose's holds one: every person is of `split`. A malformed file:
    DatasetError naming the file, the entry and the key."""
    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the annotation file ({e.strerror})") from None
    except ValueError as e:
        raise DatasetError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DatasetError(f"{path}: an MPII annotation file is a list of people (objects)")
    if not entries:
        return [], "empty"
    if all(key in entries[0] for key in _BEARPAW_KEYS):
        if split not in MPII_SPLITS:
            raise DatasetError(f"{path}: bearpaw's MPII file has the splits {list(MPII_SPLITS)} (isValidation 0 / "
                               f"1), not {split!r}")
        people = [_bearpaw_person(e, f"{path}: entry {i}", num_joints) for i, e in enumerate(entries)]
        return [p for p in people if p.split == split], "bearpaw"
    if all(key in entries[0] for key in _MMPOSE_KEYS):
        return [_mmpose_person(e, f"{path}: entry {i}", num_joints, split) for i, e in enumerate(entries)], "mmpose"
    raise DatasetError(f"{path}: entry 0 has neither bearpaw's MPII keys {list(_BEARPAW_KEYS)} nor mmpose's "
                       f"{list(_MMPOSE_KEYS)} (+ joints, joints_vis); it has {sorted(entries[0])[:8]}")


@dataclass(frozen=True)
class MpiiGroundTruth:
    """MPII's validation ground truth, one row per validation person, in MPII's 1-based frame.

    joints (N, J, 2) float64: pos_gt_src. missing (N, J) bool: jnt_missing (not labelled; PCKh leaves them out).
    head_boxes (N, 2, 2) float64: headboxes_src, [[x1, y1], [x2, y2]] the head's box (PCKh's head size is 0.6 x
    its diagonal). joint_names: dataset_joints ('rank', 'rkne', ... MPII's order).
    """

    joints: np.ndarray
    missing: np.ndarray
    head_boxes: np.ndarray
    joint_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.joints)


# dataset_joints of MPII's evaluation file, in its joint order: abbreviations of keypoints.MPII_KEYPOINTS' names.
GROUND_TRUTH_JOINT_NAMES = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
                             "rwri", "relb", "rsho", "lsho", "lelb", "lwri")


def read_mpii_ground_truth(path: str) -> MpiiGroundTruth:
    """MPII's evaluation file (scipy.io.loadmat): pos_gt_src (J, 2, N), jnt_missing (J, N), headboxes_src
    (2, 2, N), dataset_joints (1, J) -> an MpiiGroundTruth with the person axis first. DatasetError naming the
    file and the key when one is missing or of another shape."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except (OSError, ValueError, TypeError) as e:
        raise DatasetError(f"{path}: not a readable MATLAB file ({e})") from None
    for key in ("pos_gt_src", "jnt_missing", "headboxes_src", "dataset_joints"):
        if key not in mat:
            raise DatasetError(f"{path}: missing key {key!r} of MPII's ground truth")
    positions, missing, boxes = mat["pos_gt_src"], mat["jnt_missing"], mat["headboxes_src"]
    if positions.ndim != 3 or positions.shape[1] != 2:
        raise DatasetError(f"{path}: 'pos_gt_src' must be (joints, 2, people), got {positions.shape}")
    joints, people = positions.shape[0], positions.shape[2]
    if missing.shape != (joints, people):
        raise DatasetError(f"{path}: 'jnt_missing' must be ({joints}, {people}), got {missing.shape}")
    if boxes.shape != (2, 2, people):
        raise DatasetError(f"{path}: 'headboxes_src' must be (2, 2, {people}), got {boxes.shape}")
    names = tuple(str(np.asarray(n).reshape(-1)[0]) for n in mat["dataset_joints"].reshape(-1))
    return MpiiGroundTruth(np.ascontiguousarray(positions.transpose(2, 0, 1), dtype=np.float64),
                           np.ascontiguousarray(missing.T != 0), np.ascontiguousarray(boxes.transpose(2, 0, 1),
                                                                                     dtype=np.float64), names)


def write_mpii_ground_truth(path: str, joints: np.ndarray, missing: np.ndarray, head_boxes: np.ndarray) -> None:
    """Write MPII's evaluation file for N people in its layout (read_mpii_ground_truth's shapes, person axis
    first, MPII's 1-based frame): pos_gt_src, jnt_missing (uint8), headboxes_src, dataset_joints, and
    pos_pred_src (zeros; bearpaw's eval_PCKh.py reads it before putting the predictions in its place)."""
    import scipy.io

    joints = np.asarray(joints, dtype=np.float64).reshape(len(joints), len(GROUND_TRUTH_JOINT_NAMES), 2)
    names = np.empty((1, len(GROUND_TRUTH_JOINT_NAMES)), dtype=object)
    for i, name in enumerate(GROUND_TRUTH_JOINT_NAMES):
        names[0, i] = np.array([name])
    content = {"pos_gt_src": joints.transpose(1, 2, 0), "pos_pred_src": np.zeros(joints.transpose(1, 2, 0).shape),
               "jnt_missing": np.asarray(missing, dtype=np.uint8).T,
               "headboxes_src": np.asarray(head_boxes, dtype=np.float64).transpose(1, 2, 0),
               "dataset_joints": names}
    with atomic_write(path) as f:
        scipy.io.savemat(f, content)


class MpiiAnnotations:
    """The people of one split of an MPII data set (DATASET.ROOT, registry.mpii_paths) and their images.

    people: MpiiPerson list in the file's order (the validation people in the order of the ground truth).
    layout: "bearpaw" or "mmpose". keypoints: the joint set (MPII's 16). accept_damaged: as CocoKeypoints.
    """

    has_annotations = True

    def __init__(self, root: str, split: str, keypoints: KeypointSpec = MPII_KEYPOINTS,
                 dataset: DatasetInfo | None = None, accept_damaged: bool = False):
        self.root, self.split, self.keypoints, self.accept_damaged = root, split, keypoints, accept_damaged
        self.dataset = dataset or dataset_info("mpii")
        self.annotation_file, self.image_dir = self.dataset.paths(root, split)
        if not os.path.isfile(self.annotation_file):
            raise DatasetError(f"MPII annotation file not found: neither {os.path.join(root, 'annotations')}"
                               f"/mpii_{split}.json (mmpose's layout) nor {self.annotation_file} (bearpaw's) "
                               f"(DATASET.ROOT={root}, split {split})")
        self.people, self.layout = read_mpii_annotations(self.annotation_file, split, keypoints.num_joints)

    def __len__(self) -> int:
        return len(self.people)

    def image_path(self, index: int) -> str:
        return os.path.join(self.image_dir, self.people[index].image)

    def load_image(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB of person `index`'s image, as stored (EXIF orientation ignored, as the official
        code's imread)."""
        try:
            return read_image(self.image_path(index), exif=False, accept_damaged=self.accept_damaged)
        except DamagedImageError as e:
            raise e.with_fix("set DATASET.ACCEPT_DAMAGED_IMAGES True to use it as decoded") from None

    def check_images(self, progress: bool = False) -> None:
        """DatasetError unless every image the split's people name is a file (one line: how many are missing,
        the first few named)."""
        missing = sorted({p.image for p in self.people if not os.path.isfile(os.path.join(self.image_dir, p.image))})
        if missing:
            raise DatasetError(f"{self.annotation_file}: {len(missing)} image(s) not found in {self.image_dir}: "
                               f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")

    def ground_truth_file(self) -> str:
        """The split's MPII evaluation file in DATASET.ROOT (GROUND_TRUTH_FILES, mmpose's name first)."""
        for name in GROUND_TRUTH_FILES:
            path = os.path.join(self.root, name)
            if os.path.isfile(path):
                return path
        raise DatasetError(f"MPII's validation ground truth not found in {self.root}: looked for "
                           f"{' and '.join(GROUND_TRUTH_FILES)}")

    def ground_truth(self) -> MpiiGroundTruth:
        """read_mpii_ground_truth of ground_truth_file(); DatasetError unless it has one row per person of the
        split and the split's joint count."""
        path = self.ground_truth_file()
        truth = read_mpii_ground_truth(path)
        if len(truth) != len(self.people) or truth.joints.shape[1] != self.keypoints.num_joints:
            raise DatasetError(f"{path}: {len(truth)} people of {truth.joints.shape[1]} joints, but the split "
                               f"{self.split} of {self.annotation_file} has {len(self.people)} of "
                               f"{self.keypoints.num_joints}")
        return truth


@dataclass(frozen=True)
class MpiiAugment:
    """The official training augmentation: scale x clip(1 + N(0, 1) scale_factor, 1 +- scale_factor); when a
    uniform draw is <= rotation_prob, a rotation of clip(N(0, 1) rot_factor, +-2 rot_factor) degrees; a
    horizontal flip when a uniform draw is <= flip_prob; each RGB channel x U(colour_range), clipped to [0, 1].
    (Its command line's --scale-factor 0.25 and --rot-factor 30 are DATASET.SCALE_FACTOR / ROT_FACTOR.)"""

    scale_factor: float = 0.25
    rot_factor: float = 30.0
    flip_prob: float = 0.5
    rotation_prob: float = 0.6
    colour_range: tuple[float, float] = (0.8, 1.2)


@dataclass(frozen=True)
class MpiiDraws:
    """One item's random draws, in the order the official code draws them: the scale's normal, the rotation's
    uniform and (when it rotates; else 0) normal, the flip's uniform, the three colour factors (RGB)."""

    scale_normal: float
    rotation_uniform: float
    rotation_normal: float
    flip_uniform: float
    colour: tuple[float, float, float]


def draw_augmentation(rng: np.random.Generator, augment: MpiiAugment) -> MpiiDraws:
    """The draws of one item from `rng`, in the official order (the rotation's normal only when it rotates)."""
    scale_normal = rng.standard_normal()
    rotation_uniform = rng.random()
    rotation_normal = rng.standard_normal() if rotation_uniform <= augment.rotation_prob else 0.0
    flip_uniform = rng.random()
    low, high = augment.colour_range
    colour = tuple(float(rng.uniform(low, high)) for _ in range(3))
    return MpiiDraws(float(scale_normal), float(rotation_uniform), float(rotation_normal), float(flip_uniform),
                     colour)


def mpii_sample(image: np.ndarray, person: MpiiPerson, flip_index: Sequence[int], input_size: int,
                heatmap_size: int, sigma: float, mean: Sequence[float] | None, std: Sequence[float] | None = None,
                augment: MpiiAugment | None = None, draws: MpiiDraws | None = None):
    """One person's item, as the official Mpii.__getitem__ makes it.

    image (H, W, 3) uint8 RGB; person: its annotation. Without draws (test time), the person's crop; with draws
    (and augment), in the official order: scale, rotation, flip (image, joints by flip_index, centre x -> W - x),
    colour; then the crop of input_size x input_size and the mean subtracted (topdown_bearpaw), and per joint
    whose y is above 0 a Gaussian of `sigma` at its crop position in the heatmap_size x heatmap_size target.
    Returns (input (3, S, S) float32 tensor, heatmaps (J, s, s) float32, weights (J, 1) float32: the joint's
    visibility x whether its Gaussian is on the map (a joint at y <= 0 keeps its visibility, as there), the
    crop's centre (2,) float32 and scale (topdown_bearpaw's dtypes: a float, or np.float32 when augmented),
    rotation (degrees, 0 or np.float32))."""
    joints = np.array(person.joints, dtype=np.float32)
    center, scale = person_center_scale(person.center, person.scale)
    pixels = image_to_float(image)
    rotation = 0
    if draws is not None:
        a = augment or MpiiAugment()
        # In float32, as the code's torch.randn draws: the scale becomes a float32 number.
        scale = scale * np.clip(np.float32(draws.scale_normal) * a.scale_factor + 1, 1 - a.scale_factor,
                                1 + a.scale_factor)
        if draws.rotation_uniform <= a.rotation_prob:
            rotation = np.clip(np.float32(draws.rotation_normal) * a.rot_factor, -2 * a.rot_factor, 2 * a.rot_factor)
        if draws.flip_uniform <= a.flip_prob:
            pixels = np.ascontiguousarray(pixels[:, ::-1])
            joints = mirror_joints(joints, pixels.shape[1], flip_index)
            center[0] = pixels.shape[1] - center[0]
        for channel, factor in enumerate(draws.colour):
            pixels[..., channel] = np.clip(pixels[..., channel] * np.float32(factor), 0, 1)
    crop = crop_image(pixels, center, scale, (input_size, input_size), rot=rotation)
    heatmaps, weights = mpii_targets(joints, center, scale, heatmap_size, sigma, rotation)
    return normalize_crops(crop[None], mean, std)[0], heatmaps, weights, center, scale, rotation


def mpii_targets(joints: np.ndarray, center: np.ndarray, scale, heatmap_size: int, sigma: float,
                 rotation=0) -> tuple[np.ndarray, np.ndarray]:
    """The training targets of one person's crop, as the official Mpii.__getitem__ draws them: joints (J, 3)
    float32 x, y, visibility in MPII's 1-based frame (mirrored already for a flipped crop); the crop's centre
    (MPII's frame) and scale (person_center_scale's, augmented) and rotation (degrees). Per joint whose y is
    above 0, a Gaussian of `sigma` at its position in the heatmap_size x heatmap_size map. Returns (heatmaps
    (J, s, s) float32, weights (J, 1) float32: the visibility x whether the Gaussian is on the map; a joint at
    y <= 0 keeps its visibility, as there)."""
    joints = np.array(joints, dtype=np.float32)
    heatmaps = np.zeros((len(joints), heatmap_size, heatmap_size), dtype=np.float32)
    weights = joints[:, 2].reshape(-1, 1).copy()
    for j, joint in enumerate(joints):
        if joint[1] > 0:
            joint[:2] = transform_point(joint[:2] + 1, center, scale, (heatmap_size, heatmap_size), rot=rotation)
            _, on_map = draw_gaussian(heatmaps[j], joint - 1, sigma)
            weights[j, 0] *= on_map
    return heatmaps, weights


def mpii_test_targets(person: MpiiPerson, heatmap_size: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """mpii_targets of a person's test item (no augmentation: the crop of person_center_scale), the targets
    the official validate() scores its PCK against, without making the input crop."""
    center, scale = person_center_scale(person.center, person.scale)
    return mpii_targets(person.joints, center, scale, heatmap_size, sigma)


class MpiiTrainingDataset(Dataset):
    """One item per person of `source` (an MpiiAnnotations split), as the official Mpii dataset makes them:
    (input (3, S, S) float32, [heatmaps (J, s, s)], [weights (J, 1)], []) for input_size S and heatmap_size s, the
    layout of the top-down training items (data.topdown.TopDownTrainingDataset): one target set, which trains
    every stack's output. augment None: no augmentation (the official test items). The draws come from (seed,
    epoch, index), as the other training sets draw them; an item is dataset[index] or dataset[(epoch, index)].
    mean / std: the input's normalisation (MODEL.INPUT_MEAN / INPUT_STD; the official code subtracts MPII_MEAN
    and divides by nothing: std 1)."""

    def __init__(self, source: MpiiAnnotations, input_size: int = 256, heatmap_size: int = 64, sigma: float = 1.0,
                 augment: MpiiAugment | None = MpiiAugment(), mean: Sequence[float] | None = MPII_MEAN,
                 std: Sequence[float] | None = None, seed: int = 0):
        self.source, self.input_size, self.heatmap_size, self.sigma = source, input_size, heatmap_size, sigma
        self.augment, self.mean, self.std, self.seed = augment, mean, std, seed
        self.flip_index = source.keypoints.flip_index
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        draws = None
        if self.augment is not None:
            draws = draw_augmentation(np.random.default_rng((self.seed, epoch, index)), self.augment)
        inputs, heatmaps, weights, *_ = mpii_sample(self.source.load_image(index), self.source.people[index],
                                                    self.flip_index, self.input_size, self.heatmap_size, self.sigma,
                                                    self.mean, self.std, self.augment, draws)
        return inputs, [torch.from_numpy(heatmaps)], [torch.from_numpy(weights)], []


class MpiiEvalDataset(Dataset):
    """(image (H, W, 3) uint8 RGB, person index) for every person of an MpiiAnnotations split (the test split:
    its people in the ground truth's order); `source` is the split."""

    def __init__(self, source: MpiiAnnotations):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        return self.source.load_image(index), index
