from __future__ import annotations

import pytest
import yaml

import higherhrnet
from higherhrnet import ConfigError

from conftest import EXPERIMENTS, TINY_OPTS

EXPERIMENT_FILES = sorted(EXPERIMENTS.rglob("*.yaml"))


def write_yaml(tmp_path, data, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_get_cfg_returns_independent_copies():
    a, b = higherhrnet.get_cfg(), higherhrnet.get_cfg()
    a.TEST.FLIP_TEST = False
    a.MODEL.EXTRA.STAGE4.NUM_CHANNELS[0] = 999
    assert b.TEST.FLIP_TEST is True
    assert higherhrnet.get_cfg().MODEL.EXTRA.STAGE4.NUM_CHANNELS[0] == 32


def test_loaded_config_is_frozen():
    cfg = higherhrnet.load_cfg(EXPERIMENT_FILES[0])
    with pytest.raises(AttributeError):
        cfg.TEST.FLIP_TEST = False


def test_experiment_files_exist():
    names = {p.name for p in EXPERIMENT_FILES}
    assert {"w32_512_adam_lr1e-3.yaml", "w32_640_adam_lr1e-3.yaml", "w48_640_adam_lr1e-3.yaml"} <= names


@pytest.mark.parametrize("path", EXPERIMENT_FILES, ids=lambda p: p.name)
def test_every_experiment_loads_and_builds(path):
    cfg = higherhrnet.load_cfg(path)
    model = higherhrnet.build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_official_hyper_parameters():
    """The values of the official recipes (reference-behaviour.md and the official YAML files)."""
    w32 = higherhrnet.load_cfg(EXPERIMENTS / "coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    assert (w32.DATASET.INPUT_SIZE, list(w32.DATASET.OUTPUT_SIZE)) == (512, [128, 256])
    assert (w32.DATASET.MIN_SCALE, w32.DATASET.MAX_SCALE, w32.DATASET.MAX_ROTATION) == (0.75, 1.5, 30)
    assert (w32.DATASET.MAX_TRANSLATE, w32.DATASET.FLIP, w32.DATASET.SIGMA) == (40, 0.5, 2.0)
    assert (w32.TRAIN.OPTIMIZER, w32.TRAIN.LR, list(w32.TRAIN.LR_STEP), w32.TRAIN.END_EPOCH) == \
        ("adam", 0.001, [200, 260], 300)
    assert w32.LOSS.AE_LOSS_TYPE == "exp" and tuple(w32.LOSS.WITH_AE_LOSS) == (True, False)
    assert tuple(w32.LOSS.PUSH_LOSS_FACTOR) == (0.001, 0.001)
    assert (w32.TEST.NMS_KERNEL, w32.TEST.NMS_PADDING, w32.TEST.DETECTION_THRESHOLD) == (5, 2, 0.1)
    assert w32.TEST.TAG_THRESHOLD == 1.0 and w32.TEST.FLIP_TEST and w32.TEST.PROJECT2IMAGE
    assert w32.TRAIN.IMAGES_PER_GPU == 12 and not w32.FP16.ENABLED
    w48 = higherhrnet.load_cfg(EXPERIMENTS / "coco/higher_hrnet/w48_640_adam_lr1e-3.yaml")
    assert list(w48.MODEL.EXTRA.STAGE4.NUM_CHANNELS) == [48, 96, 192, 384]
    assert list(w48.DATASET.OUTPUT_SIZE) == [160, 320] and w48.FP16.ENABLED and w48.TRAIN.IMAGES_PER_GPU == 10


def test_official_style_strings_are_decoded():
    # The official files write tuples as strings: "GPUS: (0,)", "WITH_HEATMAPS: (True, True)".
    cfg = higherhrnet.load_cfg(EXPERIMENTS / "coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    assert cfg.GPUS == (0,)
    assert cfg.TEST.WITH_HEATMAPS == (True, True)


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    path = write_yaml(tmp_path, {"TEST": {"FLIP_TSET": True}})
    with pytest.raises(ConfigError) as e:
        higherhrnet.load_cfg(path)
    msg = str(e.value)
    assert "TEST.FLIP_TSET" in msg and str(path) in msg and "did you mean TEST.FLIP_TEST" in msg


def test_unknown_section_fails(tmp_path):
    path = write_yaml(tmp_path, {"TRIAN": {"LR": 0.1}})
    with pytest.raises(ConfigError, match="unknown config key TRIAN"):
        higherhrnet.load_cfg(path)


@pytest.mark.parametrize("key,value", [
    ("TEST.FLIP_TEST", "sometimes"),
    ("DATASET.INPUT_SIZE", 512.5),
    ("TRAIN.LR_STEP", 200),
    ("TEST.FLIP_TEST", 1),
    ("MODEL.EXTRA", 3),
])
def test_wrong_type_names_key_and_file(tmp_path, key, value):
    section, name = key.split(".", 1)
    path = write_yaml(tmp_path, {section: {name: value}})
    with pytest.raises(ConfigError) as e:
        higherhrnet.load_cfg(path)
    assert key in str(e.value) and str(path) in str(e.value)


def test_int_accepted_for_float_and_list_for_tuple(tmp_path):
    path = write_yaml(tmp_path, {"DATASET": {"BASE_SIZE": 200}, "TEST": {"WITH_AE": [True, False]}})
    cfg = higherhrnet.load_cfg(path)
    assert cfg.DATASET.BASE_SIZE == 200.0 and isinstance(cfg.DATASET.BASE_SIZE, float)
    assert cfg.TEST.WITH_AE == (True, False)


def test_command_line_overrides():
    cfg = higherhrnet.load_cfg(None, ["TEST.SCALE_FACTOR", "[0.5,1.0,2.0]", "TEST.FLIP_TEST", "False",
                                      "DATASET.ROOT", "/data/coco"])
    assert list(cfg.TEST.SCALE_FACTOR) == [0.5, 1.0, 2.0]
    assert cfg.TEST.FLIP_TEST is False
    assert cfg.DATASET.ROOT == "/data/coco"


def test_command_line_errors():
    with pytest.raises(ConfigError, match="command line: unknown config key TEST.NOPE"):
        higherhrnet.load_cfg(None, ["TEST.NOPE", "1"])
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        higherhrnet.load_cfg(None, ["TEST.FLIP_TEST"])


def test_inconsistent_lengths_are_rejected():
    with pytest.raises(ConfigError, match="LOSS.WITH_AE_LOSS has 3 entries"):
        higherhrnet.load_cfg(None, ["LOSS.WITH_AE_LOSS", "[True, False, False]"])
    with pytest.raises(ConfigError, match="STAGE3.NUM_CHANNELS"):
        higherhrnet.load_cfg(None, ["MODEL.EXTRA.STAGE3.NUM_CHANNELS", "[32, 64]"])
    with pytest.raises(ConfigError, match="MODEL.NUM_JOINTS"):
        higherhrnet.load_cfg(None, ["MODEL.NUM_JOINTS", "14"])


def test_data_dir_prefixes_relative_paths():
    cfg = higherhrnet.load_cfg(None, ["DATA_DIR", "/big", "DATASET.ROOT", "data/coco",
                                      "TEST.MODEL_FILE", "/abs/model.pth"])
    assert cfg.DATASET.ROOT == "/big/data/coco"
    assert cfg.TEST.MODEL_FILE == "/abs/model.pth"


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        higherhrnet.load_cfg(tmp_path / "nope.yaml")
    bad = write_yaml(tmp_path, "TEST: [unclosed\n", "bad.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        higherhrnet.load_cfg(bad)
    scalar = write_yaml(tmp_path, "just a string\n", "scalar.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        higherhrnet.load_cfg(scalar)


def test_tiny_opts_are_valid():
    cfg = higherhrnet.load_cfg(None, TINY_OPTS)
    assert list(cfg.MODEL.EXTRA.STAGE4.NUM_CHANNELS) == [8, 16, 32, 64]


def test_keys_without_effect_warn_only_when_changed(recwarn):
    import warnings

    from higherhrnet.config import ConfigWarning

    warnings.simplefilter("always")
    for path in sorted(EXPERIMENTS.rglob("*.yaml")):          # the shipped files set none of them
        higherhrnet.load_cfg(path)
    assert not [w for w in recwarn if issubclass(w.category, ConfigWarning)]
    higherhrnet.load_cfg(None, ["GPUS", "(0, 1, 2, 3)", "DEBUG.SAVE_HEATMAPS_GT", "False", "TEST.FLIP_TEST", "False"])
    messages = [str(w.message) for w in recwarn if issubclass(w.category, ConfigWarning)]
    assert messages == [
        "command line: GPUS = (0, 1, 2, 3) has no effect here (devices come from --device and torchrun)",
        "command line: DEBUG.SAVE_HEATMAPS_GT = False has no effect here (the official debug image dumps are not "
        "written)"]


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("TRAIN:\n  LR: 0.001\n  END_EPOCH: 10\n  LR: 0.01\nTEST:\n  FLIP_TEST: false\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: key 'LR' is given twice in one section, on lines 2 and 4"):
        higherhrnet.load_cfg(path)
    # the same name in different sections is fine, and so are YAML anchors and merges
    path.write_text("TRAIN:\n  LR: 0.001\n  END_EPOCH: 10\nTEST:\n  FLIP_TEST: false\n"
                    "DATASET: &d\n  FLIP: 0.5\n")
    assert higherhrnet.load_cfg(path).TRAIN.LR == 0.001


def test_a_flip_switch_loads_as_the_probability_its_code_uses(tmp_path):
    """The top-down files write DATASET.FLIP true; their code then flips with probability 0.5, our key's meaning."""
    for value, probability in ((True, 0.5), (False, 0.0)):
        assert higherhrnet.load_cfg(write_yaml(tmp_path, {"DATASET": {"FLIP": value}})).DATASET.FLIP == probability
        assert higherhrnet.load_cfg(None, ["DATASET.FLIP", str(value)]).DATASET.FLIP == probability
    assert higherhrnet.load_cfg(None, ["DATASET.FLIP", "0.25"]).DATASET.FLIP == 0.25
    with pytest.raises(ConfigError, match="TRAIN.LR must be of type float"):       # other floats take no switch
        higherhrnet.load_cfg(None, ["TRAIN.LR", "True"])


def test_a_shipped_recipe_keeps_the_official_values_of_keys_without_effect_silently(tmp_path, recwarn):
    import warnings

    from higherhrnet.config import ConfigWarning

    warnings.simplefilter("always")
    recipe = EXPERIMENTS / "coco" / "hrnet" / "w32_256x192_adam_lr1e-3.yaml"
    cfg = higherhrnet.load_cfg(recipe)
    assert tuple(cfg.GPUS) == (0, 1, 2, 3) and cfg.DEBUG.SAVE_BATCH_IMAGES_GT
    assert not [w for w in recwarn if issubclass(w.category, ConfigWarning)]
    higherhrnet.load_cfg(recipe, ["GPUS", "(0,)"])
    assert [str(w.message) for w in recwarn if issubclass(w.category, ConfigWarning)] == [
        "command line: GPUS = (0,) has no effect here (devices come from --device and torchrun)"]
    recwarn.clear()
    copy = tmp_path / "mine.yaml"                   # a copy of one's own: the file named, as for any file
    copy.write_text(recipe.read_text())
    higherhrnet.load_cfg(copy)
    messages = [str(w.message) for w in recwarn if issubclass(w.category, ConfigWarning)]
    assert len(messages) == 3 and all(m.startswith(f"{copy}: ") for m in messages)
