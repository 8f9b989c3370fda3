"""Training: one process, or many with torchrun + DistributedDataParallel (gloo on CPU, nccl on CUDA).

    python tools/train.py --cfg CFG [KEY VALUE ...]
    torchrun --nproc_per_node=N tools/train.py --cfg CFG [KEY VALUE ...]

Everything is written under OUTPUT_DIR/<DATASET.DATASET>/<MODEL.NAME>/<config name>/: checkpoint.pth
(model, optimizer, scheduler, AMP scaler, epoch, best metric, config; atomic, every epoch, resumed
automatically with AUTO_RESUME), final_state.pth (the model alone, official key layout), train.log and
TensorBoard scalars under LOG_DIR/....
"""
from __future__ import annotations

import bisect
import gc
import logging
import os
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from ..checkpoint import atomic_save, load_checkpoint, load_pretrained_backbone, read_checkpoint, save_model
from ..config import CfgNode, ConfigError
from ..data import build_dataset
from ..models import build_model
from ..predictor import Predictor
from .evaluation import evaluate
from .loss import build_loss

__all__ = ["TrainingError", "Trainer", "build_optimizer", "build_scheduler", "run_dir"]

logger = logging.getLogger("higherhrnet.train")


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, bad resume state); the message says where and why."""


def run_dir(cfg: CfgNode, cfg_name: str, root: str) -> str:
    dataset = cfg.DATASET.DATASET.replace(":", "_")
    return os.path.join(root, dataset, cfg.MODEL.NAME, os.path.splitext(os.path.basename(cfg_name))[0])


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """TRAIN.OPTIMIZER adam | adamw | sgd with TRAIN.LR and TRAIN.WD.

    TRAIN.WD is applied by every optimiser here. The official code silently drops it for Adam, so its
    recipes trained with no weight decay: set TRAIN.WD 0.0 to reproduce them exactly.
    """
    t = cfg.TRAIN
    params = [p for p in model.parameters() if p.requires_grad]
    if t.OPTIMIZER == "adam":
        return torch.optim.Adam(params, lr=t.LR, weight_decay=t.WD)
    if t.OPTIMIZER == "adamw":
        return torch.optim.AdamW(params, lr=t.LR, weight_decay=t.WD)
    if t.OPTIMIZER == "sgd":
        return torch.optim.SGD(params, lr=t.LR, momentum=t.MOMENTUM, weight_decay=t.WD, nesterov=t.NESTEROV)
    raise ConfigError(f"TRAIN.OPTIMIZER must be adam, adamw or sgd, got {t.OPTIMIZER!r}")


def build_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer, iters_per_epoch: int):
    """Stepped every iteration: linear warm-up over TRAIN.WARMUP_EPOCHS from LR x WARMUP_FACTOR, and the
    multi-step decay (x LR_FACTOR at each epoch of LR_STEP), i.e. MultiStepLR with optional warm-up."""
    t = cfg.TRAIN
    steps = sorted(t.LR_STEP)
    warmup_iters = int(round(t.WARMUP_EPOCHS * iters_per_epoch))

    def factor(iteration: int) -> float:
        epoch = iteration // max(iters_per_epoch, 1)
        decay = t.LR_FACTOR ** bisect.bisect_right(steps, epoch)
        if iteration < warmup_iters:
            alpha = iteration / warmup_iters
            return decay * (t.WARMUP_FACTOR * (1 - alpha) + alpha)
        return decay

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class EpochSampler(Sampler):
    """Shuffles (or not) with a permutation drawn from (seed, epoch): the same order after a resume."""

    def __init__(self, length: int, shuffle: bool, seed: int):
        self.length, self.shuffle, self.seed, self.epoch = length, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.length))
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.length, generator=g).tolist())

    def __len__(self) -> int:
        return self.length


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_kind: str, cfg: CfgNode) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    backend = cfg.DIST_BACKEND if device_kind == "cuda" else "gloo"
    if device_kind == "cuda":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend)
    return info


class Trainer:
    """Builds everything from a config and trains. `run()` returns the final metrics dict."""

    def __init__(self, cfg: CfgNode, cfg_name: str, device: str | None = None):
        self.cfg = cfg
        want_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
        if want_cuda and not torch.cuda.is_available():
            raise ConfigError("--device cuda requested but CUDA is not available")
        self.dist = _init_distributed("cuda" if want_cuda else "cpu", cfg)
        if want_cuda:
            index = self.dist.local_rank if self.dist.enabled else (torch.device(device).index or 0 if device else 0)
            self.device = torch.device("cuda", index)
        else:
            self.device = torch.device("cpu")
        self.out_dir = run_dir(cfg, cfg_name, cfg.OUTPUT_DIR)
        self.log_dir = run_dir(cfg, cfg_name, cfg.LOG_DIR)
        if self.dist.main:
            os.makedirs(self.out_dir, exist_ok=True)
            os.makedirs(self.log_dir, exist_ok=True)
        self._barrier()
        self._setup_logging()
        torch.manual_seed(cfg.SEED)

        model = build_model(cfg)
        if cfg.MODEL.INIT_WEIGHTS and cfg.MODEL.PRETRAINED:
            if os.path.isfile(cfg.MODEL.PRETRAINED):
                loaded = load_pretrained_backbone(model, cfg.MODEL.PRETRAINED, cfg.MODEL.EXTRA.PRETRAINED_LAYERS)
                logger.info("loaded %d tensors from %s", len(loaded), cfg.MODEL.PRETRAINED)
            else:
                logger.warning("MODEL.PRETRAINED %s not found: training from scratch", cfg.MODEL.PRETRAINED)
        if cfg.MODEL.SYNC_BN:
            if self.device.type == "cuda" and self.dist.enabled:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                logger.warning("MODEL.SYNC_BN needs CUDA and several processes; using ordinary BatchNorm here")
        self.model = model.to(self.device)
        self.net = (nn.parallel.DistributedDataParallel(self.model, device_ids=[self.device.index]
                                                        if self.device.type == "cuda" else None)
                    if self.dist.enabled else self.model)

        self.dataset = build_dataset(cfg, is_train=True)
        if len(self.dataset) == 0:
            raise ConfigError(f"the training split {cfg.DATASET.TRAIN} of {cfg.DATASET.ROOT} has no annotated image")
        if self.dist.enabled:
            self.sampler = torch.utils.data.distributed.DistributedSampler(
                self.dataset, num_replicas=self.dist.world_size, rank=self.dist.rank, shuffle=cfg.TRAIN.SHUFFLE,
                seed=cfg.SEED)
        else:
            self.sampler = EpochSampler(len(self.dataset), cfg.TRAIN.SHUFFLE, cfg.SEED)
        batch = min(cfg.TRAIN.IMAGES_PER_GPU, len(self.dataset) // self.dist.world_size or 1)
        self.loader = DataLoader(self.dataset, batch_size=batch, sampler=self.sampler, num_workers=cfg.WORKERS,
                                 pin_memory=cfg.PIN_MEMORY and self.device.type == "cuda", drop_last=True)
        self.iters_per_epoch = len(self.loader)
        if cfg.TRAIN.MAX_ITERS_PER_EPOCH > 0:
            self.iters_per_epoch = min(self.iters_per_epoch, cfg.TRAIN.MAX_ITERS_PER_EPOCH)
        self.loss = build_loss(cfg).to(self.device)
        self.optimizer = build_optimizer(cfg, self.model)
        self.scheduler = build_scheduler(cfg, self.optimizer, self.iters_per_epoch)
        self.amp = bool(cfg.FP16.ENABLED) and self.device.type == "cuda"
        if cfg.FP16.ENABLED and not self.amp:
            logger.warning("FP16.ENABLED: mixed precision needs CUDA; training in float32 on %s", self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.begin_epoch = cfg.TRAIN.BEGIN_EPOCH
        self.best_metric = None
        self.writer = None
        self.eval_dataset = build_dataset(cfg, is_train=False) if cfg.TRAIN.VAL_FREQ > 0 else None
        if self.eval_dataset is not None and not self.eval_dataset.source.has_annotations:
            raise ConfigError(f"TRAIN.VAL_FREQ: the split DATASET.TEST={cfg.DATASET.TEST} has no annotations to score")
        self._resume()

    # ------------------------------------------------------------------ set-up helpers
    def _setup_logging(self) -> None:
        logger.setLevel(logging.INFO)
        logger.propagate = False
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        fmt = logging.Formatter(f"%(asctime)s [rank {self.dist.rank}] %(message)s")
        console = logging.StreamHandler()
        console.setFormatter(fmt)
        logger.addHandler(console)
        if self.dist.main:
            handler = logging.FileHandler(os.path.join(self.out_dir, "train.log"))
            handler.setFormatter(fmt)
            logger.addHandler(handler)

    def _barrier(self) -> None:
        if self.dist.enabled:
            dist.barrier()

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
        self.begin_epoch = int(state["epoch"])
        self.best_metric = state.get("best_metric")
        logger.info("resumed from %s at epoch %d", path, self.begin_epoch)

    def _save(self, epoch: int) -> None:
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict() if self.amp else {},
            "epoch": epoch, "best_metric": self.best_metric, "config": self.cfg.dump(),
        }
        atomic_save(state, self.checkpoint_path)

    # ------------------------------------------------------------------ training
    def run(self) -> dict:
        cfg = self.cfg
        if self.dist.main:
            from tensorboardX import SummaryWriter
            self.writer = SummaryWriter(self.log_dir)
            logger.info("training %s on %s (%d process%s), %d images, %d iterations per epoch, output %s",
                        cfg.MODEL.NAME, self.device, self.dist.world_size, "es" if self.dist.enabled else "",
                        len(self.dataset), self.iters_per_epoch, self.out_dir)
        history = []
        try:
            for epoch in range(self.begin_epoch, cfg.TRAIN.END_EPOCH):
                history.append(self._train_epoch(epoch))
                if cfg.TRAIN.VAL_FREQ > 0 and (epoch + 1) % cfg.TRAIN.VAL_FREQ == 0:
                    history[-1]["val"] = self._validate(epoch)
                if self.dist.main:
                    self._save(epoch + 1)
                self._barrier()
            if self.dist.main:
                atomic_save(self.model.state_dict(), os.path.join(self.out_dir, "final_state.pth"))
            identical = self._check_replicas()
        finally:
            if self.writer is not None:
                self.writer.close()
        return {"epochs": history, "replicas_identical": identical, "output_dir": self.out_dir}

    def _train_epoch(self, epoch: int) -> dict:
        self.net.train()
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        totals: dict[str, float] = {}
        count = 0
        start = time.perf_counter()
        bar = tqdm(total=self.iters_per_epoch, desc=f"epoch {epoch}", disable=not self.dist.main, leave=False)
        for it, (images, heatmaps, masks, joints) in enumerate(self.loader):
            if it >= self.iters_per_epoch:
                break
            images = images.to(self.device, non_blocking=True)
            heatmaps = [h.to(self.device, non_blocking=True) for h in heatmaps]
            masks = [m.to(self.device, non_blocking=True) for m in masks]
            joints = [j.to(self.device, non_blocking=True) for j in joints]
            with torch.autocast(self.device.type, enabled=self.amp):
                outputs = self.net(images)
            outputs = [o.float() for o in outputs]
            heat_l, push_l, pull_l = self.loss(outputs, heatmaps, masks, joints)
            parts = {}
            for i, (h, pu, pl) in enumerate(zip(heat_l, push_l, pull_l)):
                if h is not None:
                    parts[f"heatmap_{i}"] = h.mean()
                if pu is not None:
                    parts[f"push_{i}"] = pu.mean()
                    parts[f"pull_{i}"] = pl.mean()
            loss = sum(parts.values())
            if not torch.isfinite(loss):
                detail = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
                raise TrainingError(f"loss is {loss.item()} at epoch {epoch}, iteration {it} ({detail}); "
                                    "lower TRAIN.LR or check the data")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.cfg.TRAIN.CLIP_GRAD_NORM > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.TRAIN.CLIP_GRAD_NORM)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()

            values = {k: v.item() for k, v in parts.items()}
            values["loss"] = loss.item()
            for k, v in values.items():
                totals[k] = totals.get(k, 0.0) + v
            count += 1
            speed = count * images.shape[0] * self.dist.world_size / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{values['loss']:.5f}", samples_s=f"{speed:.1f}")
            bar.update(1)
            step = epoch * self.iters_per_epoch + it
            if self.writer is not None and (it % max(self.cfg.PRINT_FREQ, 1) == 0 or it == self.iters_per_epoch - 1):
                for k, v in values.items():
                    self.writer.add_scalar(f"train/{k}", v, step)
                self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], step)
        bar.close()
        means = {k: v / max(count, 1) for k, v in totals.items()}
        elapsed = time.perf_counter() - start
        if self.dist.main:
            logger.info("epoch %d: %s, %.1f samples/s, lr %.3g", epoch,
                        ", ".join(f"{k} {v:.6f}" for k, v in means.items()),
                        count * self.loader.batch_size * self.dist.world_size / max(elapsed, 1e-9),
                        self.optimizer.param_groups[0]["lr"])
        return means

    def _validate(self, epoch: int) -> dict:
        """COCO AP on DATASET.TEST with the current weights; a better AP updates model_best.pth."""
        predictor = Predictor.from_model(self.cfg, self.model, device=self.device)
        metrics, _ = evaluate(predictor, self.eval_dataset, self.cfg.TEST.IMAGES_PER_GPU, 0, progress=False)
        ap = metrics["AP"]
        if self.dist.main:
            logger.info("epoch %d validation: %s", epoch, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            for k, v in metrics.items():
                self.writer.add_scalar(f"val/{k}", v, epoch)
            if self.best_metric is None or ap > self.best_metric:
                self.best_metric = ap
                save_model(os.path.join(self.out_dir, "model_best.pth"), self.model, self.cfg, epoch=epoch + 1,
                           metrics=metrics)
                logger.info("new best AP %.4f: model_best.pth", ap)
        self.model.train()
        return metrics

    def _check_replicas(self) -> bool:
        """In DDP, confirm every rank ends with the same weights (logged by rank 0)."""
        if not self.dist.enabled:
            return True
        with torch.no_grad():
            flat = torch.cat([p.detach().double().flatten() for p in self.model.parameters()])
            weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device).remainder(97)
            fingerprint = torch.stack([flat.sum(), (flat * weights).sum()]).to(self.device)
        gathered = [torch.zeros_like(fingerprint) for _ in range(self.dist.world_size)]
        dist.all_gather(gathered, fingerprint)
        identical = all(torch.equal(g, gathered[0]) for g in gathered)
        if self.dist.main:
            logger.info("weights identical across %d ranks: %s", self.dist.world_size, "yes" if identical else "NO")
        return identical

    def close(self) -> None:
        """Release the DDP wrapper before the process group (avoids an abort at exit on this torch)."""
        if self.dist.enabled:
            del self.net
            self.net = None
            gc.collect()
            dist.barrier()
            dist.destroy_process_group()
