"""Keypoint sets: names, left/right flip pairs, OKS sigmas, skeleton and grouping order, defined once.

Everything that depends on which joints a dataset has (flip permutations for augmentation and flip
test, the order in which grouping matches joints, the sigmas of OKS, the links drawn by the demo) is
derived from a `KeypointSpec`, never from index lists copied around the code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["KeypointSpec", "COCO_KEYPOINTS", "CROWDPOSE_KEYPOINTS", "MPII_KEYPOINTS"]


@dataclass(frozen=True)
class KeypointSpec:
    """A set of J keypoints.

    flip_pairs, skeleton and grouping_order refer to joints BY NAME. Joints in no flip pair map to
    themselves under a horizontal flip. grouping_order defaults to the declaration order.
    upper_body: the joints of the upper body (by name; every other joint is lower body), for top-down
    half-body augmentation; empty when the set has none. joint_weights: per-joint loss weights of top-down
    training (LOSS.USE_DIFFERENT_JOINTS_WEIGHT); empty when the set has none.
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[str, str], ...]
    sigmas: tuple[float, ...]
    skeleton: tuple[tuple[str, str], ...] = ()
    grouping_order: tuple[str, ...] = ()
    # Training data only, not part of what a checkpoint's joint set is compared by.
    upper_body: tuple[str, ...] = field(default=(), compare=False)
    joint_weights: tuple[float, ...] = field(default=(), compare=False)
    _index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        names = tuple(self.names)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "flip_pairs", tuple(tuple(p) for p in self.flip_pairs))
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        object.__setattr__(self, "skeleton", tuple(tuple(p) for p in self.skeleton))
        object.__setattr__(self, "grouping_order", tuple(self.grouping_order) or names)
        object.__setattr__(self, "upper_body", tuple(self.upper_body))
        object.__setattr__(self, "joint_weights", tuple(float(w) for w in self.joint_weights))
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})
        self._validate()

    def _validate(self) -> None:
        where = f"keypoint spec {self.name!r}"
        if len(self._index) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"{where}: duplicate joint names {dup}")
        if len(self.sigmas) != len(self.names):
            raise ValueError(f"{where}: {len(self.sigmas)} sigmas for {len(self.names)} joints")
        if any(s <= 0 for s in self.sigmas):
            raise ValueError(f"{where}: OKS sigmas must be positive")
        for label, pairs in (("flip pair", self.flip_pairs), ("skeleton link", self.skeleton)):
            for pair in pairs:
                if len(pair) != 2:
                    raise ValueError(f"{where}: {label} {pair} must name exactly two joints")
                for n in pair:
                    if n not in self._index:
                        raise ValueError(f"{where}: {label} {pair} names unknown joint {n!r}")
                if pair[0] == pair[1]:
                    raise ValueError(f"{where}: {label} {pair} links a joint to itself")
        seen: set[str] = set()
        for a, b in self.flip_pairs:
            for n in (a, b):
                if n in seen:
                    raise ValueError(f"{where}: joint {n!r} appears in more than one flip pair")
                seen.add(n)
            # OKS treats the two sides alike, so a flip pair must share its sigma.
            if self.sigmas[self._index[a]] != self.sigmas[self._index[b]]:
                raise ValueError(f"{where}: flip pair ({a}, {b}) has different sigmas")
        # A joint named left_X / right_X whose mirror exists must be paired with that mirror.
        for n in self.names:
            for side, other in (("left", "right"), ("right", "left")):
                if n.startswith(side):
                    mirror = other + n[len(side):]
                    if mirror in self._index and self.flip_index[self._index[n]] != self._index[mirror]:
                        raise ValueError(f"{where}: {n!r} and {mirror!r} look symmetric but are not a flip pair")
        for n in self.upper_body:
            if n not in self._index:
                raise ValueError(f"{where}: upper_body names unknown joint {n!r}")
        if self.joint_weights and (len(self.joint_weights) != len(self.names) or min(self.joint_weights) < 0):
            raise ValueError(f"{where}: joint_weights must be {len(self.names)} non-negative numbers, "
                             f"got {list(self.joint_weights)}")
        if sorted(self.grouping_order) != sorted(self.names):
            raise ValueError(f"{where}: grouping_order must list every joint exactly once")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"keypoint spec {self.name!r} has no joint {name!r}; joints: {list(self.names)}") from None

    @property
    def flip_index(self) -> np.ndarray:
        """(J,) int: channel j of a flipped image holds joint flip_index[j] of the original."""
        perm = np.arange(len(self.names))
        for a, b in self.flip_pairs:
            ia, ib = self._index[a], self._index[b]
            perm[ia], perm[ib] = ib, ia
        return perm

    @property
    def grouping_indices(self) -> np.ndarray:
        """(J,) int: joint indices in the order grouping matches them."""
        return np.array([self._index[n] for n in self.grouping_order])

    @property
    def skeleton_indices(self) -> np.ndarray:
        """(L, 2) int: joint index pairs to draw as links."""
        return np.array([[self._index[a], self._index[b]] for a, b in self.skeleton], dtype=np.int64).reshape(-1, 2)

    @property
    def upper_body_mask(self) -> np.ndarray:
        """(J,) bool: True for the joints of `upper_body`."""
        return np.isin(np.arange(len(self.names)), [self._index[n] for n in self.upper_body])

    @property
    def sigmas_array(self) -> np.ndarray:
        return np.asarray(self.sigmas, dtype=np.float64)

    @classmethod
    def from_lists(cls, name: str, names: Sequence[str], flip_pairs: Sequence[Sequence[str]],
                   sigmas: Sequence[float], skeleton: Sequence[Sequence[str]] = (),
                   grouping_order: Sequence[str] = (), upper_body: Sequence[str] = (),
                   joint_weights: Sequence[float] = ()) -> "KeypointSpec":
        return cls(name, tuple(names), tuple(tuple(p) for p in flip_pairs), tuple(sigmas),
                   tuple(tuple(p) for p in skeleton), tuple(grouping_order), tuple(upper_body), tuple(joint_weights))


_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

COCO_KEYPOINTS = KeypointSpec(
    name="coco",
    names=_COCO_NAMES,
    flip_pairs=tuple(
        (f"left_{part}", f"right_{part}")
        for part in ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")
    ),
    # The per-joint OKS constants of the COCO keypoint benchmark (as in pycocotools' COCOeval).
    sigmas=(0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
            0.107, 0.107, 0.087, 0.087, 0.089, 0.089),
    # The links of COCO's person category "skeleton".
    skeleton=(
        ("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"),
        ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
        ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"), ("left_eye", "right_eye"),
        ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
        ("right_eye", "right_ear"), ("left_ear", "left_shoulder"), ("right_ear", "right_shoulder"),
    ),
    # Head first, then torso, then limbs outward: the order the reference grouping uses.
    grouping_order=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_hip", "right_hip", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    # The official top-down COCO dataset's half-body split (head, shoulders, arms: upper) and per-joint loss
    # weights (elbows and knees 1.2, wrists and ankles 1.5).
    upper_body=_COCO_NAMES[:11],
    joint_weights=(1., 1., 1., 1., 1., 1., 1., 1.2, 1.2, 1.5, 1.5, 1., 1., 1.2, 1.2, 1.5, 1.5),
)


_CROWDPOSE_NAMES = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
)

CROWDPOSE_KEYPOINTS = KeypointSpec(
    name="crowd_pose",
    names=_CROWDPOSE_NAMES,
    flip_pairs=tuple((f"left_{p}", f"right_{p}") for p in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")),
    upper_body=("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "head",
                "neck"),
    # crowdposetools' OKS constants.
    sigmas=(0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079),
    skeleton=(
        ("head", "neck"), ("neck", "left_shoulder"), ("neck", "right_shoulder"),
        ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"),
        ("right_elbow", "right_wrist"), ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
        ("left_hip", "right_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
        ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ),
    # The reference groups CrowdPose with the first 14 entries of its COCO order (indices 0-6, 11, 12,
    # 7-10, 13); kept so that official CrowdPose weights give the official results.
    grouping_order=tuple(_CROWDPOSE_NAMES[i] for i in (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13)),
)


# MPII's 16 joints in its annotation order (joint ids 0-15 of the MPII Human Pose annotations, the order of
# bearpaw/pytorch-pose's joint_self and of mmpose's MPII JSON). The names keep MPII's r_ / l_ sides.
_MPII_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)

MPII_KEYPOINTS = KeypointSpec(
    name="mpii",
    names=_MPII_NAMES,
    # Indices (0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13): the pairs of bearpaw's shufflelr / flip_back.
    flip_pairs=tuple((f"l_{part}", f"r_{part}") for part in ("ankle", "knee", "hip", "wrist", "elbow", "shoulder")),
    # MPII has no OKS benchmark (it is scored with PCKh); these are mmpose's, adapted from COCO's
    # (configs/_base_/datasets/mpii.py).
    sigmas=(0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026,
            0.062, 0.072, 0.179, 0.179, 0.072, 0.062),
    # mmpose's skeleton_info for MPII.
    skeleton=(
        ("r_ankle", "r_knee"), ("r_knee", "r_hip"), ("r_hip", "pelvis"), ("pelvis", "l_hip"), ("l_hip", "l_knee"),
        ("l_knee", "l_ankle"), ("pelvis", "thorax"), ("thorax", "upper_neck"), ("upper_neck", "head_top"),
        ("upper_neck", "r_shoulder"), ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"),
        ("upper_neck", "l_shoulder"), ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"),
    ),
    # mmpose's MPII upper body (upper_body_ids 7-15: thorax, neck, head, arms) and joint weights (wrists and
    # ankles 1.5, elbows and knees 1.2).
    upper_body=_MPII_NAMES[7:],
    joint_weights=(1.5, 1.2, 1., 1., 1.2, 1.5, 1., 1., 1., 1., 1.5, 1.2, 1., 1., 1.2, 1.5),
)
