"""Bad inputs and faults through the Python API: what the Predictor takes and refuses, broken checkpoints,
non-finite outputs, people outside tiny images, config values, command-line splitting, leftover temporary
files, resume comparisons and the training guards. Each case checks the exact outcome and that the message
names the problem."""
from __future__ import annotations

import os
import pickle
import time

import cv2
import numpy as np
import pytest
import torch

import higherhrnet
from higherhrnet import CheckpointError, ConfigError, Predictor
from higherhrnet.cli.common import split_overrides
from higherhrnet.inference import NonFiniteOutputError, infer
from higherhrnet.engine.hooks import FiniteWeights, LossWatch
from higherhrnet.engine.resume import compare_configs
from higherhrnet.engine.train_loop import TrainingError, TrainLoop, TrainState
from higherhrnet.fileio import temporary_pattern, write_json
from higherhrnet.images import DamagedImageError
from higherhrnet.predictor import CLEAN, Person, _clip_to_image

from conftest import TINY_OPTS, tiny_cfg
from faultkit import libjpeg_warnings, make_models, zero_filled_hole


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def predictor(models):
    return Predictor.from_config(models / "tiny.yaml", models / "random.pth", opts=["TEST.FLIP_TEST", "False"], raw=True)


def picture(h=24, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def same_people(a: list[Person], b: list[Person]) -> bool:
    return len(a) == len(b) and all(np.array_equal(p.keypoints, q.keypoints) for p, q in zip(a, b))


# --- What Predictor(...)(image) takes and refuses -----------------------------------------------------------

def test_none_says_what_cv2_imread_returning_none_means(predictor):
    with pytest.raises(ValueError, match=r"image is None: cv2.imread returns None when it cannot read a file"):
        predictor(None)


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_float_images_are_refused_with_the_conversion(predictor, scale):
    image = (picture() / 255.0 * scale).astype(np.float32)
    image[0, 0], image[0, 1] = 0, scale
    with pytest.raises(ValueError) as info:
        predictor(image)
    message = str(info.value)
    assert f"image is a float32 array (values 0 to {scale:.3g})" in message
    assert "(image * 255).round().clip(0, 255).astype(np.uint8)" in message


@pytest.mark.parametrize("as_tensor", [False, True])
def test_channel_first_arrays_and_tensors_are_refused(predictor, as_tensor):
    image = np.ascontiguousarray(picture().transpose(2, 0, 1))          # (3, 24, 32)
    image = torch.from_numpy(image) if as_tensor else image
    with pytest.raises(ValueError, match=r"shape \(3, 24, 32\) looks channel-first") as info:
        predictor(image)
    assert ("image.permute(1, 2, 0)" if as_tensor else "image.transpose(1, 2, 0)") in str(info.value)


@pytest.mark.parametrize("image, expected", [
    (np.zeros((0, 5, 3), np.uint8), r"image is empty \(shape \(0, 5, 3\)\)"),
    (np.zeros((4, 4, 3), bool), r"image is a bool array \(a mask\?\)"),
    (np.zeros((4, 4, 3), np.int64), r"image is a int64 array: expected uint8"),
    ("photo.jpg", r"photo.jpg: no such file, folder, glob match, URL or webcam index"),   # a str is a path
    ({"image": 1}, r"expected a NumPy array .* got dict"),
    (np.zeros((2, 4, 4, 3), np.uint8), r"shape \(2, 4, 4, 3\).*for a batch pass a list of images"),
    (torch.zeros(4, 4, 3), r"image is a torch.float32 tensor of shape \(4, 4, 3\): a float tensor is taken as "
                           r"torchvision's ToTensor makes it, \(C, H, W\)"),
])
def test_other_inputs_are_refused_naming_what_they_are(predictor, image, expected):
    with pytest.raises(ValueError, match=expected):
        predictor(image)


def test_a_nested_list_is_refused_as_an_image_of_a_batch(predictor):
    with pytest.raises(ValueError, match=r"image 0: .*got a list of lists"):
        predictor([[[0, 0, 0]]])


@pytest.mark.parametrize("layout", ["gray", "gray1", "rgba", "uint16", "tensor"])
def test_unambiguous_layouts_give_the_rgb_result(predictor, layout):
    rgb = picture()
    gray = rgb[:, :, 1]
    if layout in ("gray", "gray1"):
        reference = np.repeat(gray[:, :, None], 3, axis=2)
        image = gray if layout == "gray" else gray[:, :, None]
    elif layout == "rgba":
        reference, image = rgb, np.concatenate([rgb, np.full_like(gray[:, :, None], 7)], axis=2)
    elif layout == "uint16":
        reference, image = rgb, rgb.astype(np.uint16) * 257          # 16-bit: v * 257 reads back as v
    else:
        reference, image = rgb, torch.from_numpy(rgb.copy())
    assert same_people(predictor(image), predictor(reference))


@pytest.mark.parametrize("channels", ["rgb", "bgr", "gray"])
def test_torchvision_float_tensors_give_the_result_of_their_pixels(predictor, channels):
    pixels = picture()
    if channels == "gray":
        pixels = pixels[:, :, :1]
    # torchvision.transforms.ToTensor: (C, H, W) float32, pixels / 255.
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous().float().div(255)
    reference = predictor(np.repeat(pixels, 3, axis=2) if channels == "gray" else pixels[:, :, ::-1].copy()
                          if channels == "bgr" else pixels)
    assert same_people(predictor(tensor, channels="bgr" if channels == "bgr" else "rgb"), reference)


def test_float_tensors_of_other_ranges_are_refused_saying_how_to_convert(predictor):
    tensor = torch.from_numpy(picture()).permute(2, 0, 1).float()         # 0..255, not ToTensor's 0..1
    with pytest.raises(ValueError) as info:
        predictor(tensor)
    message = str(info.value)
    assert message.startswith("image is a torch.float32 (C, H, W) tensor with values ")
    assert message.endswith("for pixels 0..255 pass image.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)")
    converted = tensor.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    assert same_people(predictor(converted), predictor(picture()))


def test_a_damaged_jpeg_file_is_refused_unless_accepted(models, predictor, tmp_path, capfd):
    path = tmp_path / "photo.jpg"
    assert cv2.imwrite(str(path), picture(96, 128)[:, :, ::-1])
    zero_filled_hole(path)
    assert "Corrupt JPEG data" in libjpeg_warnings(path, capfd)
    with pytest.raises(DamagedImageError) as info:
        predictor(path)
    assert str(info.value).startswith(f"{path}: damaged JPEG") and str(info.value).endswith(
        "pass accept_damaged=True to use it as decoded")
    accepting = Predictor.from_config(models / "tiny.yaml", models / "random.pth", opts=["TEST.FLIP_TEST", "False"],
                                      raw=True, accept_damaged=True)
    as_decoded = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert same_people(accepting(path), predictor(as_decoded))


def test_a_list_or_tuple_of_images_is_a_batch(predictor):
    a, b = picture(seed=1), picture(30, 20, seed=2)
    singles = [predictor(a), predictor(b)]
    for batch in ([a, b], (a, b)):
        results = predictor(batch)
        assert len(results) == 2 and all(same_people(r, s) for r, s in zip(results, singles))


# --- Broken checkpoints and outputs -------------------------------------------------------------------------

def test_a_checkpoint_with_nan_is_refused_naming_the_tensor(models):
    model = higherhrnet.build_model(tiny_cfg())
    with pytest.raises(CheckpointError) as info:
        higherhrnet.load_checkpoint(model, models / "nan.pth")
    assert "nan.pth has NaN or infinite values in 1 tensor: stage2.0.fuse_layers.0.1.1.running_var (1 of 8 " \
           "values: NaN)" in str(info.value)
    with pytest.raises(CheckpointError, match="stage2.0.fuse_layers.0.1.1.running_var"):
        Predictor.from_config(models / "tiny.yaml", models / "nan.pth", raw=True)


def test_saving_non_finite_weights_is_refused_and_writes_nothing(tmp_path):
    model = higherhrnet.build_model(tiny_cfg())
    with torch.no_grad():
        model.bn1.running_var[0] = float("inf")
    with pytest.raises(CheckpointError, match=r"bn1.running_var \(1 of 16 values: inf\); not saved as"):
        higherhrnet.save_model(tmp_path / "m.pth", model)
    assert os.listdir(tmp_path) == []


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"state_dict": Payload()}, f)
    with pytest.raises(CheckpointError, match="refusing to load .*evil.pth: it is not a plain weights file"):
        higherhrnet.load_checkpoint(higherhrnet.build_model(tiny_cfg()), tmp_path / "evil.pth")


def test_non_finite_network_outputs_are_reported(models):
    cfg = tiny_cfg()
    model = higherhrnet.build_model(cfg).eval()
    with torch.no_grad():
        model.final_layers[0].bias.fill_(float("nan"))             # finite loading is bypassed: a model in memory
    predictor = Predictor.from_model(cfg, model, fold_bn=False, raw=True)
    with pytest.raises(NonFiniteOutputError, match=r"outputs hold NaN or infinite values \(\d+ of \d+ heatmap values"):
        predictor(picture())
    with pytest.raises(NonFiniteOutputError, match="outputs for image 0 of the batch hold NaN"):
        predictor([picture(), picture()])


# --- People outside tiny images -----------------------------------------------------------------------------

def test_clip_to_image_moves_joints_inside_and_lowers_the_score():
    keypoints = np.array([[0.2, 0.1, 0.9], [3.0, 0.0, 0.6], [-2.0, -1.0, 0.3]], np.float32)
    inside, outside = Person(keypoints, 0.6, np.zeros((3, 1))), Person(keypoints + [5, 0, 0], 0.6, np.zeros((3, 1)))
    (clipped,) = _clip_to_image([inside, outside], width=1, height=1)     # the second has no joint inside
    np.testing.assert_allclose(clipped.keypoints, [[0.2, 0.1, 0.9], [0, 0, 0], [0, 0, 0]])
    assert clipped.score == pytest.approx(0.6 - (0.6 + 0.3) / 3)
    assert inside.keypoints[1].tolist() == pytest.approx([3.0, 0.0, 0.6])      # the input is not changed


def test_clean_results_on_a_1x1_image_stay_inside_the_pixel_and_official_results_are_unchanged(models):
    image = np.full((1, 1, 3), 128, np.uint8)
    clean = Predictor.from_config(models / "tiny.yaml", models / "random.pth", **CLEAN)
    official = Predictor.from_config(models / "tiny.yaml", models / "random.pth", raw=True)
    people = clean(image)
    for person in people:
        assert np.abs(person.keypoints[:, :2]).max() <= 0.5
    persons, _ = infer(official.network, [image], official.params, official.device)[0]
    assert len(persons) > 0 and np.abs(persons[:, :, :2]).max() > 0.5      # the grouping's own output
    assert [p.keypoints.tolist() for p in official(image)] == [p[:, :3].tolist() for p in persons]


# --- Configuration values, command lines --------------------------------------------------------------------

@pytest.mark.parametrize("key, value, rule", [
    ("TRAIN.IMAGES_PER_GPU", "0", "TRAIN.IMAGES_PER_GPU must be at least 1, got 0"),
    ("WORKERS", "-1", "WORKERS must be >= 0 (0 loads data in the main process), got -1"),
    ("DATASET.INPUT_SIZE", "100", "DATASET.INPUT_SIZE (100) must be a multiple of 32 for MODEL.NAME pose_higher_hrnet"),
    ("DATASET.FLIP", "1.5", "DATASET.FLIP must be between 0 and 1, got 1.5"),
    ("DATASET.MAX_NUM_PEOPLE", "0", "DATASET.MAX_NUM_PEOPLE must be at least 1, got 0"),
    ("DATASET.MIN_SCALE", "2.0", "DATASET.MAX_SCALE (1.5) must be >= DATASET.MIN_SCALE (2.0)"),
    ("TRAIN.LR", "0", "TRAIN.LR must be > 0, got 0.0"),
    ("TRAIN.LR_FACTOR", "-0.1", "TRAIN.LR_FACTOR must be > 0, got -0.1"),
    ("TRAIN.BEGIN_EPOCH", "400", "TRAIN.END_EPOCH (300) must be > TRAIN.BEGIN_EPOCH (400)"),
    ("TRAIN.END_EPOCH", "0", "TRAIN.END_EPOCH (0) must be > TRAIN.BEGIN_EPOCH (0): training runs epochs BEGIN_EPOCH "
                             "to END_EPOCH - 1, so this schedule is empty"),       # nothing untrained is saved
    ("TEST.DETECTION_THRESHOLD", "2", "TEST.DETECTION_THRESHOLD must be between 0 and 1, got 2.0"),
    ("TEST.NMS_KERNEL", "-1", "TEST.NMS_KERNEL must be at least 1, got -1"),
    ("LOSS.PUSH_LOSS_FACTOR", "[0.001, -1]", "every entry of LOSS.PUSH_LOSS_FACTOR must be >= 0"),
])
def test_config_values_are_checked_at_load_naming_key_and_rule(key, value, rule):
    with pytest.raises(ConfigError) as info:
        higherhrnet.load_cfg(None, TINY_OPTS + [key, value])      # the later value of a key wins
    assert rule in str(info.value)


def test_options_values_and_files_are_never_taken_for_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "TEST.JPG").write_bytes(b"")
    rest, overrides = split_overrides(["--image", "x.png", "TEST.FLIP_TEST", "False", "--threshold", "0.5", "--out",
                                       "TEST", "TEST.JPG"], value_options={"--out", "--threshold"})
    assert rest == ["--image", "x.png", "--threshold", "0.5", "--out", "TEST", "TEST.JPG"]
    assert overrides == ["TEST.FLIP_TEST", "False"]


# --- Files left behind, resume decisions, training guards ---------------------------------------------------

def test_a_killed_writers_temporary_is_removed_by_the_next_write_and_nothing_else(tmp_path):
    target = tmp_path / "checkpoint.pth"
    stale = tmp_path / ".checkpoint.pth.k1ll3d.tmp.pth"           # as atomic_write names them
    fresh = tmp_path / ".checkpoint.pth.w0rk1n.tmp.pth"           # another process writing right now
    other = tmp_path / ".model_best.pth.k1ll3d.tmp.pth"           # another file's
    for path in (stale, fresh, other):
        path.write_bytes(b"half")
    hour_ago = time.time() - 3600
    for path in (stale, other):
        os.utime(path, (hour_ago, hour_ago))
    assert sorted(p.name for p in tmp_path.glob(os.path.basename(temporary_pattern(target)))) == \
        sorted([fresh.name, stale.name])
    write_json({"a": 1}, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, fresh.name, other.name])


def test_resume_comparison_sorts_changes_into_harmless_applied_and_refused():
    old = higherhrnet.load_cfg(None, TINY_OPTS)
    new = higherhrnet.load_cfg(None, TINY_OPTS + ["WORKERS", "0", "TRAIN.LR", "0.01", "TRAIN.OPTIMIZER", "sgd",
                                                  "MODEL.EXTRA.STAGE4.NUM_CHANNELS", "[8, 16, 32, 48]",
                                                  "TRAIN.CHANNELS_LAST", "never", "TRAIN.END_EPOCH", "500",
                                                  "WORLD_SIZE", "8"])
    saved = old.dump().replace("  LR: 0.001\n", "  LR: 0.001\n  GONE_KEY: 1\n")   # a key of another version
    changes = compare_configs(saved, new)
    assert changes.harmless == [("WORKERS", 4, 0), ("TRAIN.CHANNELS_LAST", "cpu", "never")]
    # END_EPOCH is where SWAHR's schedule reaches 0; WORLD_SIZE multiplies the rate.
    assert sorted(changes.schedule) == [("TRAIN.END_EPOCH", 300, 500), ("TRAIN.LR", 0.001, 0.01), ("WORLD_SIZE", 1, 8)]
    assert changes.refused == [("MODEL.EXTRA.STAGE4.NUM_CHANNELS", [8, 16, 32, 64], [8, 16, 32, 48]),
                               ("TRAIN.OPTIMIZER", "adam", "sgd")]
    assert changes.unknown == ["TRAIN.GONE_KEY"]
    assert compare_configs(old.dump(), old).refused == []


class _Loop:
    """What a hook reads of a TrainLoop: 4 epochs of 10 iterations."""

    position = TrainLoop.position

    def __init__(self):
        self.state = TrainState()
        self.end_epoch, self.iters_per_epoch = 4, 10


def test_a_loss_growing_a_thousandfold_is_reported_once(caplog):
    watch = LossWatch(factor=1000, baseline_steps=4)
    watch.loop = _Loop()
    losses = [0.02, 0.01, 0.03, 0.02, 0.5, 25.0, 40.0]
    with caplog.at_level("WARNING", logger="higherhrnet.train"):
        for iteration, loss in enumerate(losses):
            watch.loop.state.iteration, watch.loop.state.step_losses = iteration, {"loss": loss}
            watch.after_step()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "the loss is 25 in epoch 1/4, iteration 6/10, 1.25e+03 times the median of the first 4 iterations" in warnings[0]


def test_weights_becoming_infinite_stop_training_naming_tensor_epoch_and_iteration():
    model = higherhrnet.build_model(tiny_cfg())
    guard = FiniteWeights(model)
    guard.loop = _Loop()
    guard.loop.state.epoch, guard.loop.state.iteration = 3, 7
    guard.after_step()                                    # finite: nothing happens
    with torch.no_grad():
        model.stage4[0].fuse_layers[0][1][1].running_var[2] = float("inf")
    with pytest.raises(TrainingError, match=r"NaN or infinite by epoch 4/4, iteration 8/10: "
                                            r"stage4.0.fuse_layers.0.1.1.running_var \(1 of 8 values: inf\)"):
        guard.after_step()
