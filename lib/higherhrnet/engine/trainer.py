"""Training from a config: one process, or many with torchrun + DistributedDataParallel (gloo on CPU, nccl on
CUDA).

    trainer = Trainer(cfg, "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml", device="cuda")
    result = trainer.run()      # {"epochs": [...], "replicas_identical": bool, "output_dir": str,
                                #  "saved": {"final_state": path, ...}, "summary": the last line logged}
                                # (saved and summary: None on the processes other than the first)
    trainer.close()

Resuming (AUTO_RESUME, or TRAIN.RESUME with TRAIN.CHECKPOINT) compares the checkpoint's configuration with
the current one (resume.py): changed learning-rate and optimiser settings are applied, changes that make the
checkpoint another experiment's are refused (TrainingError listing them) unless resume="anyway"; resume="fresh"
starts again, keeping the run folder's old checkpoint.pth, final_state.pth and model_best.pth under names
with their date. Training stops (TrainingError) when the loss or any weight or buffer becomes NaN or infinite,
before anything is saved from it; Ctrl-C raises TrainingInterrupted, whose message says where training stood
and which checkpoint is the last complete one. So does SIGTERM (docker stop, systemd, Kubernetes, SLURM,
torchrun passing one on): run() makes it an exception while it trains (interrupts.sigterm_raises: in the main
thread, when SIGTERM has no other handler). Why training stopped is also written to train.log.

Trainer only builds (build.py) and resumes (resume.py); the loop (train_loop.py) and its hooks (hooks.py) do
the work. Everything is written under OUTPUT_DIR/<DATASET.DATASET>/<MODEL.NAME>/<config name>/: checkpoint.pth
(every epoch, resumed automatically with AUTO_RESUME), final_state.pth (checkpoint.save_model: the weights in
the official key layout under "state_dict", and "meta": config, dataset, keypoint set, epochs, metrics),
model_best.pth with TRAIN.VAL_FREQ, train.log; TensorBoard events under LOG_DIR/<same path>/ (losses, learning
rate, validation metrics and pictures of the first validation image: hooks.py). The last line logged (also
result["summary"]) names these files and the commands that evaluate and run the final weights.
"""
from __future__ import annotations

import os

import torch

from ..config import CfgNode
from ..data import build_dataset, dataset_info, keypoints_from_config
from ..devices import resolve_device
from ..interrupts import Interrupted, sigterm_raises, stop_signal, stopped
from ..losses import build_loss
from ..models import build_output_specs
from ..models.registry import model_entry
from ..predictor import Predictor
from .build import (apply_cudnn_settings, build_mixed_precision, build_optimizer, build_scheduler, build_train_loader,
                    build_training_model, use_channels_last)
from .distributed import init_distributed, shutdown_distributed
from .evaluation import validation_pictures
from .hooks import (BestModel, Checkpointer, EpochBarrier, EpochLogger, FiniteWeights, LogFile, LossWatch,
                    PeriodicValidation, ReplicaCheck, SavedFiles, TensorBoard, append_to_log)
from .resume import RESUME_MODES, check_resume_mode, checkpoint_note, resume_training, set_aside_previous_run
from .runs import claim_run_folders, lock_run_folder, refuse_busy_run_folder, run_dir
from .train_loop import TrainingError, TrainLoop
from .validation import check_validation_settings, check_validation_split, validate

__all__ = ["Trainer", "TrainingError", "TrainingInterrupted", "RESUME_MODES"]


class TrainingInterrupted(Interrupted):
    """Ctrl-C or SIGTERM (signal_number says which) during training; the message says where training stood and
    which checkpoint is the last complete one."""


class Trainer:
    """Builds everything a config describes for training; `run()` trains and returns the history.

    Attributes a caller may replace before run(): model (the network), net (what is trained: the model or
    its DDP wrapper), loss, optimizer, scheduler, loader.
    """

    def __init__(self, cfg: CfgNode, cfg_name: str, device: str | None = None, resume: str = "check",
                 share_run_folder: bool = False):
        check_resume_mode(resume)
        # Config errors first: before any folder, process group or data set is touched.
        self.outputs = build_output_specs(cfg)
        self.keypoints = keypoints_from_config(cfg)
        if cfg.TRAIN.VAL_FREQ > 0:      # validation's TEST.* settings, checked now rather than after an epoch
            check_validation_settings(cfg, self.keypoints, self.outputs)
        self.cfg = cfg
        self.out_dir = run_dir(cfg, cfg_name, cfg.OUTPUT_DIR)
        self.log_file = os.path.join(self.out_dir, "train.log")
        self.log_dir = run_dir(cfg, cfg_name, cfg.LOG_DIR)
        device = resolve_device(device)
        refuse_busy_run_folder(self.out_dir, share_run_folder, f"OUTPUT_DIR {cfg.OUTPUT_DIR}")   # before the data
        self.dataset = build_dataset(cfg, is_train=True, outputs=self.outputs)   # data checks: before any folder
        self.eval_dataset = build_dataset(cfg, is_train=False) if cfg.TRAIN.VAL_FREQ > 0 else None
        self.dist = init_distributed(device.type, cfg.DIST_BACKEND)
        self.device = self.dist.process_device(device)
        claim_run_folders(cfg, self.out_dir, self.log_dir, share_run_folder, self.dist.main)
        self.dist.barrier()
        self.checkpointer: Checkpointer | None = None
        apply_cudnn_settings(cfg)
        torch.manual_seed(cfg.SEED)

        self.model, self.net = build_training_model(cfg, self.outputs, self.device, self.dist)
        self.loader, self.sampler, self.iters_per_epoch = build_train_loader(cfg, self.dataset, self.dist,
                                                                             self.device)
        self.loss = build_loss(cfg, self.outputs).to(self.device)
        self.optimizer = build_optimizer(cfg, self.model)
        self.scheduler = build_scheduler(cfg, self.optimizer, self.iters_per_epoch)
        self.scaler, self.amp, self.amp_dtype = build_mixed_precision(cfg, self.device)
        self.channels_last = use_channels_last(cfg, self.device)
        if self.eval_dataset is not None:
            check_validation_split(cfg, self.eval_dataset)
        self.run_lock = lock_run_folder(self.out_dir, share_run_folder, f"OUTPUT_DIR {cfg.OUTPUT_DIR}", self.dist.main)
        with self.run_lock.released_on_error():     # from here on the run folder is this run's
            if resume == "fresh":
                if self.dist.main:
                    set_aside_previous_run(self.out_dir)
                self.dist.barrier()
            resumed = resume_training(cfg, resume, self.checkpoint_path, self.model, self.optimizer, self.scheduler,
                                      self.scaler, self.iters_per_epoch)
        self.state, self.optimizer, self.scheduler = resumed.state, resumed.optimizer, resumed.scheduler
        self.resumed_epochs = resumed.run_epochs    # epochs of the run folder's checkpoint.pth, when resumed from it

    @property
    def main_metric(self) -> str:
        """The validation metric that picks the best model: the test dataset kind's (DatasetInfo.main_metric)."""
        return dataset_info(self.cfg.DATASET.DATASET_TEST).main_metric

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.out_dir, "checkpoint.pth")

    def _checkpoint_note(self) -> str:
        """checkpoint_note for the checkpoint.pth this run wrote last, else the one it resumed from."""
        if self.checkpointer is None:       # another process than the first, which saves (torchrun)
            return "rank 0 names the last complete checkpoint"
        return checkpoint_note(self.checkpoint_path, self.checkpointer.saved_epochs or self.resumed_epochs)

    def _validate(self) -> dict:
        """The metrics of the current weights on the test split (validation.validate: COCO's AP, MPII's PCKh)."""
        return validate(self.cfg, self.model, self.eval_dataset, self.device, self.keypoints, self.dist.main)

    def _validation_pictures(self) -> dict:
        """validation_pictures of the first image of DATASET.TEST with the current weights (none for an empty
        split, or a top-down network, which has no maps of the whole image)."""
        if not len(self.eval_dataset) or model_entry(self.cfg.MODEL.NAME).top_down:
            return {}
        predictor = Predictor.from_model(self.cfg, self.model, device=self.device, keypoints=self.keypoints, raw=True)
        return validation_pictures(predictor, self.eval_dataset[0][0])

    def build_hooks(self) -> list:
        """The hooks of a run, in the order they act after each epoch: epoch log, validation, best model,
        checkpoint, barrier; after training: final weights, replica check, the line naming the saved files."""
        main = self.dist.main
        items = "people" if model_entry(self.cfg.MODEL.NAME).top_down else "images"     # a top-down item: one crop
        header = (f"training {self.cfg.MODEL.NAME} on {self.device} ({self.dist.world_size} "
                  f"process{'es' if self.dist.enabled else ''}), {len(self.dataset)} {items}, {self.iters_per_epoch} "
                  f"iterations per epoch, output {self.out_dir}")
        tensorboard = TensorBoard(self.log_dir, self.cfg.PRINT_FREQ) if main else None
        hooks = [LogFile(self.log_file, self.dist.rank), tensorboard] if main else []
        hooks.insert(1 if main else 0, EpochLogger(main, self.dist.world_size, header))
        # Before every hook that evaluates or saves the weights.
        hooks += [FiniteWeights(self.model), LossWatch()]
        if self.cfg.TRAIN.VAL_FREQ > 0:
            hooks.append(PeriodicValidation(self.cfg.TRAIN.VAL_FREQ, self._validate, self.model, main, tensorboard,
                                            self._validation_pictures))
            if main:
                hooks.append(BestModel(self.out_dir, self.model, self.cfg, self.keypoints, self.main_metric))
        if main:
            self.checkpointer = Checkpointer(self.out_dir, self.model, self.cfg, self.keypoints, self.amp)
            hooks.append(self.checkpointer)
        hooks += [EpochBarrier(self.dist), ReplicaCheck(self.model, self.dist)]
        if main:
            hooks.append(SavedFiles(self.out_dir, self.log_dir, model_entry(self.cfg.MODEL.NAME).top_down,
                                    self.main_metric))
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
            with sigterm_raises():
                loop.run()
        except KeyboardInterrupt as e:
            note = f"{stopped(e)} in {loop.position()}; {self._checkpoint_note()}"
            self._log(note)
            raise TrainingInterrupted(note, stop_signal(e)) from None
        except TrainingError as e:
            message = e.with_note(self._checkpoint_note())
            self._log(f"training stopped: {message}")
            raise TrainingError(message) from None
        finally:
            self.run_lock.release()     # the run is over: the folder is free for the next
        identical = next(h for h in hooks if isinstance(h, ReplicaCheck)).identical
        saved = next((h for h in hooks if isinstance(h, SavedFiles)), None)
        return {"epochs": self.state.history[start:], "replicas_identical": identical, "output_dir": self.out_dir,
                "saved": saved.files if saved else None, "summary": saved.note if saved else None}

    def _log(self, message: str) -> None:
        """A line in train.log (main process) after the loop ended."""
        if self.dist.main:
            append_to_log(self.log_file, message, self.dist.rank)

    def close(self) -> None:
        """Free the run folder; release the DDP wrapper before the process group (avoids an abort at exit)."""
        self.run_lock.release()
        if self.dist.enabled:
            self.net = None
            shutdown_distributed(self.dist)
