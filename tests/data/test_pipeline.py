"""The training data pipeline's fast paths (decoded-image cache, table-lookup normalisation, persistent
workers with (epoch, index) keys) give exactly what the plain computation gives."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from higherhrnet.codec.targets import heatmap_targets, joint_indices
from higherhrnet.data import build_dataset
from higherhrnet.data.transforms import random_affine, warp_sample
from higherhrnet.engine.build import EpochSampler
from higherhrnet.normalization import normalize, normalize_reference
from pycocotools import mask as mask_utils

from conftest import COCO_MINI, REPO, tiny_cfg
from tinycoco import write_tiny_coco


def reference_item(ds, epoch: int, index: int):
    """A training item computed step by step from the source, without caches or lookup tables."""
    rng = np.random.default_rng((ds.seed, epoch, index))
    image = ds.source.load_image(index)
    anns = ds.source.annotations(index)
    mask = ds.source.ignore_mask(anns, *image.shape[:2])
    joints, _ = ds.source.people(anns)
    matrix, flip = random_affine(image.shape[1], image.shape[0], ds.input_size, ds.augment, rng)
    warped, masks, joints_out = warp_sample(image, mask, joints, matrix, flip, ds.flip_index, ds.input_size,
                                            ds.output_sizes)
    heatmaps = [heatmap_targets(j, s, ds.sigma) for s, j in zip(ds.output_sizes, joints_out)]
    indices = [joint_indices(j, s, ds.max_people, ds.tag_per_joint) for s, j in zip(ds.output_sizes, joints_out)]
    return normalize_reference(warped, ds.mean, ds.std), heatmaps, masks, indices


def assert_same(item, reference):
    image, heatmaps, masks, indices = item
    torch.testing.assert_close(image, reference[0], rtol=0, atol=0)
    for ours, theirs in zip(heatmaps + masks + indices, reference[1] + reference[2] + reference[3]):
        assert np.array_equal(ours.numpy(), theirs)


@pytest.mark.parametrize("cache_mb", [0.0, 512.0])
def test_items_equal_the_plain_computation(tmp_path, cache_mb):
    write_tiny_coco(tmp_path, num_images=3)
    ds = build_dataset(tiny_cfg("DATASET.ROOT", str(tmp_path), "DATASET.TRAIN", "train",
                                "DATASET.IMAGE_CACHE_MB", str(cache_mb)))
    assert (ds._cache is not None) == (cache_mb > 0)
    for epoch in range(3):
        for index in range(len(ds)):
            assert_same(ds[(epoch, index)], reference_item(ds, epoch, index))
    ds.set_epoch(2)
    assert_same(ds[1], reference_item(ds, 2, 1))


@pytest.mark.skipif(not COCO_MINI.exists(), reason="../shared/data/coco-mini not present")
def test_real_coco_items_equal_the_plain_computation():
    ds = build_dataset(tiny_cfg("DATASET.ROOT", str(COCO_MINI), "DATASET.TRAIN", "val2017", "DATASET.INPUT_SIZE",
                                "512", "DATASET.OUTPUT_SIZE", "[128, 256]"))
    for epoch in range(2):
        for index in range(len(ds)):
            assert_same(ds[(epoch, index)], reference_item(ds, epoch, index))


def test_a_split_too_large_for_the_cache_is_not_cached(tmp_path):
    write_tiny_coco(tmp_path, num_images=3)                          # 3 x 128 x 96 x 4 bytes = 0.14 MB
    ds = build_dataset(tiny_cfg("DATASET.ROOT", str(tmp_path), "DATASET.TRAIN", "train",
                                "DATASET.IMAGE_CACHE_MB", "0.1"))
    assert ds._cache is None


def test_lookup_normalisation_is_the_elementwise_arithmetic():
    rng = np.random.default_rng(0)
    for shape in [(64, 48, 3), (1, 1, 3), (513, 7, 3)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        for mean, std in [((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), (None, None), ((0.5,) * 3, (0.1,) * 3)]:
            assert torch.equal(normalize(image, mean, std), normalize_reference(image, mean, std))
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)[:, ::2]             # not contiguous
    assert torch.equal(normalize(image, None, None), normalize_reference(image, None, None))


@pytest.mark.parametrize("length,world,shuffle", [(10, 1, True), (10, 3, True), (7, 2, False), (2, 4, True)])
def test_sampler_order_is_torch_distributed_samplers(length, world, shuffle):
    for rank in range(world):
        ours = EpochSampler(length, shuffle, seed=5, rank=rank, world_size=world)
        theirs = DistributedSampler(range(length), num_replicas=world, rank=rank, shuffle=shuffle, seed=5)
        for epoch in (0, 3):
            ours.set_epoch(epoch)
            theirs.set_epoch(epoch)
            assert list(ours) == [(epoch, i) for i in theirs] and len(ours) == len(theirs)


def test_persistent_workers_draw_each_epochs_augmentation(tmp_path):
    write_tiny_coco(tmp_path, num_images=2)
    ds = build_dataset(tiny_cfg("DATASET.ROOT", str(tmp_path), "DATASET.TRAIN", "train"))
    sampler = EpochSampler(len(ds), shuffle=False, seed=0)
    loader = DataLoader(ds, batch_size=1, sampler=sampler, num_workers=1, persistent_workers=True)
    seen = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        seen.append([batch[0][0] for batch in loader])
    assert not torch.equal(seen[0][0], seen[1][0])                     # a new draw, not epoch 0 again
    torch.testing.assert_close(seen[1][0], reference_item(ds, 1, 0)[0], rtol=0, atol=0)


def plain_ignore_mask(anns, height, width):
    """The official way: every crowd region's and unlabelled outline's decoded mask added into a float64 image,
    True where the sum is under 0.5."""
    covered = np.zeros((height, width))
    for ann in anns:
        if not (ann.get("iscrowd", 0) or ann.get("num_keypoints", 0) == 0) or not ann.get("segmentation"):
            continue
        segmentation = ann["segmentation"]
        if isinstance(segmentation, dict) and not isinstance(segmentation["counts"], list):
            rles = segmentation
        else:
            rles = mask_utils.frPyObjects(segmentation, height, width)
        covered += mask_utils.decode(rles).reshape(height, width, -1).sum(axis=2)
    return covered < 0.5


def check_masks(source, anns, height, width):
    expected = plain_ignore_mask(anns, height, width)
    mask, loss_mask = source.ignore_mask(anns, height, width), source.loss_mask(anns, height, width)
    assert mask.dtype == bool and np.array_equal(mask, expected)
    assert loss_mask.dtype == np.uint8 and loss_mask.flags.c_contiguous
    assert np.array_equal(loss_mask, expected.astype(np.uint8) * 255)
    return expected


def test_merged_region_masks_are_the_official_float_sum(tmp_path):
    write_tiny_coco(tmp_path, num_images=3)
    source = build_dataset(tiny_cfg("DATASET.ROOT", str(tmp_path), "DATASET.TRAIN", "train")).source
    for index in range(len(source)):
        info = source.image_info(index)
        check_masks(source, source.annotations(index), info["height"], info["width"])
    # Overlapping outlines of one person, two unlabelled people, a crowd region as uncompressed and as
    # compressed RLE (str and bytes), labelled people (not masked), and none at all.
    h, w = 40, 50
    region = np.zeros((h, w), np.uint8, order="F")
    region[5:25, 10:30] = 1
    compressed = mask_utils.encode(region)
    anns = [{"iscrowd": 0, "num_keypoints": 0, "segmentation": [[0, 0, 30, 0, 30, 20, 0, 20], [20, 10, 45, 10, 45, 35]]},
            {"iscrowd": 0, "num_keypoints": 0, "segmentation": [[25, 25, 49, 25, 49, 39, 25, 39]]},
            {"iscrowd": 1, "num_keypoints": 0, "segmentation": {"counts": [300, 200, 100, 1400], "size": [h, w]}},
            {"iscrowd": 1, "num_keypoints": 0, "segmentation": {"counts": compressed["counts"].decode(), "size": [h, w]}},
            {"iscrowd": 1, "num_keypoints": 3, "segmentation": {"counts": compressed["counts"], "size": [h, w]}},
            {"iscrowd": 0, "num_keypoints": 5, "segmentation": [[0, 30, 10, 30, 10, 39]]}]
    for subset in (anns, anns[:1], anns[1:2], anns[2:], anns[3:4], anns[5:], []):
        expected = check_masks(source, subset, h, w)
        assert expected.all() == (subset in (anns[5:], []))


@pytest.mark.skipif(not COCO_MINI.exists(), reason="../shared/data/coco-mini not present")
def test_real_coco_masks_are_the_official_float_sum():
    source = build_dataset(tiny_cfg("DATASET.ROOT", str(COCO_MINI), "DATASET.TRAIN", "val2017")).source
    masked = 0
    for index in range(len(source)):
        info = source.image_info(index)
        masked += not check_masks(source, source.annotations(index), info["height"], info["width"]).all()
    assert masked > 0                       # coco-mini has crowd regions or unlabelled people to mask


def test_mask_threshold_in_uint8_is_the_float_comparison():
    values = np.arange(256, dtype=np.uint8)
    assert np.array_equal(values >= 128, values / 255.0 > 0.5)


def test_data_benchmark_refuses_a_path_that_is_not_the_official_code(tmp_path):
    """benchmarks/data_pipeline.py times the official code from a checkout it is given: a wrong path is a
    one-line error (exit status 2) naming what is missing, before anything is timed."""
    (tmp_path / "lib" / "dataset").mkdir(parents=True)
    (tmp_path / "lib" / "dataset" / "COCOKeypoints.py").write_text("")
    script = REPO / "benchmarks" / "data_pipeline.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "lib"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(script), "--official", str(tmp_path), "--root", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=script.parent, env=env)
    assert result.returncode == 2, result.stderr
    assert "is not a checkout of HRNet/HigherHRNet-Human-Pose-Estimation" in result.stderr
    assert "lib/dataset/build.py" in result.stderr and "lib/dataset/COCOKeypoints.py" not in result.stderr
