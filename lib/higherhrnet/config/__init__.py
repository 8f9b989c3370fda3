"""Configuration: yacs defaults, strict loading with readable errors, and consistency checks.

    cfg = get_cfg()                                  # a fresh, mutable copy of the defaults
    cfg = load_cfg("exp.yaml", ["TEST.FLIP_TEST", "False"])   # file + overrides -> frozen

Values are checked against the defaults' types: an int may stand where a float is expected and a list
where a tuple is (and back); anything else, and any key the defaults do not have, is an error naming the
key and where it came from.
"""
from __future__ import annotations

import ast
import difflib
import os
import warnings
from typing import Any, Iterable, Sequence

import yaml
from yacs.config import CfgNode

from .defaults import _C, COMPAT_KEYS

__all__ = ["ConfigError", "ConfigWarning", "CfgNode", "MODEL_NAMES", "get_cfg", "load_cfg", "load_cfg_text", "merge_into", "check_cfg",
           "check_values", "VALUE_RULES", "LIST_RULES"]


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key and its source."""


class ConfigWarning(UserWarning):
    """A configuration key is set to a value that has no effect here."""


def get_cfg() -> CfgNode:
    """A fresh, unfrozen copy of the default configuration."""
    return _C.clone()


def load_cfg(path: str | os.PathLike | None = None, opts: Sequence[str] = ()) -> CfgNode:
    """Defaults, then the YAML file at `path` (if given), then `opts` (KEY VALUE pairs); frozen.

    Relative DATASET.ROOT, MODEL.PRETRAINED and TEST.MODEL_FILE are resolved against DATA_DIR when
    DATA_DIR is set.
    """
    if path is None:
        return _finish(get_cfg(), opts, "defaults")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        return load_cfg_text(f.read(), path, opts)


def load_cfg_text(text: str, source: str, opts: Sequence[str] = ()) -> CfgNode:
    """load_cfg for YAML text, e.g. the config a checkpoint carries; `source` names it in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    cfg = get_cfg()
    merge_into(cfg, data, source=source)
    return _finish(cfg, opts, source)


def _finish(cfg: CfgNode, opts: Sequence[str], source: str) -> CfgNode:
    """The overrides merged into `cfg`, paths joined to DATA_DIR, values checked; frozen."""
    merge_into(cfg, opts_to_dict(opts), source="command line")
    if cfg.DATA_DIR:
        for node, key in ((cfg.DATASET, "ROOT"), (cfg.MODEL, "PRETRAINED"), (cfg.TEST, "MODEL_FILE")):
            if node[key] and not os.path.isabs(node[key]):
                node[key] = os.path.join(cfg.DATA_DIR, node[key])
    check_cfg(cfg, source=source)
    warn_compat_keys(cfg, source="command line" if source == "defaults" else source)
    cfg.freeze()
    return cfg


def warn_compat_keys(cfg: CfgNode, source: str) -> None:
    """A ConfigWarning for every key of COMPAT_KEYS (accepted, no effect here) set to a non-default value."""
    for key, why in COMPAT_KEYS.items():
        value, default = cfg, _C
        for part in key.split("."):
            value, default = value[part], default[part]
        if value != default:
            warnings.warn(f"{source}: {key} = {value!r} has no effect here ({why})", ConfigWarning, stacklevel=3)


def opts_to_dict(opts: Sequence[str]) -> dict:
    """["A.B", "1", "C", "x"] -> {"A": {"B": "1"}, "C": "x"}; values are decoded later."""
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"command-line overrides must be KEY VALUE pairs, got an odd number: {opts}")
    tree: dict = {}
    for key, value in zip(opts[0::2], opts[1::2]):
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"command line: {key} is given both as a value and as a section")
        node[parts[-1]] = value
    return tree


def merge_into(cfg: CfgNode, data: dict, source: str, prefix: str = "") -> None:
    """Merge a nested dict into `cfg` in place, checking every key and value type."""
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in cfg:
            close = difflib.get_close_matches(str(key), [str(k) for k in cfg.keys()], n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ConfigError(f"{source}: unknown config key {full}{hint}")
        default = cfg[key]
        if isinstance(default, CfgNode):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {full} is a section; expected a mapping, got {value!r}")
            merge_into(default, value, source, prefix=full + ".")
            continue
        cfg[key] = _coerce(_decode(value), default, full, source)


def _decode(value: Any) -> Any:
    # Strings such as "(True, False)" or "[0.5, 1.0]" (YAML and the command line) become Python values.
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def _coerce(value: Any, default: Any, key: str, source: str) -> Any:
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)):
        return float(value)
    elif isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(default)(value)
    elif isinstance(default, str) and not isinstance(value, str):
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _fail(
            value, default, key, source)
    elif type(value) is type(default):
        return value
    return _fail(value, default, key, source)


def _fail(value: Any, default: Any, key: str, source: str):
    raise ConfigError(
        f"{source}: {key} must be of type {type(default).__name__} (default {default!r}), "
        f"got {type(value).__name__} {value!r}"
    )


MODEL_NAMES = ("pose_higher_hrnet", "hourglass_ae", "hourglass_residual")


# Rules for numeric values that would otherwise fail deep inside PyTorch or NumPy (or train nonsense):
# key -> (test, the rule as the message states it).
_POSITIVE = (lambda v: v > 0, "must be > 0")
_AT_LEAST_1 = (lambda v: v >= 1, "must be at least 1")
_NOT_NEGATIVE = (lambda v: v >= 0, "must be >= 0")
_FRACTION = (lambda v: 0 <= v <= 1, "must be between 0 and 1")
VALUE_RULES = {
    "WORKERS": (lambda v: v >= 0, "must be >= 0 (0 loads data in the main process)"),
    "SEED": _NOT_NEGATIVE,
    "PRINT_FREQ": _AT_LEAST_1,
    "MODEL.NUM_JOINTS": _AT_LEAST_1,
    "MODEL.EXTRA.STEM_INPLANES": _AT_LEAST_1,
    "MODEL.EXTRA.DECONV.NUM_BASIC_BLOCKS": _NOT_NEGATIVE,
    "DATASET.NUM_JOINTS": _AT_LEAST_1,
    "DATASET.MAX_NUM_PEOPLE": _AT_LEAST_1,
    "DATASET.INPUT_SIZE": _POSITIVE,
    "DATASET.FLIP": _FRACTION,
    "DATASET.MIN_SCALE": _POSITIVE,
    "DATASET.MAX_ROTATION": _NOT_NEGATIVE,
    "DATASET.MAX_TRANSLATE": _NOT_NEGATIVE,
    "DATASET.SIGMA": _POSITIVE,
    "DATASET.BASE_SIZE": _POSITIVE,
    "DATASET.BASE_SIGMA": _POSITIVE,
    "TRAIN.IMAGES_PER_GPU": _AT_LEAST_1,
    "TRAIN.LR": _POSITIVE,
    "TRAIN.LR_FACTOR": _POSITIVE,
    "TRAIN.WD": _NOT_NEGATIVE,
    "TRAIN.MOMENTUM": (lambda v: 0 <= v < 1, "must be >= 0 and < 1"),
    "TRAIN.BEGIN_EPOCH": _NOT_NEGATIVE,
    "TRAIN.WARMUP_EPOCHS": _NOT_NEGATIVE,
    "TRAIN.WARMUP_FACTOR": _FRACTION,
    "TRAIN.CLIP_GRAD_NORM": (lambda v: v >= 0, "must be >= 0 (0: no clipping)"),
    "TRAIN.MAX_ITERS_PER_EPOCH": (lambda v: v >= 0, "must be >= 0 (0: whole epochs)"),
    "TRAIN.VAL_FREQ": (lambda v: v >= 0, "must be >= 0 (0: no validation)"),
    "TEST.IMAGES_PER_GPU": _AT_LEAST_1,
    "TEST.DETECTION_THRESHOLD": _FRACTION,
    "TEST.TAG_THRESHOLD": _POSITIVE,
    "TEST.NMS_KERNEL": _AT_LEAST_1,
    "FP16.STATIC_LOSS_SCALE": _POSITIVE,
}
# Lists whose every entry follows a rule.
LIST_RULES = {
    "LOSS.HEATMAPS_LOSS_FACTOR": _NOT_NEGATIVE,
    "LOSS.PUSH_LOSS_FACTOR": _NOT_NEGATIVE,
    "LOSS.PULL_LOSS_FACTOR": _NOT_NEGATIVE,
    "TRAIN.LR_STEP": _NOT_NEGATIVE,
    "MODEL.EXTRA.DECONV.NUM_CHANNELS": _AT_LEAST_1,
    **{f"MODEL.EXTRA.STAGE{i}.{key}": _AT_LEAST_1 for i in range(1, 5) for key in ("NUM_BLOCKS", "NUM_CHANNELS")},
}


def _value(cfg: CfgNode, key: str) -> Any:
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def check_values(cfg: CfgNode, source: str = "config") -> None:
    """ConfigError naming the key and the rule for the first numeric value out of its range (VALUE_RULES,
    LIST_RULES, and the rules between keys: MIN_SCALE <= MAX_SCALE, BEGIN_EPOCH <= END_EPOCH)."""
    for key, (test, rule) in VALUE_RULES.items():
        value = _value(cfg, key)
        if not test(value):
            raise ConfigError(f"{source}: {key} {rule}, got {value!r}")
    for key, (test, rule) in LIST_RULES.items():
        bad = [v for v in _value(cfg, key) if not test(v)]
        if bad:
            raise ConfigError(f"{source}: every entry of {key} {rule}, got {list(_value(cfg, key))}")
    for stage in range(1, 5):
        if cfg.MODEL.EXTRA[f"STAGE{stage}"].NUM_MODULES < 1:
            raise ConfigError(f"{source}: MODEL.EXTRA.STAGE{stage}.NUM_MODULES must be at least 1, got "
                              f"{cfg.MODEL.EXTRA[f'STAGE{stage}'].NUM_MODULES}")
    d, t = cfg.DATASET, cfg.TRAIN
    if d.MAX_SCALE < d.MIN_SCALE:
        raise ConfigError(f"{source}: DATASET.MAX_SCALE ({d.MAX_SCALE}) must be >= DATASET.MIN_SCALE ({d.MIN_SCALE})")
    if t.END_EPOCH < t.BEGIN_EPOCH:
        raise ConfigError(f"{source}: TRAIN.END_EPOCH ({t.END_EPOCH}) must be >= TRAIN.BEGIN_EPOCH ({t.BEGIN_EPOCH})")
    multiple, why = _input_multiple(cfg)
    if d.INPUT_SIZE % multiple:
        raise ConfigError(f"{source}: DATASET.INPUT_SIZE ({d.INPUT_SIZE}) must be a multiple of {multiple} for "
                          f"MODEL.NAME {cfg.MODEL.NAME}{why}")


def _input_multiple(cfg: CfgNode) -> tuple[int, str]:
    """What DATASET.INPUT_SIZE must be a multiple of, and why (the end of a sentence)."""
    for name, section in (("hourglass_ae", "HOURGLASS_AE"), ("hourglass_residual", "HOURGLASS")):
        if cfg.MODEL.NAME == name:
            depth = max(cfg.MODEL[section].DEPTH, 0)
            return 4 * 2 ** depth, (f" with MODEL.{section}.DEPTH {depth}: the network halves and doubles the "
                                    f"1/4-resolution features DEPTH times")
    return 32, ": its lowest-resolution branch is at 1/32 and is upsampled back to 1/4 exactly"


def check_cfg(cfg: CfgNode, source: str = "config") -> None:
    """Cross-key consistency checks (lengths that must agree, allowed values) and the value rules
    (check_values)."""
    name = cfg.MODEL.NAME
    if name not in MODEL_NAMES:
        raise ConfigError(f"{source}: MODEL.NAME {name!r} is not a known model; available: {list(MODEL_NAMES)}")
    check_values(cfg, source)
    stages = cfg.LOSS.NUM_STAGES
    for key in ("WITH_HEATMAPS_LOSS", "HEATMAPS_LOSS_FACTOR", "WITH_AE_LOSS", "PUSH_LOSS_FACTOR",
                "PULL_LOSS_FACTOR"):
        _expect_len(cfg.LOSS[key], stages, f"LOSS.{key}", "LOSS.NUM_STAGES", source)
    for key in ("WITH_HEATMAPS", "WITH_AE"):
        _expect_len(cfg.TEST[key], stages, f"TEST.{key}", "LOSS.NUM_STAGES", source)
    if name == "pose_higher_hrnet":
        _check_higher_hrnet(cfg, source)
    elif name == "hourglass_ae":
        _check_ae_hourglass(cfg, source)
    else:
        _check_hourglass(cfg, source)
    mean, std = cfg.MODEL.INPUT_MEAN, cfg.MODEL.INPUT_STD
    if not ((len(mean) == len(std) == 3 and all(s > 0 for s in std)) or len(mean) == len(std) == 0):
        raise ConfigError(f"{source}: MODEL.INPUT_MEAN and MODEL.INPUT_STD must both have 3 entries (RGB, std > 0) "
                          f"or both be empty (pixels / 255 only); got {list(mean)} and {list(std)}")
    if cfg.MODEL.NUM_JOINTS != cfg.DATASET.NUM_JOINTS:
        raise ConfigError(f"{source}: MODEL.NUM_JOINTS ({cfg.MODEL.NUM_JOINTS}) must equal DATASET.NUM_JOINTS "
                          f"({cfg.DATASET.NUM_JOINTS})")
    if cfg.DATASET.WITH_CENTER:
        raise ConfigError(f"{source}: DATASET.WITH_CENTER is not supported (the official code never uses it)")
    if cfg.LOSS.AE_LOSS_TYPE not in ("exp", "max"):
        raise ConfigError(f"{source}: LOSS.AE_LOSS_TYPE must be 'exp' or 'max', got {cfg.LOSS.AE_LOSS_TYPE!r}")
    if cfg.TRAIN.CHANNELS_LAST not in ("cpu", "always", "never"):
        raise ConfigError(f"{source}: TRAIN.CHANNELS_LAST must be 'cpu' (channels-last when training on the CPU), "
                          f"'always' or 'never', got {cfg.TRAIN.CHANNELS_LAST!r}")
    if cfg.TRAIN.CPU_AUTOCAST not in ("", "bf16"):
        raise ConfigError(f"{source}: TRAIN.CPU_AUTOCAST must be '' (float32) or 'bf16', got {cfg.TRAIN.CPU_AUTOCAST!r}")
    if cfg.TRAIN.OPTIMIZER not in ("adam", "adamw", "sgd"):
        raise ConfigError(f"{source}: TRAIN.OPTIMIZER must be adam, adamw or sgd, got {cfg.TRAIN.OPTIMIZER!r}")
    if cfg.DATASET.SCALE_TYPE not in ("short", "long"):
        raise ConfigError(f"{source}: DATASET.SCALE_TYPE must be 'short' or 'long', got {cfg.DATASET.SCALE_TYPE!r}")
    if any(size != cfg.DATASET.INPUT_SIZE // 4 * 2 ** i for i, size in enumerate(cfg.DATASET.OUTPUT_SIZE)):
        raise ConfigError(f"{source}: DATASET.OUTPUT_SIZE {list(cfg.DATASET.OUTPUT_SIZE)} must be INPUT_SIZE/4, "
                          f"INPUT_SIZE/2, ... for INPUT_SIZE {cfg.DATASET.INPUT_SIZE}")
    if cfg.TEST.NMS_KERNEL % 2 == 0 or cfg.TEST.NMS_PADDING != cfg.TEST.NMS_KERNEL // 2:
        raise ConfigError(f"{source}: TEST.NMS_KERNEL must be odd and TEST.NMS_PADDING = NMS_KERNEL // 2 "
                          f"(got {cfg.TEST.NMS_KERNEL} and {cfg.TEST.NMS_PADDING})")
    if not cfg.TEST.SCALE_FACTOR or any(s <= 0 for s in cfg.TEST.SCALE_FACTOR):
        raise ConfigError(f"{source}: TEST.SCALE_FACTOR must be a non-empty list of positive numbers")


def _check_higher_hrnet(cfg: CfgNode, source: str) -> None:
    stages = cfg.LOSS.NUM_STAGES
    deconvs = cfg.MODEL.EXTRA.DECONV.NUM_DECONVS
    _expect_len(cfg.DATASET.OUTPUT_SIZE, stages, "DATASET.OUTPUT_SIZE", "LOSS.NUM_STAGES", source)
    if stages != deconvs + 1:
        raise ConfigError(f"{source}: LOSS.NUM_STAGES ({stages}) must be MODEL.EXTRA.DECONV.NUM_DECONVS + 1 "
                          f"({deconvs + 1}): one output at 1/4 resolution plus one per deconv module")
    for key in ("NUM_CHANNELS", "KERNEL_SIZE", "CAT_OUTPUT"):
        _expect_len(cfg.MODEL.EXTRA.DECONV[key], deconvs, f"MODEL.EXTRA.DECONV.{key}",
                    "MODEL.EXTRA.DECONV.NUM_DECONVS", source)
    for k in cfg.MODEL.EXTRA.DECONV.KERNEL_SIZE:
        if k not in (2, 3, 4):
            raise ConfigError(f"{source}: MODEL.EXTRA.DECONV.KERNEL_SIZE entries must be 2, 3 or 4, got {k}")
    for i in range(1, 5):
        st = cfg.MODEL.EXTRA[f"STAGE{i}"]
        for key in ("NUM_BLOCKS", "NUM_CHANNELS"):
            _expect_len(st[key], st.NUM_BRANCHES, f"MODEL.EXTRA.STAGE{i}.{key}",
                        f"MODEL.EXTRA.STAGE{i}.NUM_BRANCHES", source)
        if st.BLOCK not in ("BASIC", "BOTTLENECK"):
            raise ConfigError(f"{source}: MODEL.EXTRA.STAGE{i}.BLOCK must be BASIC or BOTTLENECK, got {st.BLOCK}")
        if st.FUSE_METHOD != "SUM":
            raise ConfigError(f"{source}: MODEL.EXTRA.STAGE{i}.FUSE_METHOD must be SUM, got {st.FUSE_METHOD}")
        if st.NUM_BRANCHES != (1 if i == 1 else i):
            raise ConfigError(f"{source}: MODEL.EXTRA.STAGE{i}.NUM_BRANCHES must be {1 if i == 1 else i}")
    if cfg.MODEL.EXTRA.FINAL_CONV_KERNEL not in (1, 3):
        raise ConfigError(f"{source}: MODEL.EXTRA.FINAL_CONV_KERNEL must be 1 or 3")
    if cfg.MODEL.EXTRA.HEAD not in ("hrnet_v1", "hrnet_v2"):
        raise ConfigError(f"{source}: MODEL.EXTRA.HEAD must be 'hrnet_v1' (highest-resolution branch) or 'hrnet_v2' "
                          f"(all branches concatenated), got {cfg.MODEL.EXTRA.HEAD!r}")
    if cfg.MODEL.EXTRA.HEAD_CHANNELS < 0:
        raise ConfigError(f"{source}: MODEL.EXTRA.HEAD_CHANNELS must be >= 0 (0: the concatenation's width), "
                          f"got {cfg.MODEL.EXTRA.HEAD_CHANNELS}")
    if cfg.MODEL.EXTRA.HEAD_CHANNELS and cfg.MODEL.EXTRA.HEAD == "hrnet_v1":
        raise ConfigError(f"{source}: MODEL.EXTRA.HEAD_CHANNELS is the width of the hrnet_v2 head; it has no "
                          "effect with MODEL.EXTRA.HEAD hrnet_v1 (set it to 0 or use hrnet_v2)")


def _check_stacks(cfg: CfgNode, section: str, source: str) -> None:
    """What every stacked hourglass needs: MODEL.<section>.NUM_STACKS outputs, all trained at 1/4."""
    hg = cfg.MODEL[section]
    if hg.NUM_STACKS < 1 or hg.DEPTH < 1:
        raise ConfigError(f"{source}: MODEL.{section}.NUM_STACKS and DEPTH must be >= 1, got {hg.NUM_STACKS} "
                          f"and {hg.DEPTH}")
    if cfg.LOSS.NUM_STAGES != hg.NUM_STACKS:
        raise ConfigError(f"{source}: LOSS.NUM_STAGES ({cfg.LOSS.NUM_STAGES}) must equal MODEL.{section}.NUM_STACKS "
                          f"({hg.NUM_STACKS}): one network output per stack, each with its LOSS.* and TEST.WITH_* "
                          "entries")
    quarter = cfg.DATASET.INPUT_SIZE // 4
    if list(cfg.DATASET.OUTPUT_SIZE) != [quarter]:
        raise ConfigError(f"{source}: DATASET.OUTPUT_SIZE must be [{quarter}] (INPUT_SIZE/4) for MODEL.NAME "
                          f"{cfg.MODEL.NAME}: every stack is trained against the same 1/4-resolution targets; "
                          f"got {list(cfg.DATASET.OUTPUT_SIZE)}")


def _check_hourglass(cfg: CfgNode, source: str) -> None:
    _check_stacks(cfg, "HOURGLASS", source)
    hg = cfg.MODEL.HOURGLASS
    _expect_len(hg.NUM_CHANNELS, hg.DEPTH + 1, "MODEL.HOURGLASS.NUM_CHANNELS", "MODEL.HOURGLASS.DEPTH (+ 1)", source)
    _expect_len(hg.STEM_CHANNELS, 2, "MODEL.HOURGLASS.STEM_CHANNELS", "the stem (7x7 conv, residuals)", source)
    if any(c < 2 for c in [*hg.NUM_CHANNELS, *hg.STEM_CHANNELS]):
        raise ConfigError(f"{source}: MODEL.HOURGLASS.NUM_CHANNELS and STEM_CHANNELS must be >= 2 (residual blocks "
                          f"work at half width), got {list(hg.NUM_CHANNELS)} and {list(hg.STEM_CHANNELS)}")


def _check_ae_hourglass(cfg: CfgNode, source: str) -> None:
    _check_stacks(cfg, "HOURGLASS_AE", source)
    hg = cfg.MODEL.HOURGLASS_AE
    if hg.WIDTH < 1 or hg.INCREASE < 0 or hg.UNUSED_CHANNELS < 0:
        raise ConfigError(f"{source}: MODEL.HOURGLASS_AE.WIDTH must be >= 1 and INCREASE and UNUSED_CHANNELS >= 0, "
                          f"got {hg.WIDTH}, {hg.INCREASE} and {hg.UNUSED_CHANNELS}")


def _expect_len(value: Iterable, n: int, key: str, by: str, source: str) -> None:
    if len(value) != n:
        raise ConfigError(f"{source}: {key} has {len(value)} entries but {by} says {n}: {list(value)}")
