"""Multi-person pose tracking across video frames: a person keeps one id from frame to frame.

Tracking by detection: every processed frame's poses are matched one-to-one against the live tracks
by OKS (COCO's object keypoint similarity; `higherhrnet.oks`), so the demo can give a person the
same colour and `track_id` for as long as they stay in view. Pure numpy/scipy; nothing here knows
about networks.

Frames: all coordinates are pixels of the image the poses were predicted on (x right, y down); one
"frame" below is one call to `PoseTracker.update`, i.e. one processed frame, whatever stride the
video was sampled with.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .oks import oks_matrix, visible_joints

__all__ = ["PoseTracker", "match_by_oks"]


def match_by_oks(oks: np.ndarray, oks_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one pairs (rows (M,), cols (M,)) of an OKS matrix oks (T, P) that maximise the sum of
    OKS - oks_threshold over the accepted pairs; a pair is accepted only with OKS >= oks_threshold,
    never where OKS is NaN (no common joint).

    scipy's linear_sum_assignment on 1 - OKS, with every unacceptable pair entered at 1 - oks_threshold:
    the cost of leaving both unmatched. linear_sum_assignment always makes min(T, P) pairs; the
    unacceptable ones are dropped afterwards, and because they cost what "unmatched" costs, it never
    gives up a good pair to push through two that would be rejected anyway (with every rejected pair
    at cost 1 it could). ultralytics' lapjv call with cost_limit does the same.
    """
    oks = np.asarray(oks, dtype=np.float64)
    acceptable = np.nan_to_num(oks, nan=-1.0) >= oks_threshold
    rows, cols = linear_sum_assignment(1.0 - np.where(acceptable, oks, oks_threshold))
    keep = acceptable[rows, cols]
    return rows[keep], cols[keep]


@dataclass
class _Track:
    track_id: int
    pose: np.ndarray        # (J, 3) the last matched detection; joints not visible in it are NaN
    velocity: np.ndarray    # (2,) pixels per processed frame
    missed: int = 0         # processed frames since the last match

    def predicted(self, predict_motion: bool) -> np.ndarray:
        """(J, 3) where the pose is expected in the coming frame."""
        if not predict_motion:
            return self.pose
        pose = self.pose.copy()
        pose[:, :2] += self.velocity * (self.missed + 1)
        return pose


class PoseTracker:
    """Gives each detected person a track id that stays the same from frame to frame.

    Call `update` once per processed frame with that frame's poses; it returns one id per pose. Ids
    start at 1, count up, and are never reused (until `reset`). A pose with no joint visible
    (oks.visible_joints: finite, score >= keypoint_threshold and > 0) cannot be compared with
    anything: it gets id 0 and starts no track.

    Each frame:
      1. every live track's pose is predicted for this frame (see predict_motion);
      2. OKS (`oks.oks_matrix`, area from the track's box) is computed between predicted tracks and
         detections, and `match_by_oks` pairs them one-to-one (scipy's linear_sum_assignment on
         1 - OKS); a pair is accepted only with OKS >= oks_threshold and at least one joint visible
         in both poses;
      3. a matched track takes the detection's pose;
      4. an unmatched track keeps its last pose (a missed detection, a short occlusion) and is
         dropped once it has gone unmatched for more than max_missed processed frames;
      5. unmatched detections start new tracks, numbered in order of decreasing person score, then
         left to right, so the ids do not depend on the order the detections come in.

    Motion prediction (predict_motion=True): a constant-velocity model. A track's velocity is the
    median displacement, per processed frame, of the joints visible both in its previous pose and
    in the pose just matched (the median ignores a single joint that jumped to another person); the
    whole pose is shifted by velocity * (frames since the last match). Only the body's translation is
    predicted, not each limb, because limbs swing back and forth. Without it, a person moving fast
    through a short occlusion gets a new id, and two people crossing fast swap ids
    (tests/test_tracking.py shows both). A new track has velocity 0, so its first step must match
    unpredicted; a track's velocity is not damped while it goes unmatched.

    Defaults, for users of ultralytics' or openpifpaf's trackers:
      oks_threshold=0.2: a pose shifted by 5% of its height scores about 0.7, by 10% about 0.4, by
        a body width (a third of its height) about 0 (COCO sigmas, any scale). ultralytics'
        ByteTrack accepts a pair at IoU >= 0.2 (match_thresh 0.8 on 1 - IoU); openpifpaf's OKS
        tracker accepts down to OKS ~0.09.
      max_missed=30: ultralytics keeps a lost track for track_buffer=30 frames (1 s at 30 fps),
        openpifpaf for 33. Counted in processed frames: with a stride s it spans 30 * s video frames.
      keypoint_threshold=0.2: the demo's default drawing threshold and Person.box's, so the joints
        compared are the joints drawn and boxed.

    sigmas (J,): the keypoint set's OKS constants (KeypointSpec.sigmas_array).
    """

    def __init__(self, sigmas: np.ndarray, oks_threshold: float = 0.2, max_missed: int = 30,
                 keypoint_threshold: float = 0.2, predict_motion: bool = True):
        sigmas = np.asarray(sigmas, dtype=np.float64)
        if sigmas.ndim != 1 or len(sigmas) == 0 or not np.all(np.isfinite(sigmas)) or np.any(sigmas <= 0):
            raise ValueError(f"PoseTracker: sigmas must be a non-empty 1-D array of positive numbers, one "
                             f"per joint; got {sigmas!r}")
        if not 0.0 <= oks_threshold <= 1.0:
            raise ValueError(f"PoseTracker: oks_threshold must lie in [0, 1], got {oks_threshold}")
        if int(max_missed) != max_missed or max_missed < 0:
            raise ValueError(f"PoseTracker: max_missed must be a whole number >= 0, got {max_missed}")
        if not np.isfinite(keypoint_threshold):
            raise ValueError(f"PoseTracker: keypoint_threshold must be finite, got {keypoint_threshold}")
        self.sigmas = sigmas
        self.oks_threshold = float(oks_threshold)
        self.max_missed = int(max_missed)
        self.keypoint_threshold = float(keypoint_threshold)
        self.predict_motion = bool(predict_motion)
        self.reset()

    @property
    def num_joints(self) -> int:
        return len(self.sigmas)

    def reset(self) -> None:
        """Forget every track and number from 1 again (a new video)."""
        self._tracks: list[_Track] = []
        self._next_id = 1

    def update(self, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """(P,) int64 track ids for one processed frame's poses (0: no visible joint, not tracked).

        keypoints (P, J, 3): x, y in image pixels, joint score; NaN coordinates or scores mean the
        joint is not visible. scores (P,): person scores (they order the numbering of new tracks).
        P may be 0 (an empty frame: every track counts one missed frame).
        """
        keypoints, scores = self._check(keypoints, scores)
        visible = visible_joints(keypoints, self.keypoint_threshold)
        trackable = visible.any(axis=1)
        ids = np.zeros(len(keypoints), dtype=np.int64)
        matched: set[int] = set()

        if self._tracks and trackable.any():
            predicted = np.stack([t.predicted(self.predict_motion) for t in self._tracks])
            similarity = oks_matrix(predicted, keypoints, self.sigmas, self.keypoint_threshold)
            for t, p in zip(*match_by_oks(similarity, self.oks_threshold)):
                self._observe(self._tracks[t], keypoints[p], visible[p])
                ids[p] = self._tracks[t].track_id
                matched.add(int(t))

        for t, track in enumerate(self._tracks):
            if t not in matched:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]

        new = np.flatnonzero((ids == 0) & trackable)
        if len(new):
            xs = np.where(visible[new], keypoints[new, :, 0], np.nan)
            ys = np.where(visible[new], keypoints[new, :, 1], np.nan)
            # Highest score first; position breaks ties, so the input order never decides an id.
            order = np.lexsort((np.nanmean(ys, axis=1), np.nanmean(xs, axis=1),
                                -np.nan_to_num(scores[new], nan=-np.inf)))
            for p in new[order]:
                pose = np.where(visible[p][:, None], keypoints[p], np.nan)
                self._tracks.append(_Track(self._next_id, pose, np.zeros(2)))
                ids[p] = self._next_id
                self._next_id += 1
        return ids

    def _observe(self, track: _Track, keypoints: np.ndarray, visible: np.ndarray) -> None:
        """Move a matched track to its new pose and re-estimate its velocity."""
        both = visible & np.isfinite(track.pose[:, 0])
        # The assignment only accepts pairs with a joint visible in both, so `both` is never empty.
        displacement = np.median(keypoints[both, :2] - track.pose[both, :2], axis=0)
        track.velocity = displacement / (track.missed + 1)
        track.pose = np.where(visible[:, None], keypoints, np.nan)
        track.missed = 0

    def _check(self, keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keypoints = np.asarray(keypoints, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        if keypoints.ndim != 3 or keypoints.shape[2] != 3:
            raise ValueError(f"PoseTracker.update: keypoints must have shape (P, {self.num_joints}, 3) "
                             f"(x, y, score per joint), got {keypoints.shape}")
        if keypoints.shape[1] != self.num_joints:
            raise ValueError(f"PoseTracker.update: keypoints have {keypoints.shape[1]} joints but the "
                             f"tracker's sigmas describe {self.num_joints}")
        if scores.shape != (len(keypoints),):
            raise ValueError(f"PoseTracker.update: scores must have shape ({len(keypoints)},), one per "
                             f"pose, got {scores.shape}")
        return keypoints, scores
