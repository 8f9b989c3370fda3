"""Which model to run: a registered name, a file, a URL or nothing at all, resolved to a config and local weights.

    resolve_model()                                        # DEFAULT_MODEL (COCO); offline, the bundled demo model
    resolve_model("mmpose_higherhrnet_w32_512")            # registered weights bring their config
    resolve_model("output/.../final_state.pth")            # a model file of ours carries the config it was trained with
    resolve_model("model.onnx")                            # so does an ONNX file from `higherhrnet export`
    resolve_model("pose_higher_hrnet_w32_512.pth", cfg="experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    resolved.cfg, resolved.weights, resolved.note          # a frozen config, a local file, a line for the user

Where the config comes from, first that applies: `cfg` (a YAML file or a CfgNode); the registry entry of a
registered name; the config a model file of ours (checkpoint/meta.py) or an exported ONNX file
(models/onnx.py) stores; the registry entry whose sha256 the file has (official and mmpose files carry no
config). `opts` (KEY VALUE pairs) apply on top of it. Errors are the library's own, in plain words:
ConfigError (MissingConfigError when no config can be found), zoo.WeightsError, CheckpointError and
models.onnx.OnnxError. The command line turns them into one-line messages (cli/common.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

from .checkpoint import read_model_meta
from .config import CfgNode, ConfigError, check_cfg, load_cfg, load_cfg_text, merge_into, opts_to_dict
from .models.onnx import read_onnx_meta
from .zoo import (BUNDLED_MODEL, DEFAULT_MODEL, REGISTRY, config_path, entry_of_file, resolve_default,
                  resolve_weights)

__all__ = ["ResolvedModel", "resolve_model", "MissingConfigError", "DEFAULT_MODEL", "BUNDLED_MODEL"]


class MissingConfigError(ConfigError):
    """No config was given and the model brings none: an official, mmpose or SWAHR file whose hash is not
    registered, a bare state dict, an ONNX file exported by another tool."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to be built: its config and a local weights file.

    cfg: frozen, overrides applied. weights: local file path (.pth or .onnx). name: the registered name when
    the model was one (or the default, or recognised by its hash), else None. config_source: where the config
    came from: a YAML path, "registry:<name>", "saved in <file>" or "given CfgNode". note: one line to show
    the user (the fallback to the bundled demo model when the default weights cannot be had), else None.
    """
    cfg: CfgNode
    weights: str
    name: str | None
    config_source: str
    note: str | None


def resolve_model(model: str | os.PathLike | None = None, cfg: str | os.PathLike | CfgNode | None = None,
                  opts: Sequence[str] = (), progress: bool = True,
                  check: Callable[[CfgNode], None] | None = None) -> ResolvedModel:
    """The config and local weights of `model`.

    model: None (the config's TEST.MODEL_FILE when `cfg` sets one; else DEFAULT_MODEL, cached or downloaded,
    and where it cannot be had and no `cfg` was given, the bundled demo model BUNDLED_MODEL with a note
    saying so), a registered name (zoo.REGISTRY), a local file (.pth, or .onnx from `higherhrnet export`) or
    an http(s) URL (downloaded once into the cache). cfg: a YAML path or a CfgNode used instead of the
    model's own config. opts: KEY VALUE overrides on top of the config. progress: show download progress.
    check(cfg): raises when the config cannot be used (e.g. a top-down model where a bottom-up one is needed);
    called before any download where the config is known first (a given cfg, a registered name), else on the
    config the weights bring.
    """
    opts = list(opts)
    given = _given_config(cfg, opts)
    if check is not None and given is not None:
        check(given[0])
    if model is None and given is not None and given[0].TEST.MODEL_FILE:
        model = given[0].TEST.MODEL_FILE
    note = None
    if model is None:
        if given is None:
            name, weights, note = resolve_default(progress)
            given = _registered_config(name, opts)
        else:
            # No fallback here: the bundled network would not fit a config chosen for the default one.
            name, weights = DEFAULT_MODEL, resolve_weights(DEFAULT_MODEL, progress)
        return ResolvedModel(given[0], weights, name, given[1], note)
    shown = os.fspath(model)
    name = shown if shown in REGISTRY else None
    if given is None and name is not None:
        given = _registered_config(name, opts)       # before the download: a bad override fails at once
        if check is not None:
            check(given[0])
    weights = resolve_weights(shown, progress)
    if given is None:
        config, source, name = _config_of_file(weights, shown, opts)
        if check is not None:
            check(config)
        return ResolvedModel(config, weights, name, source, None)
    return ResolvedModel(given[0], weights, name, given[1], None)


def _registered_config(name: str, opts: list[str]) -> tuple[CfgNode, str]:
    return load_cfg(config_path(REGISTRY[name]), opts), f"registry:{name}"


def _given_config(cfg: str | os.PathLike | CfgNode | None, opts: list[str]) -> tuple[CfgNode, str] | None:
    """(frozen config, its source) for the `cfg` argument with the overrides, or None without one."""
    if cfg is None:
        return None
    if not isinstance(cfg, CfgNode):
        path = os.fspath(cfg)
        return load_cfg(path, opts), path
    source = "given CfgNode"
    if cfg.is_frozen() and not opts:
        return cfg, source
    config = cfg.clone()
    config.defrost()
    merge_into(config, opts_to_dict(opts), source="overrides")
    check_cfg(config, source)
    config.freeze()
    return config, source


def _config_of_file(weights: str, shown: str, opts: list[str]) -> tuple[CfgNode, str, str | None]:
    """(config, source, registered name or None) for a file given without a config: the config it stores, else
    that of the registered weights whose sha256 it has. MissingConfigError when neither."""
    if weights.lower().endswith(".onnx"):
        text = read_onnx_meta(weights).get("config")
        if not isinstance(text, str):
            raise MissingConfigError(f"{shown} is an ONNX model that stores no config (exported by another tool): "
                                     f"give the config it was exported with")
        return load_cfg_text(text, f"the config saved in {shown}", opts), f"saved in {weights}", None
    text = read_model_meta(weights).get("config")
    if isinstance(text, str):
        return load_cfg_text(text, f"the config saved in {shown}", opts), f"saved in {weights}", None
    entry = entry_of_file(weights)
    if entry is not None:
        return load_cfg(config_path(entry), opts), f"registry:{entry.name}", entry.name
    raise MissingConfigError(f"{shown} carries no config (official and mmpose files do not; only model files this "
                             f"toolkit wrote do, and registered weights bring theirs)")
