"""Loading weights into a network: the whole model, strictly checked, or the matching part of pretrained weights."""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from .finite import check_finite
from .io import CheckpointError, _listing, read_checkpoint
from .layouts import describe_weights, extract_state_dict

__all__ = ["load_checkpoint", "load_pretrained_backbone"]


def load_checkpoint(model: nn.Module, path: str | os.PathLike | Mapping, strict: bool = True,
                    allow_non_finite: bool = False) -> Any:
    """Load model weights from a file (or an already loaded checkpoint) into `model`.

    With strict=True every model key must be present with the right shape and no extra key may remain
    (BatchNorm `num_batches_tracked` counters may be absent: they do not affect outputs); otherwise a
    CheckpointError says what the file holds: the weights of another network (`describe_weights`) in one line,
    or, for the same kind of network built from another config, a short line followed by the keys that
    differ; its `details` list every missing, unexpected and wrongly shaped key. Weights or buffers
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
        found = {"missing": missing, "unexpected": unexpected, "wrong shape": wrong_shape}
        details = "\n".join(f"  {label} ({len(items)}): {_listing(items)}" for label, items in found.items() if items)
        held, wanted = describe_weights(state), describe_weights(own)
        if held != wanted:
            raise CheckpointError(f"{source} holds the weights of {held}, not of this config's network, {wanted}: "
                                  f"give the config it was trained with, or weights for this network", details)
        counts = ", ".join(f"{len(items)} {label}" for label, items in found.items() if items)
        raise CheckpointError(f"checkpoint {source} does not fit the model of this config, {wanted} ({counts}); was "
                              f"it trained with a different config (widths, joints, tag maps per output)?\n{details}",
                              details)
    converted = {k: _as_model_dtype(v, own[k]) for k, v in state.items() if k in own}
    if not allow_non_finite:
        check_finite(converted, f"checkpoint {source}",
                     "it cannot give meaningful results (did its training diverge?); use an earlier checkpoint")
    model.load_state_dict(converted, strict=False)
    return obj


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
