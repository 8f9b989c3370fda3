"""The shipped copies of upstream recipes say what upstream says, and run what upstream's code runs.

Facts (tests/assets/upstream/*.json), read from the upstream repositories at the commit they name: every key of
each upstream experiment file ('keys') and the configuration upstream's code runs with it, its own default.py
merged with the file ('effective'). For every recipe we ship as a copy of an upstream one:
- each key of the upstream file has the same value in our file (key for key);
- a key our file adds holds our default, or the value upstream's code runs with anyway (SWAHR's default.py
  says WORLD_SIZE 8, a key our defaults set to 1), or is one of our keys for what upstream's code does without
  a key (SWAHR's loss and schedule);
- the loaded configuration equals upstream's effective one on every key, so a key upstream's defaults set and
  ours set differently cannot hide behind a file that leaves it out.
The few exceptions are listed below with the reason each cannot matter. Sources: the official HigherHRNet
recipes, SWAHR's, and the official top-down HRNet's (deep-high-resolution-net.pytorch, experiments/coco/hrnet).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import higherhrnet

from conftest import REPO

UPSTREAM = REPO / "tests" / "assets" / "upstream"
FACTS = {path.stem: json.loads(path.read_text()) for path in sorted(UPSTREAM.glob("*.json"))}
RECIPES = [(source, upstream_path) for source, facts in FACTS.items() for upstream_path in facts["recipes"]]

# SWAHR's files name folders on its authors' machine (/data/coco_data/, /data/models/...); our copies keep the
# official HigherHRNet layout, relative to the working folder or DATA_DIR (docs/configs.md): the same data
# and the same ImageNet file under its released name.
LOCAL_PATHS = {"DATASET.ROOT", "MODEL.PRETRAINED"}
# Keys of ours that say what SWAHR's code does where it has no key (its scale-aware loss and heads, its
# hand-written schedule).
SWAHR_CODE_KEYS = {"MODEL.SWAHR": True, "TRAIN.LR_SCHEDULE": "swahr"}
# Effective values that cannot change what is trained or tested: TRAIN.LR_STEP is never read by the swahr
# schedule (checked below); TEST.LOG_PROGRESS only decides whether a console line is printed.
INERT_IN_SWAHR = {"TRAIN.LR_STEP", "TEST.LOG_PROGRESS"}
# Keys that the top-down files write as a switch and we hold as the probability their code uses (config/defaults.py
# BOOL_AS_PROBABILITY): DATASET.FLIP true is a flip with probability 0.5 there and here.
AS_PROBABILITY = {"DATASET.FLIP": {True: 0.5, False: 0.0}}


def _as_ours(key: str, upstream):
    """The value our configuration holds for upstream's `upstream` of `key`."""
    return AS_PROBABILITY[key][upstream] if key in AS_PROBABILITY and isinstance(upstream, bool) else upstream


def _flat(node, prefix=""):
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def _exempt(source: str) -> set[str]:
    return LOCAL_PATHS if source == "swahr_official" else set()


def _same_local_path(key: str, upstream, ours) -> bool:
    """Our relative path for a SWAHR path: data/<dataset folder> for the data root, and the same file name under
    models/pytorch/imagenet/ for the ImageNet weights."""
    if key == "DATASET.ROOT":
        return ours in ("data/coco", "data/crowd_pose") and Path(ours).name.split("_")[0] in upstream
    return ours == f"models/pytorch/imagenet/{Path(upstream).name}"


@pytest.mark.parametrize("source, upstream_path", RECIPES)
def test_a_shipped_recipe_equals_the_upstream_file_key_for_key(source, upstream_path):
    recipe = FACTS[source]["recipes"][upstream_path]
    ours = _flat(yaml.safe_load((REPO / recipe["shipped_as"]).read_text(encoding="utf-8")))
    differ = {k: (v, ours.get(k, "(missing)")) for k, v in recipe["keys"].items()
              if ours.get(k, "(missing)") != v and not (k in _exempt(source) and _same_local_path(k, v, ours.get(k)))}
    assert not differ, (f"{recipe['shipped_as']} differs from {FACTS[source]['source']} {FACTS[source]['commit'][:7]} "
                        f"{upstream_path} (upstream, ours): {differ}")
    defaults = _flat(higherhrnet.get_cfg())
    code_keys = SWAHR_CODE_KEYS if source == "swahr_official" else {}
    added = {k: v for k, v in ours.items() if k not in recipe["keys"] and v != defaults.get(k)
             and v != recipe["effective"].get(k, "(none)") and code_keys.get(k, "(none)") != v}
    assert not added, f"{recipe['shipped_as']} sets keys upstream's code leaves at other values: {added}"


@pytest.mark.parametrize("source, upstream_path", RECIPES)
def test_a_shipped_recipe_runs_with_the_configuration_upstream_code_runs(source, upstream_path):
    recipe = FACTS[source]["recipes"][upstream_path]
    cfg = higherhrnet.load_cfg(REPO / recipe["shipped_as"])
    ours = _flat(yaml.safe_load(cfg.dump()))
    inert = INERT_IN_SWAHR if source == "swahr_official" else set()
    if inert:
        assert cfg.TRAIN.LR_SCHEDULE == "swahr"        # the schedule that never reads TRAIN.LR_STEP
    missing = sorted(k for k in recipe["effective"] if k not in ours)
    assert not missing, f"upstream keys our configuration lacks: {missing}"
    differ = {k: (v, ours[k]) for k, v in recipe["effective"].items()
              if ours[k] != _as_ours(k, v) and k not in inert
              and not (k in _exempt(source) and _same_local_path(k, v, ours[k]))}
    assert not differ, (f"{recipe['shipped_as']} runs with other values than {FACTS[source]['source']} runs "
                        f"{upstream_path} with (upstream, ours): {differ}")


def test_the_facts_cover_the_upstream_recipes_we_ship():
    """Every shipped file that calls itself a copy of an upstream recipe is checked above (our own variants beside
    them, such as the HRNetV2-head recipe, are not upstream's)."""
    shipped = {str(p.relative_to(REPO)): p.read_text(encoding="utf-8")
               for p in (REPO / "experiments").glob("*/*/*.yaml")}
    copies = {path for path, text in shipped.items()
              if any(phrase in "".join(text.splitlines(True)[:4]) for phrase in ("the official recipe", "the recipe of SWAHR"))}
    assert copies == {recipe["shipped_as"] for facts in FACTS.values() for recipe in facts["recipes"].values()}
