"""Encode -> decode round trip: the package's own target encoder (heatmap_targets, joint_indices) renders
ground-truth people, the tag maps carry each person's tag at the joint indices, and grouping must give the
people back."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from higherhrnet import COCO_KEYPOINTS
from higherhrnet.codec import GroupingParams, group, heatmap_targets, joint_indices

J = 17


def scene(num_people: int, size: int, seed: int) -> np.ndarray:
    """(P, J, 3) people with every joint labelled, at least 6 px from any other joint of the same type."""
    rng = np.random.default_rng(seed)
    people = np.zeros((num_people, J, 3))
    people[..., 2] = 2
    for p in range(num_people):
        while True:
            centre = rng.uniform(0.2 * size, 0.8 * size, 2)
            pose = centre + rng.uniform(-0.15 * size, 0.15 * size, (J, 2))
            if all(np.linalg.norm(pose - people[q, :, :2], axis=1).min() >= 6 for q in range(p)):
                people[p, :, :2] = pose
                break
    return people


def encode(people: np.ndarray, size: int, tag_values: np.ndarray, tag_per_joint: bool):
    heatmaps = heatmap_targets(people, size, 2.0)
    indices = joint_indices(people, size, max_people=30, tag_per_joint=tag_per_joint)
    tags = np.zeros(((J if tag_per_joint else 1) * size * size,), np.float32)
    for person, rows in enumerate(indices[: len(people)]):
        tags[rows[rows[:, 1] > 0, 0]] = tag_values[person]
    return heatmaps, tags.reshape(J if tag_per_joint else 1, size, size, 1)


@pytest.mark.parametrize("num_people,tag_per_joint,seed", [(1, True, 0), (4, True, 1), (9, True, 2), (4, False, 3)])
def test_encoded_people_decode_back(num_people, tag_per_joint, seed):
    size = 96
    people = scene(num_people, size, seed)
    tag_values = np.arange(num_people) * 3.0 - 4.0
    heatmaps, tags = encode(people, size, tag_values, tag_per_joint)
    params = GroupingParams(joint_order=tuple(COCO_KEYPOINTS.grouping_indices), refine=False)
    persons, scores = group(torch.from_numpy(heatmaps), torch.from_numpy(tags), params)
    assert len(persons) == num_people
    np.testing.assert_allclose(scores, 1.0)                    # every joint found at the peak of its Gaussian
    for person in persons:
        found = person[0, 3]
        match = int(np.argmin(np.abs(tag_values - found)))
        np.testing.assert_allclose(person[:, 3], tag_values[match])      # one tag per decoded person
        # The encoder puts the peak on the pixel int(x), int(y); the decoder reports pixel centres, +-0.25
        # towards the larger neighbour: within 0.75 px of the true position.
        assert np.abs(person[:, :2] - people[match, :, :2]).max() <= 0.75
        np.testing.assert_allclose(person[:, :2], np.floor(people[match, :, :2]) + 0.5, atol=0.25 + 1e-6)
