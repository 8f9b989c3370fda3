"""data/registry.py: dataset name -> keypoint set, file layout and metric."""
from __future__ import annotations

import os

import pytest

from higherhrnet import COCO_KEYPOINTS, ConfigError
from higherhrnet.data import dataset_info, keypoints_from_config
from higherhrnet.data.metrics import COCO_METRICS, CROWDPOSE_METRICS
from higherhrnet.keypoints import CROWDPOSE_KEYPOINTS

from conftest import tiny_cfg


@pytest.mark.parametrize("name,keypoints,annotations,images,metrics", [
    ("coco_kpt", COCO_KEYPOINTS, "annotations/person_keypoints_val2017.json", "images/val2017", COCO_METRICS),
    ("coco", COCO_KEYPOINTS, "annotations/person_keypoints_val2017.json", "images/val2017", COCO_METRICS),
    ("synthetic", COCO_KEYPOINTS, "annotations/person_keypoints_val2017.json", "images/val2017", COCO_METRICS),
    ("crowd_pose_kpt", CROWDPOSE_KEYPOINTS, "json/crowdpose_val2017.json", "images", CROWDPOSE_METRICS),
    ("crowd_pose", CROWDPOSE_KEYPOINTS, "json/crowdpose_val2017.json", "images", CROWDPOSE_METRICS),
    ("my_birds", None, "annotations/person_keypoints_val2017.json", "images/val2017", COCO_METRICS),
])
def test_registered_and_custom_datasets(name, keypoints, annotations, images, metrics):
    info = dataset_info(name)
    assert info.keypoints is keypoints
    assert info.paths("/d", "val2017") == (os.path.join("/d", annotations), os.path.join("/d", images))
    assert info.metric_names == metrics and info.main_metric == "AP"


def test_coco_test_dev_has_its_own_image_list(tmp_path):
    ann, images = dataset_info("coco").paths(str(tmp_path), "test-dev2017")
    assert ann.endswith("annotations/image_info_test-dev2017.json") and images.endswith("images/test2017")


def test_keypoints_come_from_the_registry_or_the_config():
    assert keypoints_from_config(tiny_cfg()) is COCO_KEYPOINTS
    custom = tiny_cfg("DATASET.DATASET", "birds", "DATASET.NUM_JOINTS", "2", "MODEL.NUM_JOINTS", "2",
                      "DATASET.KEYPOINTS.NAMES", "['beak', 'tail']", "DATASET.KEYPOINTS.SIGMAS", "[0.05, 0.05]")
    assert keypoints_from_config(custom).names == ("beak", "tail")
    with pytest.raises(ConfigError, match="no keypoint set is registered for dataset 'birds'"):
        keypoints_from_config(tiny_cfg("DATASET.DATASET", "birds"))
    with pytest.raises(ConfigError, match="has 17 joints but DATASET.NUM_JOINTS is 14"):
        keypoints_from_config(tiny_cfg("DATASET.NUM_JOINTS", "14", "MODEL.NUM_JOINTS", "14"))


def test_only_the_synthetic_data_has_no_real_people():
    assert not dataset_info("synthetic").real_people
    assert all(dataset_info(name).real_people for name in ("coco", "coco_kpt", "crowd_pose", "my_birds"))
