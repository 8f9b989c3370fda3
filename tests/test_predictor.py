"""predictor.py: a Predictor is a ready network, the inference parameters and the keypoint set; from_config
(and the first releases' Predictor(cfg, weights, ...)) builds them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import higherhrnet
from higherhrnet import COCO_KEYPOINTS, Predictor
from higherhrnet.inference import InferenceParams
from higherhrnet.predictor import synthetic_model_note

from conftest import randomize, tiny_cfg


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cfg = tiny_cfg()
    model = randomize(higherhrnet.build_model(cfg))
    image = np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)
    return cfg, model, image


def same_people(a, b):
    assert len(a) == len(b) > 0
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.keypoints, q.keypoints)
        assert p.score == q.score


def test_every_way_of_building_gives_the_same_people(setup):
    cfg, model, image = setup
    params = InferenceParams.from_config(cfg, COCO_KEYPOINTS)
    plain = Predictor(model, params, COCO_KEYPOINTS, raw=True)                     # a ready network, as it is
    reference = plain(image)
    same_people(Predictor(model, params, COCO_KEYPOINTS, "cpu", raw=True)(image), reference)
    same_people(Predictor.from_config(cfg, model.state_dict(), fold_bn=False, raw=True)(image), reference)
    same_people(Predictor(cfg, model.state_dict(), fold_bn=False, raw=True)(image), reference)       # first releases' call
    same_people(Predictor(cfg, model.state_dict(), "cpu", fold_bn=False, raw=True)(image), reference)  # with device third
    same_people(Predictor.from_model(cfg, model, fold_bn=False, raw=True)(image), reference)
    assert plain.backend == "torch" and plain.device == torch.device("cpu")


def test_constructor_errors_say_what_is_expected(setup):
    cfg, model, _ = setup
    with pytest.raises(TypeError, match="params must be InferenceParams and keypoints a KeypointSpec"):
        Predictor(model, InferenceParams.from_config(cfg, COCO_KEYPOINTS), raw=True)
    with pytest.raises(TypeError, match="options of Predictor.from_config"):
        Predictor(model, InferenceParams.from_config(cfg, COCO_KEYPOINTS), COCO_KEYPOINTS, fold_bn=False, raw=True)
    with pytest.raises(TypeError, match="multiple values for argument 'device'"):
        Predictor(cfg, model.state_dict(), "cpu", device="cpu", raw=True)


def test_input_size_limit_is_an_option_of_the_predictor(setup):
    cfg, model, _ = setup
    predictor = Predictor.from_model(cfg, model, max_input_pixels=128 * 256, raw=True)
    assert predictor.max_input_pixels == 128 * 256
    predictor(np.zeros((64, 128, 3), np.uint8))                           # 128 x 256 input: at the limit
    with pytest.raises(ValueError, match="over the limit of 32768 pixels"):
        predictor(np.zeros((64, 200, 3), np.uint8))


def test_meta_comes_from_the_checkpoint_and_says_when_a_model_is_synthetic(setup, tmp_path):
    cfg, model, _ = setup
    synthetic_cfg = tiny_cfg("DATASET.DATASET", "synthetic", "DATASET.DATASET_TEST", "synthetic")
    path = tmp_path / "synthetic.pth"
    higherhrnet.save_model(path, model, synthetic_cfg, COCO_KEYPOINTS, epoch=3)
    predictor = Predictor.from_config(cfg, path, raw=True)
    assert predictor.meta["dataset"] == "synthetic" and predictor.meta["epoch"] == 3
    note = synthetic_model_note(predictor.meta)
    assert "synthetic" in note and "higherhrnet_w32_512" in note and "\n" not in note
    assert Predictor(cfg, path, raw=True).meta == predictor.meta                   # the first releases' call too
    coco = tmp_path / "coco.pth"
    higherhrnet.save_model(coco, model, cfg, COCO_KEYPOINTS)
    assert Predictor.from_config(cfg, coco, raw=True).meta["dataset"] == "coco_kpt"
    assert synthetic_model_note(Predictor.from_config(cfg, coco, raw=True).meta) is None
    official = tmp_path / "official.pth"
    torch.save(model.state_dict(), official)
    assert Predictor.from_config(cfg, official, raw=True).meta == {}
    assert synthetic_model_note({}) is None
    assert Predictor.from_model(cfg, model, raw=True).meta == {}
