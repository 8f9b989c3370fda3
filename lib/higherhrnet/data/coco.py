"""COCO-format keypoint datasets (COCO, CrowdPose, your own; see registry.py), read with pycocotools."""
from __future__ import annotations

import contextlib
import io
import logging
import os
from typing import Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from ..codec.targets import heatmap_targets, joint_indices, person_sigmas
from ..images import DamagedImageError, ImageError, read_image
from ..keypoints import KeypointSpec
from ..normalization import IMAGENET_MEAN, IMAGENET_STD, normalize
from .checks import DatasetError, check_images, check_keypoint_counts
from .registry import DatasetInfo, dataset_info
from .transforms import AugmentParams, random_affine, warp_sample

__all__ = ["DatasetError", "CocoKeypoints", "TrainingDataset", "EvalDataset"]

logger = logging.getLogger(__name__)

# loss_mask's value for a pixel no region covers (0) and for a covered one (1).
_LOSS_MASK_VALUES = np.array([255, 0], np.uint8)


class CocoKeypoints(Dataset):
    """Images, annotations, ignore masks and joints of one split.

    keypoints: the dataset's KeypointSpec; the annotation file's person category must have as many
    keypoints. dataset: its kind (file layout, metric), see registry.py. skip_empty: leave out images
    without any annotation (training). accept_damaged: use JPEG files whose compressed data is corrupt as libjpeg
    decodes them (default: refused, images.DamagedImageError, naming DATASET.ACCEPT_DAMAGED_IMAGES).
    """

    def __init__(self, root: str, split: str, keypoints: KeypointSpec, dataset: DatasetInfo | None = None,
                 skip_empty: bool = True, accept_damaged: bool = False):
        self.root, self.split, self.keypoints = root, split, keypoints
        self.accept_damaged = accept_damaged
        self.dataset = dataset or dataset_info("coco")
        self.annotation_file, self.image_dir = self.dataset.paths(root, split)
        if not os.path.isfile(self.annotation_file):
            raise DatasetError(f"annotation file not found: {self.annotation_file} (DATASET.ROOT={root}, split {split})")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.coco = COCO(self.annotation_file)
        except Exception as e:  # pycocotools raises bare assertions / JSON errors
            raise DatasetError(f"{self.annotation_file}: not a COCO annotation file ({type(e).__name__}: {e})") from None
        self._check_schema()
        self.ids = sorted(self.coco.getImgIds())
        if skip_empty:
            self.ids = [i for i in self.ids if self.coco.getAnnIds(imgIds=i, iscrowd=None)]

    def _check_schema(self) -> None:
        where = self.annotation_file
        cats = self.coco.loadCats(self.coco.getCatIds())
        person = [c for c in cats if "keypoints" in c]
        if not person:
            raise DatasetError(f"{where}: no category with a 'keypoints' list")
        if len(person[0]["keypoints"]) != self.keypoints.num_joints:
            raise DatasetError(f"{where}: category {person[0].get('name')!r} has {len(person[0]['keypoints'])} "
                               f"keypoints, the keypoint set {self.keypoints.name!r} has {self.keypoints.num_joints}")
        check_keypoint_counts(self.coco.dataset.get("annotations") or [], self.keypoints, where)

    def check_images(self, progress: bool = False) -> None:
        """DatasetError unless every image of the split (those it reads: self.ids) is a file whose header gives
        the size its entry says (checks.check_images); progress: a bar when that takes over two seconds."""
        check_images(self.coco.loadImgs(self.ids), self.image_dir, self.annotation_file, progress)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_annotations(self) -> bool:
        """False for image-list-only splits such as COCO test-dev."""
        return "annotations" in self.coco.dataset

    def image_info(self, index: int) -> dict:
        return self.coco.loadImgs(self.ids[index])[0]

    def load_image(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB as stored (EXIF orientation ignored: annotations use stored pixels)."""
        info = self.image_info(index)
        path = os.path.join(self.image_dir, info["file_name"])
        try:
            image = read_image(path, exif=False, accept_damaged=self.accept_damaged)
        except DamagedImageError as e:
            raise e.with_fix("set DATASET.ACCEPT_DAMAGED_IMAGES True to use it as decoded") from None
        if image.shape[:2] != (info["height"], info["width"]):
            raise ImageError(f"{path}: image is {image.shape[1]}x{image.shape[0]} but the annotation file says "
                             f"{info['width']}x{info['height']}")
        return image

    def annotations(self, index: int) -> list[dict]:
        return self.coco.loadAnns(self.coco.getAnnIds(imgIds=self.ids[index], iscrowd=None))

    def ignore_mask(self, anns: Sequence[dict], height: int, width: int) -> np.ndarray:
        """(H, W) bool, True where the loss applies: False inside crowd regions and inside the outlines
        of people with no labelled keypoint."""
        covered = self._covered(anns, height, width)
        if covered is None:
            return np.ones((height, width), bool)
        return np.ascontiguousarray(covered == 0)

    def loss_mask(self, anns: Sequence[dict], height: int, width: int) -> np.ndarray:
        """ignore_mask as training warps it: (H, W) uint8, 255 where the loss applies, 0 elsewhere."""
        covered = self._covered(anns, height, width)
        if covered is None:
            return np.full((height, width), 255, np.uint8)
        return np.ascontiguousarray(_LOSS_MASK_VALUES[covered])

    def _covered(self, anns: Sequence[dict], height: int, width: int) -> np.ndarray | None:
        """(H, W) uint8, 1 inside any crowd region or outline of a person with no labelled keypoint, else 0
        (Fortran order, as pycocotools decodes); None when the image has no such region.

        The official code adds every region's decoded mask into a float64 image and keeps the pixels where the
        sum is under 0.5: those no region covers. The union of the regions' run-length encodings, merged in
        compressed form and decoded once, is exactly that set, without an image-sized float sum per region."""
        rles = []
        for ann in anns:
            if not (ann.get("iscrowd", 0) or ann.get("num_keypoints", 0) == 0):
                continue
            segmentation = ann.get("segmentation")
            if not segmentation:
                continue   # CrowdPose has no outlines
            if isinstance(segmentation, dict) and not isinstance(segmentation.get("counts"), list):
                # Already compressed RLE (allowed by the format, though COCO itself stores lists).
                counts = segmentation["counts"]
                rles.append({"size": segmentation["size"],
                             "counts": counts.encode() if isinstance(counts, str) else counts})
                continue
            converted = mask_utils.frPyObjects(segmentation, height, width)
            # A polygon list gives one RLE per polygon, an uncompressed RLE gives one.
            rles.extend(converted if isinstance(converted, list) else [converted])
        if not rles:
            return None
        return mask_utils.decode(mask_utils.merge(rles, intersect=False) if len(rles) > 1 else rles[0])

    def people(self, anns: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
        """Joints (P, J, 3) float64 (x, y, visibility) and box sizes (P, 2) of the people who count:
        non-crowd, or crowd with labelled keypoints (as the reference). Sorted by area, largest first."""
        kept = [a for a in anns if not a.get("iscrowd", 0) or a.get("num_keypoints", 0) > 0]
        kept.sort(key=lambda a: -float(a.get("area", a.get("bbox", [0, 0, 0, 0])[2] * a.get("bbox", [0, 0, 0, 0])[3])))
        joints = np.array([a["keypoints"] for a in kept], dtype=np.float64)
        joints = joints.reshape(len(kept), self.keypoints.num_joints, 3)
        boxes = np.array([a.get("bbox", [0, 0, 0, 0])[2:4] for a in kept], dtype=np.float64).reshape(-1, 2)
        return joints, boxes


class TrainingDataset(Dataset):
    """Training items as the reference builds them:
    (image (3, S, S) float32 normalised, [heatmaps (J, o, o)], [masks (o, o)], [joints (M, J, 2) int32])
    per output size o. The image is pixels / 255, then (x - mean) / std unless mean is None.
    Augmentation is drawn from (seed, epoch, index): reproducible, different each epoch. An item is
    dataset[index] (at the epoch of set_epoch) or dataset[(epoch, index)], so that loader processes that
    live across epochs (persistent workers) still draw each epoch's augmentation.

    cache_mb: when every decoded image of the split (RGB and ignore mask, 4 bytes a pixel) fits in this many
    MB, each loader process keeps them after their first use instead of reading and decoding them again
    every epoch; 0 turns the cache off.
    """

    def __init__(self, source: CocoKeypoints, input_size: int, output_sizes: Sequence[int], sigma: float,
                 max_people: int, augment: AugmentParams, tag_per_joint: bool = True,
                 scale_aware_sigma: bool = False, base_size: float = 256.0, base_sigma: float = 2.0,
                 int_sigma: bool = False, mean: Sequence[float] | None = IMAGENET_MEAN,
                 std: Sequence[float] | None = IMAGENET_STD, seed: int = 0, cache_mb: float = 0.0):
        self.source = source
        self.input_size, self.output_sizes = input_size, list(output_sizes)
        self.sigma, self.max_people, self.augment = sigma, max_people, augment
        self.tag_per_joint = tag_per_joint
        self.scale_aware_sigma, self.base_size, self.base_sigma, self.int_sigma = (
            scale_aware_sigma, base_size, base_sigma, int_sigma)
        self.mean, self.std, self.seed = mean, std, seed
        self.epoch = 0
        self.flip_index = source.keypoints.flip_index
        self._warned_crowded = False
        pixels = sum(info["height"] * info["width"] for info in source.coco.loadImgs(source.ids))
        self._cache: dict | None = {} if cache_mb > 0 and 4 * pixels <= cache_mb * 2 ** 20 else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def _prepared(self, index: int):
        """(image (H, W, 3) uint8 RGB, ignore mask (H, W) uint8 255 where the loss applies, joints (P, J, 3),
        boxes (P, 2)) of an image, from the cache when it is on."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        image = self.source.load_image(index)
        anns = self.source.annotations(index)
        mask = self.source.loss_mask(anns, *image.shape[:2])
        prepared = (image, mask, *self.source.people(anns))
        if self._cache is not None:
            self._cache[index] = prepared
        return prepared

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        rng = np.random.default_rng((self.seed, epoch, index))
        image, mask, joints, boxes = self._prepared(index)
        h, w = image.shape[:2]
        if len(joints) > self.max_people and not self._warned_crowded:
            self._warned_crowded = True
            logger.warning("image %s has %d people, more than DATASET.MAX_NUM_PEOPLE=%d: the tag loss uses the "
                           "largest %d (reported once)", self.source.ids[index], len(joints), self.max_people,
                           self.max_people)
        matrix, flip = random_affine(w, h, self.input_size, self.augment, rng)
        warped, masks, joints_out = warp_sample(image, mask, joints, matrix, flip, self.flip_index,
                                                self.input_size, self.output_sizes)
        heatmaps, indices = [], []
        sigma = self.sigma
        if self.scale_aware_sigma:
            # The person's size in network-input pixels (after this augmentation's scaling) sets its sigma, in
            # output pixels and the same at every resolution, as the fixed SIGMA is: see person_sigmas.
            image_to_input = float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))
            sigma = person_sigmas(boxes * image_to_input, self.base_size, self.base_sigma, self.int_sigma)
        for size, joints_o in zip(self.output_sizes, joints_out):
            heatmaps.append(torch.from_numpy(heatmap_targets(joints_o, size, sigma)))
            indices.append(torch.from_numpy(joint_indices(joints_o, size, self.max_people, self.tag_per_joint)))
        tensor = normalize(warped, self.mean, self.std)
        return tensor, heatmaps, [torch.from_numpy(m) for m in masks], indices


class EvalDataset(Dataset):
    """(image (H, W, 3) uint8 RGB, image id) for evaluation; every image of the split."""

    def __init__(self, source: CocoKeypoints):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        return self.source.load_image(index), self.source.ids[index]
