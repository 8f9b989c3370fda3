"""The training loop: epochs of forward, losses, backward and optimiser steps over built objects, with hooks.

TrainLoop reads no config: engine/trainer.py builds what it runs (network, data, loss, optimiser, schedule)
and the hooks (hooks.py: logging, TensorBoard, checkpoints, validation) that act around each step and epoch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from ..devices import memory_error_line, out_of_memory

__all__ = ["TrainingError", "UnwritableOutput", "HookBase", "TrainState", "TrainLoop"]


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, bad resume state); the message says where and why."""

    def with_note(self, note: str) -> str:
        """The message followed by `note` (which checkpoint is the last complete one), on a line of its own."""
        return f"{self}\n{note}"


class UnwritableOutput(TrainingError):
    """A file of the run could not be written (no space left on the device, no permission): the message is one
    line naming it, and stays one line with the note."""

    def with_note(self, note: str) -> str:
        return f"{self}; {note}"


class HookBase:
    """Called by TrainLoop around training, each epoch and each step; `self.loop` is the loop running it."""

    loop: "TrainLoop"

    def before_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def close(self) -> None:
        """Release what the hook holds (files, writers); called whether training finished or failed."""


@dataclass
class TrainState:
    """What a loop has done: the next epoch to run, the best validation metric so far, one dict of mean
    losses per finished epoch (hooks may add entries, e.g. "val"), and the last step's losses."""

    epoch: int = 0
    iteration: int = 0              # step within the current epoch
    best_metric: float | None = None
    history: list[dict] = field(default_factory=list)
    step_losses: dict[str, float] = field(default_factory=dict)
    step_samples: int = 0           # images in the last step (this process)
    step_lr: float = 0.0            # learning rate the last step used (first parameter group)


class TrainLoop:
    """Trains `network` (the model, or its DDP wrapper) for epochs [state.epoch, end_epoch).

    loader yields (images (N, 3, S, S), heatmaps [(N, J, s, s)], masks [(N, s, s)], joints [(N, M, J, 2)])
    per target resolution; loss(outputs, heatmaps, masks, joints) returns {term name: per-image loss (N,)}
    (losses.MultiLoss: "heatmaps_1/4", "push_1/4", ...); run_step reports their batch means by those names.
    Each epoch runs at most iters_per_epoch steps; set_epoch(epoch) is called on each of `epoch_listeners`
    (samplers, datasets) first. amp: autocast to amp_dtype (float16 on CUDA, with `scaler`; bfloat16 on the
    CPU); channels_last: images are fed in channels-last memory format (the network's weights must be too);
    clip_grad_norm > 0 clips the gradient norm of `parameters`.
    """

    def __init__(self, network: nn.Module, loader: Iterable, loss: Callable, optimizer: torch.optim.Optimizer,
                 scheduler, device: torch.device, end_epoch: int, iters_per_epoch: int,
                 parameters: Sequence[torch.Tensor], scaler: torch.amp.GradScaler | None = None, amp: bool = False,
                 amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                 clip_grad_norm: float = 0.0, epoch_listeners: Sequence = (), hooks: Sequence[HookBase] = (),
                 state: TrainState | None = None):
        self.network, self.loader, self.loss = network, loader, loss
        self.optimizer, self.scheduler, self.device = optimizer, scheduler, device
        self.end_epoch, self.iters_per_epoch = end_epoch, iters_per_epoch
        self.parameters = list(parameters)
        self.scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
        self.amp, self.amp_dtype, self.clip_grad_norm = amp, amp_dtype, clip_grad_norm
        self.channels_last = channels_last
        self.epoch_listeners = list(epoch_listeners)
        self.state = state or TrainState()
        self.hooks = list(hooks)
        for hook in self.hooks:
            hook.loop = self

    def _call(self, stage: str) -> None:
        for hook in self.hooks:
            getattr(hook, stage)()

    def position(self) -> str:
        """Where training is, counted as the progress bar counts (from 1): "epoch 4/12, iteration 58/124";
        after the last epoch "the end of training (epoch 12/12)"; a bare step loop (no epochs) "iteration 3"."""
        if self.end_epoch <= 0:
            return f"iteration {self.state.iteration + 1}"
        if self.state.epoch >= self.end_epoch:
            return f"the end of training (epoch {self.end_epoch}/{self.end_epoch})"
        return (f"epoch {self.state.epoch + 1}/{self.end_epoch}, iteration {self.state.iteration + 1}/"
                f"{self.iters_per_epoch}")

    def run(self) -> TrainState:
        try:
            self._call("before_train")
            while self.state.epoch < self.end_epoch:
                self.network.train()
                for listener in self.epoch_listeners:
                    listener.set_epoch(self.state.epoch)
                self.state.iteration = 0
                self._call("before_epoch")
                for iteration, batch in enumerate(self.loader):
                    if iteration >= self.iters_per_epoch:
                        break
                    self.state.iteration = iteration
                    try:
                        self.state.step_losses = self.run_step(batch)
                    except RuntimeError as e:
                        if not out_of_memory(e):
                            raise
                        images = batch[0].shape[0]
                        raise TrainingError(
                            f"out of memory in {self.position()}, with {images} images "
                            f"per step on {self.device} ({memory_error_line(e)}); lower "
                            f"TRAIN.IMAGES_PER_GPU (or DATASET.INPUT_SIZE)") from None
                    self._call("after_step")
                self._call("after_epoch")
                self.state.epoch += 1
            self._call("after_train")
        finally:
            self._call("close")
        return self.state

    def run_step(self, batch) -> dict[str, float]:
        """One optimiser step on a batch; returns the batch's mean losses by name and their sum ("loss")."""
        images, heatmaps, masks, joints = (_to(x, self.device) for x in batch)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            outputs = self.network(images)
        if isinstance(outputs, torch.Tensor):      # a top-down network's one output
            outputs = [outputs]
        terms = self.loss([o.float() for o in outputs], heatmaps, masks, joints)
        # The batch means, summed in the loss's order (SWAHR's trainer's: heatmap, scale, push, pull per output).
        parts = {name: term.mean() for name, term in terms.items()}
        loss = sum(parts.values())
        if not torch.isfinite(loss):
            detail = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
            raise TrainingError(f"loss is {loss.item()} in {self.position()} "
                                f"({detail}); lower TRAIN.LR or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.parameters, self.clip_grad_norm)
        self.state.step_lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.state.step_samples = images.shape[0]
        return {**{k: v.item() for k, v in parts.items()}, "loss": loss.item()}


def _to(x, device: torch.device):
    if isinstance(x, (list, tuple)):
        return [t.to(device, non_blocking=True) for t in x]
    return x.to(device, non_blocking=True)
