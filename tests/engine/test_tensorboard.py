"""What training writes to TensorBoard: losses, learning rate and validation metrics on one step axis under
the documented tags, and pictures of the first validation image at each validation. The event files are
read back record by record with tensorboardX's own protocol buffers (tensorboard itself is not needed)."""
from __future__ import annotations

import re
import struct
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.record_writer import masked_crc32c

import higherhrnet
from higherhrnet import COCO_KEYPOINTS, Predictor
from higherhrnet.engine import Trainer
from higherhrnet.engine.evaluation import validation_pictures
from higherhrnet.engine.hooks import loss_tag, metric_tag
from higherhrnet.inference import InferenceParams
from higherhrnet.losses import loss_term_names
from higherhrnet.models import build_output_specs
from higherhrnet.vis import heatmap_grid

from conftest import EXPERIMENTS, REPO, painted_image, painted_network, people_in, tiny_cfg, tiny_hourglass_cfg
from tinycoco import write_tiny_coco

TRAIN_TAGS = {"loss/total", "loss/heatmaps_1/4", "loss/push_1/4", "loss/pull_1/4", "loss/heatmaps_1/2",
              "learning_rate"}
VAL_TAGS = {"val/AP", "val/AP.5", "val/AP.75", "val/AP_M", "val/AP_L", "val/AR", "val/AR.5", "val/AR.75",
            "val/AR_M", "val/AR_L"}
IMAGE_TAGS = {"val_image/poses", "val_image/heatmaps", "val_image/tags"}


def read_events(folder: Path) -> list[Event]:
    """Every event of the event files in `folder`. A record: length (uint64), its masked CRC-32C (uint32),
    the serialized Event, its masked CRC-32C (uint32), little-endian."""
    events = []
    for path in sorted(folder.glob("events.out.tfevents*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            header = data[pos:pos + 8]
            (length,), (header_crc,) = struct.unpack("<Q", header), struct.unpack("<I", data[pos + 8:pos + 12])
            body = data[pos + 12:pos + 12 + length]
            (body_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
            assert header_crc == masked_crc32c(header) and body_crc == masked_crc32c(body), f"{path} is damaged"
            events.append(Event.FromString(body))
            pos += 16 + length
    return events


def test_training_and_validation_share_the_step_axis_under_the_documented_tags(tmp_path):
    torch.set_num_threads(2)
    root = tmp_path / "data"
    write_tiny_coco(root, num_images=4)
    write_tiny_coco(root, split="val", num_images=2, seed=1)
    cfg = tiny_cfg("DATASET.ROOT", str(root), "DATASET.TRAIN", "train", "DATASET.TEST", "val", "WORKERS", "0",
                   "TRAIN.IMAGES_PER_GPU", "2", "TRAIN.END_EPOCH", "2", "TRAIN.VAL_FREQ", "1", "PRINT_FREQ", "1",
                   "TRAIN.LR", "0.01", "TRAIN.WARMUP_EPOCHS", "1.0", "TRAIN.WARMUP_FACTOR", "0.1",
                   "OUTPUT_DIR", str(tmp_path / "out"), "LOG_DIR", str(tmp_path / "log"))
    trainer = Trainer(cfg, "tiny.yaml", device="cpu")
    try:
        trainer.run()
    finally:
        trainer.close()
    n = trainer.iters_per_epoch
    assert n == 2                                          # 4 images, 2 per step
    steps, images, lrs = defaultdict(list), defaultdict(list), {}
    for event in read_events(Path(trainer.log_dir)):
        for value in event.summary.value:
            if value.HasField("image"):
                images[value.tag].append((event.step, value.image))
            else:
                steps[value.tag].append(event.step)
            if value.tag == "learning_rate":
                lrs[event.step] = value.simple_value
    assert set(steps) == TRAIN_TAGS | VAL_TAGS
    for tag in TRAIN_TAGS:
        assert sorted(steps[tag]) == [0, 1, 2, 3], tag    # every iteration of both epochs (PRINT_FREQ 1)
    # the rate each iteration used: linear warm-up from 0.1 x 0.01 over the first epoch (2 steps), then 0.01
    assert lrs == pytest.approx({0: 0.001, 1: 0.01 * (0.1 * 0.5 + 0.5), 2: 0.01, 3: 0.01})
    for tag in VAL_TAGS:
        # after epoch e: the step of its last iteration (e * n + n - 1) + 1
        assert sorted(steps[tag]) == [0 * n + n - 1 + 1, 1 * n + n - 1 + 1], tag
    assert set(images) == IMAGE_TAGS
    for tag, written in images.items():
        assert [step for step, _ in written] == [2, 4], tag
    # the poses picture is the first validation image (id 100, not 101) with the people drawn on it
    poses = cv2.imdecode(np.frombuffer(images["val_image/poses"][-1][1].encoded_image_string, np.uint8),
                         cv2.IMREAD_COLOR)
    first, second = (cv2.imread(str(root / f"images/val/{i:012d}.jpg")) for i in (100, 101))
    assert poses.shape == first.shape
    difference = [np.abs(poses.astype(int) - other).mean() for other in (first, second)]
    assert difference[0] < 0.5 * difference[1], difference
    heatmaps = images["val_image/heatmaps"][-1][1]
    assert heatmaps.height > 0 and heatmaps.width > 0 and heatmaps.colorspace == 3


def test_tags_for_every_output_layout():
    higher = build_output_specs(tiny_cfg())
    assert [loss_tag(n) for n in ("loss", *loss_term_names(higher))] == [
        "loss/total", "loss/heatmaps_1/4", "loss/push_1/4", "loss/pull_1/4", "loss/heatmaps_1/2"]
    swahr = build_output_specs(tiny_cfg("MODEL.SWAHR", "True"))
    assert [loss_tag(n) for n in loss_term_names(swahr)] == [
        "loss/heatmaps_1/4", "loss/scale_1/4", "loss/push_1/4", "loss/pull_1/4", "loss/heatmaps_1/2", "loss/scale_1/2"]
    stacks = build_output_specs(tiny_hourglass_cfg())      # hourglass stacks share a resolution
    assert loss_term_names(stacks) == ("heatmaps_1/4_output0", "push_1/4_output0", "pull_1/4_output0",
                                       "heatmaps_1/4_output1", "push_1/4_output1", "pull_1/4_output1")
    assert [metric_tag(m) for m in ("AP", "AP .5", "AP (M)", "AP (easy)")] == ["val/AP", "val/AP.5", "val/AP_M",
                                                                              "val/AP_easy"]
    assert [metric_tag(m) for m in ("Head", "Mean", "Mean@0.1", "PCK")] == ["val/Head", "val/Mean", "val/Mean_0.1",
                                                                           "val/PCK"]      # MPII's


def test_docs_list_the_loss_tags_the_loss_names():
    """The TensorBoard table (docs/training-reference.md) names exactly the loss tags training writes: the total
    and every term the loss returns for HigherHRNet with SWAHR (which has them all), plus the rule for outputs
    sharing a resolution."""
    readme = (REPO / "docs" / "training-reference.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`(loss/[^`]+)`", readme))
    swahr = build_output_specs(higherhrnet.load_cfg(EXPERIMENTS / "coco" / "swahr" / "w32_512.yaml"))
    assert listed == {loss_tag(n) for n in ("loss", *loss_term_names(swahr))}
    stacks = loss_term_names(build_output_specs(tiny_hourglass_cfg()))
    assert "`_output<i>` appended" in readme and all(re.search(r"_output\d$", name) for name in stacks)


def test_validation_pictures_show_what_grouping_sees():
    cfg = tiny_cfg()
    w, h = 128, 96
    people = people_in(w, h, 2, seed=3)
    network = painted_network(cfg, people, (w, h))                # perfect maps; tags 0 and 4
    predictor = Predictor(network, InferenceParams.from_config(cfg, COCO_KEYPOINTS), COCO_KEYPOINTS, raw=True)
    image = painted_image(w, h)
    pictures = validation_pictures(predictor, image)
    assert set(pictures) == {"poses", "heatmaps", "tags"}
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 for p in pictures.values())
    poses = pictures["poses"]
    assert poses.shape == image.shape
    drawn = (poses != image).any(axis=2)
    inside = [(x, y) for x, y in np.round(people.reshape(-1, 2)).astype(int) if 0 <= x < w and 0 <= y < h]
    assert len(inside) > 20 and all(drawn[y, x] for x, y in inside)   # a dot on every true joint
    tags = pictures["tags"]
    assert pictures["heatmaps"].shape == heatmap_grid(np.zeros((17,) + tags.shape[:2])).shape
    hsv = cv2.cvtColor(tags, cv2.COLOR_RGB2HSV).astype(int)
    shown = hsv[..., 2] > 0
    assert 0 < shown.mean() < 0.5                                  # joints shown, background black
    red, violet = np.abs(hsv[..., 0] - 0) <= 2, np.abs(hsv[..., 0] - 135) <= 2
    assert red[shown].any() and violet[shown].any()                # one colour per person
    assert (red | violet)[shown].mean() > 0.9


def test_events_that_cannot_be_written_stop_training_with_one_line(tmp_path):
    """A full disk under the events file (its stream swapped for /dev/full, which fails every write with
    ENOSPC as a full disk does): the next flush stops training with UnwritableOutput naming the file, instead
    of a writer thread dying with a traceback and training blocking on its full queue."""
    import errno
    import os

    from higherhrnet.engine.hooks import TensorBoard
    from higherhrnet.engine.train_loop import UnwritableOutput

    hook = TensorBoard(str(tmp_path), period=1)
    hook.before_train()
    events = hook.writer._file_name
    hook.scalar("loss/total", 1.0, 0)
    hook.flush()
    assert [e.summary.value[0].tag for e in read_events(tmp_path) if e.summary.value] == ["loss/total"]
    recorder = hook.writer._py_recordio_writer
    recorder._writer.close()
    recorder._writer = open("/dev/full", "wb")
    hook.scalar("loss/total", 2.0, 1)
    with pytest.raises(UnwritableOutput) as info:
        hook.flush()
    assert str(info.value) == f"cannot write {events}: {os.strerror(errno.ENOSPC)} (TensorBoard's events)"
    hook.close()                                      # nothing more to say, and no exception
