"""higherhrnet.oks: visible joints, the pose box and area, OKS and duplicate removal, defined once for the
Predictor (oks_nms, Person.box, Person.to_coco) and the tracker."""
from __future__ import annotations

import math

import numpy as np
import pytest

from higherhrnet.keypoints import COCO_KEYPOINTS
from higherhrnet.oks import MIN_AREA, numpy1_argsort, oks_matrix, oks_nms, pose_area, pose_box, visible_joints
from higherhrnet.predictor import Person

SIGMAS = COCO_KEYPOINTS.sigmas_array
J = len(SIGMAS)


def test_oks_matrix_by_hand():
    sigmas = np.array([0.1, 0.1])
    reference = np.array([[[0.0, 0.0, 1.0], [100.0, 100.0, 1.0]]])      # box 100 x 100
    moved = np.array([[[20.0, 0.0, 1.0], [100.0, 100.0, 1.0]]])          # joint 0 moved 20 px
    # COCO: exp(-d^2 / (2 area (2 sigma)^2)) = exp(-400 / (2 * 10000 * 0.04)) = exp(-0.5).
    assert oks_matrix(reference, moved, sigmas, 0.2)[0, 0] == pytest.approx((math.exp(-0.5) + 1) / 2)
    # The area is the reference's: the moved pose's box is 80 x 100.
    assert oks_matrix(moved, reference, sigmas, 0.2)[0, 0] == pytest.approx((math.exp(-0.625) + 1) / 2)
    # Only joints visible in both count.
    hidden = moved.copy()
    hidden[0, 1, 2] = 0.1
    assert oks_matrix(reference, hidden, sigmas, 0.2)[0, 0] == pytest.approx(math.exp(-0.5))
    hidden[0, 0, 2] = 0.1
    assert np.isnan(oks_matrix(reference, hidden, sigmas, 0.2)[0, 0])
    # A single visible joint spans no area: compared as a 32 x 32 box.
    single = reference.copy()
    single[0, 1, 2] = 0.0
    assert oks_matrix(single, moved, sigmas, 0.2)[0, 0] == pytest.approx(math.exp(-400 / (2 * 1024 * 0.04)))
    # A known area (COCO's annotated one) is used as it is, below MIN_AREA too.
    assert oks_matrix(single, moved, sigmas, 0.2, areas=[100.0])[0, 0] == pytest.approx(
        math.exp(-400 / (2 * 100 * 0.04)))


def test_oks_matrix_is_every_pair():
    rng = np.random.default_rng(3)
    reference = np.concatenate([rng.uniform(0, 200, (3, J, 2)), rng.uniform(0, 1, (3, J, 1))], axis=2)
    candidates = np.concatenate([rng.uniform(0, 200, (4, J, 2)), rng.uniform(0, 1, (4, J, 1))], axis=2)
    matrix = oks_matrix(reference, candidates, SIGMAS, 0.3)
    assert matrix.shape == (3, 4)
    for t in range(3):
        for p in range(4):
            assert matrix[t, p] == pytest.approx(oks_matrix(reference[t:t + 1], candidates[p:p + 1], SIGMAS, 0.3)[0, 0],
                                                 nan_ok=True)


def test_visible_joints():
    poses = np.array([[[1, 1, 0.5], [1, 1, 0.2], [1, 1, 0.19], [1, 1, 0.0], [np.nan, 1, 0.9], [1, 1, np.nan]]])
    assert visible_joints(poses, 0.2).tolist() == [[True, True, False, False, False, False]]
    # Value 0 marks a joint the grouping never found: not visible at any threshold.
    assert visible_joints(poses, 0.0).tolist() == [[True, True, True, False, False, False]]
    assert visible_joints(poses, -1.0).tolist() == [[True, True, True, False, False, False]]


def test_pose_box_around_visible_joints_else_all():
    pose = np.array([[10, 20, 0.9], [30, 60, 0.5], [0, 0, 0.0], [200, 5, 0.1]])
    assert pose_box(pose, visible_joints(pose, 0.2)).tolist() == [10, 20, 20, 40]
    assert pose_box(pose, visible_joints(pose, 0.95)).tolist() == [0, 0, 200, 60]    # none visible: all
    assert pose_box(pose).tolist() == [0, 0, 200, 60]                                # None: all joints
    nowhere = np.full((3, 3), np.nan)
    assert np.isnan(pose_box(nowhere, visible_joints(nowhere, 0.2))).all()
    # Leading dimensions are batches.
    boxes = pose_box(np.stack([pose, pose + [1, 1, 0]]), visible_joints(np.stack([pose, pose]), 0.2))
    assert boxes.tolist() == [[10, 20, 20, 40], [11, 21, 20, 40]]


def test_pose_area_is_the_box_area_at_least_min_area():
    assert MIN_AREA == 32 ** 2
    assert pose_area(np.array([[0, 0, 100, 50], [5, 5, 0, 80], [0, 0, 10, 10]])).tolist() == [5000, 1024, 1024]


def test_person_box_and_coco_bbox_are_the_pose_box():
    keypoints = np.array([[10, 20, 0.9], [30, 60, 0.5], [0, 0, 0.0], [200, 5, 0.1]], np.float32)
    person = Person(keypoints=keypoints, score=0.4, tags=np.zeros((4, 1), np.float32))
    assert person.box() == (10.0, 20.0, 20.0, 40.0)
    assert person.box(0.1) == (10.0, 5.0, 190.0, 55.0)
    assert person.box(0.95) == (0.0, 0.0, 200.0, 60.0)
    assert person.to_json()["box"] == [10.0, 20.0, 20.0, 40.0]
    assert person.to_coco(1)["bbox"] == [10.0, 20.0, 20.0, 40.0]            # the same box everywhere
    assert person.to_coco(1, threshold=0.95)["bbox"] == [0.0, 0.0, 200.0, 60.0]


def pose_at(x: float, y: float, size: float = 100.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pose = np.empty((J, 3))
    pose[:, :2] = (x, y) + rng.uniform(-size / 2, size / 2, (J, 2))
    pose[:, 2] = 0.8
    return pose


def test_oks_nms_drops_duplicates_of_better_poses():
    a = pose_at(100, 100)
    duplicate = a + [2, 1, 0]
    far = pose_at(400, 100, seed=1)
    keypoints = np.stack([duplicate, far, a])
    assert oks_nms(keypoints, np.array([0.5, 0.6, 0.9]), SIGMAS, 0.5).tolist() == [1, 2]
    assert oks_nms(keypoints, np.array([0.95, 0.6, 0.9]), SIGMAS, 0.5).tolist() == [0, 1]
    # Equal scores: the earlier pose is kept.
    assert oks_nms(keypoints, np.array([0.9, 0.6, 0.9]), SIGMAS, 0.5).tolist() == [0, 1]
    # A higher threshold keeps the near-duplicate.
    assert oks_nms(keypoints, np.array([0.5, 0.6, 0.9]), SIGMAS, 0.999).tolist() == [0, 1, 2]
    assert oks_nms(np.zeros((0, J, 3)), np.zeros(0), SIGMAS, 0.5).tolist() == []


def test_oks_nms_compares_the_joints_found_in_both():
    a = pose_at(100, 100)
    # A fragment of `a` (five of its joints found, the others never found: value 0, at the origin) is a
    # duplicate; a pose with no joint found is compared with nothing and kept.
    fragment = a.copy()
    fragment[5:, :] = 0.0
    nothing = np.zeros((J, 3))
    kept = oks_nms(np.stack([a, fragment, nothing]), np.array([0.9, 0.3, 0.0]), SIGMAS, 0.5)
    assert kept.tolist() == [0, 2]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"reference must have shape \(N, 17, 3\)"):
        oks_matrix(np.zeros((1, 14, 3)), np.zeros((1, 17, 3)), SIGMAS, 0.2)
    with pytest.raises(ValueError, match="candidates must have shape"):
        oks_matrix(np.zeros((1, 17, 3)), np.zeros((1, 17, 2)), SIGMAS, 0.2)


def test_numpy1_argsort_orders_equal_values_as_numpy_1():
    """The expected orders are np.argsort's under NumPy 1.26.4 (x86-64 without AVX-512), printed there."""
    # 16 or fewer: insertion sort, equal values in their order
    assert numpy1_argsort(np.zeros(16)).tolist() == list(range(16))
    # from 17: median-of-3 quicksort partitions
    assert numpy1_argsort(np.zeros(17)).tolist() == [0, 14, 13, 12, 11, 10, 9, 15, 8, 6, 5, 4, 3, 2, 1, 7, 16]
    values = np.array([0.5, 0.2, 0.5, 0.9, 0.2, 0.5, 0.2, 0.9, 0.5, 0.2] * 4)
    assert numpy1_argsort(values).tolist() == [
        19, 36, 34, 31, 29, 26, 24, 21, 16, 14, 11, 39, 1, 9, 4, 6, 12, 35, 2, 32, 30, 28, 5, 10, 25, 22, 20, 38,
        18, 8, 15, 0, 7, 27, 3, 17, 33, 13, 37, 23]
    # NaN last, as NumPy orders it
    values = np.array([1.0, np.nan, 0.0, 1.0, np.nan, 0.0] * 3)
    assert numpy1_argsort(values).tolist() == [8, 14, 11, 5, 17, 2, 3, 6, 9, 12, 15, 0, 7, 16, 10, 13, 1, 4]
    # no two equal: the one order
    values = np.random.default_rng(0).permutation(50).astype(np.float32)
    assert numpy1_argsort(values).tolist() == np.argsort(values).tolist()
    assert numpy1_argsort(np.zeros(0)).tolist() == []
    with pytest.raises(ValueError, match="1-D"):
        numpy1_argsort(np.zeros((2, 2)))
