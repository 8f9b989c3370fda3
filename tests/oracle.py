"""A deliberately plain decoder written from the description of the official HigherHRNet decoding
(docs/agreement.md), used as an oracle: loops instead of vectorisation, scipy's maximum_filter for NMS, munkres
for the assignment, a full-map REFINE. Slow, but easy to check by reading."""
from __future__ import annotations

import numpy as np
from munkres import Munkres
from scipy.ndimage import maximum_filter


def nms(heat, kernel):
    pooled = maximum_filter(heat, size=(1, kernel, kernel), mode="constant", cval=-np.inf)
    return heat * (pooled == heat)


def candidates(heat_nms, tags, k):
    j, h, w = heat_nms.shape
    out = []
    for joint in range(j):
        flat = heat_nms[joint].reshape(-1)
        order = np.argsort(-flat, kind="stable")[:k]
        rows = []
        for idx in order:
            x, y = idx % w, idx // w
            tag_joint = joint if tags.shape[0] == j else 0
            rows.append([x, y, flat[idx], *tags[tag_joint, y, x]])
        out.append(np.array(rows, dtype=np.float64))
    return out


def match(cands, order, max_people, det_thr, tag_thr, use_val=True, ignore_too_much=False):
    num_joints = len(cands)
    tag_dim = cands[0].shape[1] - 3
    people = []   # list of [joints (J, 3+T), list of tags]
    for joint in order:
        c = cands[joint]
        c = c[c[:, 2] > det_thr]
        if len(c) == 0:
            continue
        if not people:
            for row in c:
                p = np.zeros((num_joints, 3 + tag_dim))
                p[joint] = row
                people.append([p, [row[3:]]])
            continue
        active = people[:max_people]
        if ignore_too_much and len(active) == max_people:
            continue
        means = np.array([np.mean(tags, axis=0) for _, tags in active])
        dist = np.linalg.norm(c[:, None, 3:] - means[None], ord=2, axis=2)
        cost = np.round(dist) * 100 - c[:, 2:3] if use_val else dist.copy()
        if len(c) > len(active):
            cost = np.concatenate((cost, np.full((len(c), len(c) - len(active)), 1e10)), axis=1)
        for row, col in Munkres().compute(cost.tolist()):
            if row < len(c) and col < len(active) and dist[row, col] < tag_thr:
                active[col][0][joint] = c[row]
                active[col][1].append(c[row, 3:])
            else:
                p = np.zeros((num_joints, 3 + tag_dim))
                p[joint] = c[row]
                people.append([p, [c[row, 3:]]])
    if not people:
        return np.zeros((0, num_joints, 3 + tag_dim), dtype=np.float32)
    return np.array([p for p, _ in people]).astype(np.float32)


def quarter(heat, x, y):
    h, w = heat.shape
    dx = 0.25 if heat[y, min(x + 1, w - 1)] > heat[y, max(x - 1, 0)] else -0.25
    dy = 0.25 if heat[min(y + 1, h - 1), x] > heat[max(y - 1, 0), x] else -0.25
    return dx, dy


def adjust(persons, heat):
    out = persons.copy()
    for person in out:
        for j, joint in enumerate(person):
            if joint[2] > 0:
                x, y = int(joint[0]), int(joint[1])
                dx, dy = quarter(heat[j], x, y)
                joint[0] = joint[0] + dx + 0.5
                joint[1] = joint[1] + dy + 0.5
    return out


def refine(persons, heat, tags):
    out = persons.copy()
    num_joints = heat.shape[0]
    if tags.shape[0] != num_joints:
        tags = np.repeat(tags, num_joints, axis=0)
    for person in out:
        found = [tags[j, int(person[j, 1]), int(person[j, 0])] for j in range(num_joints) if person[j, 2] > 0]
        mean = np.mean(found, axis=0)
        for j in range(num_joints):
            if person[j, 2] != 0:
                continue
            dist = ((tags[j] - mean[None, None, :]) ** 2).sum(axis=2) ** 0.5
            score = heat[j] - np.round(dist)
            y, x = np.unravel_index(np.argmax(score), score.shape)
            val = heat[j, y, x]
            if val > 0:
                dx, dy = quarter(heat[j], x, y)
                person[j, :3] = (x + 0.5 + dx, y + 0.5 + dy, val)
    return out


def group(heat, tags, order, max_people=30, det_thr=0.1, tag_thr=1.0, kernel=5, use_val=True,
          ignore_too_much=False, do_adjust=True, do_refine=True):
    """heat (J, H, W) float32, tags (J or 1, H, W, T) float32 -> persons, scores."""
    persons = match(candidates(nms(heat, kernel), tags, max_people), order, max_people, det_thr, tag_thr,
                    use_val, ignore_too_much)
    if do_adjust:
        persons = adjust(persons, heat)
    scores = np.array([p[:, 2].mean() for p in persons], dtype=np.float32)
    if do_refine:
        persons = refine(persons, heat, tags)
    return persons, scores
