"""A top-down network evaluated on an MPII-layout split (engine.mpii_eval.evaluate_mpii_split, write_mpii_results,
`higherhrnet eval`): the split's people and ground truth wired in, PCKh and bearpaw's PCK, the results files in
the layouts users compare with (bearpaw's preds_valid.mat)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import torch
from torch import nn

import higherhrnet
from higherhrnet.checkpoint import save_model
from higherhrnet.data import MpiiAnnotations, build_dataset, dataset_info
from higherhrnet.data.mpii import mpii_test_targets
from higherhrnet.data.registry import MPII_METRICS
from higherhrnet.data.synthetic import write_synthetic_mpii
from higherhrnet import topdown
from higherhrnet.engine.mpii_eval import (MpiiPeople, MpiiTruth, evaluate_mpii, evaluate_mpii_split, mpii_people,
                                          mpii_truth, write_mpii_results)
from higherhrnet.keypoints import MPII_KEYPOINTS
from higherhrnet.pckh import pckh
from higherhrnet.topdown import PersonPoses, TopDownParams
from conftest import tiny_stacked_hourglass_cfg


@pytest.fixture(scope="module")
def mpii_root(tmp_path_factory):
    """A synthetic MPII set in bearpaw's layout: 1 + 4 images of 1 to 3 people."""
    root = tmp_path_factory.mktemp("synthetic_mpii")
    write_synthetic_mpii(str(root), {"train": 1, "val": 4}, progress=False)
    return root


def mpii_options(root):
    return ["DATASET.DATASET", "synthetic_mpii", "DATASET.DATASET_TEST", "synthetic_mpii", "DATASET.ROOT", str(root),
            "DATASET.TRAIN_SET", "train", "DATASET.TEST_SET", "val", "DATASET.NUM_JOINTS", "16",
            "MODEL.NUM_JOINTS", "16", "MODEL.SIGMA", "1"]


def ground_truth(root):
    """MPII's evaluation file as bearpaw's eval_PCKh.py reads it: (N, 16, 2) joints and (N, 2, 2) head boxes in
    MPII's 1-based frame, (N, 16) visible."""
    mat = scipy.io.loadmat(os.path.join(root, "detections_our_format.mat"))
    return (mat["pos_gt_src"].transpose(2, 0, 1), mat["jnt_missing"].T == 0, mat["headboxes_src"].transpose(2, 0, 1))


class AnswersTargets(nn.Module):
    """Two stacks that answer, for the k-th crop they are shown, the k-th map set of `maps` (the first stack
    zeros)."""

    def __init__(self, maps: np.ndarray):
        super().__init__()
        self.maps, self.seen = torch.from_numpy(maps), 0

    def forward(self, x):
        out = self.maps[self.seen:self.seen + len(x)]
        self.seen += len(x)
        return [torch.zeros_like(out), out]


def test_a_network_answering_the_test_targets_finds_every_joint(mpii_root):
    """Heatmaps equal to bearpaw's test targets: its PCK is 1 (every maximum on its target's), and the
    predictions, those maxima taken back to the image, lie within a heatmap pixel (plus a pixel of truncation)
    of MPII's ground truth: PCKh 100 for every part (the synthetic heads are large enough), not at 0.1."""
    cfg = tiny_stacked_hourglass_cfg(*mpii_options(mpii_root), "MODEL.IMAGE_SIZE", "[256, 256]",
                                     "MODEL.HEATMAP_SIZE", "[64, 64]", "TEST.FLIP_TEST", "False")
    source = build_dataset(cfg, is_train=False).source
    targets = np.stack([mpii_test_targets(person, 64, 1.0)[0] for person in source.people])
    network = AnswersTargets(targets)
    metrics, poses = evaluate_mpii_split(cfg, network, source, "cpu", batch_size=3)
    assert network.seen == len(source) >= 4
    assert tuple(metrics) == MPII_METRICS and metrics["PCK"] == 1.0
    joints, visible, _ = ground_truth(mpii_root)
    errors = np.linalg.norm(poses.keypoints[..., :2] + 1 - joints, axis=2)
    heatmap_pixel = 200 * 1.25 * np.array([p.scale for p in source.people]) / 64
    assert (errors <= (heatmap_pixel + 1)[:, None] * np.sqrt(2))[visible].all()
    assert all(metrics[name] == 100.0 for name in MPII_METRICS[:8])             # Head .. Ankle, Mean
    assert 0 < metrics["Mean@0.1"] < 100                    # a heatmap pixel is more than a tenth of a head


def test_people_and_ground_truth_of_a_split_in_this_projects_frame(mpii_root):
    """MPII's numbers less 1 (0-based pixels); the people of one image share its first person's image id."""
    source = MpiiAnnotations(str(mpii_root), "val", dataset=dataset_info("synthetic_mpii"))
    entries = [e for e in json.loads((mpii_root / "mpii_annotations.json").read_text()) if e["isValidation"]]
    people = mpii_people(source)
    np.testing.assert_array_equal(people.centers + 1, [e["objpos"] for e in entries])
    assert people.scales.tolist() == [e["scale_provided"] for e in entries]
    images = [e["img_paths"] for e in entries]
    assert people.image_ids.tolist() == [images.index(name) for name in images] and len(set(images)) == 4
    truth = mpii_truth(source)
    joints, visible, head_boxes = ground_truth(mpii_root)
    np.testing.assert_array_equal(truth.joints + 1, joints)
    np.testing.assert_array_equal(truth.head_boxes + 1, head_boxes)
    assert np.array_equal(truth.visible, visible) and not visible.all()


def test_results_files_hold_each_persons_joints_and_bearpaws_preds_layout(mpii_root, tmp_path):
    source = MpiiAnnotations(str(mpii_root), "val", dataset=dataset_info("synthetic_mpii"))
    n = len(source)
    keypoints = np.zeros((n, 16, 3), np.float32)
    keypoints[..., 0] = np.arange(16) + 20 * np.arange(n)[:, None]      # person p, joint j: (20 p + j, 100 + p)
    keypoints[..., 1] = 100 + np.arange(n)[:, None]
    keypoints[..., 2] = 0.5
    poses = PersonPoses(keypoints, np.full((n, 2), 7.0, np.float32), np.full((n, 2), 1.25))
    files = write_mpii_results(source, poses, str(tmp_path))
    assert files == [str(tmp_path / "keypoints_val_results.json"), str(tmp_path / "preds_val.mat")]

    # bearpaw's save_pred: `preds` (N, 16, 2) float32 in MPII's 1-based frame, people in the split's order.
    preds = scipy.io.loadmat(files[1])["preds"]
    assert preds.dtype == np.float32 and preds.shape == (n, 16, 2)
    assert preds[1, 3].tolist() == [20 + 3 + 1, 100 + 1 + 1] and preds[0, 0].tolist() == [1, 101]
    # Its eval_PCKh.py reads them as np.transpose(preds, [1, 2, 0]), the layout of the ground truth's pos_gt_src.
    assert np.transpose(preds, [1, 2, 0]).shape == scipy.io.loadmat(
        os.path.join(mpii_root, "detections_our_format.mat"))["pos_gt_src"].shape

    records = json.loads(open(files[0]).read())
    assert len(records) == n and records[1] == {
        "image": source.people[1].image, "person": 1,
        "keypoints": [v for j in range(16) for v in (20.0 + j, 101.0, 0.5)], "center": [7.0, 7.0],
        "scale": [1.25, 1.25]}


@pytest.mark.slow
def test_eval_cli_scores_an_mpii_split_with_pckh(mpii_root, tmp_path):
    """`higherhrnet eval` of a tiny stacked hourglass (bearpaw's crop, flip sum, final predictions) on an
    MPII-layout split: the PCKh table with PCK, metrics_val.json, the results JSON and preds_val.mat, whose
    predictions scored against the ground-truth file give the metrics printed."""
    cfg = tiny_stacked_hourglass_cfg(*mpii_options(mpii_root), "TEST.FLIP_TEST", "True")
    torch.manual_seed(0)
    weights = tmp_path / "tiny_mpii.pth"
    save_model(weights, higherhrnet.build_model(cfg), cfg, MPII_KEYPOINTS)
    out = tmp_path / "eval"
    result = subprocess.run([sys.executable, "-m", "higherhrnet", "eval", "--weights", str(weights), "--device", "cpu",
                             "--workers", "1", "--batch-size", "3", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    source = MpiiAnnotations(str(mpii_root), "val", dataset=dataset_info("synthetic_mpii"))
    assert f"{len(source)} people in 4 images (" in result.stdout
    assert "| Head | Shoulder | Elbow | Wrist | Hip | Knee | Ankle | Mean | Mean@0.1 | PCK |" in result.stdout
    assert sorted(os.listdir(out)) == ["keypoints_val_results.json", "metrics_val.json", "preds_val.mat"]
    metrics = json.loads((out / "metrics_val.json").read_text())
    assert tuple(metrics) == MPII_METRICS and 0 <= metrics["PCK"] <= 1

    records = json.loads((out / "keypoints_val_results.json").read_text())
    preds = scipy.io.loadmat(out / "preds_val.mat")["preds"]
    assert [r["person"] for r in records] == list(range(len(source)))
    np.testing.assert_array_equal(preds, np.array([r["keypoints"] for r in records], np.float32).reshape(-1, 16, 3)
                                  [..., :2] + 1)
    joints, visible, head_boxes = ground_truth(mpii_root)
    scored = pckh(preds, joints, visible, head_boxes).metrics
    assert {name: metrics[name] for name in scored} == pytest.approx(scored, nan_ok=True)


class AnswersByMark(nn.Module):
    """Answers maps[k] for a crop marked k (its first pixel): the same answer on whichever process sees it."""

    def __init__(self, maps: np.ndarray):
        super().__init__()
        self.maps = torch.from_numpy(maps)

    def forward(self, x):
        return [self.maps[x[:, 0, 0, 0].long()]]


def marked_crops(image, centers, scales, image_size):
    # load_image(k) is the 1 x 1 image of value k: every crop of it is k everywhere.
    return np.full((len(centers), image_size[1], image_size[0], 3), image[0, 0, 0], np.float32)


def pck_case():
    """(evaluate_mpii's arguments, its target heatmaps) for 7 people: one-pixel targets on 8 x 8 maps; the network
    answers them for the even people and 2 pixels to the right for the odd ones, so that the batches' PCK differ."""
    rng = np.random.default_rng(0)
    targets = np.zeros((7, 16, 8, 8), np.float32)
    for person in range(7):
        targets[person, np.arange(16), rng.integers(2, 6, 16), rng.integers(2, 6, 16)] = 1.0
    answers = targets.copy()
    answers[1::2] = np.roll(targets[1::2], 2, axis=3)
    params = TopDownParams(image_size=(32, 32), flip_index=tuple(MPII_KEYPOINTS.flip_index), flip_test=False,
                           mean=None, std=None, batch_size=2, flip_fusion="sum", shift_heatmap=False,
                           predictions="bearpaw", crop="marked")
    people = MpiiPeople(np.arange(7), np.full((7, 2), 50.0), np.ones(7))
    truth = MpiiTruth(np.full((7, 16, 2), 40.0), np.ones((7, 16), bool), np.tile([[0.0, 0.0], [40.0, 30.0]], (7, 1, 1)))
    return (AnswersByMark(answers), lambda k: np.full((1, 1, 3), k, np.uint8), people, truth, params), targets


def evaluate_in_group(rank, world, init_file, out):
    """Process `rank` of `world` (torch.multiprocessing.spawn): evaluate_mpii of pck_case in a gloo group; writes
    out/rank<rank>.json: its metrics."""
    torch.set_num_threads(1)
    topdown.CROPS["marked"] = marked_crops
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        arguments, targets = pck_case()
        metrics, _ = evaluate_mpii(*arguments, target_heatmaps=lambda start, stop: targets[start:stop])
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump(metrics, f)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_processes_sharing_the_batches_get_the_pck_of_one_process(tmp_path, monkeypatch):
    """Under torch.distributed each process predicts every other batch of 2 people (4 batches); the PCK, averaged
    over the batches in their order, is the one process's on every process, as are the PCKh metrics."""
    monkeypatch.setitem(topdown.CROPS, "marked", marked_crops)
    arguments, targets = pck_case()
    alone, _ = evaluate_mpii(*arguments, target_heatmaps=lambda start, stop: targets[start:stop])
    assert 0 < alone["PCK"] < 1
    torch.multiprocessing.spawn(evaluate_in_group, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    for rank in range(2):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == pytest.approx(alone, rel=0, abs=0,
                                                                                         nan_ok=True)
