"""vis.py: pictures of network outputs (colour map, heatmap grid, tag map)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from higherhrnet.vis import colorize, heatmap_grid, tag_map_image


def test_colorize_runs_from_blue_to_red_and_clips():
    out = colorize(np.array([[0.0, 1.0, -5.0, 7.0, np.nan]]))
    assert out.shape == (1, 5, 3) and out.dtype == np.uint8
    low, high = out[0, 0].astype(int), out[0, 1].astype(int)
    assert low[2] > low[0] and high[0] > high[2]                 # RGB: blue end, red end
    assert (out[0, 2] == out[0, 0]).all() and (out[0, 3] == out[0, 1]).all() and (out[0, 4] == out[0, 0]).all()
    np.testing.assert_array_equal(colorize(np.array([[10.0, 20.0]]), low=10, high=20), out[:, :2])
    with pytest.raises(ValueError, match=r"expected an \(H, W\) array"):
        colorize(np.zeros((2, 2, 2)))


def test_heatmap_grid_places_the_max_then_each_joint():
    heatmaps = np.zeros((3, 6, 12), np.float32)
    heatmaps[1, 2, 5] = 1.0                                     # joint 1 only
    grid = heatmap_grid(heatmaps, tile_side=12, gap=2)          # 4 tiles of 6 x 12, 2 per row
    assert grid.shape == (2 * 6 + 2, 2 * 12 + 2, 3) and grid.dtype == np.uint8
    hot, cold = colorize(np.ones((1, 1)))[0, 0], colorize(np.zeros((1, 1)))[0, 0]
    tiles = {"max": (0, 0), "joint 0": (0, 14), "joint 1": (8, 0), "joint 2": (8, 14)}
    for name, (y, x) in tiles.items():
        expected = hot if name in ("max", "joint 1") else cold
        assert (grid[y + 2, x + 5] == expected).all(), name
        assert (grid[y, x] == cold).all(), name
    assert not grid[6:8].any() and not grid[:, 12:14].any()    # the gaps are black
    assert heatmap_grid(heatmaps, tile_side=6).shape == (2 * 3 + 2, 2 * 6 + 2, 3)   # tiles shrunk to 3 x 6
    assert heatmap_grid(heatmaps, columns=4, gap=0, tile_side=12).shape == (6, 48, 3)
    with pytest.raises(ValueError, match="expected \\(J, H, W\\) heatmaps"):
        heatmap_grid(np.zeros((6, 12)))


def test_tag_map_colours_people_by_tag_and_hides_the_background():
    heatmaps = np.zeros((2, 10, 10), np.float32)
    tags = np.zeros((2, 10, 10), np.float32)
    heatmaps[0, 1:4, 1:4] = 1.0                                 # person A: joint 0, tag -1
    tags[0, 1:4, 1:4] = -1.0
    heatmaps[0, 6:9, 1:4] = 0.5                                 # person B: joint 0 (weaker) and joint 1, tag +1
    tags[0, 6:9, 1:4] = 1.0
    heatmaps[1, 6:9, 6:9] = 1.0
    tags[1, 6:9, 6:9] = 1.0
    tags[1, 1:4, 1:4] = 5.0                                     # joint 1's tag where joint 0 wins: not shown
    out = tag_map_image(tags, heatmaps, threshold=0.1)
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    assert not out[0, 9].any() and not out[5, 5].any()          # background black
    a, b1 = out[2, 2].astype(int), out[7, 7].astype(int)
    assert a[0] > a[1] and a[0] > a[2]                          # smallest tag: red
    assert b1[2] > b1[1] and b1[0] > b1[1]                      # largest tag: violet
    hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(int)
    assert abs(hsv[7, 2, 0] - hsv[7, 7, 0]) <= 1                # one person, one hue
    assert hsv[7, 7, 2] > hsv[7, 2, 2]                          # brighter where the heatmap is higher
    shared = tag_map_image(tags[:1], heatmaps)                  # one tag map for all joints
    assert shared.shape == (10, 10, 3) and not shared[0, 9].any()
    with pytest.raises(ValueError, match="expected tags"):
        tag_map_image(tags[:, :5], heatmaps)
