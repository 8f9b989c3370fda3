from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.cocoeval import Params

from higherhrnet import COCO_KEYPOINTS, KeypointSpec

from conftest import COCO_MINI


def test_coco_flip_index_matches_reference():
    # reference-behaviour.md: COCO flip index 0,2,1,4,3,6,5,8,7,10,9,12,11,14,13,16,15
    assert COCO_KEYPOINTS.flip_index.tolist() == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def test_coco_grouping_order_matches_reference():
    assert COCO_KEYPOINTS.grouping_indices.tolist() == [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16]


def test_coco_sigmas_equal_pycocotools():
    np.testing.assert_allclose(COCO_KEYPOINTS.sigmas_array, Params(iouType="keypoints").kpt_oks_sigmas)


@pytest.mark.skipif(not COCO_MINI.exists(), reason="../shared/data/coco-mini not present")
def test_coco_names_and_skeleton_equal_the_coco_category():
    data = json.loads((COCO_MINI / "annotations/person_keypoints_val2017.json").read_text())
    person = next(c for c in data["categories"] if c["name"] == "person")
    assert list(COCO_KEYPOINTS.names) == person["keypoints"]
    ours = {frozenset(p) for p in (COCO_KEYPOINTS.skeleton_indices + 1).tolist()}
    assert ours == {frozenset(p) for p in person["skeleton"]}


def test_flip_index_is_an_involution():
    perm = COCO_KEYPOINTS.flip_index
    assert (perm[perm] == np.arange(17)).all()


def _spec(**changes):
    args = dict(name="toy", names=("head", "left_hand", "right_hand"),
                flip_pairs=(("left_hand", "right_hand"),), sigmas=(0.1, 0.2, 0.2))
    args.update(changes)
    return KeypointSpec.from_lists(**args)


def test_custom_spec_derives_everything():
    spec = _spec(skeleton=(("head", "left_hand"),), grouping_order=("left_hand", "head", "right_hand"))
    assert spec.num_joints == 3
    assert spec.flip_index.tolist() == [0, 2, 1]
    assert spec.grouping_indices.tolist() == [1, 0, 2]
    assert spec.skeleton_indices.tolist() == [[0, 1]]
    assert spec.index("right_hand") == 2
    with pytest.raises(KeyError, match="no joint 'tail'"):
        spec.index("tail")


@pytest.mark.parametrize("changes,message", [
    (dict(flip_pairs=()), "look symmetric but are not a flip pair"),
    (dict(flip_pairs=(("left_hand", "right_hand"), ("right_hand", "head"))), "more than one flip pair"),
    (dict(flip_pairs=(("left_hand", "right_foot"),)), "unknown joint 'right_foot'"),
    (dict(sigmas=(0.1, 0.2)), "2 sigmas for 3 joints"),
    (dict(sigmas=(0.1, 0.2, 0.3)), "different sigmas"),
    (dict(names=("head", "head", "x"), flip_pairs=()), "duplicate joint names"),
    (dict(grouping_order=("head",)), "grouping_order"),
    (dict(skeleton=(("head", "head"),)), "links a joint to itself"),
])
def test_invalid_specs_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        _spec(**changes)
