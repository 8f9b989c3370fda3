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

`resume_training` does all of this for a built model, optimiser, schedule and scaler: it picks the checkpoint
(TRAIN.CHECKPOINT with TRAIN.RESUME, else the run folder's checkpoint.pth with AUTO_RESUME), checks that it is
a training checkpoint, compares configurations, loads what fits and says where training goes on.
`set_aside_previous_run` is what a fresh start does with the previous run's files, and `checkpoint_note` says
which checkpoint a stopped run can be resumed from.
"""
from __future__ import annotations

import datetime
import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import yaml
from torch import nn

from ..checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from ..config import CfgNode
from ..config.defaults import _C
from .build import build_optimizer, build_scheduler
from .train_loop import TrainingError, TrainState

__all__ = ["ConfigChanges", "compare_configs", "saved_config", "format_change", "SCHEDULE_KEYS", "HARMLESS_KEYS",
           "RESUME_MODES", "RUN_FILES", "Resumed", "check_resume_mode", "resume_training", "set_aside_previous_run",
           "checkpoint_note"]

logger = logging.getLogger("higherhrnet.train")

# How a run treats an existing checkpoint: "check" resumes unless the configuration changed in a way the
# checkpoint cannot follow, "anyway" resumes whatever changed, "fresh" starts again (keeping the old files).
RESUME_MODES = ("check", "anyway", "fresh")
# The run folder's files a fresh start sets aside rather than overwrite.
RUN_FILES = ("checkpoint.pth", "final_state.pth", "model_best.pth")

# Keys (or sections, ending in ".") whose value never changes what a checkpoint holds.
HARMLESS_KEYS = (
    "OUTPUT_DIR", "LOG_DIR", "DATA_DIR", "WORKERS", "PRINT_FREQ", "PIN_MEMORY", "AUTO_RESUME", "SEED",
    "DIST_BACKEND", "GPUS", "RANK", "VERBOSE", "MULTIPROCESSING_DISTRIBUTED", "CUDNN.", "TEST.", "DEBUG.", "FP16.",
    "DATASET.ROOT", "DATASET.TEST", "DATASET.DATASET_TEST", "DATASET.DATA_FORMAT", "DATASET.ACCEPT_DAMAGED_IMAGES",
    "DATASET.CHECK_IMAGES",
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


def check_resume_mode(mode: str) -> None:
    """ValueError unless `mode` is one of RESUME_MODES."""
    if mode not in RESUME_MODES:
        raise ValueError(f"resume must be one of {RESUME_MODES}, got {mode!r}")


@dataclass
class Resumed:
    """Where training goes on: `state` (next epoch, best metric), the optimiser and schedule to train with
    (those given to resume_training, or new ones built from the configuration when the saved state did not
    fit them), `path`, the checkpoint resumed from (None when nothing was resumed), and `run_epochs`, the
    epochs of the run folder's checkpoint.pth when that is the one resumed from (for checkpoint_note)."""

    state: TrainState
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    path: str | None = None
    run_epochs: int | None = None


def resume_training(cfg: CfgNode, mode: str, run_checkpoint: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                    iters_per_epoch: int) -> Resumed:
    """Resume from TRAIN.CHECKPOINT (with TRAIN.RESUME) or, with AUTO_RESUME, from `run_checkpoint` (the run
    folder's checkpoint.pth) when it exists; nothing is read with mode "fresh" (the caller sets the previous
    run's files aside: set_aside_previous_run) or when there is nothing to resume: training starts at
    TRAIN.BEGIN_EPOCH.

    The weights are loaded into `model`, the scaler's state into `scaler`, the optimiser's and schedule's into
    `optimizer` and `scheduler` (with the current configuration's hyper-parameters) unless TRAIN.OPTIMIZER
    changed or the saved state does not fit (then fresh ones are built and returned); the learning rate is
    set to the current schedule at the checkpoint's epoch. Raises TrainingError when the file is not a
    training checkpoint, when its configuration differs in refused keys (mode "check"; "anyway" goes on with
    a warning) or when its weights do not fit the model.
    """
    check_resume_mode(mode)
    start = Resumed(TrainState(epoch=cfg.TRAIN.BEGIN_EPOCH), optimizer, scheduler)
    if mode == "fresh":
        return start
    path = None
    if cfg.TRAIN.RESUME and cfg.TRAIN.CHECKPOINT:
        path = cfg.TRAIN.CHECKPOINT
    elif cfg.AUTO_RESUME and os.path.isfile(run_checkpoint):
        path = run_checkpoint
    if path is None:
        return start
    state = read_checkpoint(path)
    if not isinstance(state, dict):
        raise TrainingError(f"cannot resume from {path}: it is not a training checkpoint (no entries)")
    for key in ("model", "optimizer", "scheduler", "epoch"):
        if key not in state:
            raise TrainingError(f"cannot resume from {path}: it has no {key!r} entry (is it a training checkpoint?)")
    same_optimizer, reschedule = _check_config(cfg, mode, path, state)
    try:
        load_checkpoint(model, state["model"])
    except CheckpointError as e:
        raise TrainingError(f"cannot resume from {path}: {e}\nStart again with --fresh (the Trainer's resume mode "
                            f"fresh); the old checkpoint is kept") from None
    epochs = int(state["epoch"])
    if same_optimizer:
        optimizer, scheduler = _load_optimizer(cfg, path, state, model, optimizer, scheduler, iters_per_epoch)
    if not same_optimizer or reschedule or scheduler.last_epoch != epochs * iters_per_epoch:
        _reposition_schedule(optimizer, scheduler, epochs * iters_per_epoch)
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    logger.info("resumed from %s: %d epoch%s done, continuing with epoch %d", path, epochs, "s" if epochs != 1 else "",
                epochs + 1)
    run_epochs = epochs if os.path.abspath(path) == os.path.abspath(run_checkpoint) else None
    return Resumed(TrainState(epoch=epochs, best_metric=state.get("best_metric")), optimizer, scheduler, path,
                   run_epochs)


def _check_config(cfg: CfgNode, mode: str, path: str, state: dict) -> tuple[bool, bool]:
    """Compare the checkpoint's configuration with `cfg`: refuse or report the differences. Returns (the
    optimiser's saved state can be loaded, the schedule must be rebuilt)."""
    text = saved_config(state)
    if text is None:
        logger.info("%s does not say which configuration wrote it: its optimiser state is loaded and the "
                    "learning-rate schedule is the current configuration's", path)
        return True, True
    changes = compare_configs(text, cfg)
    if changes.refused and mode != "anyway":
        lines = "\n".join(f"  {format_change(c)}" for c in changes.refused)
        raise TrainingError(
            f"cannot resume from {path}: it was trained with a different configuration:\n{lines}\n"
            f"These change the network, the loss, the data or the optimiser the checkpoint belongs to. Either\n"
            f"  start again: add --fresh (the Trainer's resume mode fresh); the old checkpoint, final and best "
            f"models are kept under names with their date, or\n"
            f"  resume anyway: add --resume-anyway (resume mode anyway): weights and epoch from the "
            f"checkpoint; optimiser and schedule from the new configuration, their state kept where it fits")
    if changes.refused:
        logger.warning("resuming anyway with a different configuration: %s",
                       "; ".join(format_change(c) for c in changes.refused))
    for kind, items in (("applied", changes.schedule), ("in effect", changes.harmless)):
        if items:
            logger.info("resuming with changed settings (%s from now on): %s", kind,
                        "; ".join(format_change(c) for c in items))
    if changes.unknown:
        logger.info("the checkpoint's configuration has keys this version does not know (ignored): %s",
                    ", ".join(changes.unknown))
    old_optimizer = changes.value("TRAIN.OPTIMIZER", 1)
    if old_optimizer is not None:
        logger.info("TRAIN.OPTIMIZER changed (%s -> %s): the optimiser starts with a fresh state", old_optimizer,
                    cfg.TRAIN.OPTIMIZER)
    return old_optimizer is None, bool(changes.schedule)


def _load_optimizer(cfg: CfgNode, path: str, state: dict, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler, iters_per_epoch: int) -> tuple[torch.optim.Optimizer, Any]:
    """The saved optimiser and schedule state, with the hyper-parameters of the current configuration (a
    changed TRAIN.LR, WD, MOMENTUM, ... applies; Adam's moments and SGD's momentum buffer are kept: they do
    not depend on them). Returns (optimiser, schedule): those given, loaded, or fresh ones built from `cfg`
    when the saved state does not fit."""
    built = [{k: v for k, v in group.items() if k not in ("params", "lr")} for group in optimizer.param_groups]
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (ValueError, KeyError, TypeError) as e:
        logger.warning("the optimiser state of %s does not fit (%s): the optimiser starts with a fresh state",
                       path, e)
        optimizer = build_optimizer(cfg, model)
        return optimizer, build_scheduler(cfg, optimizer, iters_per_epoch)
    for group, hyper in zip(optimizer.param_groups, built):
        group.update(hyper)
    return optimizer, scheduler


def _reposition_schedule(optimizer: torch.optim.Optimizer, scheduler, position: int) -> None:
    """Set the learning rate to the current configuration's schedule at `position` (iterations done): its
    factor is a function of the iteration (build_scheduler's LambdaLR), applied to TRAIN.LR."""
    scheduler.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
    scheduler.last_epoch = position - 1
    with warnings.catch_warnings():
        # step() outside the loop: PyTorch's reminder about calling optimizer.step() first does not apply.
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()


def set_aside_previous_run(out_dir: str) -> None:
    """Rename the run folder's checkpoint, final and best models (RUN_FILES) to NAME.<date of the file>.pth
    (NAME.<date>-2.pth, ... when that name is taken), so that a fresh start keeps them."""
    for name in RUN_FILES:
        path = os.path.join(out_dir, name)
        if not os.path.isfile(path):
            continue
        stamp = datetime.datetime.fromtimestamp(os.path.getmtime(path)).strftime("%Y%m%d-%H%M%S")
        stem, extension = os.path.splitext(path)
        target, n = f"{stem}.{stamp}{extension}", 1
        while os.path.exists(target):
            n += 1
            target = f"{stem}.{stamp}-{n}{extension}"
        os.replace(path, target)
        logger.info("starting afresh: the previous %s is kept as %s", name, target)


def checkpoint_note(run_checkpoint: str, epochs: int | None) -> str:
    """Which checkpoint.pth is the last complete one, for messages when training stops early: `run_checkpoint`
    holding `epochs` epochs (those of the last one written, or of the one resumed from; None when neither)."""
    if epochs is None or not os.path.isfile(run_checkpoint):
        return "no checkpoint was written yet (the first is saved at the end of the first epoch)"
    return (f"the last complete checkpoint is {run_checkpoint} ({epochs} epoch{'s' if epochs != 1 else ''} "
            f"done; resuming continues with epoch {epochs + 1})")
