"""Small hooks for TrainLoop: each does one job around the steps and epochs.

TensorBoard (docs/training-reference.md). Every value is on one step axis, the global iteration: the optimiser step
epoch x iterations_per_epoch + iteration (from 0). Training scalars are written at the step of the iteration
that computed them; a validation after epoch e is written at step (e + 1) x iterations_per_epoch, the number
of steps done when it ran (the step of the epoch's last iteration + 1). Tags (TensorBoard groups them by
the part before the first "/"):
    loss/total                  the loss that is minimised (sum of the terms below)
    loss/<term>                 each term of losses.MultiLoss, by the name the loss gives it
                                (losses.loss_term_names): heatmaps_1/4, push_1/4, pull_1/4 (the output at
                                1/4 of the input resolution), heatmaps_1/2 (HigherHRNet's deconvolution
                                output), scale_1/4, scale_1/2 (SWAHR's scale-map regulariser); where
                                outputs share a resolution (hourglass stacks) the label ends with
                                _output<i> (the output's index, from 0)
    learning_rate               the one the iteration used (first parameter group)
    val/AP, val/AP.5, val/AP.75, val/AP_M, val/AP_L, val/AR, ...   the validation metrics ("AP .5" ->
                                "AP.5", "AP (M)" -> "AP_M": TensorBoard tags allow only letters, digits,
                                "_", "-", "." and "/"); MPII's val/Head, ..., val/Mean, val/Mean_0.1, val/PCK
    val_image/poses             the first validation image with the predicted people drawn
    val_image/heatmaps          its aggregated heatmaps: the max over joints, then one tile per joint
    val_image/tags              its tags: colour = tag value, brightness = heatmap, black where no joint is
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import statistics
import sys
import time
from typing import Callable, Iterator, Mapping

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..checkpoint import atomic_save, model_meta, non_finite_tensors, save_model
from ..devices import memory_error_line, out_of_memory
from ..fileio import WriteError, finish_before_interrupt
from ..keypoints import KeypointSpec
from .distributed import DistInfo, replicas_identical
from .train_loop import HookBase, TrainingError, TrainLoop, UnwritableOutput

__all__ = ["EpochLogger", "LogFile", "TensorBoard", "Checkpointer", "PeriodicValidation", "BestModel",
           "EpochBarrier", "ReplicaCheck", "FiniteWeights", "LossWatch", "append_to_log", "global_step",
           "validation_step", "loss_tag", "metric_tag", "epoch_label", "SavedFiles", "saved_files_note",
           "SUMMARY_RECORD", "stop_if_unwritable"]

logger = logging.getLogger("higherhrnet.train")

# The attribute that marks SavedFiles' log record (the line naming the saved files).
SUMMARY_RECORD = "higherhrnet_summary"


class EpochLogger(HookBase):
    """`header` logged when training starts; a progress bar per epoch (main process) and, after each epoch,
    the mean of every loss logged and appended to the loop's history. Both name the epoch as people count
    them, "epoch 1/24" for the loop's first of 24 (state.epoch 0)."""

    def __init__(self, main: bool, world_size: int = 1, header: str = ""):
        self.main, self.world_size, self.header = main, world_size, header
        self.bar = None

    def before_train(self) -> None:
        if self.main and self.header:
            logger.info("%s", self.header)

    def before_epoch(self) -> None:
        self.totals: dict[str, float] = {}
        self.steps = self.samples = 0
        self.start = time.perf_counter()
        self.bar = tqdm(total=self.loop.iters_per_epoch, desc=epoch_label(self.loop), disable=not self.main,
                        leave=False)

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
        self.bar = None
        means = {k: v / max(self.steps, 1) for k, v in self.totals.items()}
        self.loop.state.history.append(means)
        if self.main:
            elapsed = max(time.perf_counter() - self.start, 1e-9)
            logger.info("%s: %s, %.1f samples/s, lr %.3g", epoch_label(self.loop),
                        ", ".join(f"{k} {v:.6f}" for k, v in means.items()), self.samples / elapsed,
                        self.loop.optimizer.param_groups[0]["lr"])

    def close(self) -> None:
        # Training stopped inside an epoch: clear the bar now, not after the message saying why.
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def epoch_label(loop: TrainLoop) -> str:
    """The running epoch as people count it: "epoch 1/24" while state.epoch is 0 of end_epoch 24."""
    return f"epoch {loop.state.epoch + 1}/{loop.end_epoch}"


def _log_format(rank: int) -> logging.Formatter:
    return logging.Formatter(f"%(asctime)s [rank {rank}] %(message)s")


class _LogFileHandler(logging.FileHandler):
    """A FileHandler that, when the file cannot be written (a full disk), says so once on stderr, in one line,
    instead of printing a traceback for every record; training goes on, its log on the console."""

    def __init__(self, path: str, rank: int):
        super().__init__(path)
        self.setFormatter(_log_format(rank))
        self.failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not self.failed and isinstance(error, OSError):
            self.failed = True
            print(f"warning: cannot write {self.baseFilename}: {error.strerror or error}; the training log goes on "
                  f"on the console only", file=sys.stderr)
        elif not isinstance(error, OSError):
            super().handleError(record)


def append_to_log(path: str, message: str, rank: int = 0, level: int = logging.ERROR) -> None:
    """One line in the training log file `path`, formatted as LogFile writes them (for what is known only after
    the loop ended: why training stopped). A log file that cannot be written (a full disk) is said on stderr in
    one line; nothing is raised."""
    line = _log_format(rank).format(logger.makeRecord(logger.name, level, __file__, 0, "%s", (message,), None))
    try:
        with open(path, "a") as f:          # as logging.FileHandler opens it
            f.write(line + "\n")
    except OSError as e:
        print(f"warning: cannot write {path} ({e.strerror or e}): the message saying why training ended is not in "
              f"it", file=sys.stderr)


class LogFile(HookBase):
    """Copies the training log (logger "higherhrnet.train") to `path` while training runs. When the file cannot
    be written (a full disk, a read-only folder), one warning on stderr and training goes on."""

    def __init__(self, path: str, rank: int = 0):
        self.path, self.rank = path, rank
        self.handler: logging.Handler | None = None

    def before_train(self) -> None:
        try:
            self.handler = _LogFileHandler(self.path, self.rank)
        except OSError as e:
            print(f"warning: cannot write {self.path}: {e.strerror or e}; the training log goes on on the console "
                  f"only", file=sys.stderr)
        else:
            logger.addHandler(self.handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)

    def close(self) -> None:
        if self.handler is not None:
            logger.removeHandler(self.handler)
            with contextlib.suppress(OSError):      # what is still buffered, on a full disk
                self.handler.close()
            self.handler = None


def global_step(loop: TrainLoop) -> int:
    """The step of the iteration just run: epoch x iterations_per_epoch + iteration."""
    return loop.state.epoch * loop.iters_per_epoch + loop.state.iteration


def validation_step(loop: TrainLoop) -> int:
    """The step of a validation after the current epoch: the steps done by then."""
    return (loop.state.epoch + 1) * loop.iters_per_epoch


def loss_tag(name: str) -> str:
    """TensorBoard tag of a loss TrainLoop.run_step reports: "loss/total" for the sum ("loss"), "loss/<name>"
    for a term of losses.MultiLoss ("heatmaps_1/4" -> "loss/heatmaps_1/4"; module docstring)."""
    return "loss/total" if name == "loss" else f"loss/{name}"


def metric_tag(name: str) -> str:
    """The tag of a validation metric: "AP .5" -> "val/AP.5", "AP (M)" -> "val/AP_M"."""
    tag = name.strip().replace(" .", ".").replace("(", "").replace(")", "")
    return "val/" + re.sub(r"[^-/\w.]", "_", tag)


class TensorBoard(HookBase):
    """Training losses (tags from `loss_tag`) and the learning rate every `period` steps and at each epoch's last step, to an event file in `log_dir`, at the
    global step. Other hooks write through `scalar` and `image`. See the module docstring for the tags.

    Events are written with tensorboardX's EventsWriter and its protocol buffers, in this thread and flushed
    at every logging step and epoch end, so that a full disk or a folder made read-only stops training with one
    line naming the events file (UnwritableOutput), where tensorboardX's FileWriter would lose its writer thread
    to a traceback and then block training once its queue is full. Images are PNG-encoded here (OpenCV), so
    that no imaging library beyond OpenCV is needed.
    """

    def __init__(self, log_dir: str, period: int):
        self.log_dir, self.period = log_dir, max(period, 1)
        self.writer = None

    def before_train(self) -> None:
        from tensorboardX.event_file_writer import EventsWriter    # imported when training starts: slow to import

        with self._writing():
            # The file name TensorBoard looks for: events.out.tfevents.<time>.<host> (as FileWriter names it).
            self.writer = EventsWriter(os.path.join(self.log_dir, "events"))

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            path = self.writer._file_name if self.writer is not None else os.path.join(self.log_dir, "events.*")
            loop = getattr(self, "loop", None)
            where = f", in {epoch_label(loop)}" if loop is not None else ""
            raise UnwritableOutput(f"{WriteError.from_error(path, e)} (TensorBoard's events{where})") from None

    def _add(self, summary, step: int) -> None:
        from tensorboardX.proto.event_pb2 import Event

        with self._writing():
            self.writer.write_event(Event(summary=summary, step=int(step), wall_time=time.time()))

    def flush(self) -> None:
        if self.writer is not None:
            with self._writing():
                self.writer.flush()

    def scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboardX.proto.summary_pb2 import Summary

        self._add(Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]), step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """image (H, W, 3) uint8 RGB."""
        from tensorboardX.proto.summary_pb2 import Summary

        ok, png = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
        if not ok:
            raise ValueError(f"TensorBoard image {tag}: cannot encode an array of shape {image.shape} as PNG")
        picture = Summary.Image(height=image.shape[0], width=image.shape[1], colorspace=3,
                                encoded_image_string=png.tobytes())
        self._add(Summary(value=[Summary.Value(tag=tag, image=picture)]), step)

    def after_step(self) -> None:
        loop = self.loop
        it = loop.state.iteration
        if it % self.period == 0 or it == loop.iters_per_epoch - 1:
            step = global_step(loop)
            for name, value in loop.state.step_losses.items():
                self.scalar(loss_tag(name), value, step)
            self.scalar("learning_rate", loop.state.step_lr, step)
            self.flush()

    def after_epoch(self) -> None:
        self.flush()

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            with contextlib.suppress(OSError):      # what could not be written was reported when it was written
                writer.close()


class Checkpointer(HookBase):
    """After every epoch, `checkpoint.pth` in `out_dir` (model, optimizer, scheduler, AMP scaler, next epoch,
    best metric, and "meta": checkpoint.model_meta with the config and keypoint set; atomic), and after
    training `final_state.pth` (checkpoint.save_model: the weights in the official layout under
    "state_dict", and "meta" with the epochs trained and the last epoch's validation metrics if it was
    validated). Main process only. Weights or buffers holding NaN or infinity are never saved (TrainingError
    naming them). `saved_epochs`: the epochs trained as of the last complete checkpoint.pth this hook wrote
    (None before the first)."""

    def __init__(self, out_dir: str, model: nn.Module, cfg, keypoints: KeypointSpec, amp: bool):
        self.out_dir, self.model, self.cfg, self.keypoints, self.amp = out_dir, model, cfg, keypoints, amp
        self.saved_epochs: int | None = None

    def after_epoch(self) -> None:
        loop = self.loop
        epochs = loop.state.epoch + 1
        weights = self.model.state_dict()
        _refuse_non_finite(weights, loop, "checkpoint.pth")
        state = {
            "model": weights, "optimizer": loop.optimizer.state_dict(),
            "scheduler": loop.scheduler.state_dict(), "scaler": loop.scaler.state_dict() if self.amp else {},
            "epoch": epochs, "best_metric": loop.state.best_metric,
            "meta": model_meta(self.cfg, self.keypoints, epoch=epochs),
        }
        with finish_before_interrupt(), stop_if_unwritable(f"at the end of {epoch_label(loop)}"):
            atomic_save(state, os.path.join(self.out_dir, "checkpoint.pth"))
            self.saved_epochs = epochs      # the file and what this hook says it holds change together

    def after_train(self) -> None:
        history = self.loop.state.history
        metrics = history[-1].get("val") if history else None
        _refuse_non_finite(self.model.state_dict(), self.loop, "final_state.pth")
        with stop_if_unwritable("after the last epoch"):
            save_model(os.path.join(self.out_dir, "final_state.pth"), self.model, self.cfg, self.keypoints,
                       epoch=self.loop.state.epoch, metrics=metrics)


@contextlib.contextmanager
def stop_if_unwritable(when: str) -> Iterator[None]:
    """A file that cannot be written in the block (fileio.WriteError: no space left, no permission) stops
    training: UnwritableOutput, "cannot write PATH: REASON (`when`)"."""
    try:
        yield
    except WriteError as e:
        raise UnwritableOutput(f"{e} ({when})") from None


class PeriodicValidation(HookBase):
    """Every `period` epochs: metrics = evaluate() (keyed by name), stored as the epoch's "val"
    entry and logged; on the main process also written to TensorBoard with the images of
    `pictures()` ({name: (H, W, 3) uint8 RGB}, tags "val_image/<name>"). `model` is put back in training
    mode afterwards (evaluation puts it in eval mode)."""

    def __init__(self, period: int, evaluate: Callable[[], dict], model: nn.Module, main: bool,
                 tensorboard: TensorBoard | None = None,
                 pictures: Callable[[], Mapping[str, np.ndarray]] | None = None):
        self.period, self.evaluate, self.model, self.main = period, evaluate, model, main
        self.tensorboard, self.pictures = tensorboard, pictures

    def after_epoch(self) -> None:
        state = self.loop.state
        epoch = state.epoch
        if (epoch + 1) % self.period:
            return
        try:
            metrics = self.evaluate()
        except RuntimeError as e:
            if not out_of_memory(e):
                raise
            raise TrainingError(f"out of memory validating at the end of {epoch_label(self.loop)} "
                                f"({memory_error_line(e)}); lower TEST.IMAGES_PER_GPU (images per "
                                f"validation batch), or validate less often (TRAIN.VAL_FREQ)") from None
        state.history[-1]["val"] = metrics
        if self.main:
            logger.info("%s validation: %s", epoch_label(self.loop),
                        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            if self.tensorboard is not None:
                step = validation_step(self.loop)
                for name, value in metrics.items():
                    self.tensorboard.scalar(metric_tag(name), value, step)
                if self.pictures is not None:
                    for name, image in self.pictures().items():
                        self.tensorboard.image(f"val_image/{name}", image, step)
                self.tensorboard.flush()
        self.model.train()


class BestModel(HookBase):
    """After an epoch that PeriodicValidation (placed before this hook) validated, when its `metric` (the
    dataset's main metric: data.registry.DatasetInfo.main_metric, "AP" or PCKh's "Mean"; higher is better)
    beats `state.best_metric` (or there is none yet): records it there and writes `model_best.pth` in `out_dir`
    (checkpoint.save_model, with the metrics and the epochs trained). Weights or buffers holding NaN or
    infinity are never saved (TrainingError naming them). Trainer adds it on the main process only."""

    def __init__(self, out_dir: str, model: nn.Module, cfg, keypoints: KeypointSpec, metric: str = "AP"):
        self.out_dir, self.model, self.cfg, self.keypoints, self.metric = out_dir, model, cfg, keypoints, metric

    def after_epoch(self) -> None:
        state = self.loop.state
        metrics = state.history[-1].get("val") if state.history else None
        if metrics is None:
            return
        value = metrics[self.metric]
        if state.best_metric is None or value > state.best_metric:
            state.best_metric = value
            _refuse_non_finite(self.model.state_dict(), self.loop, "model_best.pth")
            with stop_if_unwritable(f"at the end of {epoch_label(self.loop)}"):
                save_model(os.path.join(self.out_dir, "model_best.pth"), self.model, self.cfg, self.keypoints,
                           epoch=state.epoch + 1, metrics=metrics)
            logger.info("new best %s %.4f: model_best.pth", self.metric, value)


class SavedFiles(HookBase):
    """After training (the last hook, main process): logs one line naming the files the run leaves in `out_dir`
    (final_state.pth; model_best.pth when a validation wrote it, with its `metric`, the one BestModel picks it
    by), the TensorBoard folder `log_dir` and the commands that evaluate and run the final weights (their config
    travels in the file: no --cfg needed; a `top_down` network runs on the people a bottom-up model finds,
    `predict --refine`). `files`: {"final_state": path, "model_best": path or None, "best_metric": its value
    or None, "main_metric": the metric's name, "log_dir": path}; `note`: the line. Both None until training
    finishes. The log record has the attribute SUMMARY_RECORD set, so that a console which prints the note
    itself (`higherhrnet train`, on stdout) can leave the record out."""

    def __init__(self, out_dir: str, log_dir: str, top_down: bool = False, metric: str = "AP"):
        self.out_dir, self.log_dir, self.top_down, self.metric = out_dir, log_dir, top_down, metric
        self.files: dict | None = None
        self.note: str | None = None

    def after_train(self) -> None:
        best = os.path.join(self.out_dir, "model_best.pth")
        # model_best.pth of this run folder, from this session or an earlier one that this run resumed.
        has_best = self.loop.state.best_metric is not None and os.path.isfile(best)
        self.files = {"final_state": os.path.join(self.out_dir, "final_state.pth"),
                      "model_best": best if has_best else None,
                      "best_metric": self.loop.state.best_metric if has_best else None, "main_metric": self.metric,
                      "log_dir": self.log_dir}
        self.note = saved_files_note(self.files, self.top_down)
        logger.info("%s", self.note, extra={SUMMARY_RECORD: True})


def saved_files_note(files: Mapping, top_down: bool = False) -> str:
    """The line SavedFiles logs for its `files` (of a `top_down` network: run on a bottom-up model's people)."""
    final = shlex.quote(files["final_state"])
    best = "" if files["model_best"] is None else \
        f", best validated model {files['model_best']} ({files['main_metric']} {files['best_metric']:.4f})"
    run = f"--weights BOTTOM_UP_MODEL --refine {final}" if top_down else f"--weights {final}"
    return (f"training finished: model {files['final_state']}{best}; TensorBoard logs in {files['log_dir']}; "
            f"evaluate with: higherhrnet eval --weights {final}; run with: higherhrnet predict {run} IMAGE")


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


def _refuse_non_finite(weights: Mapping, loop: TrainLoop, not_written: str | None = None) -> None:
    """TrainingError naming the NaN or infinite tensors of `weights`, the epoch and the iteration."""
    bad = non_finite_tensors(weights)
    if bad:
        shown = ", ".join(bad[:5]) + (f", ... (+{len(bad) - 5} more)" if len(bad) > 5 else "")
        raise TrainingError(f"weights or buffers became NaN or infinite by {loop.position()}: {shown}; nothing is "
                            f"saved from them"
                            + (f" ({not_written} was not written)" if not_written else "")
                            + ". Lower TRAIN.LR (and check TRAIN.LR_FACTOR, the data)")


class FiniteWeights(HookBase):
    """Stops training (TrainingError naming the tensors, the epoch and the iteration) as soon as a weight or
    buffer of `model` holds NaN or infinity, checked after every step, so that such weights are never used
    further or saved. A loss can stay finite while BatchNorm statistics overflow (an exploding learning rate).
    One fused norm over all tensors per step; the tensors are looked at one by one only when it is not finite.
    """

    def __init__(self, model: nn.Module):
        self.model = model

    def after_step(self) -> None:
        tensors = [t.detach() for t in (*self.model.parameters(), *self.model.buffers()) if t.is_floating_point()]
        if not tensors:
            return
        # The norm is non-finite when a tensor is, or when the sum of squares overflows: then look closer.
        total = torch.nn.utils.get_total_norm(tensors, error_if_nonfinite=False)
        if not bool(torch.isfinite(total)):
            _refuse_non_finite(self.model.state_dict(), self.loop)


class LossWatch(HookBase):
    """Warns once (training log, train.log) when the loss exceeds `factor` times the median loss of the
    first `baseline_steps` steps this run made: a loss that grows by orders of magnitude without becoming NaN
    usually means a diverging run (a learning rate far too high)."""

    def __init__(self, factor: float = 1000.0, baseline_steps: int = 20):
        self.factor, self.baseline_steps = factor, baseline_steps
        self.first: list[float] = []
        self.warned = False

    def after_step(self) -> None:
        loss = self.loop.state.step_losses["loss"]
        if len(self.first) < self.baseline_steps:
            self.first.append(loss)
            return
        baseline = statistics.median(self.first)
        if not self.warned and baseline > 0 and loss > self.factor * baseline:
            self.warned = True
            logger.warning("warning: the loss is %.4g in %s, %.3g times the median of the first %d iterations "
                           "(%.4g): training looks unstable; consider a lower TRAIN.LR",
                           loss, self.loop.position(), loss / baseline, len(self.first), baseline)
