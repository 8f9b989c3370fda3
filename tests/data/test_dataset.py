from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import higherhrnet
from higherhrnet import COCO_KEYPOINTS
from higherhrnet.data import DatasetError, build_dataset
from higherhrnet.data.coco import CocoKeypoints

from conftest import COCO_MINI, tiny_cfg
from tinycoco import write_tiny_coco

NO_AUGMENT = ("DATASET.MIN_SCALE", "1.0", "DATASET.MAX_SCALE", "1.0", "DATASET.MAX_ROTATION", "0",
              "DATASET.MAX_TRANSLATE", "0")


def cfg_for(root, *opts):
    return tiny_cfg("DATASET.ROOT", str(root), "DATASET.TRAIN", "train", *opts)


def test_training_item_layout(tmp_path):
    write_tiny_coco(tmp_path)
    ds = build_dataset(cfg_for(tmp_path))
    image, heatmaps, masks, joints = ds[0]
    assert image.shape == (3, 128, 128) and image.dtype == torch.float32
    assert [tuple(h.shape) for h in heatmaps] == [(17, 32, 32), (17, 64, 64)]
    assert [tuple(m.shape) for m in masks] == [(32, 32), (64, 64)]
    assert [tuple(j.shape) for j in joints] == [(30, 17, 2), (30, 17, 2)]
    assert joints[0].dtype == torch.int32 and heatmaps[0].dtype == torch.float32


def test_ignore_mask_is_exactly_the_crowd_and_unlabelled_areas(tmp_path):
    write_tiny_coco(tmp_path)
    source = CocoKeypoints(str(tmp_path), "train", COCO_KEYPOINTS)
    anns = source.annotations(0)
    mask = source.ignore_mask(anns, 96, 128)
    expected = np.ones((96, 128), bool)
    expected[:20, :24] = False                                    # crowd RLE
    from pycocotools import mask as mask_utils
    unlabelled = [a for a in anns if a["num_keypoints"] == 0 and not a["iscrowd"]][0]
    poly = mask_utils.decode(mask_utils.frPyObjects(unlabelled["segmentation"], 96, 128))[..., 0]
    expected[poly > 0] = False
    assert np.array_equal(mask, expected)


def test_mask_and_heatmaps_follow_the_image_without_augmentation(tmp_path):
    """Scale 1, no rotation/translation: the short side (96) fills the 128 input, so image pixels map by
    128/96 around the centre; heatmap peaks land where the joints map."""
    write_tiny_coco(tmp_path)
    cfg = cfg_for(tmp_path, *NO_AUGMENT, "DATASET.FLIP", "0.0")
    ds = build_dataset(cfg)
    _, heatmaps, masks, _ = ds[0]
    source = ds.source
    people, _ = source.people(source.annotations(0))
    factor = 64 / 96
    center = np.array([64, 48])
    for joint in range(17):
        for person in people:
            x, y, v = person[joint]
            px, py = (np.array([x, y]) - center) * factor + 32
            if v > 0 and 0 <= px < 64 and 0 <= py < 64:
                assert heatmaps[1][joint, int(py), int(px)] == 1.0
    # The crowd corner (image x < 24, y < 20) maps to the masked top-left of the output.
    corner = ((np.array([23, 19]) - center) * factor + 32).astype(int)
    assert masks[1][: corner[1], max(corner[0] - 1, 0)].eq(0).all()


def test_flip_swaps_left_and_right(tmp_path):
    write_tiny_coco(tmp_path, num_images=1, people_per_image=1, crowd=False)
    plain = build_dataset(cfg_for(tmp_path, *NO_AUGMENT, "DATASET.FLIP", "0.0"))[0]
    flipped = build_dataset(cfg_for(tmp_path, *NO_AUGMENT, "DATASET.FLIP", "1.0"))[0]
    left, right = COCO_KEYPOINTS.index("left_wrist"), COCO_KEYPOINTS.index("right_wrist")
    size = 64
    ly, lx = np.unravel_index(plain[1][1][left].argmax().item(), (size, size))
    ry, rx = np.unravel_index(flipped[1][1][right].argmax().item(), (size, size))
    assert ry == ly and abs((size - 1 - lx) * 1.0 - rx) <= 1   # mirrored column, in the other channel
    torch.testing.assert_close(flipped[0], torch.flip(plain[0], [2]), atol=1e-5, rtol=0)


def test_augmentation_is_reproducible_per_epoch(tmp_path):
    write_tiny_coco(tmp_path)
    ds = build_dataset(cfg_for(tmp_path))
    a = ds[1][0]
    assert torch.equal(a, ds[1][0])
    ds.set_epoch(1)
    assert not torch.equal(a, ds[1][0])


def test_more_people_than_max_num_people(tmp_path, caplog):
    write_tiny_coco(tmp_path, num_images=1, people_per_image=2, extra_people=40)
    ds = build_dataset(cfg_for(tmp_path, "DATASET.MAX_NUM_PEOPLE", "30"))
    with caplog.at_level("WARNING"):
        _, heatmaps, _, joints = ds[0]
        ds[0]
    assert joints[0].shape == (30, 17, 2) and joints[0][:, :, 1].sum() > 0
    assert sum("more than DATASET.MAX_NUM_PEOPLE" in r.message for r in caplog.records) == 1


def test_scale_aware_sigma_works(tmp_path):
    write_tiny_coco(tmp_path)
    ds = build_dataset(cfg_for(tmp_path, "DATASET.SCALE_AWARE_SIGMA", "True"))
    assert all(torch.isfinite(h).all() and h.max() == 1.0 for h in ds[0][1])


@pytest.mark.parametrize("base_size", [12.0, 20.0])
def test_scale_aware_sigma_sets_the_measured_peak_width(tmp_path, base_size):
    """docs/training-reference.md: sigma (output pixels, every resolution) = person size in input pixels / BASE_SIZE x BASE_SIGMA.
    Measured on the rendered target: a Gaussian exp(-d^2 / (2 sigma^2)) has value v at distance d where
    sigma = d / sqrt(-2 ln v)."""
    data = write_tiny_coco(tmp_path, num_images=1, people_per_image=1, crowd=False)
    box = data["annotations"][0]["bbox"]
    ds = build_dataset(cfg_for(tmp_path, *NO_AUGMENT, "DATASET.FLIP", "0.0", "DATASET.SCALE_AWARE_SIGMA", "True",
                               "DATASET.BASE_SIZE", str(base_size), "DATASET.BASE_SIGMA", "2.0"))
    image_h, image_w = 96, 128
    ankle = COCO_KEYPOINTS.index("left_ankle")
    for size, heatmaps in zip(ds.output_sizes, ds[0][1]):
        person_size = max(box[2], box[3]) * 128 / min(image_w, image_h)    # the short side fills the 128 input
        expected = person_size / base_size * 2.0
        heat = heatmaps[ankle].numpy().astype(np.float64)
        y, x = np.unravel_index(heat.argmax(), heat.shape)
        assert heat[y, x] == 1.0
        measured = [d / np.sqrt(-2 * np.log(heat[y, x + d])) for d in (1, 2)] + \
                   [d / np.sqrt(-2 * np.log(heat[y + d, x])) for d in (1, 2)]
        np.testing.assert_allclose(measured, expected, rtol=1e-4)


def test_custom_keypoint_set_from_config(tmp_path):
    root = tmp_path / "hands"
    data = write_tiny_coco(root)
    keep = [COCO_KEYPOINTS.index(n) for n in ("nose", "left_wrist", "right_wrist")]
    for ann in data["annotations"]:
        k = np.array(ann["keypoints"]).reshape(17, 3)[keep]
        ann["keypoints"] = k.reshape(-1).tolist()
        ann["num_keypoints"] = int((k[:, 2] > 0).sum())
    data["categories"][0]["keypoints"] = ["head", "left_hand", "right_hand"]
    (root / "annotations/person_keypoints_train.json").write_text(json.dumps(data))
    opts = ["DATASET.NUM_JOINTS", "3", "MODEL.NUM_JOINTS", "3", "DATASET.DATASET", "hands",
            "DATASET.KEYPOINTS.NAMES", "['head', 'left_hand', 'right_hand']",
            "DATASET.KEYPOINTS.FLIP_PAIRS", "[['left_hand', 'right_hand']]",
            "DATASET.KEYPOINTS.SIGMAS", "[0.05, 0.06, 0.06]"]
    ds = build_dataset(cfg_for(root, *opts))
    image, heatmaps, _, joints = ds[0]
    assert heatmaps[0].shape == (3, 32, 32) and joints[0].shape == (30, 3, 2)
    assert ds.flip_index.tolist() == [0, 2, 1]


def test_dataset_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="annotation file not found: .*person_keypoints_train.json"):
        build_dataset(cfg_for(tmp_path / "nowhere"))
    write_tiny_coco(tmp_path)
    with pytest.raises(higherhrnet.ConfigError, match="14 joints"):
        build_dataset(cfg_for(tmp_path, "DATASET.DATASET", "crowd_pose_kpt"))
    bad = tmp_path / "annotations/person_keypoints_train.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="not a COCO annotation file"):
        build_dataset(cfg_for(tmp_path))


@pytest.mark.skipif(not COCO_MINI.exists(), reason="../shared/data/coco-mini not present")
def test_real_coco_files():
    cfg = tiny_cfg("DATASET.ROOT", str(COCO_MINI), "DATASET.TRAIN", "val2017", "DATASET.TEST", "val2017")
    train = build_dataset(cfg)
    assert len(train) == 4
    people = sum(int((train.source.people(train.source.annotations(i))[0][:, :, 2] > 0).any(axis=1).sum())
                 for i in range(4))
    unlabelled = sum(not train.source.ignore_mask(train.source.annotations(i), train.source.image_info(i)["height"],
                                                   train.source.image_info(i)["width"]).all() for i in range(4))
    assert people == 12 and unlabelled >= 1      # 14 people, 2 of them with no keypoints (masked, not trained)
    for i in range(4):
        image, heatmaps, masks, joints = train[i]
        assert torch.isfinite(image).all() and heatmaps[1].max() <= 1
    evaluation = build_dataset(cfg, is_train=False)
    image, image_id = evaluation[0]
    assert image.dtype == np.uint8 and image.ndim == 3 and image_id == evaluation.source.ids[0]


def test_crowdpose_layout_trains_and_evaluates(tmp_path):
    from higherhrnet.data.metrics import crowdpose_metrics
    from tinycoco import write_tiny_crowdpose

    data = write_tiny_crowdpose(tmp_path)
    cfg = tiny_cfg("DATASET.ROOT", str(tmp_path), "DATASET.TRAIN", "train", "DATASET.TEST", "train",
                   "DATASET.DATASET", "crowd_pose_kpt", "DATASET.DATASET_TEST", "crowd_pose",
                   "DATASET.NUM_JOINTS", "14", "MODEL.NUM_JOINTS", "14")
    ds = build_dataset(cfg)
    image, heatmaps, masks, joints = ds[0]
    assert heatmaps[0].shape == (14, 32, 32) and joints[0].shape == (30, 14, 2)
    assert ds.source.ignore_mask(ds.source.annotations(0), 96, 128).all()   # no outlines in CrowdPose
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in data["annotations"] if a["num_keypoints"] > 0]
    metrics = crowdpose_metrics(ds.source.annotation_file, results, ds.source.keypoints.sigmas_array)
    assert set(metrics) == {"AP", "AP .5", "AP .75", "AR", "AR .5", "AR .75", "AP (easy)", "AP (medium)", "AP (hard)"}
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP (medium)"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["w32_512_adam_lr1e-3", "w32_512_adam_lr1e-3_coco", "w32_512_adam_lr1e-3_syncbn",
                                  "w32_640_adam_lr1e-3", "w48_640_adam_lr1e-3"])
def test_official_crowdpose_files_load_train_and_evaluate(tmp_path, name):
    """The official CrowdPose experiment files load unchanged (no warning) and run: two training iterations
    and a CrowdPose evaluation, with the network shrunk to the tiny test widths and the data to 3 images."""
    import warnings

    from conftest import EXPERIMENTS, TINY_OPTS
    from higherhrnet.engine import Trainer
    from tinycoco import write_tiny_crowdpose

    path = EXPERIMENTS / "crowd_pose" / "higher_hrnet" / f"{name}.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        official = higherhrnet.load_cfg(path)
    assert (official.DATASET.DATASET, official.MODEL.NUM_JOINTS) == ("crowd_pose_kpt", 14)
    write_tiny_crowdpose(tmp_path / "data", split=official.DATASET.TRAIN)
    write_tiny_crowdpose(tmp_path / "data", split=official.DATASET.TEST, seed=1)
    cfg = higherhrnet.load_cfg(path, TINY_OPTS + [
        "DATASET.ROOT", str(tmp_path / "data"), "MODEL.PRETRAINED", "", "WORKERS", "0", "TRAIN.IMAGES_PER_GPU", "2", "TRAIN.END_EPOCH", "1",
        "TRAIN.MAX_ITERS_PER_EPOCH", "2", "TRAIN.VAL_FREQ", "1", "OUTPUT_DIR", str(tmp_path / "out"),
        "LOG_DIR", str(tmp_path / "log")])
    trainer = Trainer(cfg, f"{name}.yaml", device="cpu")
    result = trainer.run()
    assert set(result["epochs"][0]["val"]) >= {"AP", "AP (easy)", "AP (hard)"}
    assert np.isfinite(result["epochs"][0]["loss"])
