"""Top-down boxes (ground truth, detection files), the official OKS-NMS and rescoring, and `higherhrnet eval`
of a top-down model, against values worked out by hand from the official code's rules and against outputs of
the official code itself for recorded inputs (tests/assets/topdown/official_nms.json, facts computed outside
the project)."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

import higherhrnet
from higherhrnet import COCO_KEYPOINTS
from higherhrnet.data.checks import DatasetError
from higherhrnet.engine.topdown_eval import evaluate_top_down, predict_boxes, score_people
from higherhrnet.oks import box_oks, box_oks_nms, box_soft_oks_nms
from higherhrnet.person_boxes import PersonBoxes, detection_boxes, ground_truth_boxes
from higherhrnet.topdown import PersonPoses, TopDownParams, estimate_poses, rescore

from conftest import REPO, randomize, tiny_pose_hrnet_cfg
from tinycoco import write_tiny_coco

SIGMAS = COCO_KEYPOINTS.sigmas_array
OFFICIAL = json.loads((REPO / "tests" / "assets" / "topdown" / "official_nms.json").read_text())


def quiet_coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def person(ann_id, image_id, bbox, keypoints=None, area=100.0, iscrowd=0, category_id=1):
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "iscrowd": iscrowd, "area": area,
            "bbox": bbox, "keypoints": keypoints if keypoints is not None else [5.0, 5.0, 2] + [0] * 48}


def test_ground_truth_boxes_follow_the_official_filters():
    images = [{"id": 7, "width": 100, "height": 50, "file_name": "a.jpg"},
              {"id": 3, "width": 40, "height": 40, "file_name": "b.jpg"}]
    anns = [person(1, 7, [-10.0, 5.0, 30.0, 100.0]),                 # clipped: x1 0, x2 0 + 29 (from x1, not x), y2 49
            person(2, 7, [10.0, 10.0, 5.0, 5.0], area=0.0),           # area 0: out
            person(3, 7, [10.0, 10.0, 5.0, 5.0], iscrowd=1),          # crowd: out
            person(4, 7, [10.0, 10.0, 5.0, 5.0], keypoints=[0] * 51), # no keypoint: out
            person(5, 7, [120.0, 10.0, 5.0, 5.0]),                    # x1 120 > x2 99: out
            person(6, 3, [1.0, 2.0, 0.5, 3.0]),                       # w - 1 < 0: width 0
            person(8, 3, [1.0, 2.0, 5.0, 5.0], category_id=2)]        # not the first category: out
    coco = quiet_coco({"images": images, "annotations": anns,
                       "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}]})
    boxes = ground_truth_boxes(coco)
    assert boxes.image_ids.tolist() == [7, 3]                         # the file's image order
    np.testing.assert_array_equal(boxes.boxes, [[0, 5, 29, 44], [1, 2, 0, 2]])
    assert boxes.scores.tolist() == [1.0, 1.0]


def test_detection_boxes_keep_people_at_or_above_the_threshold(tmp_path):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([
        {"image_id": 5, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9},
        {"image_id": 5, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.9},     # not a person
        {"image_id": 4, "category_id": 1, "bbox": [5, 6, 7, 8], "score": 0.1},     # at IMAGE_THRE: kept
        {"image_id": 4, "category_id": 1, "bbox": [5, 6, 7, 8], "score": 0.0999}]))
    boxes = detection_boxes(str(path), 0.1, [4, 5])
    assert boxes.image_ids.tolist() == [5, 4]
    np.testing.assert_array_equal(boxes.boxes, [[1, 2, 3, 4], [5, 6, 7, 8]])
    assert boxes.scores.tolist() == [0.9, 0.1]
    with pytest.raises(DatasetError, match="image 5, which is not in the split"):
        detection_boxes(str(path), 0.1, [4])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DatasetError, match="expected a list"):
        detection_boxes(str(tmp_path / "bad.json"), 0.0)
    with pytest.raises(DatasetError, match="cannot read"):
        detection_boxes(str(tmp_path / "missing.json"), 0.0)


def pose(offset, scores=None, num_joints=3):
    xy = np.arange(num_joints * 2, dtype=np.float32).reshape(num_joints, 2) * 10 + offset
    values = np.ones(num_joints, np.float32) if scores is None else np.asarray(scores, np.float32)
    return np.concatenate([xy, values[:, None]], axis=1)


def test_box_oks_by_hand():
    sigmas = np.array([0.1, 0.1, 0.1])
    reference = pose(0.0)
    candidate = pose(np.float32(2.0), scores=[1.0, 0.1, 1.0])
    # each joint moved (2, 2): d^2 = 8; variance (2 * 0.1)^2 = 0.04; mean area (100 + 300) / 2 = 200
    e = 8 / 0.04 / (200 + np.spacing(1)) / 2
    assert box_oks(reference, candidate[None], 100.0, np.array([300.0]), sigmas)[0] == pytest.approx(np.exp(-e))
    # in_vis_thre: the candidate's joints above it count (2 of 3, same e each)
    assert box_oks(reference, candidate[None], 100.0, np.array([300.0]), sigmas, 0.5)[0] == \
        pytest.approx(np.exp(-e))
    assert box_oks(reference, candidate[None], 100.0, np.array([300.0]), sigmas, 2.0)[0] == 0.0


def test_box_oks_nms_by_hand():
    sigmas = np.array([0.1, 0.1, 0.1])
    # 0 and 1 nearly coincide; 2 is far away. 1 scores best, so 0 is dropped.
    keypoints = np.stack([pose(0.0), pose(0.5), pose(500.0)])
    kept = box_oks_nms(keypoints, np.array([0.5, 0.9, 0.1]), np.full(3, 1000.0), 0.9, sigmas)
    assert kept == [1, 2]
    # a threshold above their OKS keeps all, in falling score order
    oks = box_oks(keypoints[1], keypoints[[0]], 1000.0, np.array([1000.0]), sigmas)[0]
    assert box_oks_nms(keypoints, np.array([0.5, 0.9, 0.1]), np.full(3, 1000.0), oks, sigmas) == [1, 0, 2]
    assert box_oks_nms(np.zeros((0, 3, 3)), np.zeros(0), np.zeros(0), 0.5, sigmas) == []


def test_box_soft_oks_nms_by_hand():
    """Pose 1 is pose 0 again (OKS 1): its score 0.8 decays to 0.8 exp(-1 / 0.9) = 0.263, below the far pose 2's
    0.5 (OKS 0 with both: not decayed), so the order is 0, 2, 1; hard NMS at 0.9 drops 1 instead. At most
    max_kept poses."""
    sigmas = np.array([0.1, 0.1, 0.1])
    keypoints = np.stack([pose(0.0), pose(0.0), pose(500.0)])
    scores, areas = np.array([0.9, 0.8, 0.5]), np.full(3, 1000.0)
    assert 0.8 * np.exp(-1 / 0.9) < 0.5
    assert box_soft_oks_nms(keypoints, scores, areas, 0.9, sigmas) == [0, 2, 1]
    assert box_oks_nms(keypoints, scores, areas, 0.9, sigmas) == [0, 2]
    assert box_soft_oks_nms(keypoints, scores, areas, 0.9, sigmas, max_kept=2) == [0, 2]
    # a gentler decay (a larger threshold) keeps the copy ahead: 0.8 exp(-1 / 10) = 0.72 > 0.5
    assert box_soft_oks_nms(keypoints, scores, areas, 10.0, sigmas) == [0, 1, 2]
    assert box_soft_oks_nms(np.zeros((0, 3, 3)), np.zeros(0), np.zeros(0), 0.5, sigmas) == []


def test_score_people_rescores_then_suppresses_per_image():
    keypoints = np.zeros((3, 17, 3), np.float32)
    keypoints[:, :, :2] = np.arange(34, dtype=np.float32).reshape(17, 2) * 5
    keypoints[0, :, 2] = 0.1                     # no joint above 0.2: rescored to 0
    keypoints[1, :, 2] = 0.5
    keypoints[1, 0, 2] = 0.9                     # mean of the 17: (16 * 0.5 + 0.9) / 17
    keypoints[2, :, 2] = 0.8
    scales = np.full((3, 2), 1.0, np.float32)
    poses = PersonPoses(keypoints, np.zeros((3, 2), np.float32), scales)
    boxes = PersonBoxes.from_lists([1, 1, 2], [[0, 0, 10, 10]] * 3, [1.0, 0.5, 0.25])
    records = score_people(boxes, poses, SIGMAS, 0.2, 0.9)
    # image 1: the two identical poses, the better (person 1, rescored 0.5 * mean) survives; image 2 alone
    assert [r["image_id"] for r in records] == [1, 2]
    expected = 0.5 * (16 * np.float32(0.5).item() + np.float32(0.9).item()) / 17
    assert records[0]["score"] == pytest.approx(expected)
    assert records[1]["score"] == pytest.approx(0.25 * np.float32(0.8).item())
    assert len(records[0]["keypoints"]) == 51 and records[0]["bbox"] == [0, 0, 10, 10]


# ---------------------------------------------------------------- against the official code's own outputs

def official_nms_case(case):
    """A recorded nms.py case as the official evaluation holds it: float32 keypoints, float64 scores and areas."""
    return (np.asarray(case["keypoints"], np.float32), np.asarray(case["scores"], np.float64),
            np.asarray(case["areas"], np.float64), np.asarray(OFFICIAL["sigmas"], np.float64))


@pytest.mark.parametrize("case", OFFICIAL["nms"], ids=lambda case: case["name"])
def test_box_oks_equals_the_official_oks_iou(case):
    keypoints, _, areas, sigmas = official_nms_case(case)
    r = case["oks_iou"]["reference"]
    assert box_oks(keypoints[r], keypoints, areas[r], areas, sigmas, case["in_vis_thre"]).tolist() == \
        case["oks_iou"]["values"]


@pytest.mark.parametrize("case", OFFICIAL["nms"], ids=lambda case: case["name"])
def test_box_oks_nms_equals_the_official_oks_nms(case):
    keypoints, scores, areas, sigmas = official_nms_case(case)
    assert box_oks_nms(keypoints, scores, areas, case["threshold"], sigmas, case["in_vis_thre"]) == \
        case["oks_nms"]


@pytest.mark.parametrize("case", OFFICIAL["nms"], ids=lambda case: case["name"])
def test_box_soft_oks_nms_equals_the_official_soft_oks_nms(case):
    keypoints, scores, areas, sigmas = official_nms_case(case)
    assert box_soft_oks_nms(keypoints, scores, areas, case["threshold"], sigmas, case["in_vis_thre"]) == \
        case["soft_oks_nms"]


def official_people():
    """The recorded people of COCODataset.evaluate's cases as score_people takes them (the boxes' x, y, w, h
    play no part in the scoring: zeros)."""
    people = OFFICIAL["evaluate"]["people"]
    boxes = PersonBoxes.from_lists(people["image"], [[0.0] * 4] * len(people["image"]), people["score"])
    poses = PersonPoses(np.asarray(people["keypoints"], np.float32), np.asarray(people["center"], np.float32),
                        np.asarray(people["scale"], np.float32))
    return boxes, poses


RUNS = OFFICIAL["evaluate"]["runs"]
RUN_IDS = [f"in_vis_thre {r['in_vis_thre']} oks_thre {r['oks_thre']}{' soft' if r['soft_nms'] else ''}"
           for r in RUNS]


@pytest.mark.parametrize("run", RUNS, ids=RUN_IDS)
def test_rescore_equals_the_official_evaluate(run):
    boxes, poses = official_people()
    assert rescore(poses.keypoints, boxes.scores, run["in_vis_thre"]).tolist() == run["rescored"]


@pytest.mark.parametrize("run", RUNS, ids=RUN_IDS)
def test_score_people_equals_the_official_evaluate(run):
    """Per image (in the order images first appear), the records the official evaluation writes, in its
    order: the same people, scores and keypoints, to the last bit."""
    boxes, poses = official_people()
    records = score_people(boxes, poses, SIGMAS, run["in_vis_thre"], run["oks_thre"], run["soft_nms"])
    index = iter(range(len(records)))
    for image in run["kept"]:
        for person in image["people"]:
            record = records[next(index)]
            assert record["image_id"] == image["image"]
            assert record["score"] == person["score"], (image["image"], person["person"])
            assert record["keypoints"] == np.asarray(person["keypoints"], np.float32).astype(np.float64).tolist()
            assert record["scale"] == poses.scales[person["person"]].astype(np.float64).tolist()
    assert next(index, None) is None


@pytest.fixture(scope="module")
def tiny_topdown(tmp_path_factory):
    root = tmp_path_factory.mktemp("topdown_eval")
    write_tiny_coco(root / "data", split="val", num_images=3)
    cfg = tiny_pose_hrnet_cfg("DATASET.ROOT", str(root / "data"), "DATASET.TEST_SET", "val", "WORKERS", "0",
                              "TEST.BATCH_SIZE_PER_GPU", "3", "OUTPUT_DIR", str(root / "out"))
    torch.manual_seed(0)
    network = randomize(higherhrnet.build_model(cfg)).eval()
    higherhrnet.save_model(root / "topdown.pth", network, cfg)
    (root / "tiny_topdown.yaml").write_text(cfg.dump())
    return root, cfg, network


def test_crops_batched_across_images_give_each_image_s_poses(tiny_topdown):
    root, cfg, network = tiny_topdown
    source = higherhrnet.data.build_dataset(cfg, is_train=False).source
    boxes = ground_truth_boxes(source.coco)
    assert len(boxes) == 6 and len(set(boxes.image_ids.tolist())) == 3
    params = TopDownParams.from_config(cfg, COCO_KEYPOINTS)
    index = {image_id: i for i, image_id in enumerate(source.ids)}
    poses = predict_boxes(network, lambda i: source.load_image(index[i]), boxes, params)
    assert poses.keypoints.shape == (6, 17, 3) and np.isfinite(poses.keypoints).all()
    for image_id in sorted(set(boxes.image_ids.tolist())):
        rows = boxes.image_ids == image_id
        alone = estimate_poses(network, source.load_image(index[image_id]), boxes.boxes[rows], params)
        np.testing.assert_allclose(poses.keypoints[rows], alone.keypoints, rtol=1e-4, atol=1e-3)


def test_loader_workers_make_the_same_crops_in_the_same_order(tiny_topdown):
    root, cfg, network = tiny_topdown
    source = higherhrnet.data.build_dataset(cfg, is_train=False).source
    boxes = ground_truth_boxes(source.coco)
    params = TopDownParams.from_config(cfg, COCO_KEYPOINTS)     # 3 crops a batch: 2 batches for 6 boxes
    _, in_process = evaluate_top_down(network, source, boxes, params, 0.9, progress=False)
    _, in_workers = evaluate_top_down(network, source, boxes, params, 0.9, progress=False, workers=2)
    assert len(in_process) == len(in_workers) > 0
    assert in_process == in_workers


def boxes_to_predict(cfg_path, weights):
    """(network, load_image, boxes, params) for predict_boxes: the network of `weights` and the ground-truth boxes
    of the config's test split."""
    cfg = higherhrnet.load_cfg(str(cfg_path))
    source = higherhrnet.data.build_dataset(cfg, is_train=False).source
    index = {image_id: i for i, image_id in enumerate(source.ids)}
    network = higherhrnet.build_model(cfg)
    higherhrnet.load_checkpoint(network, str(weights))
    return (network.eval(), lambda i: source.load_image(index[i]), ground_truth_boxes(source.coco),
            TopDownParams.from_config(cfg, COCO_KEYPOINTS))


def predict_in_group(rank, world, init_file, cfg_path, weights, out):
    """Process `rank` of `world` (torch.multiprocessing.spawn): in a gloo group, predict_boxes at 2 and at 6 crops
    a batch; writes out/rank<rank>.npz: the keypoints of each, and the crops its network ran."""
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        network, load_image, boxes, params = boxes_to_predict(cfg_path, weights)
        crops = []
        network.register_forward_pre_hook(lambda module, args: crops.append(len(args[0])))
        keypoints = {f"batch_{size}": predict_boxes(network, load_image, boxes,
                                                    dataclasses.replace(params, batch_size=size)).keypoints
                     for size in (2, 6)}
        np.savez(os.path.join(out, f"rank{rank}.npz"), crops=sum(crops), **keypoints)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_processes_share_the_crop_batches_and_gather_the_single_process_poses(tiny_topdown, tmp_path):
    """Under torch.distributed predict_boxes runs each batch of crops once, on one process, and every process
    gets the poses of one process exactly (the same batches go through the same network): 6 boxes at 2 a batch
    (batches 0 and 2 on the first process, 1 on the second) and at 6 (the second has none)."""
    root, _, _ = tiny_topdown
    cfg_path, weights = root / "tiny_topdown.yaml", root / "topdown.pth"
    torch.set_num_threads(1)
    network, load_image, boxes, params = boxes_to_predict(cfg_path, weights)
    crops = []
    network.register_forward_pre_hook(lambda module, args: crops.append(len(args[0])))
    alone = {size: predict_boxes(network, load_image, boxes, dataclasses.replace(params, batch_size=size)).keypoints
             for size in (2, 6)}
    assert len(boxes) == 6 and not np.array_equal(alone[2][0], alone[2][1])
    torch.multiprocessing.spawn(predict_in_group, args=(2, str(tmp_path / "init"), str(cfg_path), str(weights),
                                                        str(tmp_path)), nprocs=2)
    ranks = [np.load(tmp_path / f"rank{rank}.npz") for rank in range(2)]
    for rank in ranks:
        for size in (2, 6):
            np.testing.assert_array_equal(rank[f"batch_{size}"], alone[size])
    # No crop twice: of the 12 crops one process ran (6 a batch size), the first ran 4 + 6, the second 2 + 0.
    per_crop = sum(crops) // 12                                 # network runs per crop (flip test: 2)
    assert [int(rank["crops"]) for rank in ranks] == [10 * per_crop, 2 * per_crop]


def run_eval(*args):
    return subprocess.run([sys.executable, "-m", "higherhrnet", "eval", *map(str, args)], capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.mark.slow
def test_eval_cli_scores_a_top_down_model(tiny_topdown, tmp_path):
    root, _, _ = tiny_topdown
    result = run_eval("--cfg", root / "tiny_topdown.yaml", "--weights", root / "topdown.pth", "--device", "cpu",
                      "--out", tmp_path / "gt")
    assert result.returncode == 0, result.stderr
    assert "| AP | AP .5 | AP .75 | AP (M) | AP (L) | AR |" in result.stdout
    results = json.loads((tmp_path / "gt/keypoints_val_results.json").read_text())
    metrics = json.loads((tmp_path / "gt/metrics_val.json").read_text())
    assert len(metrics) == 10 and all(-1 <= v <= 1 for v in metrics.values())
    assert 0 < len(results) <= 6 and {r["image_id"] for r in results} <= {100, 101, 102}
    assert all(set(r) == {"image_id", "category_id", "keypoints", "score", "bbox"} for r in results)
    with contextlib.redirect_stdout(io.StringIO()):
        COCO(str(root / "data/annotations/person_keypoints_val.json")).loadRes(
            str(tmp_path / "gt/keypoints_val_results.json"))
    # detection boxes: a file with one box per image, one below IMAGE_THRE
    dets = [{"image_id": r["image_id"], "category_id": 1, "bbox": r["bbox"], "score": 0.8} for r in results]
    dets.append({"image_id": 100, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.05})
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    result = run_eval("--cfg", root / "tiny_topdown.yaml", "--weights", root / "topdown.pth", "--device", "cpu",
                      "--out", tmp_path / "det", "TEST.USE_GT_BBOX", "False", "TEST.COCO_BBOX_FILE",
                      tmp_path / "dets.json", "TEST.IMAGE_THRE", "0.1")
    assert result.returncode == 0, result.stderr
    det_results = json.loads((tmp_path / "det/keypoints_val_results.json").read_text())
    assert len(det_results) <= len(results) and all(r["score"] <= 0.8 for r in det_results)
