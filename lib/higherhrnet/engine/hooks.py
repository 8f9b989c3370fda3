"""Small hooks for TrainLoop: each does one job around the steps and epochs."""
from __future__ import annotations

import logging
import os
import time
from typing import Callable

from torch import nn
from tqdm import tqdm

from ..checkpoint import atomic_save, save_model
from .distributed import DistInfo, replicas_identical
from .train_loop import HookBase

__all__ = ["EpochLogger", "LogFile", "TensorBoard", "Checkpointer", "PeriodicValidation", "EpochBarrier",
           "ReplicaCheck"]

logger = logging.getLogger("higherhrnet.train")


class EpochLogger(HookBase):
    """`header` logged when training starts; a progress bar per epoch (main process) and, after each epoch,
    the mean of every loss logged and appended to the loop's history."""

    def __init__(self, main: bool, world_size: int = 1, header: str = ""):
        self.main, self.world_size, self.header = main, world_size, header

    def before_train(self) -> None:
        if self.main and self.header:
            logger.info("%s", self.header)

    def before_epoch(self) -> None:
        self.totals: dict[str, float] = {}
        self.steps = self.samples = 0
        self.start = time.perf_counter()
        self.bar = tqdm(total=self.loop.iters_per_epoch, desc=f"epoch {self.loop.state.epoch}",
                        disable=not self.main, leave=False)

    def after_step(self) -> None:
        state = self.loop.state
        for k, v in state.step_losses.items():
            self.totals[k] = self.totals.get(k, 0.0) + v
        self.steps += 1
        self.samples += state.step_samples * self.world_size
        self.bar.set_postfix(loss=f"{state.step_losses['loss']:.5f}",
                             samples_s=f"{self.samples / (time.perf_counter() - self.start):.1f}")
        self.bar.update(1)

    def after_epoch(self) -> None:
        self.bar.close()
        means = {k: v / max(self.steps, 1) for k, v in self.totals.items()}
        self.loop.state.history.append(means)
        if self.main:
            elapsed = max(time.perf_counter() - self.start, 1e-9)
            logger.info("epoch %d: %s, %.1f samples/s, lr %.3g", self.loop.state.epoch,
                        ", ".join(f"{k} {v:.6f}" for k, v in means.items()), self.samples / elapsed,
                        self.loop.optimizer.param_groups[0]["lr"])


class LogFile(HookBase):
    """Copies the training log (logger "higherhrnet.train") to `path` while training runs."""

    def __init__(self, path: str, rank: int = 0):
        self.path, self.rank = path, rank
        self.handler: logging.Handler | None = None

    def before_train(self) -> None:
        self.handler = logging.FileHandler(self.path)
        self.handler.setFormatter(logging.Formatter(f"%(asctime)s [rank {self.rank}] %(message)s"))
        logger.addHandler(self.handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)

    def close(self) -> None:
        if self.handler is not None:
            logger.removeHandler(self.handler)
            self.handler.close()
            self.handler = None


class TensorBoard(HookBase):
    """Training losses and the learning rate every `period` steps (and at each epoch's last step), to a
    tensorboardX SummaryWriter in `log_dir`. Other hooks reach the writer as `.writer`."""

    def __init__(self, log_dir: str, period: int):
        self.log_dir, self.period = log_dir, max(period, 1)
        self.writer = None

    def before_train(self) -> None:
        from tensorboardX import SummaryWriter   # imported when training starts: it is slow to import

        self.writer = SummaryWriter(self.log_dir)

    def after_step(self) -> None:
        loop = self.loop
        it = loop.state.iteration
        if it % self.period == 0 or it == loop.iters_per_epoch - 1:
            step = loop.state.epoch * loop.iters_per_epoch + it
            for k, v in loop.state.step_losses.items():
                self.writer.add_scalar(f"train/{k}", v, step)
            self.writer.add_scalar("train/lr", loop.optimizer.param_groups[0]["lr"], step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Checkpointer(HookBase):
    """After every epoch, `checkpoint.pth` in `out_dir` (model, optimizer, scheduler, AMP scaler, next epoch,
    best metric, config YAML; atomic), and after training `final_state.pth` (the model's state dict alone,
    the official layout). Main process only."""

    def __init__(self, out_dir: str, model: nn.Module, config_yaml: str, amp: bool):
        self.out_dir, self.model, self.config_yaml, self.amp = out_dir, model, config_yaml, amp

    def after_epoch(self) -> None:
        loop = self.loop
        state = {
            "model": self.model.state_dict(), "optimizer": loop.optimizer.state_dict(),
            "scheduler": loop.scheduler.state_dict(), "scaler": loop.scaler.state_dict() if self.amp else {},
            "epoch": loop.state.epoch + 1, "best_metric": loop.state.best_metric, "config": self.config_yaml,
        }
        atomic_save(state, os.path.join(self.out_dir, "checkpoint.pth"))

    def after_train(self) -> None:
        atomic_save(self.model.state_dict(), os.path.join(self.out_dir, "final_state.pth"))


class PeriodicValidation(HookBase):
    """Every `period` epochs: metrics = evaluate() (keyed by name, "AP" first), stored as the epoch's "val"
    entry, logged, written to TensorBoard and, when AP improves, `model_best.pth` (main process)."""

    def __init__(self, period: int, evaluate: Callable[[], dict], out_dir: str, model: nn.Module, cfg,
                 main: bool, tensorboard: TensorBoard | None = None):
        self.period, self.evaluate, self.out_dir, self.model, self.cfg = period, evaluate, out_dir, model, cfg
        self.main, self.tensorboard = main, tensorboard

    def after_epoch(self) -> None:
        state = self.loop.state
        epoch = state.epoch
        if (epoch + 1) % self.period:
            return
        metrics = self.evaluate()
        state.history[-1]["val"] = metrics
        if self.main:
            logger.info("epoch %d validation: %s", epoch, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            if self.tensorboard is not None:
                for k, v in metrics.items():
                    self.tensorboard.writer.add_scalar(f"val/{k}", v, epoch)
            if state.best_metric is None or metrics["AP"] > state.best_metric:
                state.best_metric = metrics["AP"]
                save_model(os.path.join(self.out_dir, "model_best.pth"), self.model, self.cfg, epoch=epoch + 1,
                           metrics=metrics)
                logger.info("new best AP %.4f: model_best.pth", metrics["AP"])
        self.model.train()


class EpochBarrier(HookBase):
    """Under DDP, every rank waits at the end of each epoch (after the main process has saved)."""

    def __init__(self, dist_info: DistInfo):
        self.dist_info = dist_info

    def after_epoch(self) -> None:
        self.dist_info.barrier()


class ReplicaCheck(HookBase):
    """Under DDP, checks after training that every rank holds the same weights; the answer is `.identical`."""

    def __init__(self, model: nn.Module, dist_info: DistInfo):
        self.model, self.dist_info = model, dist_info
        self.identical = True

    def after_train(self) -> None:
        if self.dist_info.enabled:
            self.identical = replicas_identical(self.model, self.dist_info, self.loop.device)
            if self.dist_info.main:
                logger.info("weights identical across %d ranks: %s", self.dist_info.world_size,
                            "yes" if self.identical else "NO")
