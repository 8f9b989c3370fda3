"""Training from a config: one process, or many with torchrun + DistributedDataParallel (gloo on CPU, nccl on
CUDA).

    trainer = Trainer(cfg, "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml", device="cuda")
    result = trainer.run()      # {"epochs": [...], "replicas_identical": bool, "output_dir": str}
    trainer.close()

Trainer only builds (build.py) and resumes; the loop (train_loop.py) and its hooks (hooks.py) do the work.
Everything is written under OUTPUT_DIR/<DATASET.DATASET>/<MODEL.NAME>/<config name>/: checkpoint.pth (every
epoch, resumed automatically with AUTO_RESUME), final_state.pth (checkpoint.save_model: the weights in the
official key layout under "state_dict", and "meta": config, dataset, keypoint set, epochs, metrics),
model_best.pth with TRAIN.VAL_FREQ, train.log; TensorBoard events under LOG_DIR/<same path>/ (losses, learning
rate, validation metrics and pictures of the first validation image: hooks.py).
"""
from __future__ import annotations

import logging
import os

import torch

from ..checkpoint import load_checkpoint, read_checkpoint
from ..config import CfgNode, ConfigError
from ..core.loss import build_loss
from ..data import build_dataset, keypoints_from_config
from ..outputs import build_output_specs
from ..predictor import Predictor
from .build import (apply_cudnn_settings, build_mixed_precision, build_optimizer, build_scheduler, build_train_loader,
                    build_training_model, resolve_device)
from .distributed import init_distributed, shutdown_distributed
from .evaluation import evaluate, validation_pictures
from .hooks import (Checkpointer, EpochBarrier, EpochLogger, LogFile, PeriodicValidation, ReplicaCheck,
                    TensorBoard)
from .runs import run_dir
from .train_loop import TrainingError, TrainLoop, TrainState

__all__ = ["Trainer", "TrainingError"]

logger = logging.getLogger("higherhrnet.train")


class Trainer:
    """Builds everything a config describes for training; `run()` trains and returns the history.

    Attributes a caller may replace before run(): model (the network), net (what is trained: the model or
    its DDP wrapper), loss, optimizer, scheduler, loader.
    """

    def __init__(self, cfg: CfgNode, cfg_name: str, device: str | None = None):
        self.cfg = cfg
        device = resolve_device(device)
        self.dist = init_distributed(device.type, cfg.DIST_BACKEND)
        self.device = torch.device("cuda", self.dist.local_rank) if device.type == "cuda" and self.dist.enabled \
            else device
        self.out_dir = run_dir(cfg, cfg_name, cfg.OUTPUT_DIR)
        self.log_dir = run_dir(cfg, cfg_name, cfg.LOG_DIR)
        if self.dist.main:
            os.makedirs(self.out_dir, exist_ok=True)
            os.makedirs(self.log_dir, exist_ok=True)
        self.dist.barrier()
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
        self.channels_last = bool(cfg.TRAIN.CHANNELS_LAST)
        self.eval_dataset = build_dataset(cfg, is_train=False) if cfg.TRAIN.VAL_FREQ > 0 else None
        if self.eval_dataset is not None and not self.eval_dataset.source.has_annotations:
            raise ConfigError(f"TRAIN.VAL_FREQ: the split DATASET.TEST={cfg.DATASET.TEST} has no annotations to score")
        self.state = TrainState(epoch=cfg.TRAIN.BEGIN_EPOCH)
        self._resume()

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.out_dir, "checkpoint.pth")

    def _resume(self) -> None:
        path = None
        if self.cfg.TRAIN.RESUME and self.cfg.TRAIN.CHECKPOINT:
            path = self.cfg.TRAIN.CHECKPOINT
        elif self.cfg.AUTO_RESUME and os.path.isfile(self.checkpoint_path):
            path = self.checkpoint_path
        if path is None:
            return
        state = read_checkpoint(path)
        for key in ("model", "optimizer", "scheduler", "epoch"):
            if key not in state:
                raise TrainingError(f"cannot resume from {path}: it has no {key!r} entry (is it a training checkpoint?)")
        load_checkpoint(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.state = TrainState(epoch=int(state["epoch"]), best_metric=state.get("best_metric"))
        logger.info("resumed from %s at epoch %d", path, self.state.epoch)

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
            tensorboard = TensorBoard(self.log_dir, self.cfg.PRINT_FREQ, [spec.stride for spec in self.outputs])
            hooks += [LogFile(os.path.join(self.out_dir, "train.log"), self.dist.rank), tensorboard]
        hooks.insert(1 if main else 0, EpochLogger(main, self.dist.world_size, header))
        if self.cfg.TRAIN.VAL_FREQ > 0:
            hooks.append(PeriodicValidation(self.cfg.TRAIN.VAL_FREQ, self._validate, self.out_dir, self.model,
                                            self.cfg, self.keypoints, main, tensorboard, self._validation_pictures))
        if main:
            hooks.append(Checkpointer(self.out_dir, self.model, self.cfg, self.keypoints, self.amp))
        hooks += [EpochBarrier(self.dist), ReplicaCheck(self.model, self.dist)]
        return hooks

    def run(self) -> dict:
        hooks = self.build_hooks()
        loop = TrainLoop(self.net, self.loader, self.loss, self.optimizer, self.scheduler, self.device,
                         end_epoch=self.cfg.TRAIN.END_EPOCH, iters_per_epoch=self.iters_per_epoch,
                         parameters=list(self.model.parameters()), scaler=self.scaler, amp=self.amp,
                         amp_dtype=self.amp_dtype, channels_last=self.channels_last,
                         clip_grad_norm=self.cfg.TRAIN.CLIP_GRAD_NORM, epoch_listeners=[self.sampler, self.dataset],
                         hooks=hooks, state=self.state)
        start = len(self.state.history)
        loop.run()
        identical = next(h for h in hooks if isinstance(h, ReplicaCheck)).identical
        return {"epochs": self.state.history[start:], "replicas_identical": identical, "output_dir": self.out_dir}

    def close(self) -> None:
        """Release the DDP wrapper before the process group (avoids an abort at exit on this torch)."""
        if self.dist.enabled:
            self.net = None
            shutdown_distributed(self.dist)
