from __future__ import annotations

import numpy as np
import pytest

from higherhrnet.codec.targets import heatmap_targets, joint_indices, person_sigmas


def people(*rows):
    """people((x, y, v), ...) for one joint type per call -> (P, 1, 3)."""
    return np.array(rows, dtype=np.float64)[:, None, :]


def test_peak_sits_on_the_joint_with_value_one():
    joints = np.zeros((1, 3, 3))
    joints[0] = [[10, 20, 2], [0, 0, 0], [31, 0, 1]]
    maps = heatmap_targets(joints, 32, 2.0)
    assert maps.shape == (3, 32, 32) and maps.dtype == np.float32
    assert np.unravel_index(maps[0].argmax(), maps[0].shape) == (20, 10) and maps[0, 20, 10] == 1.0
    assert not maps[1].any()                        # unlabelled joint: nothing
    assert maps[2, 0, 31] == 1.0                    # on the border


def test_gaussian_values_and_cut_off():
    maps = heatmap_targets(people((16, 16, 2)), 40, 2.0)[0]
    assert maps[16, 18] == pytest.approx(np.exp(-4 / 8), rel=1e-6)
    assert maps[19, 20] == pytest.approx(np.exp(-(9 + 16) / 8), rel=1e-6)
    assert maps[16, 16 + 7] > 0 and maps[16, 16 + 8] == 0    # window of 3 sigma + 1 = 7 pixels


def test_integer_part_and_truncation_toward_zero():
    maps = heatmap_targets(people((5.9, 7.2, 2), (-0.4, 3.5, 2), (-1.2, 3, 2)), 16, 2.0)[0]
    assert maps[7, 5] == 1.0          # sub-pixel position: centred on its integer part
    assert maps[3, 0] == 1.0          # x = -0.4 truncates to column 0, as the reference
    assert maps[:, :].max() == 1.0 and np.count_nonzero(maps == 1.0) == 2   # x = -1.2 is off the map


def test_maximum_over_people():
    maps = heatmap_targets(people((10, 10, 2), (12, 10, 2)), 24, 2.0)[0]
    assert maps[10, 10] == 1.0 and maps[10, 12] == 1.0
    assert maps[10, 11] == pytest.approx(np.exp(-1 / 8), rel=1e-6)


def test_per_person_sigma():
    maps = heatmap_targets(people((8, 8, 2), (30, 8, 2)), 40, np.array([1.0, 3.0]))[0]
    assert maps[8, 10] == pytest.approx(np.exp(-4 / 2), rel=1e-6)
    assert maps[8, 32] == pytest.approx(np.exp(-4 / 18), rel=1e-6)
    assert maps[8, 8 + 4] > 0 and maps[8, 8 + 5] == 0 and maps[8, 30 + 9] > 0   # reach 4 and 10 pixels


def test_joint_indices_decode_back():
    rng = np.random.default_rng(0)
    size, j = 16, 4
    joints = np.concatenate([rng.uniform(-2, 18, (5, j, 2)), (rng.random((5, j, 1)) > 0.3) * 2.0], axis=2)
    out = joint_indices(joints, size, max_people=6)
    assert out.shape == (6, j, 2) and out.dtype == np.int32
    for p in range(5):
        xs, ys = joints[p, :, 0].astype(int), joints[p, :, 1].astype(int)
        expected = [(k, ys[k], xs[k]) for k in range(j)
                    if joints[p, k, 2] > 0 and 0 <= xs[k] < size and 0 <= ys[k] < size]
        slots = out[p][out[p, :, 1] > 0, 0]
        decoded = [(int(i) // size ** 2, int(i) % size ** 2 // size, int(i) % size) for i in slots]
        assert decoded == expected                   # packed in joint order
    assert not out[5].any()


def test_joint_indices_single_tag_map_and_too_many_people():
    joints = np.tile(np.array([[[3, 2, 2], [5, 1, 2]]], dtype=np.float64), (40, 1, 1))
    out = joint_indices(joints, 8, max_people=30, tag_per_joint=False)
    assert out.shape == (30, 2, 2)
    assert out[0].tolist() == [[2 * 8 + 3, 1], [1 * 8 + 5, 1]]


def test_no_people():
    assert not heatmap_targets(np.zeros((0, 17, 3)), 8, 2.0).any()
    assert not joint_indices(np.zeros((0, 17, 3)), 8, 30).any()


def test_scale_aware_sigmas():
    sig = person_sigmas(np.array([[128, 256], [64, 32]]), base_size=256, base_sigma=2.0)
    np.testing.assert_allclose(sig, [2.0, 0.5])
    np.testing.assert_allclose(person_sigmas(np.array([[100, 50]]), 256, 2.0, int_sigma=True), [1.0])


def plain_heatmaps(joints, size, sigmas):
    """Loops over people, joints and window pixels: exp(-d^2 / 2 sigma^2) within floor(3 sigma + 1) pixels of
    the joint's integer position, the maximum where people overlap."""
    maps = np.zeros((joints.shape[1], size, size), np.float32)
    for p, person in enumerate(joints):
        s = float(sigmas[p])
        r = int(np.floor(3 * s + 1))
        for j, (x, y, v) in enumerate(person):
            xi, yi = int(x), int(y)
            if v <= 0 or not (0 <= xi < size and 0 <= yi < size):
                continue
            for py in range(max(yi - r, 0), min(yi + r + 1, size)):
                for px in range(max(xi - r, 0), min(xi + r + 1, size)):
                    value = np.float32(np.exp(-((px - xi) ** 2 + (py - yi) ** 2) / (2 * s ** 2)))
                    maps[j, py, px] = max(maps[j, py, px], value)
    return maps


@pytest.mark.parametrize("seed", range(6))
def test_heatmaps_equal_plain_loops(seed):
    rng = np.random.default_rng(seed)
    people, size = int(rng.integers(1, 5)), int(rng.choice([16, 32]))
    joints = np.zeros((people, 5, 3))
    joints[..., :2] = rng.uniform(-4, size + 4, (people, 5, 2))
    joints[..., 2] = rng.integers(0, 3, (people, 5))
    sigmas = rng.uniform(0.3, 3.0, people) if seed % 2 else np.full(people, 2.0)
    assert np.array_equal(heatmap_targets(joints, size, sigmas if seed % 2 else 2.0),
                          plain_heatmaps(joints, size, sigmas))


@pytest.mark.parametrize("sigma", [2.0, 1.5, 0.7, 4.0])
def test_one_sigma_for_all_equals_a_sigma_per_person(sigma):
    """One sigma (its window kept per process) paints what the same sigma given per person paints."""
    rng = np.random.default_rng(int(sigma * 10))
    joints = np.concatenate([rng.uniform(-5, 69, (6, 17, 2)), rng.integers(0, 3, (6, 17, 1))], axis=2)
    for _ in range(2):                                     # the second call uses the kept window
        assert np.array_equal(heatmap_targets(joints, 64, sigma), heatmap_targets(joints, 64, np.full(6, sigma)))
