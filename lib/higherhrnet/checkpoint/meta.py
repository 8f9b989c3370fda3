"""Model files: weights with what the model is.

The model files we write (`save_model`: training's final_state.pth and model_best.pth, the bundled model)
are {"state_dict": weights in the official key order, "meta": what the model is}. "state_dict" is the key
mmcv / mmpose and most tools read. "meta" holds only str / int / float / bool / list / dict values:
    format          "higherhrnet"
    version         the package version that wrote it
    date            when it was written, ISO 8601 in UTC ("2026-12-03T08:40:00+00:00")
    config          the full config as YAML (load it with yacs / higherhrnet.config)
    dataset         DATASET.DATASET, the registered name of the training data ("coco_kpt", "synthetic", ...)
    keypoints       the joint set: name, names, flip_pairs, sigmas, skeleton, grouping_order (the arguments
                    of KeypointSpec.from_lists)
    metrics         optional: validation metrics by name ("AP", "AP .5", ...)
    epoch           optional: epochs trained
`read_model_meta` returns it, or {} for files without it (official and mmpose checkpoints, bare state dicts).
"""
from __future__ import annotations

import datetime
import numbers
import os
from typing import Any, Mapping

from torch import nn

from ..keypoints import KeypointSpec
from ..version import __version__
from .finite import check_finite
from .io import atomic_save, read_checkpoint

__all__ = ["MODEL_FORMAT", "model_meta", "save_model", "read_model_meta"]

MODEL_FORMAT = "higherhrnet"


def model_meta(cfg=None, keypoints: KeypointSpec | None = None, **fields: Any) -> dict[str, Any]:
    """The "meta" entry of a model file (see the module docstring): format, version, date (now), and, when
    given, the config (a CfgNode: its YAML and DATASET.DATASET), the keypoint set and any other `fields`
    (metrics, epoch, ...; None values are left out).

    Every value is made a plain str / int / float / bool / list / dict (NumPy numbers become Python numbers,
    tuples lists) so that the file loads with weights_only=True; anything else raises TypeError naming the
    field.
    """
    meta: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if cfg is not None:
        meta["config"] = cfg.dump()
        meta["dataset"] = str(cfg.DATASET.DATASET)
    if keypoints is not None:
        meta["keypoints"] = {
            "name": keypoints.name, "names": list(keypoints.names),
            "flip_pairs": [list(p) for p in keypoints.flip_pairs], "sigmas": list(keypoints.sigmas),
            "skeleton": [list(p) for p in keypoints.skeleton], "grouping_order": list(keypoints.grouping_order),
        }
    for key, value in fields.items():
        if value is not None:
            meta[key] = _plain(value, key)
    return meta


def save_model(path: str | os.PathLike, model: nn.Module, cfg=None, keypoints: KeypointSpec | None = None,
               **fields: Any) -> None:
    """Write {"state_dict": the model's weights (official key order, no wrapper prefix), "meta":
    model_meta(cfg, keypoints, **fields)} atomically. E.g. save_model(path, model, cfg, keypoints,
    metrics={"AP": 0.5}, epoch=24). A model with NaN or infinite weights or buffers is refused (CheckpointError
    naming them) before anything is written."""
    module = model.module if hasattr(model, "module") else model
    meta = model_meta(cfg, keypoints, **fields)
    state = module.state_dict()
    check_finite(state, "the model", f"not saved as {os.fspath(path)}")
    atomic_save({"state_dict": state, "meta": meta}, path)


def read_model_meta(checkpoint: str | os.PathLike | Mapping) -> dict[str, Any]:
    """The "meta" entry of a model file we wrote (a path, or the object load_checkpoint returned), as a
    new dict; {} for checkpoints without it (official, mmpose, bare state dicts)."""
    obj = checkpoint if isinstance(checkpoint, Mapping) else read_checkpoint(checkpoint)
    meta = obj.get("meta") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping) or meta.get("format") != MODEL_FORMAT:
        return {}
    return dict(meta)


def _plain(value: Any, where: str) -> Any:
    """`value` as plain Python values (what torch.load(weights_only=True) reads back)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"model metadata {where}: key {k!r} is not a string")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"model metadata {where}: {type(value).__name__} is not a plain value (str, int, float, "
                    f"bool, list or dict)")
