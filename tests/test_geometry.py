"""geometry.py: the test-time affine (multi-scale resize) and the training crop, one pixel convention."""
from __future__ import annotations

import numpy as np
import pytest

from higherhrnet import COCO_KEYPOINTS
from higherhrnet.data.transforms import AugmentParams, random_affine, warp_sample
from higherhrnet.geometry import (apply_affine, crop_matrix, get_affine_transform, mirror_matrix, multi_scale_size,
                                  warp_image)


# ---------------------------------------------------------------- test-time resize (get_affine_transform)

@pytest.mark.parametrize("w,h,scale,min_scale,expected", [
    (480, 640, 1.0, 1.0, (512, 704)),     # short side -> 512, long side rounded UP to a multiple of 64
    (640, 425, 1.0, 1.0, (832, 512)),
    (640, 425, 2.0, 0.5, (1792, 1024)),   # min_size 256 -> long side 448 at 0.5, x4 at 2.0
    (640, 425, 0.5, 0.5, (448, 256)),
    (512, 512, 1.0, 1.0, (512, 512)),
])
def test_multi_scale_sizes(w, h, scale, min_scale, expected):
    size, center, _ = multi_scale_size(w, h, 512, scale, min_scale)
    assert size == expected
    assert center.tolist() == [int(w / 2 + 0.5), int(h / 2 + 0.5)]


@pytest.mark.parametrize("w,h", [(480, 640), (640, 425), (97, 301)])
def test_resize_keeps_aspect_and_maps_short_side_exactly(w, h):
    size, center, scale = multi_scale_size(w, h, 512, 1.0, 1.0)
    m = get_affine_transform(center, scale, 0, size)
    short_axis = 0 if w < h else 1
    ends = apply_affine(np.array([[0.0, 0.0], [w, h]]), m)
    assert ends[1, short_axis] - ends[0, short_axis] == pytest.approx(512, abs=1e-3)
    # Same factor on both axes (no stretching).
    assert (ends[1, 0] - ends[0, 0]) / w == pytest.approx((ends[1, 1] - ends[0, 1]) / h, rel=1e-6)


@pytest.mark.parametrize("point", [(10, 20), (200, 33), (301, 399)])
def test_single_pixel_survives_the_warp_and_maps_back(point):
    w, h = 320, 400
    image = np.zeros((h, w, 3), np.uint8)
    image[point[1], point[0]] = 255
    for s in (1.0, 2.0):
        size, center, scale = multi_scale_size(w, h, 256, s, 1.0)
        m = get_affine_transform(center, scale, 0, size)
        warped = warp_image(image, m, size)[:, :, 0].astype(np.float64)
        # The bilinear footprint's centre of mass lands where the affine sends the point.
        ys, xs = np.nonzero(warped)
        com = np.array([(xs * warped[ys, xs]).sum(), (ys * warped[ys, xs]).sum()]) / warped[ys, xs].sum()
        expected = apply_affine(np.array(point, float), m)
        assert np.abs(com - expected).max() < 0.75 * s
        inverse = get_affine_transform(center, scale, 0, size, inv=True)
        np.testing.assert_allclose(apply_affine(expected, inverse), point, atol=1e-3)


def test_rotation_turns_counter_clockwise_about_the_centre():
    m = get_affine_transform((100, 100), (1.0, 1.0), 90, (200, 200))
    # A point above the centre (smaller y) ends up to its left after a 90 degree turn of the source.
    out = apply_affine(np.array([100.0, 50.0]), m)
    np.testing.assert_allclose(out, [50.0, 100.0], atol=1e-4)


# ---------------------------------------------------------------- training crop (crop_matrix, warp_sample)

@pytest.mark.parametrize("center,scale,rot", [((100.0, 80.0), 1.3, 0.0), ((57.5, 140.25), 0.6, 25.0),
                                              ((300.0, 200.0), 2.0, -90.0)])
def test_training_crop_is_the_test_time_affine_of_the_same_square(center, scale, rot):
    """The docstring of geometry.py: crop_matrix and get_affine_transform describe the same crop."""
    size = 128
    train = crop_matrix(center, scale, size, rot)
    test = get_affine_transform(center, (scale, scale), rot, (size, size))
    np.testing.assert_allclose(train[:2], test, atol=1e-3)
    assert train[2].tolist() == [0.0, 0.0, 1.0]


def test_mirror_maps_pixel_centres_onto_pixel_centres():
    image = np.zeros((4, 7, 3), np.uint8)
    image[1, 2] = 255
    mirrored = warp_image(image, mirror_matrix(7)[:2], (7, 4))
    assert list(zip(*np.nonzero(mirrored[:, :, 0]))) == [(1, 4)]
    assert apply_affine(np.array([2.0, 1.0]), mirror_matrix(7)[:2]).tolist() == [4.0, 1.0]


def _centre_of_mass(channel: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(channel)
    weights = channel[ys, xs].astype(np.float64)
    return np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()


@pytest.mark.parametrize("seed", range(6))
def test_single_pixel_training_warp_with_rotation_scale_and_flip(seed):
    """Paint a pixel at each wrist, warp image, mask and joints with one drawn augmentation: the painted pixels
    land where the joints land, at the input and at every output resolution, and a flip swaps the wrists."""
    w, h, input_size, output_sizes = 240, 180, 128, [32, 64]
    left, right = COCO_KEYPOINTS.index("left_wrist"), COCO_KEYPOINTS.index("right_wrist")
    joints = np.zeros((1, 17, 3))
    joints[0, left] = (90.0, 70.0, 2)
    joints[0, right] = (150.0, 110.0, 2)
    image = np.zeros((h, w, 3), np.uint8)
    image[70, 90, 0] = 255      # red: the left wrist
    image[110, 150, 1] = 255    # green: the right wrist
    mask = np.zeros((h, w), bool)
    mask[60:81, 80:101] = True  # a 21 x 21 square around the left wrist
    # Strong rotation, scale and translation, and a flip every other seed.
    params = AugmentParams(min_scale=0.9, max_scale=1.3, max_rotation=40, max_translate=10, flip_prob=float(seed % 2))
    matrix, flip = random_affine(w, h, input_size, params, np.random.default_rng(seed))
    assert flip == bool(seed % 2)
    warped, masks, joints_out = warp_sample(image, mask, joints, matrix, flip, COCO_KEYPOINTS.flip_index,
                                            input_size, output_sizes)
    # After a flip the person's left wrist is the original right wrist (green), and the other way round.
    red_joint, green_joint = (right, left) if flip else (left, right)
    for size, joints_o, mask_o in zip(output_sizes, joints_out, masks):
        at_input = joints_o[0, :, :2] * input_size / size
        np.testing.assert_allclose(_centre_of_mass(warped[:, :, 0]), at_input[red_joint], atol=0.6)
        np.testing.assert_allclose(_centre_of_mass(warped[:, :, 1]), at_input[green_joint], atol=0.6)
        assert joints_o[0, red_joint, 2] == joints_o[0, green_joint, 2] == 2
        # The mask square stays around the red joint, at this output's resolution.
        x, y = joints_o[0, red_joint, :2].round().astype(int)
        assert mask_o[y, x] == 1.0 and mask_o.sum() < mask_o.size / 4
