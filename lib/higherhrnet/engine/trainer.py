"""Training from a config: one process, or many with torchrun + DistributedDataParallel (gloo on CPU, nccl on
CUDA).

    trainer = Trainer(cfg, "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml", device="cuda")
    result = trainer.run()      # {"epochs": [...], "replicas_identical": bool, "output_dir": str}
    trainer.close()

Resuming (AUTO_RESUME, or TRAIN.RESUME with TRAIN.CHECKPOINT) compares the checkpoint's configuration with
the current one (resume.py): changed learning-rate and optimiser settings are applied, changes that make the
checkpoint another experiment's are refused (TrainingError listing them) unless resume="anyway"; resume="fresh"
starts again, keeping the run folder's old checkpoint.pth, final_state.pth and model_best.pth under names
with their date. Training stops (TrainingError) when the loss or any weight or buffer becomes NaN or infinite,
before anything is saved from it; Ctrl-C raises TrainingInterrupted, whose message says where training stood
and which checkpoint is the last complete one. Why training stopped is also written to train.log.

Trainer only builds (build.py) and resumes; the loop (train_loop.py) and its hooks (hooks.py) do the work.
Everything is written under OUTPUT_DIR/<DATASET.DATASET>/<MODEL.NAME>/<config name>/: checkpoint.pth (every
epoch, resumed automatically with AUTO_RESUME), final_state.pth (checkpoint.save_model: the weights in the
official key layout under "state_dict", and "meta": config, dataset, keypoint set, epochs, metrics),
model_best.pth with TRAIN.VAL_FREQ, train.log; TensorBoard events under LOG_DIR/<same path>/ (losses, learning
rate, validation metrics and pictures of the first validation image: hooks.py).
"""
from __future__ import annotations

import datetime
import logging
import os
import warnings

import torch

from ..checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from ..config import CfgNode, ConfigError
from ..losses import build_loss
from ..data import build_dataset, keypoints_from_config
from ..fileio import writable_folder_problem
from ..models import build_output_specs
from ..predictor import Predictor
from .build import (apply_cudnn_settings, build_mixed_precision, build_optimizer, build_scheduler, build_train_loader,
                    build_training_model, resolve_device, use_channels_last)
from .distributed import init_distributed, shutdown_distributed
from .evaluation import evaluate, validation_pictures
from .hooks import (Checkpointer, EpochBarrier, EpochLogger, FiniteWeights, LogFile, LossWatch, PeriodicValidation,
                    ReplicaCheck, TensorBoard, append_to_log)
from .resume import compare_configs, format_change, saved_config
from .runs import run_dir
from .train_loop import TrainingError, TrainLoop, TrainState

__all__ = ["Trainer", "TrainingError", "TrainingInterrupted", "RESUME_MODES"]

logger = logging.getLogger("higherhrnet.train")

# How a run treats an existing checkpoint: "check" resumes unless the configuration changed in a way the
# checkpoint cannot follow, "anyway" resumes whatever changed, "fresh" starts again (keeping the old files).
RESUME_MODES = ("check", "anyway", "fresh")
# The run folder's files a fresh start sets aside rather than overwrite.
_RUN_FILES = ("checkpoint.pth", "final_state.pth", "model_best.pth")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says where training stood and which checkpoint is the last
    complete one."""


class Trainer:
    """Builds everything a config describes for training; `run()` trains and returns the history.

    Attributes a caller may replace before run(): model (the network), net (what is trained: the model or
    its DDP wrapper), loss, optimizer, scheduler, loader.
    """

    def __init__(self, cfg: CfgNode, cfg_name: str, device: str | None = None, resume: str = "check"):
        if resume not in RESUME_MODES:
            raise ValueError(f"resume must be one of {RESUME_MODES}, got {resume!r}")
        self.cfg, self.resume_mode = cfg, resume
        self.out_dir = run_dir(cfg, cfg_name, cfg.OUTPUT_DIR)
        self.log_dir = run_dir(cfg, cfg_name, cfg.LOG_DIR)
        device = resolve_device(device)
        self.dist = init_distributed(device.type, cfg.DIST_BACKEND)
        self.device = torch.device("cuda", self.dist.local_rank) if device.type == "cuda" and self.dist.enabled \
            else device
        if self.dist.main:
            _make_writable_folder(self.out_dir, "OUTPUT_DIR", cfg.OUTPUT_DIR)
            _make_writable_folder(self.log_dir, "LOG_DIR", cfg.LOG_DIR)
        self.dist.barrier()
        self.checkpointer: Checkpointer | None = None
        self.resumed_epochs: int | None = None     # epochs of the run folder's checkpoint.pth, when resumed from it
        apply_cudnn_settings(cfg)
        torch.manual_seed(cfg.SEED)

        self.outputs = build_output_specs(cfg)
        self.keypoints = keypoints_from_config(cfg)
        self.model, self.net = build_training_model(cfg, self.outputs, self.device, self.dist)
        self.dataset = build_dataset(cfg, is_train=True, outputs=self.outputs)
        if len(self.dataset) == 0:
            raise ConfigError(f"the training split {cfg.DATASET.TRAIN} of {cfg.DATASET.ROOT} has no annotated image")
        self.loader, self.sampler, self.iters_per_epoch = build_train_loader(cfg, self.dataset, self.dist,
                                                                             self.device)
        self.loss = build_loss(cfg, self.outputs).to(self.device)
        self.optimizer = build_optimizer(cfg, self.model)
        self.scheduler = build_scheduler(cfg, self.optimizer, self.iters_per_epoch)
        self.scaler, self.amp, self.amp_dtype = build_mixed_precision(cfg, self.device)
        self.channels_last = use_channels_last(cfg, self.device)
        self.eval_dataset = build_dataset(cfg, is_train=False) if cfg.TRAIN.VAL_FREQ > 0 else None
        if self.eval_dataset is not None and not self.eval_dataset.source.has_annotations:
            raise ConfigError(f"TRAIN.VAL_FREQ: the split DATASET.TEST={cfg.DATASET.TEST} has no annotations to score")
        self.state = TrainState(epoch=cfg.TRAIN.BEGIN_EPOCH)
        self._resume()

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.out_dir, "checkpoint.pth")

    def _resume(self) -> None:
        if self.resume_mode == "fresh":
            if self.dist.main:
                self._set_aside_previous_run()
            self.dist.barrier()
            return
        path = None
        if self.cfg.TRAIN.RESUME and self.cfg.TRAIN.CHECKPOINT:
            path = self.cfg.TRAIN.CHECKPOINT
        elif self.cfg.AUTO_RESUME and os.path.isfile(self.checkpoint_path):
            path = self.checkpoint_path
        if path is None:
            return
        state = read_checkpoint(path)
        if not isinstance(state, dict):
            raise TrainingError(f"cannot resume from {path}: it is not a training checkpoint (no entries)")
        for key in ("model", "optimizer", "scheduler", "epoch"):
            if key not in state:
                raise TrainingError(f"cannot resume from {path}: it has no {key!r} entry (is it a training checkpoint?)")
        same_optimizer, reschedule = self._check_config(path, state)
        try:
            load_checkpoint(self.model, state["model"])
        except CheckpointError as e:
            raise TrainingError(f"cannot resume from {path}: {e}\nStart again with --fresh (Trainer(..., "
                                f"resume='fresh')); the old checkpoint is kept") from None
        epochs = int(state["epoch"])
        if same_optimizer:
            self._load_optimizer(path, state)
        if not same_optimizer or reschedule or self.scheduler.last_epoch != epochs * self.iters_per_epoch:
            self._reposition_schedule(epochs * self.iters_per_epoch)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.state = TrainState(epoch=epochs, best_metric=state.get("best_metric"))
        if os.path.abspath(path) == os.path.abspath(self.checkpoint_path):
            self.resumed_epochs = epochs
        logger.info("resumed from %s at epoch %d", path, self.state.epoch)

    def _check_config(self, path: str, state: dict) -> tuple[bool, bool]:
        """Compare the checkpoint's configuration with ours (resume.py): refuse or report the differences.
        Returns (the optimiser's saved state can be loaded, the schedule must be rebuilt)."""
        text = saved_config(state)
        if text is None:
            logger.info("%s does not say which configuration wrote it: its optimiser state is loaded and the "
                        "learning-rate schedule is the current configuration's", path)
            return True, True
        changes = compare_configs(text, self.cfg)
        if changes.refused and self.resume_mode != "anyway":
            lines = "\n".join(f"  {format_change(c)}" for c in changes.refused)
            raise TrainingError(
                f"cannot resume from {path}: it was trained with a different configuration:\n{lines}\n"
                f"These change the network, the loss, the data or the optimiser the checkpoint belongs to. Either\n"
                f"  start again: add --fresh (Trainer(..., resume='fresh')); the old checkpoint, final and best "
                f"models are kept under names with their date, or\n"
                f"  resume anyway: add --resume-anyway (Trainer(..., resume='anyway')): weights and epoch from the "
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
                        self.cfg.TRAIN.OPTIMIZER)
        return old_optimizer is None, bool(changes.schedule)

    def _load_optimizer(self, path: str, state: dict) -> None:
        """The saved optimiser and schedule state, with the hyper-parameters of the current configuration (a
        changed TRAIN.LR, WD, MOMENTUM, ... applies; Adam's moments and SGD's momentum buffer are kept: they do
        not depend on them)."""
        built = [{k: v for k, v in group.items() if k not in ("params", "lr")} for group in self.optimizer.param_groups]
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, TypeError) as e:
            logger.warning("the optimiser state of %s does not fit (%s): the optimiser starts with a fresh state",
                           path, e)
            self.optimizer = build_optimizer(self.cfg, self.model)
            self.scheduler = build_scheduler(self.cfg, self.optimizer, self.iters_per_epoch)
            return
        for group, hyper in zip(self.optimizer.param_groups, built):
            group.update(hyper)

    def _reposition_schedule(self, position: int) -> None:
        """Set the learning rate to the current configuration's schedule at `position` (iterations done): its
        factor is a function of the iteration (build_scheduler's LambdaLR), applied to TRAIN.LR."""
        self.scheduler.base_lrs = [group["initial_lr"] for group in self.optimizer.param_groups]
        self.scheduler.last_epoch = position - 1
        with warnings.catch_warnings():
            # step() outside the loop: PyTorch's reminder about calling optimizer.step() first does not apply.
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()

    def _set_aside_previous_run(self) -> None:
        """Rename the run folder's checkpoint, final and best models to NAME.<date of the file>.pth."""
        for name in _RUN_FILES:
            path = os.path.join(self.out_dir, name)
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

    def _checkpoint_note(self) -> str:
        """Which checkpoint.pth is the last complete one, for messages when training stops early."""
        epochs = self.checkpointer.saved_epochs if self.checkpointer is not None else None
        if epochs is None:
            epochs = self.resumed_epochs
        if epochs is None or not os.path.isfile(self.checkpoint_path):
            return "no checkpoint was written yet (the first is saved at the end of the first epoch)"
        return (f"the last complete checkpoint is {self.checkpoint_path} ({epochs} epoch{'s' if epochs != 1 else ''} "
                f"done; resuming continues with epoch {epochs})")

    def _predictor(self) -> Predictor:
        return Predictor.from_model(self.cfg, self.model, device=self.device, keypoints=self.keypoints)

    def _validate(self) -> dict:
        """COCO AP on DATASET.TEST with the current weights."""
        metrics, _ = evaluate(self._predictor(), self.eval_dataset, self.cfg.TEST.IMAGES_PER_GPU, 0, progress=False)
        return metrics

    def _validation_pictures(self) -> dict:
        """validation_pictures of the first image of DATASET.TEST with the current weights (none for an empty
        split)."""
        if len(self.eval_dataset) == 0:
            return {}
        image, _ = self.eval_dataset[0]
        return validation_pictures(self._predictor(), image)

    def build_hooks(self) -> list:
        """The hooks of a run, in the order they act after each epoch: epoch log, validation, checkpoint,
        barrier; after training: final weights, replica check."""
        main = self.dist.main
        header = (f"training {self.cfg.MODEL.NAME} on {self.device} ({self.dist.world_size} "
                  f"process{'es' if self.dist.enabled else ''}), {len(self.dataset)} images, {self.iters_per_epoch} "
                  f"iterations per epoch, output {self.out_dir}")
        hooks = []
        tensorboard = None
        if main:
            tensorboard = TensorBoard(self.log_dir, self.cfg.PRINT_FREQ)
            hooks += [LogFile(self.log_file, self.dist.rank), tensorboard]
        hooks.insert(1 if main else 0, EpochLogger(main, self.dist.world_size, header))
        # Before every hook that evaluates or saves the weights.
        hooks += [FiniteWeights(self.model), LossWatch()]
        if self.cfg.TRAIN.VAL_FREQ > 0:
            hooks.append(PeriodicValidation(self.cfg.TRAIN.VAL_FREQ, self._validate, self.out_dir, self.model,
                                            self.cfg, self.keypoints, main, tensorboard, self._validation_pictures))
        if main:
            self.checkpointer = Checkpointer(self.out_dir, self.model, self.cfg, self.keypoints, self.amp)
            hooks.append(self.checkpointer)
        hooks += [EpochBarrier(self.dist), ReplicaCheck(self.model, self.dist)]
        return hooks

    def step_loop(self) -> TrainLoop:
        """A TrainLoop over this trainer's network, loss, optimiser, schedule and precision settings with no
        data and no hooks: `loop.run_step(batch)` runs one training step (benchmarks, tests)."""
        self.net.train()
        return self._loop([], end_epoch=0, iters_per_epoch=1)

    def _loop(self, loader, end_epoch: int, iters_per_epoch: int, **options) -> TrainLoop:
        return TrainLoop(self.net, loader, self.loss, self.optimizer, self.scheduler, self.device, end_epoch=end_epoch,
                         iters_per_epoch=iters_per_epoch, parameters=list(self.model.parameters()),
                         scaler=self.scaler, amp=self.amp, amp_dtype=self.amp_dtype, channels_last=self.channels_last,
                         clip_grad_norm=self.cfg.TRAIN.CLIP_GRAD_NORM, **options)

    def run(self) -> dict:
        hooks = self.build_hooks()
        loop = self._loop(self.loader, self.cfg.TRAIN.END_EPOCH, self.iters_per_epoch,
                          epoch_listeners=[self.sampler, self.dataset], hooks=hooks, state=self.state)
        start = len(self.state.history)
        try:
            loop.run()
        except KeyboardInterrupt:
            note = (f"interrupted at epoch {self.state.epoch}, iteration {self.state.iteration}; "
                    f"{self._checkpoint_note()}")
            self._log(note)
            raise TrainingInterrupted(note) from None
        except TrainingError as e:
            message = f"{e}\n{self._checkpoint_note()}"
            self._log(f"training stopped: {message}")
            raise TrainingError(message) from None
        identical = next(h for h in hooks if isinstance(h, ReplicaCheck)).identical
        return {"epochs": self.state.history[start:], "replicas_identical": identical, "output_dir": self.out_dir}

    @property
    def log_file(self) -> str:
        return os.path.join(self.out_dir, "train.log")

    def _log(self, message: str) -> None:
        """A line in train.log (main process) after the loop ended."""
        if self.dist.main:
            append_to_log(self.log_file, message, self.dist.rank)

    def close(self) -> None:
        """Release the DDP wrapper before the process group (avoids an abort at exit on this torch)."""
        if self.dist.enabled:
            self.net = None
            shutdown_distributed(self.dist)


def _make_writable_folder(folder: str, key: str, value: str) -> None:
    """Create a run folder and prove files can be written there (ConfigError naming the key otherwise), before
    any slow work."""
    problem = writable_folder_problem(folder)
    if problem:
        raise ConfigError(f"{key} {value}: cannot write the run folder {folder}: {problem}")
