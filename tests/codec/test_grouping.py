from __future__ import annotations

import numpy as np
import pytest
import torch
from munkres import Munkres

from higherhrnet import COCO_KEYPOINTS
from higherhrnet.codec.grouping import GroupingParams, assign, group, match_by_tag, nms, refine

import oracle

ORDER = tuple(COCO_KEYPOINTS.grouping_indices.tolist())
J = 17


def render(people, tags, h, w, sigma=2.0, visible=None, tag_dim=1, noise=0.0, seed=0):
    """Encode people (P, J, 2) x, y into heatmaps (J, H, W) (Gaussian per joint, max over people) and
    'perfect' tag maps (J, H, W, T): every pixel carries the tag of the person whose joint is nearest."""
    rng = np.random.default_rng(seed)
    people = np.asarray(people, dtype=np.float64)
    visible = np.ones(people.shape[:2], bool) if visible is None else np.asarray(visible)
    ys, xs = np.mgrid[0:h, 0:w]
    heat = np.zeros((J, h, w), np.float32)
    tag_maps = np.zeros((J, h, w, tag_dim), np.float32)
    for j in range(J):
        best = np.full((h, w), np.inf)
        for p in range(len(people)):
            if not visible[p, j]:
                continue
            d2 = (xs - people[p, j, 0]) ** 2 + (ys - people[p, j, 1]) ** 2
            heat[j] = np.maximum(heat[j], np.exp(-d2 / (2 * sigma ** 2)))
            closer = d2 < best
            best = np.where(closer, d2, best)
            tag_maps[j][closer] = tags[p]
    tag_maps += rng.normal(0, noise, tag_maps.shape).astype(np.float32)
    return heat, tag_maps


def random_people(n, h, w, seed, spread=12.0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform([spread, spread], [w - spread, h - spread], size=(n, 1, 2))
    return centres + rng.normal(0, spread / 2, size=(n, J, 2))


def params(**changes):
    base = dict(joint_order=ORDER, max_num_people=30, detection_threshold=0.1, tag_threshold=1.0,
                nms_kernel=5, nms_padding=2)
    base.update(changes)
    return GroupingParams(**base)


def run(heat, tags, **changes):
    return group(torch.from_numpy(heat), torch.from_numpy(tags), params(**changes))


def oracle_run(heat, tags, **changes):
    p = params(**changes)
    return oracle.group(heat, tags, list(p.joint_order), p.max_num_people, p.detection_threshold, p.tag_threshold,
                        p.nms_kernel, p.use_detection_val, p.ignore_too_much, p.adjust, p.refine)


def test_round_trip_recovers_every_person_within_a_pixel():
    h, w = 96, 128
    people = random_people(6, h, w, seed=1, spread=10)
    # Random sub-pixel positions (a joint exactly between two pixels would make two equal peaks).
    heat, tags = render(people, np.arange(6) * 3.0, h, w, tag_dim=2)
    persons, scores = run(heat, tags)
    assert len(persons) == 6
    # Each decoded person is one ground-truth person: match by the nose position.
    for person in persons:
        gt = people[np.argmin(np.abs(people[:, 0] - person[0, :2]).sum(1))]
        err = np.abs(person[:, :2] - 0.5 - gt).max()  # heatmap pixel centres are at +0.5
        assert err <= 1.0, err
    assert (scores > 0.8).all()


def test_round_trip_on_crowded_map_with_noisy_tags():
    h, w = 128, 160
    people = random_people(25, h, w, seed=2, spread=6)
    heat, tags = render(people, np.arange(25) * 2.5, h, w, tag_dim=2, noise=0.05, seed=3)
    persons, _ = run(heat, tags, refine=False)
    # Every decoded person's joints carry a single identity (tags are person id * 2.5).
    for person in persons:
        ids = np.round(person[person[:, 2] > 0, 3] / 2.5)
        assert len(set(ids.tolist())) == 1
    found = {int(np.round(p[p[:, 2] > 0, 3][0] / 2.5)) for p in persons}
    assert len(found) >= 23  # a couple of people may be hidden under others' peaks


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("changes", [{}, {"refine": False}, {"adjust": False}, {"use_detection_val": False},
                                     {"max_num_people": 4}, {"max_num_people": 4, "ignore_too_much": True},
                                     {"tag_threshold": 0.4}])
def test_matches_the_plain_oracle_exactly(seed, changes):
    rng = np.random.default_rng(seed)
    h, w = 40 + 8 * seed, 56
    n = 3 + seed
    people = random_people(n, h, w, seed=seed, spread=5)
    visible = rng.random((n, J)) > 0.3
    # Tags close together (ambiguous matches, Hungarian ties) and a flip-test second component.
    heat, tags = render(people, np.arange(n) * 0.8, h, w, visible=visible, tag_dim=2, noise=0.3, seed=seed)
    heat += rng.random(heat.shape).astype(np.float32) * 0.15
    persons, scores = run(heat, tags, **changes)
    ref_persons, ref_scores = oracle_run(heat, tags, **changes)
    np.testing.assert_array_equal(persons, ref_persons)
    np.testing.assert_array_equal(scores, ref_scores)


def test_shared_tag_map_without_tag_per_joint():
    h, w = 48, 64
    people = random_people(3, h, w, seed=5, spread=6)
    heat, tags = render(people, np.array([0.0, 3.0, 6.0]), h, w, tag_dim=1)
    shared = tags[:1]  # one tag map for all joints (TAG_PER_JOINT False)
    persons, scores = run(heat, shared)
    ref_persons, ref_scores = oracle_run(heat, shared)
    np.testing.assert_array_equal(persons, ref_persons)
    assert len(persons) == 3


def candidates_for(joints_and_people, tag_dim=1, k=4):
    """Build top-k arrays by hand: {joint: [(x, y, value, tag), ...]}."""
    values = np.zeros((J, k), np.float32)
    xy = np.zeros((J, k, 2), np.int64)
    tags = np.zeros((J, k, tag_dim), np.float32)
    for joint, rows in joints_and_people.items():
        for i, (x, y, v, t) in enumerate(rows):
            values[joint, i], xy[joint, i], tags[joint, i] = v, (x, y), t
    return values, xy, tags


def test_two_people_by_tag():
    cands = candidates_for({0: [(10, 10, 0.9, 0.0), (40, 12, 0.8, 5.0)],
                            5: [(38, 20, 0.7, 5.2), (12, 21, 0.6, -0.1)],
                            11: [(11, 40, 0.5, 0.3)]})
    persons = match_by_tag(*cands, params())
    assert persons.shape == (2, J, 4)
    assert persons[0, 0, :3].tolist() == [10, 10, pytest.approx(0.9)]
    assert persons[0, 5, :2].tolist() == [12, 21] and persons[0, 11, :2].tolist() == [11, 40]
    assert persons[1, 5, :2].tolist() == [38, 20] and persons[1, 11, 2] == 0


def test_person_with_one_joint_and_its_score():
    values, xy, tags = candidates_for({16: [(3, 4, 0.85, 1.0)]})
    persons, scores = group(*_maps_from(values, xy, tags, 16, 16), params(refine=False, adjust=False))
    assert len(persons) == 1
    assert persons[0, 16, :2].tolist() == [3, 4]
    assert (persons[0, :16] == 0).all()
    assert scores[0] == pytest.approx(persons[0, 16, 2] / 17, rel=1e-6)


def _maps_from(values, xy, tags, h, w):
    heat = torch.zeros(J, h, w)
    tag_maps = torch.zeros(J, h, w, tags.shape[2])
    for j in range(J):
        for v, (x, y), t in zip(values[j], xy[j], tags[j]):
            if v > 0:
                heat[j, y, x] = float(v)
                tag_maps[j, y, x] = torch.from_numpy(t)
    return heat, tag_maps


def test_detection_threshold_is_strict():
    thr = float(np.float32(0.25))  # exactly representable as the maps' float32 value
    cands = candidates_for({0: [(1, 1, thr, 0.0), (20, 1, np.nextafter(np.float32(thr), np.float32(1)), 3.0)]})
    persons = match_by_tag(*cands, params(detection_threshold=thr))
    assert len(persons) == 1 and persons[0, 0, 0] == 20


def test_tag_threshold_is_strict():
    # Distance exactly 1.0 does not join (a new person starts); 0.999 joins.
    cands = candidates_for({0: [(5, 5, 0.9, 0.0)], 1: [(6, 4, 0.9, 1.0)], 2: [(4, 4, 0.9, -0.999)]})
    persons = match_by_tag(*cands, params())
    assert len(persons) == 2
    assert persons[0, 2, 2] > 0 and persons[0, 1, 2] == 0
    assert persons[1, 1, :2].tolist() == [6, 4]


def test_more_candidates_than_max_num_people():
    # Three noses start three people; with max_num_people=2 only the first two can receive more joints.
    cands = candidates_for({0: [(0, 0, 0.9, 0.0), (10, 0, 0.8, 10.0), (20, 0, 0.7, 20.0)],
                            1: [(1, 1, 0.9, 0.1), (11, 1, 0.8, 10.1), (21, 1, 0.7, 20.1)]})
    persons = match_by_tag(*cands, params(max_num_people=2))
    assert len(persons) == 4
    assert persons[0, 1, 0] == 1 and persons[1, 1, 0] == 11
    assert persons[2, 1, 2] == 0 and persons[3, 1, 0] == 21 and persons[3, 0, 2] == 0
    ignored = match_by_tag(*cands, params(max_num_people=2, ignore_too_much=True))
    assert len(ignored) == 3 and (ignored[:, 1, 2] == 0).all()


def test_hungarian_ties_follow_the_reference():
    """Four candidates, two people, integer-rounded tag distances: several assignments cost the same.
    scipy alone returns candidate 0 -> person 0, 1 -> person 1; the reference (munkres) returns 1 -> 0,
    2 -> 1 and starts new people with 0 and 3. Which candidate joins whom must follow the reference."""
    pad = 1e10
    cost = np.array([[99.5, 199.5, pad, pad], [-0.7, 99.3, pad, pad], [199.5, 199.5, pad, pad],
                     [99.5, 199.5, pad, pad]])
    assert assign(cost) == [(0, 2), (1, 0), (2, 1), (3, 3)]


@pytest.mark.parametrize("seed", range(40))
def test_assignment_equals_munkres_on_tie_heavy_costs(seed):
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(1, 8, size=2)
    cost = np.round(rng.random((rows, cols)) * 2) * 100 - rng.choice([0.5, 0.7], size=(rows, 1))
    if rows > cols:
        cost = np.concatenate((cost, np.full((rows, rows - cols), 1e10)), axis=1)
    expected = [tuple(int(v) for v in p) for p in Munkres().compute(cost.tolist())]
    assert assign(cost) == expected


def test_nothing_detected_gives_no_people():
    heat = torch.full((J, 32, 32), 0.05)
    tags = torch.zeros(J, 32, 32, 2)
    persons, scores = group(heat, tags, params())
    assert persons.shape == (0, J, 5) and scores.shape == (0,)


def test_nms_keeps_only_window_maxima():
    heat = torch.zeros(1, 1, 9, 9)
    heat[0, 0, 4, 4] = 1.0
    heat[0, 0, 4, 6] = 0.5     # within 2 px of a larger value: suppressed
    heat[0, 0, 8, 0] = 0.3     # alone in its window: kept
    out = nms(heat, 5, 2)
    assert out[0, 0, 4, 4] == 1.0 and out[0, 0, 4, 6] == 0 and out[0, 0, 8, 0] == 0.3
    assert torch.count_nonzero(out) == 2


@pytest.mark.parametrize("kernel,padding", [(5, 2), (3, 1), (1, 0)])
def test_nms_equals_the_reference_max_pool(kernel, padding):
    """NMS keeps a value iff it equals max_pool2d(kernel, stride 1, padding) there: plateaus (ties), borders
    and negative values included."""
    torch.manual_seed(kernel)
    heat = torch.randn(2, 17, 37, 53)
    heat[0, 0, 5:8, 5:8] = 3.0                      # a plateau: every pixel of it survives
    heat[1, 2] = torch.round(heat[1, 2] * 2) / 2    # many ties
    reference = heat * torch.eq(torch.nn.functional.max_pool2d(heat, kernel, 1, padding), heat).float()
    assert torch.equal(nms(heat, kernel, padding), reference)
    assert (nms(heat, kernel, padding)[0, 0, 5:8, 5:8] == 3.0).all()


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("tag_dim,shared", [(1, False), (2, False), (2, True)])
def test_refine_equals_full_map_search_on_tie_heavy_maps(seed, tag_dim, shared):
    """REFINE's pruned search must pick exactly the pixel a full-map argmax picks. Quantised maps make
    ties in score and distances of exactly k + 0.5 (round half to even) common; odd map sizes give
    partial edge tiles."""
    rng = np.random.default_rng(100 + seed)
    h, w = int(rng.integers(9, 45)), int(rng.integers(9, 45))
    heat = (rng.integers(0, 5, (J, h, w)) * 0.25).astype(np.float32)
    heat[rng.random(heat.shape) < 0.5] = 0
    tags = (rng.integers(-6, 7, (1 if shared else J, h, w, tag_dim)) * 0.5).astype(np.float32)
    num_people = 6
    persons = np.zeros((num_people, J, 3 + tag_dim), np.float32)
    for p in range(num_people):
        found = rng.choice(J, size=int(rng.integers(1, 6)), replace=False)
        persons[p, found, 0] = rng.integers(0, w, len(found)) + 0.5
        persons[p, found, 1] = rng.integers(0, h, len(found)) + 0.5
        persons[p, found, 2] = rng.uniform(0.2, 1.0, len(found))
    expected = oracle.refine(persons, heat, tags)
    threads = torch.get_num_threads()
    try:
        for block, num_threads in ((1, 1), (3, 2), (8, 1), (16, 2), (16, 3)):   # joints searched in parallel or not
            torch.set_num_threads(num_threads)
            got = refine(persons, torch.from_numpy(heat), torch.from_numpy(tags), block=block)
            np.testing.assert_array_equal(got, expected)
    finally:
        torch.set_num_threads(threads)
