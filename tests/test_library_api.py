"""The library inferencer: Predictor objects and their inputs (arrays, files, folders, lists, videos), clean by
default as `higherhrnet predict`, and the Result objects they return (plot, save, JSON, COCO, named joints)."""
from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest

from higherhrnet import Predictor, Result
from higherhrnet.images import read_image
from higherhrnet.predictor import CLEAN, SyntheticModelWarning
from higherhrnet.sources import Source, SourceError, collect_sources
from higherhrnet.video import VideoWriter

from conftest import EXPERIMENTS, REPO

SAMPLES = REPO / "demo" / "samples"
BUNDLED_CFG = EXPERIMENTS / "synthetic" / "w16_256_tiny.yaml"
BUNDLED = REPO / "models" / "w16_256_tiny.pth"


@pytest.fixture(scope="module")
def predictors():
    """The bundled model (trained on the synthetic people), clean (the default) and raw."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticModelWarning)
        return Predictor.from_config(BUNDLED_CFG, BUNDLED), Predictor.from_config(BUNDLED_CFG, BUNDLED, raw=True)


def test_clean_by_default_raw_on_request(predictors):
    clean, raw = predictors
    assert (clean.min_score, clean.oks_nms_threshold, clean.clip_to_image) == tuple(CLEAN.values())
    assert (raw.min_score, raw.oks_nms_threshold, raw.clip_to_image) == (0.0, None, False)
    # docs/models.md: the bundled model finds 3 people in crowded.jpg, 4 in four_people.jpg, 3 in three_people.jpg
    image = read_image(SAMPLES / "four_people.jpg")
    people, everyone = clean(image), raw(image)
    assert len(people) == 4 < len(everyone)
    assert [p.score for p in people] == sorted((p.score for p in people), reverse=True)
    assert min(p.score for p in people) >= 0.2
    # each clean person is one of the raw ones, once joints outside the image are moved onto it (an option
    # of the presets, here taken by itself)
    clipped = Predictor.from_config(BUNDLED_CFG, BUNDLED, raw=True, clip_to_image=True)(image)
    for person in people:
        assert any(np.array_equal(person.keypoints, other.keypoints) for other in clipped)


def test_a_synthetic_model_says_so_as_a_python_warning():
    with pytest.warns(SyntheticModelWarning, match="synthetic stick figures"):
        Predictor.from_config(BUNDLED_CFG, BUNDLED)


def test_bgr_arrays_are_read_as_bgr_when_told(predictors):
    clean, _ = predictors
    rgb = read_image(SAMPLES / "three_people.jpg")
    bgr = cv2.imread(str(SAMPLES / "three_people.jpg"))
    expected = clean(rgb)
    told = clean(bgr, channels="bgr")
    assert [p.keypoints.tolist() for p in told] == [p.keypoints.tolist() for p in expected]
    with pytest.raises(ValueError, match='channels must be "rgb"'):
        clean(rgb, channels="BGR")


def test_paths_folders_and_lists(predictors, tmp_path):
    clean, _ = predictors
    one = clean(SAMPLES / "crowded.jpg")
    assert isinstance(one, Result) and one.name == "crowded.jpg" and len(one) == 3
    assert [p.keypoints.tolist() for p in one] == [p.keypoints.tolist() for p in clean(read_image(SAMPLES / "crowded.jpg"))]
    folder = clean(str(SAMPLES))
    assert [r.name for r in folder] == ["crowded.jpg", "four_people.jpg", "three_people.jpg"]
    assert [len(r) for r in folder] == [3, 4, 3]
    mixed = clean([str(SAMPLES / "crowded.jpg"), read_image(SAMPLES / "crowded.jpg")])
    assert [len(r) for r in mixed] == [3, 3] and mixed[1].name is None
    globbed = clean(str(SAMPLES / "*_people.jpg"))
    assert [r.name for r in globbed] == ["four_people.jpg", "three_people.jpg"]
    with pytest.raises(SourceError, match="no such file"):
        clean(str(tmp_path / "missing.jpg"))


def test_result_draws_saves_and_exports(predictors, tmp_path):
    clean, _ = predictors
    result = clean(SAMPLES / "four_people.jpg")
    picture = result.plot()
    assert picture.shape == result.image.shape and picture.dtype == np.uint8
    assert (picture != result.image).any()
    path = result.save(tmp_path / "drawn.png")
    assert np.array_equal(cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB), picture)   # PNG: lossless
    record = result.to_json()
    assert record["image"] == "four_people.jpg" and (record["width"], record["height"]) == result.image.shape[1::-1]
    assert record["model"]["min_score"] == 0.2 and record["model"]["oks_nms_threshold"] == 0.5
    assert len(record["people"]) == 4
    json.dumps(record)                                                   # plain values only
    coco = result.to_coco(image_id=7)
    assert [c["image_id"] for c in coco] == [7] * 4
    # one box per person: the COCO bbox is the JSON box (which rounds to 0.1 px)
    for c, p in zip(coco, record["people"]):
        assert np.allclose(c["bbox"], p["box"], atol=0.051)
    person = result[0]
    assert np.array_equal(person["left_wrist"], person.keypoints[9])
    with pytest.raises(KeyError, match="no joint named 'left_paw'"):
        person["left_paw"]


def test_a_large_image_is_read_reduced_and_reported_in_full_pixels(predictors, tmp_path):
    clean, _ = predictors
    image = read_image(SAMPLES / "three_people.jpg")
    big = cv2.resize(image, (image.shape[1] * 4, image.shape[0] * 4), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(tmp_path / "big.jpg"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 98])
    small = Predictor.from_config(BUNDLED_CFG, BUNDLED, max_image_pixels=big.shape[0] * big.shape[1] // 16)
    result = small(tmp_path / "big.jpg")
    assert result.downscale == pytest.approx(0.25) and result.size == (big.shape[1], big.shape[0])
    assert result.image.shape[:2] == (big.shape[0] // 4, big.shape[1] // 4)
    xy = np.concatenate([p.keypoints[:, :2] for p in result])
    assert xy.max() > image.shape[1]                      # in the full image's pixels, not the reduced ones
    assert result.plot().shape == result.image.shape


def test_a_video_gives_tracked_results_frame_by_frame(predictors, tmp_path):
    clean, _ = predictors
    image = read_image(SAMPLES / "four_people.jpg")
    with VideoWriter(str(tmp_path / "clip"), 10.0, (image.shape[1], image.shape[0])) as writer:
        for shift in range(3):
            writer.write(np.roll(image, shift, axis=1))
    stream = clean(writer.path)
    frames = list(stream)
    assert [r.frame for r in frames] == [0, 1, 2] and all(len(r) == 4 for r in frames)
    assert set(frames[0].track_ids) == set(frames[1].track_ids) == set(frames[2].track_ids)   # the same 4 people
    assert len(set(frames[0].track_ids)) == 4
    assert "track_id" in frames[0].to_json()["people"][0]
    untracked = list(clean.stream(writer.path, track=False))
    assert untracked[0].track_ids is None and "track_id" not in untracked[0].to_json()["people"][0]


def test_sources_keep_local_names_as_they_are(tmp_path):
    for name in ("shot #1.jpg", "shot #2.jpg", "123#4.jpg", "what?.png"):
        (tmp_path / name).write_bytes(b"")
    found, _ = collect_sources([str(tmp_path / n) for n in ("shot #1.jpg", "shot #2.jpg", "123#4.jpg", "what?.png")])
    assert [s.name for s in found] == ["shot #1.jpg", "shot #2.jpg", "123#4.jpg", "what?.png"]
    assert collect_sources(["7"])[0] == [Source("webcam", 7)]                        # no file named 7 here
    url = "https://example.com/a/street.jpg?size=large"
    assert collect_sources([url])[0] == [Source("image", url)] and Source("image", url).name == "street.jpg"


# ---------------------------------------------------------------- Predictor(model): by name, file or default

def test_a_registered_name_is_enough(tmp_path):
    with pytest.warns(SyntheticModelWarning):
        predictor = Predictor("synthetic_w16_256")
    assert predictor.name == "synthetic_w16_256" and predictor.min_score == 0.2
    result = predictor(SAMPLES / "four_people.jpg")
    assert len(result) == 4 and result.to_json()["model"]["name"] == "synthetic_w16_256"
    # the same people as the model built from its config and file by hand
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticModelWarning)
        by_hand = Predictor.from_config(BUNDLED_CFG, BUNDLED)(SAMPLES / "four_people.jpg")
        raw = Predictor("synthetic_w16_256", raw=True, opts=["TEST.FLIP_TEST", "False"])
    assert [p.keypoints.tolist() for p in result] == [p.keypoints.tolist() for p in by_hand]
    assert raw.min_score == 0.0 and raw.params.flip_test is False


def test_a_model_file_of_ours_brings_its_config(tmp_path):
    import higherhrnet
    from conftest import tiny_cfg

    cfg = tiny_cfg("TEST.DETECTION_THRESHOLD", "0.3")
    higherhrnet.save_model(tmp_path / "mine.pth", higherhrnet.build_model(cfg), cfg)
    predictor = Predictor(tmp_path / "mine.pth", raw=True, device="cpu")
    assert predictor.params.grouping.detection_threshold == 0.3 and predictor.name == "mine.pth"
    with pytest.raises(TypeError, match="takes one positional argument, the model"):
        Predictor(tmp_path / "mine.pth", "cpu")


def test_no_model_offline_is_the_bundled_model_with_a_note(monkeypatch, caplog):
    from higherhrnet import zoo

    def offline(*args, **kwargs):
        raise zoo.WeightsError("cannot download: no network here")

    monkeypatch.setenv("HIGHERHRNET_CACHE", "/nonexistent-cache-for-this-test")
    monkeypatch.setattr(zoo, "download", offline)
    with caplog.at_level("WARNING", logger="higherhrnet"), warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticModelWarning)
        predictor = Predictor()
    assert predictor.name == "synthetic_w16_256"
    assert [r.message for r in caplog.records if "bundled demo model" in r.message]
    assert len(predictor(SAMPLES / "crowded.jpg")) == 3


def test_from_config_without_a_config_uses_the_one_the_weights_bring(tmp_path):
    import higherhrnet
    from conftest import tiny_cfg

    cfg = tiny_cfg("TEST.DETECTION_THRESHOLD", "0.3")
    higherhrnet.save_model(tmp_path / "mine.pth", higherhrnet.build_model(cfg), cfg)
    predictor = Predictor.from_config(None, tmp_path / "mine.pth", raw=True)
    assert predictor.params.grouping.detection_threshold == 0.3
    assert predictor.params.input_size == cfg.DATASET.INPUT_SIZE
    with pytest.raises(ValueError, match="carry no config"):
        Predictor.from_config(None, higherhrnet.build_model(cfg).state_dict())


def test_the_synthetic_warning_points_at_the_callers_line():
    with pytest.warns(SyntheticModelWarning) as caught:
        Predictor.from_config(BUNDLED_CFG, BUNDLED)
    assert caught[0].filename == __file__
