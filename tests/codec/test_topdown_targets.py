"""codec.targets.topdown_targets against hand-computed Gaussians and weights (the official generate_target)."""
import numpy as np
import pytest

from higherhrnet.codec.targets import topdown_targets

IMAGE, HEATMAP = (96, 128), (24, 32)      # (width, height): stride 4


def g(d2, sigma=2.0):
    return np.float32(np.exp(-d2 / (2 * sigma ** 2)))


def encode(joints_xy, visible, sigma=2.0):
    return topdown_targets(np.asarray(joints_xy, float), np.asarray(visible, float), IMAGE, HEATMAP, sigma)


def test_a_visible_joint_gets_a_gaussian_at_its_rounded_heatmap_pixel():
    # x / 4 + 0.5 = 10.75 -> 10, y / 4 + 0.5 = 12.5 -> 12
    maps, weights = encode([[41.0, 48.0]], [1])
    assert maps.shape == (1, 32, 24) and maps.dtype == np.float32 and weights.shape == (1, 1)
    assert weights[0, 0] == 1
    assert maps[0, 12, 10] == 1.0
    assert maps[0, 12, 11] == pytest.approx(g(1), abs=1e-7)
    assert maps[0, 13, 11] == pytest.approx(g(2), abs=1e-7)
    assert maps[0, 18, 10] == pytest.approx(g(36), abs=1e-9)      # 3 sigma below: still in the window
    assert maps[0, 19, 10] == 0 and maps[0, 5, 10] == 0           # window [mu - 6, mu + 7)
    assert maps[0, 6, 10] == pytest.approx(g(36), abs=1e-9)
    assert np.count_nonzero(maps) == 13 * 13


def test_invisible_joints_have_weight_zero_and_no_gaussian():
    maps, weights = encode([[40.0, 48.0], [20.0, 20.0]], [0, 1])
    assert weights[:, 0].tolist() == [0, 1]
    assert not maps[0].any() and maps[1].max() == 1


def test_joints_whose_window_is_off_the_map_get_weight_zero():
    joints = [
        [-40.0, 48.0],    # mu_x = int(-9.5) = -9: window [-15, -2) wholly left -> weight 0
        [-30.0, 48.0],    # mu_x = int(-7.0) = -7: window [-13, 0) ends at 0, not < 0 -> weight 1, empty map
        [2.0, 48.0],      # mu_x = 1: window clipped at the left edge
        [118.0, 48.0],    # mu_x = 30: window starts at 24 = width -> weight 0
        [114.0, 48.0],    # mu_x = 29: window starts at 23, one column on the map
        [40.0, 160.0],    # mu_y = 40: window starts at 34 > 32 -> weight 0
        [-2.5, 48.0],     # -0.625 + 0.5 = -0.125 truncates to 0 (toward zero), not -1
    ]
    maps, weights = encode(joints, [1] * len(joints))
    assert weights[:, 0].tolist() == [0, 1, 1, 0, 1, 0, 1]
    assert not maps[0].any() and not maps[1].any() and not maps[3].any() and not maps[5].any()
    assert maps[2, 12, 1] == 1.0 and maps[2, 12, 0] == pytest.approx(g(1), abs=1e-7)
    assert np.count_nonzero(maps[2]) == 13 * 8                    # columns 0..7
    assert np.count_nonzero(maps[4]) == 13 and maps[4, 12, 23] == pytest.approx(g(36), abs=1e-9)
    assert maps[6, 12, 0] == 1.0


def test_sigma_sets_the_window_and_the_width():
    maps, _ = encode([[40.0, 48.0]], [1], sigma=1.0)
    assert maps[0, 12, 11] == pytest.approx(g(1, 1.0), abs=1e-7)
    assert np.count_nonzero(maps) == 7 * 7
