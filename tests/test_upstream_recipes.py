"""The shipped copies of upstream recipes say what upstream says: every key of the official HigherHRNet experiment
files at the official repository's HEAD (recorded in tests/assets/upstream/higherhrnet_official.json) has the same
value in our file of the same path, and a key our file adds beyond upstream's holds our default (so it changes
nothing)."""
from __future__ import annotations

import json

import pytest
import yaml

import higherhrnet

from conftest import REPO

FACTS = json.loads((REPO / "tests" / "assets" / "upstream" / "higherhrnet_official.json").read_text())


def _flat(node, prefix=""):
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, (list, tuple)) else value
    return out


@pytest.mark.parametrize("path", sorted(FACTS["recipes"]))
def test_a_shipped_official_recipe_equals_upstream_head(path):
    upstream = FACTS["recipes"][path]
    ours = _flat(yaml.safe_load((REPO / path).read_text(encoding="utf-8")))
    differ = {k: (v, ours.get(k, "(missing)")) for k, v in upstream.items() if ours.get(k, "(missing)") != v}
    assert not differ, f"{path} differs from upstream {FACTS['commit'][:7]} (upstream, ours): {differ}"
    defaults = _flat(higherhrnet.get_cfg())
    added = {k: v for k, v in ours.items() if k not in upstream and v != defaults.get(k)}
    assert not added, f"{path} sets keys upstream leaves at their defaults: {added}"
    higherhrnet.load_cfg(REPO / path)                              # and it loads


def test_the_facts_cover_the_official_recipes_we_ship():
    """Every shipped file that calls itself an official recipe is checked above (our own variants beside them,
    such as the HRNetV2-head recipe, are not upstream's)."""
    shipped = {str(p.relative_to(REPO)): p.read_text(encoding="utf-8")
               for p in (REPO / "experiments").glob("*/higher_hrnet/*.yaml")}
    official = {path for path, text in shipped.items() if "the official recipe" in "".join(text.splitlines(True)[:4])}
    assert official == set(FACTS["recipes"])
