"""higherhrnet: bottom-up multi-person pose estimation with HigherHRNet.

Public API (stable names):
    get_cfg(), load_cfg(path, opts=())   configuration (yacs)
    build_model(cfg)                     the network of a config
    load_checkpoint(model, path)         official, mmpose or our checkpoints, loaded safely
    KeypointSpec, COCO_KEYPOINTS         joint names, flip pairs, sigmas, skeleton
    Predictor.from_config(cfg, weights)(image)   people in an image (also Predictor(cfg, weights))
    resolve_model(model=None, cfg=None)  a registered name, file, URL or the default -> config + local weights
    build_dataset(cfg, is_train=True)    COCO-format training / evaluation data
    build_loss(cfg)                      heatmap + associative-embedding losses per output
    higherhrnet.topdown                  the top-down pipeline (MODEL.NAME pose_hrnet) in stages: person boxes ->
                                         crops -> heatmaps -> keypoints (docs/topdown.md)

The names are imported on first use, so that `import higherhrnet` (and the command line's --help) does not
pay for PyTorch until something needs it.
"""
from __future__ import annotations

import importlib

from .version import __version__

# name -> submodule that defines it
_EXPORTS = {
    "get_cfg": "config", "load_cfg": "config", "ConfigError": "config",
    "build_model": "models",
    "load_checkpoint": "checkpoint", "save_model": "checkpoint", "CheckpointError": "checkpoint",
    "Predictor": "predictor", "Person": "results", "Result": "results",
    "resolve_model": "hub", "ResolvedModel": "hub",
    "build_dataset": "data",
    "build_loss": "losses",
    "KeypointSpec": "keypoints", "COCO_KEYPOINTS": "keypoints",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'higherhrnet' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
