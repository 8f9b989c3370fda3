"""Configuration: yacs defaults, strict loading with readable errors, and consistency checks.

    cfg = get_cfg()                                  # a fresh, mutable copy of the defaults
    cfg = load_cfg("exp.yaml", ["TEST.FLIP_TEST", "False"])   # file + overrides -> frozen

Values are checked against the defaults' types: an int may stand where a float is expected and a list
where a tuple is (and back), and true / false where a probability is (BOOL_AS_PROBABILITY: the official
top-down files' DATASET.FLIP switch); anything else, and any key the defaults do not have, is an error naming
the key and where it came from.
"""
from __future__ import annotations

import ast
import difflib
import os
import warnings
from typing import Any, Sequence

import yaml
from yacs.config import CfgNode

from ..errors import ConfigError, ConfigWarning
from .defaults import _C, BOOL_AS_PROBABILITY, COMPAT_KEYS

__all__ = ["ConfigError", "ConfigWarning", "CfgNode", "get_cfg", "load_cfg", "load_cfg_text", "merge_into", "check_cfg",
           "check_values", "VALUE_RULES", "LIST_RULES"]


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
        return _load_text(f.read(), path, opts, shipped=_is_shipped_recipe(path))


# The experiment files shipped inside the package (a checkout's experiments/ links there).
_SHIPPED = os.path.realpath(os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments"))


def _is_shipped_recipe(path: str) -> bool:
    return os.path.realpath(path).startswith(_SHIPPED + os.sep)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key, first: int, second: int):
        super().__init__(f"key {key!r} is given twice in one section, on lines {first} and {second}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping: PyYAML itself keeps the last value
    silently, so a doubled key (an edit that added a line instead of changing one) would go unnoticed."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            lines: dict = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, (str, int, float, bool)) and key in lines:
                    raise _DuplicateKey(key, lines[key], line)
                lines.setdefault(key, line)
        return super().construct_mapping(node, deep=deep)


def load_cfg_text(text: str, source: str, opts: Sequence[str] = ()) -> CfgNode:
    """load_cfg for YAML text, e.g. the config a checkpoint carries; `source` names it in error messages."""
    return _load_text(text, source, opts, shipped=False)


def _load_text(text: str, source: str, opts: Sequence[str], shipped: bool) -> CfgNode:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as e:
        raise ConfigError(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    cfg = get_cfg()
    merge_into(cfg, data, source=source)
    return _finish(cfg, opts, source, reference=cfg.clone() if shipped else None)


def _finish(cfg: CfgNode, opts: Sequence[str], source: str, reference: CfgNode | None = None) -> CfgNode:
    """The overrides merged into `cfg`, paths joined to DATA_DIR, values checked; frozen.

    reference: what keys without effect are compared with (default: the defaults). A shipped copy of an
    official recipe keeps the official values of such keys (GPUS (0,1,2,3), the DEBUG switches), which
    docs/configs.md explains; they warn only where the command line changes them."""
    merge_into(cfg, opts_to_dict(opts), source="command line")
    if cfg.DATA_DIR:
        for node, key in ((cfg.DATASET, "ROOT"), (cfg.MODEL, "PRETRAINED"), (cfg.TEST, "MODEL_FILE")):
            if node[key] and not os.path.isabs(node[key]):
                node[key] = os.path.join(cfg.DATA_DIR, node[key])
    check_cfg(cfg, source=source)
    warn_compat_keys(cfg, source="command line" if source == "defaults" or reference is not None else source,
                     reference=_C if reference is None else reference)
    cfg.freeze()
    return cfg


def warn_compat_keys(cfg: CfgNode, source: str, reference: CfgNode = _C) -> None:
    """A ConfigWarning for every key of COMPAT_KEYS (accepted, no effect here) set to another value than in
    `reference` (the defaults)."""
    for key, why in COMPAT_KEYS.items():
        value, default = cfg, reference
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
    if key in BOOL_AS_PROBABILITY and isinstance(value, bool):
        return BOOL_AS_PROBABILITY[key] if value else 0.0
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
    "MODEL.SIGMA": _POSITIVE,
    "DATASET.SCALE_FACTOR": (lambda v: 0 <= v < 1, "must be >= 0 and < 1 (boxes are scaled by 1 +- SCALE_FACTOR)"),
    "DATASET.ROT_FACTOR": _NOT_NEGATIVE,
    "DATASET.PROB_HALF_BODY": _FRACTION,
    "DATASET.NUM_JOINTS_HALF_BODY": _NOT_NEGATIVE,
    "LOSS.TOPK": _AT_LEAST_1,
    "TRAIN.BATCH_SIZE_PER_GPU": _AT_LEAST_1,
    "TEST.BATCH_SIZE_PER_GPU": _AT_LEAST_1,
    "TEST.IMAGE_THRE": _NOT_NEGATIVE,
    "TEST.IN_VIS_THRE": _NOT_NEGATIVE,
    "TEST.OKS_THRE": _FRACTION,
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
    if t.END_EPOCH <= t.BEGIN_EPOCH:
        raise ConfigError(f"{source}: TRAIN.END_EPOCH ({t.END_EPOCH}) must be > TRAIN.BEGIN_EPOCH ({t.BEGIN_EPOCH}): "
                          f"training runs epochs BEGIN_EPOCH to END_EPOCH - 1, so this schedule is empty")


def check_cfg(cfg: CfgNode, source: str = "config") -> None:
    """Cross-key consistency checks (lengths that must agree, allowed values) and the value rules
    (check_values)."""
    # Imported here, not at the top: the registry imports the networks, hence torch (1.5 s), which commands
    # that only read the defaults (`higherhrnet weights`, the command line's override parsing) do without.
    from ..models.registry import build_output_specs, model_entry

    model = model_entry(cfg.MODEL.NAME, source)
    check_values(cfg, source)
    multiple, why = model.input_multiple(cfg)
    if cfg.DATASET.INPUT_SIZE % multiple:
        raise ConfigError(f"{source}: DATASET.INPUT_SIZE ({cfg.DATASET.INPUT_SIZE}) must be a multiple of {multiple} "
                          f"for MODEL.NAME {cfg.MODEL.NAME}{why}")
    model.check(cfg, source)
    try:
        build_output_specs(cfg)     # the outputs' keys: their lengths and what they say together
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
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
    _check_lr_schedule(cfg.TRAIN, source)
    if cfg.TRAIN.OPTIMIZER not in ("adam", "adamw", "sgd", "rmsprop"):
        raise ConfigError(f"{source}: TRAIN.OPTIMIZER must be adam, adamw, sgd or rmsprop, got "
                          f"{cfg.TRAIN.OPTIMIZER!r}")
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


def _check_lr_schedule(train: CfgNode, source: str) -> None:
    if train.LR_SCHEDULE not in ("multistep", "swahr"):
        raise ConfigError(f"{source}: TRAIN.LR_SCHEDULE must be multistep or swahr, got {train.LR_SCHEDULE!r}")
    if train.LR_SCHEDULE == "swahr":
        if train.WARMUP_EPOCHS > 0:
            raise ConfigError(f"{source}: TRAIN.WARMUP_EPOCHS belongs to TRAIN.LR_SCHEDULE multistep; the swahr "
                              f"schedule warms up over TRAIN.WARM_UP_EPOCH: set TRAIN.WARMUP_EPOCHS 0")
        if not 0 <= train.WARM_UP_EPOCH < train.END_EPOCH:
            raise ConfigError(f"{source}: TRAIN.LR_SCHEDULE swahr needs 0 <= TRAIN.WARM_UP_EPOCH "
                              f"({train.WARM_UP_EPOCH}) < TRAIN.END_EPOCH ({train.END_EPOCH})")
