"""The package's layers only import downwards (docs/architecture.md): a module may import from its own layer
or a lower one, never from a higher one."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "lib" / "higherhrnet"

# Top-level module or subpackage -> layer. Lower numbers are lower layers.
LAYERS = {
    "errors": 0, "fileio": 0, "keypoints": 0, "geometry": 0, "images": 0, "checkpoint": 0, "normalization": 0,
    "zoo": 0, "oks": 0, "devices": 0, "version": 0, "interrupts": 0, "pckh": 0,
    "threads": 0, "streaming": 0,
    "outputs": 1, "vis": 1, "tracking": 1, "video": 1, "sources": 1,
    "codec": 2, "models": 2,
    "config": 3, "data": 3, "losses": 3, "inference": 3, "topdown": 3, "topdown_bearpaw": 3, "person_boxes": 3,
    "hub": 3, "calibration": 3,
    "predictor": 4, "results": 4, "testing": 4,
    "engine": 5,
    "cli": 6, "__init__": 6, "__main__": 6,
}


def _unit(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imported_units(source: str, where: tuple[str, ...]) -> set[str]:
    """Top-level units of higherhrnet that `source`, the module at package-relative path parts `where`,
    imports (relative or absolute imports)."""
    tree = ast.parse(source)
    depth = len(where) - 1          # folders between the package and the file
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "higherhrnet":
                    continue
                names = parts[1:] or [a.name for a in node.names]
            else:
                up = node.level - 1
                if up > depth:
                    continue
                base = list(where[:depth - up])
                names = base + (node.module.split(".") if node.module else [])
                if not names:
                    names = [a.name for a in node.names]
            found.add(names[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "higherhrnet" and len(parts) > 1:
                    found.add(parts[1])
    return found


FILES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    assert {_unit(p) for p in FILES} <= set(LAYERS)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    unit = _unit(path)
    where = path.relative_to(PACKAGE).parts
    upward = sorted(u for u in _imported_units(path.read_text(encoding="utf-8"), where) if u in LAYERS and u != unit and LAYERS[u] > LAYERS[unit])
    assert not upward, f"{path.relative_to(PACKAGE)} (layer {LAYERS[unit]}) imports from higher layers: {upward}"


def test_the_checker_sees_imports_of_every_form():
    where = ("data", "bad.py")
    assert _imported_units("from ..engine import Trainer\n", where) == {"engine"}
    assert _imported_units("from .coco import x\n", where) == {"data"}
    assert _imported_units("from .. import predictor\n", where) == {"predictor"}
    assert _imported_units("import higherhrnet.engine.trainer\n", where) == {"engine"}
    assert _imported_units("from higherhrnet.data import build_dataset\n", where) == {"data"}
    assert _imported_units("import numpy\nfrom torch import nn\n", where) == set()
