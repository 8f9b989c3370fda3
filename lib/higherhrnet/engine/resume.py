"""Resuming training with a configuration that may have changed since the checkpoint was written.

A training checkpoint carries the configuration that wrote it (checkpoint.pth: "meta"["config"], older files a
top-level "config", as YAML). Resuming compares it with the current one, key by key, in three classes:

- settings that never affect what a checkpoint holds (folders, workers, logging, validation and test-time
  keys, the last epoch, ...): they take effect, with an info line;
- optimiser and learning-rate settings (SCHEDULE_KEYS): applied correctly, i.e. the optimiser's saved state
  is loaded and its hyper-parameters then set from the new configuration, and the schedule is rebuilt at the
  checkpoint's position. Adam's and AdamW's state (running means of the gradient and of its square, and the
  step count) and SGD's momentum buffer (a running sum of gradients) do not depend on the learning rate,
  weight decay or momentum coefficient, so they stay valid and are kept;
- everything else (the network, the loss, the data and its augmentation, the optimiser's type, the batch
  size): the checkpoint belongs to another experiment. Resuming is refused with the list of differences,
  unless the caller chose to resume anyway (weights and epoch from the checkpoint, optimiser state kept
  where it fits, the rest from the new configuration) or to start fresh.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from ..config import CfgNode
from ..config.defaults import _C

__all__ = ["ConfigChanges", "compare_configs", "saved_config", "SCHEDULE_KEYS", "HARMLESS_KEYS"]

# Keys (or sections, ending in ".") whose value never changes what a checkpoint holds.
HARMLESS_KEYS = (
    "OUTPUT_DIR", "LOG_DIR", "DATA_DIR", "WORKERS", "PRINT_FREQ", "PIN_MEMORY", "AUTO_RESUME", "SEED",
    "DIST_BACKEND", "GPUS", "RANK", "VERBOSE", "MULTIPROCESSING_DISTRIBUTED", "CUDNN.", "TEST.", "DEBUG.", "FP16.",
    "DATASET.ROOT", "DATASET.TEST", "DATASET.DATASET_TEST", "DATASET.DATA_FORMAT",
    "MODEL.PRETRAINED", "MODEL.INIT_WEIGHTS", "MODEL.SYNC_BN",
    "TRAIN.BEGIN_EPOCH", "TRAIN.VAL_FREQ", "TRAIN.RESUME", "TRAIN.CHECKPOINT", "TRAIN.SHUFFLE",
    "TRAIN.GAMMA1", "TRAIN.GAMMA2", "TRAIN.CHANNELS_LAST", "TRAIN.CPU_AUTOCAST",
)
# Optimiser hyper-parameters and the learning-rate schedule: applied on resume.
SCHEDULE_KEYS = (
    "TRAIN.LR", "TRAIN.LR_STEP", "TRAIN.LR_FACTOR", "TRAIN.WARMUP_EPOCHS", "TRAIN.WARMUP_FACTOR", "TRAIN.WD",
    "TRAIN.MOMENTUM", "TRAIN.NESTEROV", "TRAIN.CLIP_GRAD_NORM", "TRAIN.MAX_ITERS_PER_EPOCH",
    # SWAHR's schedule decays to 0 at END_EPOCH, and WORLD_SIZE multiplies the rate.
    "TRAIN.END_EPOCH", "TRAIN.LR_SCHEDULE", "TRAIN.WARM_UP_EPOCH", "WORLD_SIZE",
)

_MISSING = object()


@dataclass
class ConfigChanges:
    """Differences between a checkpoint's configuration and the current one, as (key, old, new) triples.

    harmless: take effect silently (an info line); schedule: applied on resume; refused: the checkpoint
    belongs to another experiment; unknown: keys of the saved configuration this version does not have."""

    harmless: list[tuple[str, Any, Any]] = field(default_factory=list)
    schedule: list[tuple[str, Any, Any]] = field(default_factory=list)
    refused: list[tuple[str, Any, Any]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def value(self, key: str, which: int) -> Any:
        """The old (which=1) or new (which=2) value of a changed key, or None when it did not change."""
        for change in self.harmless + self.schedule + self.refused:
            if change[0] == key:
                return change[which]
        return None


def saved_config(checkpoint: Mapping) -> str | None:
    """The YAML configuration a training checkpoint carries, or None when it has none."""
    meta = checkpoint.get("meta")
    text = meta.get("config") if isinstance(meta, Mapping) else None
    text = text if isinstance(text, str) else checkpoint.get("config")
    return text if isinstance(text, str) else None


def compare_configs(saved_yaml: str, cfg: CfgNode) -> ConfigChanges:
    """The keys whose values differ between `saved_yaml` (a dumped config) and `cfg`, classified.

    A key the saved configuration lacks (written by a version that did not have it) counts as having had
    its default value, which is what that version used.
    """
    saved = yaml.safe_load(saved_yaml) or {}
    old = _flatten(saved) if isinstance(saved, dict) else {}
    new = _flatten(cfg)
    defaults = _flatten(_C)
    changes = ConfigChanges()
    for key, value in new.items():
        before = old.get(key, defaults.get(key, _MISSING))
        if before is _MISSING or _plain(before) == _plain(value):
            continue
        change = (key, _plain(before), _plain(value))
        if _matches(key, HARMLESS_KEYS):
            changes.harmless.append(change)
        elif key in SCHEDULE_KEYS:
            changes.schedule.append(change)
        else:
            changes.refused.append(change)
    changes.unknown = sorted(set(old) - set(new))
    return changes


def format_change(change: tuple[str, Any, Any]) -> str:
    key, old, new = change
    return f"{key} {old!r} -> {new!r}"


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in patterns)


def _flatten(node: Mapping, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in node.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _plain(value: Any) -> Any:
    """Tuples as lists (YAML has only lists), recursively, so that equal values compare equal."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
