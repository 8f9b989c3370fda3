"""Where a run's files go."""
from __future__ import annotations

import os

from ..config import CfgNode

__all__ = ["run_dir"]


def run_dir(cfg: CfgNode, cfg_name: str, root: str) -> str:
    """root/<DATASET.DATASET>/<MODEL.NAME>/<config file name without extension>: the official layout."""
    dataset = cfg.DATASET.DATASET.replace(":", "_")
    return os.path.join(root, dataset, cfg.MODEL.NAME, os.path.splitext(os.path.basename(cfg_name))[0])
