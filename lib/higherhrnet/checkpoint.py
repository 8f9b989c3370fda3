"""Reading and writing checkpoints safely.

Everything is loaded with `torch.load(..., map_location="cpu", weights_only=True)`: a checkpoint can hold
tensors and plain Python values, never code. Everything we write holds only those (the config goes in as
a YAML string), and is written atomically (temporary file + rename), so an interrupted save never leaves
a half-written file under the real name.

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

Accepted layouts of model weights:
- a bare state dict (official `pose_higher_hrnet_w32_512.pth`);
- a dict holding it under "state_dict" or "model" (our training checkpoints, many other tools);
- keys prefixed with "module." (saved from DataParallel / DistributedDataParallel);
- the official FP16 layout: keys prefixed with "1." (the network wrapped for half precision), conv
  tensors in float16. Floating tensors are converted to the model's dtype;
- mmpose 0.x HigherHRNet checkpoints (keys under "backbone." and "keypoint_head."), converted on load;
- pose-ae-train's (the Associative Embedding paper's code, MODEL.NAME hourglass_ae) files as it writes them:
  {"state_dict": ..., "optimizer": ..., "epoch": ...} with keys prefixed "model.module." (its train.py saves
  the state of a `Trainer` that holds the network as `model`, a DataParallel, hence `module.`).

How the mmpose 0.x layout was worked out. mmpose's `AssociativeEmbedding` (earlier `BottomUp`) holds the network as two
attributes, `backbone` (mmpose/models/backbones/hrnet.py: `HRNet`) and `keypoint_head`
(mmpose/models/heads/ae_higher_resolution_head.py: `AEHigherResolutionHead`); its loss modules hold no
tensors. Reading how those modules nest: the stem norms are built by mmcv's `build_norm_layer(BN,
postfix=i)`, which names them `bn1`, `bn2` (as do the `Bottleneck` / `BasicBlock` of
mmpose/models/backbones/resnet.py), and `layer1`, `transition1..3`, `stage2..4` (`HRModule.branches`,
`.fuse_layers`) and the head's `final_layers` / `deconv_layers` are built with the same nn.Sequential /
nn.ModuleList nesting, the same `None` slots and the same stage-4 single-output last module as the
official code. So an mmpose key is the official key behind `backbone.` or `keypoint_head.`, with equal
shapes, and nothing else. tests/test_checkpoint_mmpose.py checks this: it enumerates mmpose's names and shapes from that
description of mmpose's modules, converts them, and compares with the official key lists and shapes in
tests/assets/spec/higher_hrnet_w32_512.json and higher_hrnet_w48_640.json.
Tensors only one side has: none for HigherHRNet. Our hrnet_v2 `representation_head` and SWAHR's
`conv_scale_layers` have no mmpose counterpart: `to_mmpose_state_dict` refuses them by name.
"""
from __future__ import annotations

import datetime
import numbers
import os
import pickle
from typing import Any, Iterable, Mapping

import torch
from torch import nn

# The package's version string: a constant of the package root, which imports nothing at load time.
from . import __version__
from .fileio import atomic_write
from .keypoints import KeypointSpec

__all__ = ["CheckpointError", "read_checkpoint", "extract_state_dict", "load_checkpoint", "non_finite_tensors",
           "check_finite",
           "load_pretrained_backbone", "atomic_save", "MODEL_FORMAT", "model_meta", "save_model",
           "read_model_meta", "is_mmpose_layout", "convert_mmpose_state_dict",
           "to_mmpose_state_dict"]

_WRAPPER_KEYS = ("state_dict", "model")
_KEY_PREFIXES = ("module.", "1.", "model.module.")
_MAX_LISTED = 20


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, is unsafe, or does not fit the model; the message says which and why."""


def read_checkpoint(path: str | os.PathLike) -> Any:
    """torch.load with weights_only=True and readable errors."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"refusing to load {path}: it is not a plain weights file (it contains Python objects other than "
            f"tensors and plain values, which could run code when unpickled). Detail: {first}"
        ) from None
    except Exception as e:  # torch raises many types for a damaged file (RuntimeError, EOFError, IndexError ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: damaged or not a PyTorch file ({first})") from None


def extract_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The model weights inside a loaded checkpoint, with wrapper prefixes removed."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source} holds no model weights (expected a dict of tensors, possibly under "
                              f"'state_dict' or 'model'; got {_describe(obj)})")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{source}: entries that are not tensors: {_listing(not_tensors)}")
    state = dict(obj)
    if is_mmpose_layout(state):
        return convert_mmpose_state_dict(state)
    changed = True
    while changed:
        changed = False
        for prefix in _KEY_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


# First key components of the two halves of the network (official names, = mmpose's after the prefix).
_BACKBONE_MODULES = frozenset({"conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                               "transition2", "stage3", "transition3", "stage4"})
_HEAD_MODULES = frozenset({"final_layers", "deconv_layers"})
_MMPOSE_PREFIXES = {"backbone.": _BACKBONE_MODULES, "keypoint_head.": _HEAD_MODULES}


def is_mmpose_layout(state: Mapping[str, torch.Tensor]) -> bool:
    """True if every key sits under mmpose's `backbone.` or `keypoint_head.` (a bare state dict, after
    taking it out of the checkpoint's "state_dict")."""
    return bool(state) and all(key.startswith(tuple(_MMPOSE_PREFIXES)) for key in state)


def convert_mmpose_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An mmpose 0.x AssociativeEmbedding (HRNet + AEHigherResolutionHead) state dict in our (= official)
    key layout. Tensors are passed through unchanged (same shapes and dtypes; see the module docstring)."""
    converted, foreign = {}, []
    for key, value in state.items():
        prefix = next((p for p in _MMPOSE_PREFIXES if key.startswith(p)), None)
        name = key[len(prefix):] if prefix else key
        if prefix is None or name.split(".")[0] not in _MMPOSE_PREFIXES[prefix]:
            foreign.append(key)
        converted[name] = value
    if foreign:
        raise CheckpointError(f"not an mmpose HigherHRNet state dict: {len(foreign)} keys outside "
                           f"backbone.<HRNet> / keypoint_head.<final_layers|deconv_layers>: {_listing(foreign)}")
    return converted


def to_mmpose_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `convert_mmpose_state_dict`: our HigherHRNet keys under mmpose's prefixes."""
    converted, foreign = {}, []
    for key, value in state.items():
        top = key.split(".")[0]
        prefix = next((p for p, modules in _MMPOSE_PREFIXES.items() if top in modules), None)
        if prefix is None:
            foreign.append(key)
        converted[f"{prefix}{key}"] = value
    if foreign:
        raise CheckpointError(f"{len(foreign)} keys have no place in mmpose's HRNet + AEHigherResolutionHead "
                           f"(e.g. the hrnet_v2 representation_head, SWAHR's conv_scale_layers): {_listing(foreign)}")
    return converted


def load_checkpoint(model: nn.Module, path: str | os.PathLike | Mapping, strict: bool = True,
                    allow_non_finite: bool = False) -> Any:
    """Load model weights from a file (or an already loaded checkpoint) into `model`.

    With strict=True every model key must be present with the right shape and no extra key may remain
    (BatchNorm `num_batches_tracked` counters may be absent: they do not affect outputs). Weights or buffers
    holding NaN or infinity are refused (CheckpointError naming them: such a network outputs NaN, which
    decodes to no people at all) unless allow_non_finite. Returns the loaded checkpoint object, so that
    callers can read other entries (epoch, config, ...).
    """
    source = "checkpoint" if isinstance(path, Mapping) else os.fspath(path)
    obj = path if isinstance(path, Mapping) else read_checkpoint(path)
    state = extract_state_dict(obj, source)
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [
        f"{k}: checkpoint {list(state[k].shape)} vs model {list(own[k].shape)}"
        for k in own if k in state and state[k].shape != own[k].shape
    ]
    if wrong_shape or (strict and (missing or unexpected)):
        lines = [f"checkpoint {source} does not fit the model ({type(model).__name__}):"]
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if items:
                lines.append(f"  {label} ({len(items)}): {_listing(items)}")
        lines.append("  Was it trained with a different config (widths, joints, tag maps per output)?")
        raise CheckpointError("\n".join(lines))
    converted = {k: _as_model_dtype(v, own[k]) for k, v in state.items() if k in own}
    if not allow_non_finite:
        check_finite(converted, f"checkpoint {source}",
                     "it cannot give meaningful results (did its training diverge?); use an earlier checkpoint")
    model.load_state_dict(converted, strict=False)
    return obj


def non_finite_tensors(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The floating-point tensors of `state` holding NaN or infinity, each as "name (n of N values: NaN, inf)"."""
    found = []
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            continue
        finite = torch.isfinite(tensor)
        if bool(finite.all()):
            continue
        kinds = [kind for kind, present in (("NaN", torch.isnan(tensor).any()), ("inf", torch.isinf(tensor).any()))
                 if bool(present)]
        found.append(f"{name} ({int((~finite).sum())} of {tensor.numel()} values: {', '.join(kinds)})")
    return found


def check_finite(state: Mapping[str, torch.Tensor], what: str, advice: str = "") -> None:
    """CheckpointError naming every tensor of `state` that holds NaN or infinity (`what` says whose they are)."""
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(f"{what} has NaN or infinite values in {len(bad)} tensor{'s' if len(bad) > 1 else ''}: "
                              f"{_listing(bad)}" + (f"; {advice}" if advice else ""))


def _as_model_dtype(value: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    if value.is_floating_point() and reference.is_floating_point() and value.dtype != reference.dtype:
        return value.to(reference.dtype)
    return value


def load_pretrained_backbone(model: nn.Module, path: str | os.PathLike,
                             pretrained_layers: Iterable[str] = ("*",)) -> list[str]:
    """Partial load of ImageNet HRNet weights (e.g. hrnet_w32-36af842e.pth), as the official code does.

    Keys whose first component is in `pretrained_layers` (or all, with "*") and whose name and shape
    exist in the model are copied; the rest (classifier, heads) is left as initialised.
    Returns the loaded key names.
    """
    layers = list(pretrained_layers)
    state = extract_state_dict(read_checkpoint(path), os.fspath(path))
    own = model.state_dict()
    selected = {
        k: _as_model_dtype(v, own[k]) for k, v in state.items()
        if (layers[:1] == ["*"] or k.split(".")[0] in layers) and k in own and own[k].shape == v.shape
    }
    if not selected:
        raise CheckpointError(f"{os.fspath(path)}: no tensor matches the model by name and shape "
                              f"(PRETRAINED_LAYERS={layers}); is it an HRNet of the same width?")
    check_finite(selected, f"pretrained weights {os.fspath(path)}")
    model.load_state_dict(selected, strict=False)
    return sorted(selected)


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, then rename over `path`."""
    with atomic_write(path) as f:
        torch.save(obj, f)


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


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", ... (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return f"a dict with keys {_listing([str(k) for k in obj])}"
    return type(obj).__name__
