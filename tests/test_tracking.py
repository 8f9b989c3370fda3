"""PoseTracker on synthetic sequences: stick figures in COCO joint order walking a few pixels a frame."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from higherhrnet.keypoints import COCO_KEYPOINTS
from higherhrnet.oks import oks_matrix
from higherhrnet.tracking import PoseTracker, match_by_oks

SIGMAS = COCO_KEYPOINTS.sigmas_array
J = len(SIGMAS)

# A person 1 unit tall centred on the origin, y down, in COCO order: nose, eyes, ears, shoulders,
# elbows, wrists, hips, knees, ankles (left before right).
FIGURE = np.array([
    (0.00, -0.42), (0.03, -0.45), (-0.03, -0.45), (0.06, -0.43), (-0.06, -0.43),
    (0.12, -0.30), (-0.12, -0.30), (0.16, -0.12), (-0.16, -0.12), (0.18, 0.05), (-0.18, 0.05),
    (0.08, 0.05), (-0.08, 0.05), (0.09, 0.27), (-0.09, 0.27), (0.10, 0.48), (-0.10, 0.48),
])


class Walker:
    """A stick figure `height` px tall, centred at (x, y) in frame 0, moving (vx, vy) px per frame."""

    def __init__(self, x: float, y: float, height: float, vx: float = 0.0, vy: float = 0.0, score: float = 0.9):
        self.x, self.y, self.height, self.vx, self.vy, self.score = x, y, height, vx, vy, score

    def pose(self, frame: int) -> np.ndarray:
        pose = np.empty((J, 3))
        pose[:, :2] = FIGURE * self.height + (self.x + self.vx * frame, self.y + self.vy * frame)
        pose[:, 2] = 0.9
        return pose


def run(tracker: PoseTracker, walkers: list[Walker], num_frames: int, absent=lambda w, f: False) -> np.ndarray:
    """(num_frames, len(walkers)) ids, -1 where a walker is absent from that frame's detections."""
    table = np.full((num_frames, len(walkers)), -1, dtype=np.int64)
    for f in range(num_frames):
        present = [i for i, w in enumerate(walkers) if not absent(i, f)]
        keypoints = np.array([walkers[i].pose(f) for i in present]).reshape(len(present), J, 3)
        scores = np.array([walkers[i].score for i in present], dtype=np.float64)
        table[f, present] = tracker.update(keypoints, scores)
    return table


def three_walkers() -> list[Walker]:
    # Different sizes and directions; scores in decreasing order, so the ids are 1, 2, 3 (and not
    # their left-to-right order, 2, 3, 1).
    return [Walker(500, 200, 150, 3, 1, 0.9), Walker(100, 220, 180, -2, 0, 0.8), Walker(300, 180, 120, 0, 2, 0.7)]


def best_matching_by_brute_force(oks: np.ndarray, threshold: float) -> set:
    """The partial one-to-one matching of acceptable pairs with the largest sum of OKS - threshold."""
    rows, cols = oks.shape
    best, best_value = set(), 0.0
    for k in range(1, min(rows, cols) + 1):
        for picked_rows in itertools.combinations(range(rows), k):
            for picked_cols in itertools.permutations(range(cols), k):
                pairs = list(zip(picked_rows, picked_cols))
                values = [oks[r, c] - threshold for r, c in pairs]
                if all(np.isfinite(v) and v >= 0 for v in values) and sum(values) > best_value:
                    best, best_value = set(pairs), sum(values)
    return best


def test_match_by_oks_is_the_best_thresholded_matching():
    rng = np.random.default_rng(1)
    for trial in range(200):
        oks = rng.uniform(0, 1, size=(rng.integers(1, 5), rng.integers(1, 5)))
        oks[rng.uniform(size=oks.shape) < 0.2] = np.nan
        rows, cols = match_by_oks(oks, 0.4)
        assert set(zip(rows.tolist(), cols.tolist())) == best_matching_by_brute_force(oks, 0.4), oks
    # The case a plain 1 - OKS cost (rejected pairs at cost 1) gets wrong: it pairs track 0 with
    # detection 1 (0.25) so that track 1 can take detection 0 (0.8), and loses the 0.9 pair.
    oks = np.array([[0.9, 0.25], [0.8, 0.1]])
    assert set(zip(*match_by_oks(oks, 0.2))) == {(0, 0)}
    assert len(match_by_oks(np.full((2, 3), np.nan), 0.0)[0]) == 0


def test_three_people_keep_their_ids_for_30_frames():
    ids = run(PoseTracker(SIGMAS), three_walkers(), 30)
    assert (ids == [1, 2, 3]).all()


def test_a_person_leaves_and_a_newcomer_gets_a_new_id():
    walkers = three_walkers() + [Walker(650, 400, 160, -3, 0, 0.95)]
    # Walker 2 leaves after frame 9; the newcomer (highest score of all) enters in frame 10.
    absent = lambda i, f: (i == 2 and f >= 10) or (i == 3 and f < 10)
    ids = run(PoseTracker(SIGMAS), walkers, 20, absent)
    assert (ids[:10] == [1, 2, 3, -1]).all()
    assert (ids[10:] == [1, 2, -1, 4]).all()


@pytest.mark.parametrize("max_missed, kept", [(0, False), (1, False), (2, True), (5, True)])
def test_missing_for_two_frames(max_missed, kept):
    absent = lambda i, f: i == 1 and f in (10, 11)
    ids = run(PoseTracker(SIGMAS, max_missed=max_missed), three_walkers(), 20, absent)
    assert (ids[:, 0] == 1).all() and (ids[:, 2] == 3).all()
    assert (ids[:10, 1] == 2).all() and (ids[10:12, 1] == -1).all()
    assert (ids[12:, 1] == (2 if kept else 4)).all()


@pytest.mark.parametrize("predict_motion", [True, False])
def test_people_crossing_at_different_heights_and_scales(predict_motion):
    # A near person (200 px, lower in the image) and a far one (120 px, higher) walk past each other;
    # their boxes overlap vertically, and horizontally around frame 25.
    walkers = [Walker(100, 300, 200, 6, 0, 0.9), Walker(400, 240, 120, -6, 0, 0.8)]
    ids = run(PoseTracker(SIGMAS, predict_motion=predict_motion), walkers, 50)
    assert (ids == [1, 2]).all()


def fast_crossing(predict_motion: bool) -> np.ndarray:
    # Two people of one size, 8 px apart in height, crossing at 15 px per frame each. In frame 10
    # they are 10 px apart; in frame 11 each stands nearer to where the OTHER was in frame 10.
    walkers = [Walker(100, 300, 160, 15, 0, 0.9), Walker(410, 308, 160, -15, 0, 0.8)]
    return run(PoseTracker(SIGMAS, predict_motion=predict_motion), walkers, 20)


def test_fast_crossing_needs_motion_prediction():
    assert (fast_crossing(predict_motion=True) == [1, 2]).all()
    # Without prediction the nearest last pose wins and the ids swap: what the prediction is for.
    assert (fast_crossing(predict_motion=False)[-1] == [2, 1]).all()


@pytest.mark.parametrize("predict_motion, kept", [(True, True), (False, False)])
def test_fast_person_through_an_occlusion(predict_motion, kept):
    # 15 px per frame, undetected in frames 6 and 7: back 45 px from where it was last seen.
    absent = lambda i, f: f in (6, 7)
    ids = run(PoseTracker(SIGMAS, predict_motion=predict_motion), [Walker(100, 300, 160, 15)], 12, absent)
    assert (ids[:6, 0] == 1).all()
    assert (ids[8:, 0] == (1 if kept else 2)).all()


@pytest.mark.parametrize("wrong_x", [None, 400.0])
def test_one_wrong_joint_does_not_throw_the_prediction_off(wrong_x):
    # 15 px per frame; in frame 5 the right wrist is found 400 px away (a grouping error), then the
    # person is not detected for three frames. A mean displacement would put the velocity at
    # 15 + 400 / 17 px and predict them 90 px too far after the gap; the median stays at 15.
    walker = Walker(100, 300, 160, 15)
    tracker = PoseTracker(SIGMAS)
    for f in range(6):
        pose = walker.pose(f)
        if f == 5 and wrong_x is not None:
            pose[10, 0] += wrong_x
        assert tracker.update(pose[None], np.ones(1)).tolist() == [1]
    for _ in range(3):
        tracker.update(np.zeros((0, J, 3)), np.zeros(0))
    assert tracker.update(walker.pose(9)[None], np.ones(1)).tolist() == [1]


def test_detection_order_does_not_change_ids():
    # Two newcomers with equal scores enter together in frame 8: the left one is numbered first.
    walkers = three_walkers() + [Walker(700, 300, 140, -1, 0, 0.5), Walker(50, 400, 140, 1, 0, 0.5)]
    absent = lambda i, f: i >= 3 and f < 8
    expected = np.array([[1, 2, 3, -1, -1]] * 8 + [[1, 2, 3, 5, 4]] * 12)
    assert (run(PoseTracker(SIGMAS), walkers, 20, absent) == expected).all()

    rng = np.random.default_rng(0)
    tracker = PoseTracker(SIGMAS)
    for f in range(20):
        present = [i for i in range(len(walkers)) if not absent(i, f)]
        order = rng.permutation(present)
        keypoints = np.array([walkers[i].pose(f) for i in order])
        ids = tracker.update(keypoints, np.array([walkers[i].score for i in order]))
        assert (ids == expected[f, order]).all(), f"frame {f}"


def test_empty_frames():
    tracker = PoseTracker(SIGMAS, max_missed=2)
    empty = (np.zeros((0, J, 3)), np.zeros(0))
    ids = tracker.update(*empty)
    assert ids.shape == (0,) and ids.dtype == np.int64
    walkers = three_walkers()[:2]
    frame = lambda f: (np.array([w.pose(f) for w in walkers]), np.array([w.score for w in walkers]))
    assert tracker.update(*frame(1)).tolist() == [1, 2]          # the empty frame used no id
    tracker.update(*empty)
    tracker.update(*empty)
    assert tracker.update(*frame(4)).tolist() == [1, 2]
    for _ in range(3):
        tracker.update(*empty)
    assert tracker.update(*frame(8)).tolist() == [3, 4]          # gone for 3 > max_missed frames


@pytest.mark.filterwarnings("error")
def test_nan_joints_are_not_visible():
    pose = Walker(100, 200, 150).pose(0)
    with_nan, with_zero = pose.copy(), pose.copy()
    with_nan[[3, 9], 0] = np.nan
    with_nan[5, 2] = np.nan
    with_zero[[3, 9, 5], 2] = 0.0
    shifted = Walker(104, 201, 150).pose(0)
    assert oks_matrix(shifted[None], with_nan[None], SIGMAS, 0.2) == pytest.approx(
        oks_matrix(shifted[None], with_zero[None], SIGMAS, 0.2))

    walkers = three_walkers()[:2]
    tracker = PoseTracker(SIGMAS)
    for f in range(10):
        first, second = walkers[0].pose(f), walkers[1].pose(f)
        # Different joints lost every frame: the head on even frames, the arms on odd ones.
        if f % 2 == 0:
            first[:5, :2] = np.nan
        else:
            first[7:11, 2] = np.nan
        nowhere = np.full((J, 3), np.nan)
        keypoints = np.array([first, second, nowhere])
        ids = tracker.update(keypoints, np.array([0.9, 0.8, np.nan]))
        assert ids.tolist() == [1, 2, 0], f"frame {f}"
    # The pose with no visible joint started no track: the next newcomer is number 3.
    newcomer = Walker(600, 300, 150).pose(0)
    assert tracker.update(newcomer[None], np.array([0.5]))[0] == 3


def test_reset_numbers_from_one_again():
    tracker = PoseTracker(SIGMAS)
    run(tracker, three_walkers(), 3)
    tracker.reset()
    assert (run(tracker, [Walker(600, 300, 150)], 2) == 1).all()


def test_bad_input_is_named():
    tracker = PoseTracker(SIGMAS)
    with pytest.raises(ValueError, match="14 joints but the tracker's sigmas describe 17"):
        tracker.update(np.zeros((2, 14, 3)), np.ones(2))
    with pytest.raises(ValueError, match=r"keypoints must have shape \(P, 17, 3\)"):
        tracker.update(np.zeros((2, 17, 2)), np.ones(2))
    with pytest.raises(ValueError, match="scores must have shape"):
        tracker.update(np.zeros((2, 17, 3)), np.ones(3))
    with pytest.raises(ValueError, match="sigmas"):
        PoseTracker(np.array([0.1, -0.1]))
    with pytest.raises(ValueError, match="oks_threshold"):
        PoseTracker(SIGMAS, oks_threshold=1.5)
    with pytest.raises(ValueError, match="max_missed"):
        PoseTracker(SIGMAS, max_missed=-1)
