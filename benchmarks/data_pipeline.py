"""Training data pipeline per item: this project's TrainingDataset against the official code's, interleaved.

    python benchmarks/data_pipeline.py                        # coco-mini's 4 COCO images, W32-512 recipe
    python benchmarks/data_pipeline.py --root data/coco --split val2017 --items 400

One process, one thread (what each DataLoader worker does). Every round produces one training item with each
pipeline in turn, so a machine whose speed drifts affects both alike. Rows:
- official: a NumPy / OpenCV / PyTorch transcription of the official HigherHRNet data path
  (lib/dataset/COCODataset.py, COCOKeypoints.py, transforms/transforms.py, target_generators/ of
  HRNet/HigherHRNet-Human-Pose-Estimation): cv2.imread, the ignore mask in float64 at image size, the
  affine warps of mask and image per output, the flip as a separate copy, to_tensor + Normalize, and the
  heatmap and joint generators' Python loops. Written here from reading that code, for timing only;
  its outputs differ from ours only where docs/training-reference.md says ours is consistent and theirs is not.
- ours (images cached): TrainingDataset as training runs it on a split that fits DATASET.IMAGE_CACHE_MB
  (the 4 coco-mini images do): decoded images and masks kept by the worker.
- ours (no cache): DATASET.IMAGE_CACHE_MB 0, every item read and decoded again (a split such as COCO train,
  which does not fit).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils

import higherhrnet
from higherhrnet.data import build_dataset

from common import interleaved_times, machine_description

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COCO_MINI = os.path.join(os.path.dirname(REPO), "shared", "data", "coco-mini")


class OfficialPipeline:
    """The official training item, step for step (see the module docstring); __call__(index) -> item."""

    def __init__(self, ds):
        source = ds.source
        self.coco, self.ids, self.image_dir = source.coco, source.ids, source.image_dir
        self.input_size, self.output_sizes = ds.input_size, ds.output_sizes
        self.sigma, self.max_people, self.flip_index = ds.sigma, ds.max_people, list(ds.flip_index)
        self.augment, self.num_joints = ds.augment, source.keypoints.num_joints
        self.mean = torch.tensor(ds.mean)[:, None, None]
        self.std = torch.tensor(ds.std)[:, None, None]
        size = 6 * self.sigma + 3
        x = np.arange(0, size, 1, float)
        centre = 3 * self.sigma + 1
        self.gaussian = np.exp(-((x - centre) ** 2 + (x[:, None] - centre) ** 2) / (2 * self.sigma ** 2))

    def __call__(self, index: int):
        image_id = self.ids[index]
        anno = self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id))
        info = self.coco.loadImgs(image_id)[0]
        image = cv2.imread(os.path.join(self.image_dir, info["file_name"]),
                           cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        mask = self._mask(anno, info["height"], info["width"])
        anno = [obj for obj in anno if obj["iscrowd"] == 0 or obj["num_keypoints"] > 0]
        joints = np.zeros((len(anno), self.num_joints, 3))
        for i, obj in enumerate(anno):
            joints[i, :, :3] = np.array(obj["keypoints"]).reshape(-1, 3)
        masks = [mask.copy() for _ in self.output_sizes]
        joints_list = [joints.copy() for _ in self.output_sizes]
        image, masks, joints_list = self._affine(image, masks, joints_list)
        if random.random() < self.augment.flip_prob:
            image = image[:, ::-1] - np.zeros_like(image)
            for i, size in enumerate(self.output_sizes):
                masks[i] = masks[i][:, ::-1] - np.zeros_like(masks[i])
                joints_list[i] = joints_list[i][:, self.flip_index]
                joints_list[i][:, :, 0] = size - joints_list[i][:, :, 0] - 1
        tensor = torch.from_numpy(image.transpose((2, 0, 1))).contiguous().float().div(255)
        tensor = tensor.clone().sub_(self.mean).div_(self.std)
        targets, indices = [], []
        for size, joints_o, mask_o in zip(self.output_sizes, joints_list, masks):
            targets.append(self._heatmaps(joints_o, size).astype(np.float32))
            indices.append(self._indices(joints_o, size).astype(np.int32))
        return tensor, targets, [m.astype(np.float32) for m in masks], indices

    @staticmethod
    def _mask(anno, height, width):
        m = np.zeros((height, width))
        for obj in anno:
            if obj["iscrowd"]:
                m += mask_utils.decode(mask_utils.frPyObjects(obj["segmentation"], height, width))
            elif obj["num_keypoints"] == 0:
                for rle in mask_utils.frPyObjects(obj["segmentation"], height, width):
                    m += mask_utils.decode(rle)
        return m < 0.5

    @staticmethod
    def _matrix(center, scale, size, rot):
        h = 200 * scale
        t = np.zeros((3, 3))
        t[0, 0] = t[1, 1] = float(size) / h
        t[0, 2] = size * (-float(center[0]) / h + 0.5)
        t[1, 2] = size * (-float(center[1]) / h + 0.5)
        t[2, 2] = 1
        if rot:
            rad = -rot * np.pi / 180
            sn, cs = np.sin(rad), np.cos(rad)
            rotation = np.array([[cs, -sn, 0], [sn, cs, 0], [0, 0, 1]])
            to_origin = np.eye(3)
            to_origin[:2, 2] = -size / 2
            back = to_origin.copy()
            back[:2, 2] *= -1
            t = np.dot(back, np.dot(rotation, np.dot(to_origin, t)))
        return t

    def _affine(self, image, masks, joints_list):
        a = self.augment
        height, width = image.shape[:2]
        center = np.array((width / 2, height / 2))
        scale = (min(height, width) if a.scale_type == "short" else max(height, width)) / 200
        scale *= np.random.random() * (a.max_scale - a.min_scale) + a.min_scale
        rot = (np.random.random() * 2 - 1) * a.max_rotation
        if a.max_translate > 0:
            center[0] += np.random.randint(-a.max_translate * scale, a.max_translate * scale)
            center[1] += np.random.randint(-a.max_translate * scale, a.max_translate * scale)
        for i, size in enumerate(self.output_sizes):
            m = self._matrix(center, scale, size, rot)[:2]
            masks[i] = (cv2.warpAffine((masks[i] * 255).astype(np.uint8), m, (size, size)) / 255 > 0.5)
            masks[i] = masks[i].astype(np.float32)
            xy = joints_list[i][:, :, 0:2].reshape(-1, 2)
            joints_list[i][:, :, 0:2] = np.dot(np.concatenate((xy, xy[:, 0:1] * 0 + 1), axis=1),
                                               m.T).reshape(joints_list[i][:, :, 0:2].shape)
        m = self._matrix(center, scale, self.input_size, rot)[:2]
        return cv2.warpAffine(image, m, (self.input_size, self.input_size)), masks, joints_list

    def _heatmaps(self, joints, size):
        maps = np.zeros((self.num_joints, size, size), dtype=np.float32)
        s = self.sigma
        for person in joints:
            for j, pt in enumerate(person):
                if pt[2] <= 0:
                    continue
                x, y = int(pt[0]), int(pt[1])
                if x < 0 or y < 0 or x >= size or y >= size:
                    continue
                ul = int(np.round(x - 3 * s - 1)), int(np.round(y - 3 * s - 1))
                br = int(np.round(x + 3 * s + 2)), int(np.round(y + 3 * s + 2))
                c, d = max(0, -ul[0]), min(br[0], size) - ul[0]
                a, b = max(0, -ul[1]), min(br[1], size) - ul[1]
                cc, dd = max(0, ul[0]), min(br[0], size)
                aa, bb = max(0, ul[1]), min(br[1], size)
                maps[j, aa:bb, cc:dd] = np.maximum(maps[j, aa:bb, cc:dd], self.gaussian[a:b, c:d])
        return maps

    def _indices(self, joints, size):
        visible = np.zeros((self.max_people, self.num_joints, 2))
        for i in range(len(joints)):
            count = 0
            for j, pt in enumerate(joints[i]):
                x, y = int(pt[0]), int(pt[1])
                if pt[2] > 0 and 0 <= x < size and 0 <= y < size:
                    visible[i][count] = (j * size ** 2 + y * size + x, 1)
                    count += 1
        return visible


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default=os.path.join(REPO, "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml"))
    parser.add_argument("--root", default=COCO_MINI, help="a COCO-format data root (default: coco-mini)")
    parser.add_argument("--split", default="val2017")
    parser.add_argument("--items", type=int, default=200, help="items per pipeline (interleaved rounds)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"error: {args.root} not found (pass --root and --split of a COCO-format data set)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    opts = ["DATASET.ROOT", args.root, "DATASET.TRAIN", args.split]
    cfg = higherhrnet.load_cfg(args.cfg, opts)
    cached = build_dataset(cfg)
    plain = build_dataset(higherhrnet.load_cfg(args.cfg, opts + ["DATASET.IMAGE_CACHE_MB", "0"]))
    official = OfficialPipeline(plain)
    n = len(plain)
    counters = {"official": 0, "ours (images cached)": 0, "ours (no cache)": 0}

    def step(name, fn):
        def run():
            k = counters[name]
            counters[name] += 1
            return fn(k)
        return run

    runs = {"official": step("official", lambda k: official(k % n)),
            "ours (images cached)": step("ours (images cached)", lambda k: cached[(k // n, k % n)]),
            "ours (no cache)": step("ours (no cache)", lambda k: plain[(k // n, k % n)])}
    times = interleaved_times(runs, args.items)
    print(f"machine: {machine_description()}; one thread, one process (a loader worker)")
    print(f"{args.cfg}: input {cfg.DATASET.INPUT_SIZE}, targets {list(plain.output_sizes)}; {n} images of "
          f"{args.root} ({args.split}); {args.items} interleaved rounds\n")
    reference = statistics.median(times["official"])
    print("| pipeline | ms per item (median) | items/s per worker | speed-up vs official |")
    print("| --- | --- | --- | --- |")
    for name, t in times.items():
        median = statistics.median(t)
        print(f"| {name} | {median * 1000:.2f} | {1 / median:.0f} | {reference / median:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
