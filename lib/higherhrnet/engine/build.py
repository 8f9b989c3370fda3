"""build_* functions: the training objects of a config (the only training code that reads the config)."""
from __future__ import annotations

import bisect
import logging
import math
import os

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ..checkpoint import load_pretrained_backbone
from ..config import CfgNode, ConfigError
from ..interrupts import loader_worker_sigterm
from ..models import build_model
from ..models.registry import model_entry
from ..outputs import OutputSpec
from .distributed import DistInfo

__all__ = ["apply_cudnn_settings", "build_mixed_precision", "build_training_model", "build_optimizer",
           "build_scheduler", "swahr_lr_factor", "swahr_step_lr_factor", "EpochSampler", "build_train_loader",
           "loader_worker_init"]

logger = logging.getLogger("higherhrnet.train")


def apply_cudnn_settings(cfg: CfgNode) -> None:
    """CUDNN.ENABLED / BENCHMARK / DETERMINISTIC into torch.backends.cudnn (they only matter on CUDA)."""
    torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED
    torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
    torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC


def _cpu_has_bf16() -> bool:
    """Whether oneDNN reports bfloat16 support on this CPU (a private PyTorch query, hence the fallback)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def build_mixed_precision(cfg: CfgNode,
                          device: torch.device) -> tuple[torch.amp.GradScaler, bool, torch.dtype | None]:
    """(scaler, autocast on, autocast dtype). On CUDA, FP16.ENABLED: float16 autocast with a GradScaler whose
    loss scale is dynamic with FP16.DYNAMIC_LOSS_SCALE, else starts at FP16.STATIC_LOSS_SCALE and never grows.
    On the CPU, TRAIN.CPU_AUTOCAST bf16: bfloat16 autocast (no loss scaling: bfloat16 has float32's range);
    FP16.ENABLED is ignored there with a warning."""
    if device.type != "cuda":
        if cfg.FP16.ENABLED:
            logger.warning("FP16.ENABLED: float16 mixed precision needs CUDA; on %s see TRAIN.CPU_AUTOCAST", device)
        bf16 = cfg.TRAIN.CPU_AUTOCAST == "bf16"
        if bf16 and not _cpu_has_bf16():
            logger.warning("TRAIN.CPU_AUTOCAST bf16: this CPU has no bfloat16 instructions (oneDNN reports none), "
                           "so bfloat16 is emulated and likely slower than float32")
        return torch.amp.GradScaler("cpu", enabled=False), bf16, torch.bfloat16 if bf16 else None
    amp = bool(cfg.FP16.ENABLED)
    if cfg.FP16.DYNAMIC_LOSS_SCALE:
        return torch.amp.GradScaler("cuda", enabled=amp), amp, torch.float16
    return torch.amp.GradScaler("cuda", init_scale=cfg.FP16.STATIC_LOSS_SCALE, growth_interval=2 ** 31 - 1,
                                enabled=amp), amp, torch.float16


def use_channels_last(cfg: CfgNode, device: torch.device) -> bool:
    """Whether to train in channels-last memory format on `device` (TRAIN.CHANNELS_LAST: "cpu", "always",
    "never"). oneDNN's CPU convolutions are much faster on channels-last tensors, and only float rounding
    changes; on CUDA the default stays contiguous until benchmarks/gpu.py has measured the difference."""
    return cfg.TRAIN.CHANNELS_LAST == "always" or (cfg.TRAIN.CHANNELS_LAST == "cpu" and device.type == "cpu")


def build_training_model(cfg: CfgNode, outputs: tuple[OutputSpec, ...], device: torch.device,
                         dist_info: DistInfo) -> tuple[nn.Module, nn.Module]:
    """(model, network to train): the config's network, initialised (MODEL.PRETRAINED backbone weights when
    given), with SyncBatchNorm under MODEL.SYNC_BN on CUDA with several processes, on `device`; the network to
    train is the model wrapped in DistributedDataParallel when there are several processes. Weights are stored
    in channels-last memory format when use_channels_last says so (the loop then feeds channels-last images)."""
    model = build_model(cfg, outputs)
    if cfg.MODEL.INIT_WEIGHTS and cfg.MODEL.PRETRAINED:
        if os.path.isfile(cfg.MODEL.PRETRAINED):
            loaded = load_pretrained_backbone(model, cfg.MODEL.PRETRAINED, cfg.MODEL.EXTRA.PRETRAINED_LAYERS)
            logger.info("loaded %d tensors from %s", len(loaded), cfg.MODEL.PRETRAINED)
        else:
            logger.warning("MODEL.PRETRAINED %s not found: training from scratch", cfg.MODEL.PRETRAINED)
    if cfg.MODEL.SYNC_BN:
        if device.type == "cuda" and dist_info.enabled:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            logger.warning("MODEL.SYNC_BN needs CUDA and several processes; using ordinary BatchNorm here")
    model = model.to(device)
    if use_channels_last(cfg, device):
        model = model.to(memory_format=torch.channels_last)
    if not dist_info.enabled:
        return model, model
    return model, nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                      else None)


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """TRAIN.OPTIMIZER adam | adamw | sgd | rmsprop with the rate TRAIN.LR x WORLD_SIZE, as the official code
    builds them.

    WORLD_SIZE is SWAHR's config constant (1 by default, 8 in the SWAHR recipes), not the number of
    processes. adam has no weight decay, whatever TRAIN.WD says: the official code (and SWAHR's) builds Adam
    from the learning rate alone, so its recipes (TRAIN.WD 0.0001 in every official file) trained without
    decay, and this reproduces them. For Adam with weight decay use adamw (decoupled decay of TRAIN.WD). sgd
    applies TRAIN.WD, TRAIN.MOMENTUM and TRAIN.NESTEROV, as the official code does. rmsprop is bearpaw/pytorch-pose's
    optimiser for its stacked hourglass: torch.optim.RMSprop with TRAIN.MOMENTUM and TRAIN.WD, PyTorch's defaults
    otherwise (alpha 0.99, eps 1e-8, not centered), as its example/main.py builds it.
    """
    t = cfg.TRAIN
    params = [p for p in model.parameters() if p.requires_grad]
    lr = t.LR * cfg.WORLD_SIZE
    if t.OPTIMIZER == "adam":
        if t.WD:
            logger.info("TRAIN.OPTIMIZER adam ignores TRAIN.WD %g, as the official code does (adamw applies it)", t.WD)
        return torch.optim.Adam(params, lr=lr)
    if t.OPTIMIZER == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=t.WD)
    if t.OPTIMIZER == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=t.MOMENTUM, weight_decay=t.WD, nesterov=t.NESTEROV)
    if t.OPTIMIZER == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=t.MOMENTUM, weight_decay=t.WD)
    raise ConfigError(f"TRAIN.OPTIMIZER must be adam, adamw, sgd or rmsprop, got {t.OPTIMIZER!r}")


def build_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer, iters_per_epoch: int):
    """A LambdaLR stepped every iteration, by TRAIN.LR_SCHEDULE:

    multistep: linear warm-up over TRAIN.WARMUP_EPOCHS from LR x WARMUP_FACTOR, and the multi-step decay
    (x LR_FACTOR at each epoch of LR_STEP), i.e. MultiStepLR with optional warm-up.
    swahr: SWAHR's schedule (`swahr_step_lr_factor`): linear from 0.1 x the rate to the
    rate over TRAIN.WARM_UP_EPOCH epochs, then linear decay to 0 at TRAIN.END_EPOCH; like SWAHR's code, each
    step uses the rate set after the previous one (the first step runs at the full rate).
    """
    t = cfg.TRAIN
    # TRAIN.LR_SCHEDULE and its keys were checked when the config was loaded (config.check_cfg).
    if t.LR_SCHEDULE == "swahr":
        iters = max(iters_per_epoch, 1)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: swahr_step_lr_factor(step, iters, t.WARM_UP_EPOCH, t.END_EPOCH))
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


def _check_schedule(iters_per_epoch: int, warm_up_epochs: int, end_epoch: int) -> None:
    if iters_per_epoch <= 0:
        raise ValueError(f"iters_per_epoch must be positive, got {iters_per_epoch}")
    if not 0 <= warm_up_epochs < end_epoch:
        raise ValueError(f"need 0 <= TRAIN.WARM_UP_EPOCH ({warm_up_epochs}) < TRAIN.END_EPOCH ({end_epoch})")


def swahr_lr_factor(iteration: int, iters_per_epoch: int, warm_up_epochs: int, end_epoch: int) -> float:
    """The factor of the initial learning rate (TRAIN.LR x WORLD_SIZE) that the reference SETS after
    optimizer step `iteration` (0-based, counted over all epochs):

        warm-up (iteration < W = warm_up_epochs x iters_per_epoch): 0.1 + 0.9 iteration / W
        then: 1 - (iteration - W) / ((end_epoch - warm_up_epochs) x iters_per_epoch), linearly to 0.

    The step that follows uses it; see `swahr_step_lr_factor` for the factor a step actually uses.
    """
    _check_schedule(iters_per_epoch, warm_up_epochs, end_epoch)
    warm_up_iters = warm_up_epochs * iters_per_epoch
    train_iters = (end_epoch - warm_up_epochs) * iters_per_epoch
    if iteration < warm_up_iters:
        return 0.1 + iteration / warm_up_iters * 0.9
    return 1 - (iteration - warm_up_iters) / train_iters


def swahr_step_lr_factor(step: int, iters_per_epoch: int, warm_up_epochs: int, end_epoch: int) -> float:
    """The factor of the initial learning rate that optimizer step `step` (0-based) uses in the reference:
    1.0 for step 0 (the optimizer is built with the full rate and the first update comes before any
    schedule), then `swahr_lr_factor(step - 1, ...)`. Fits torch.optim.lr_scheduler.LambdaLR stepped once
    per iteration after optimizer.step()."""
    _check_schedule(iters_per_epoch, warm_up_epochs, end_epoch)
    if step == 0:
        return 1.0
    return swahr_lr_factor(step - 1, iters_per_epoch, warm_up_epochs, end_epoch)


class EpochSampler(Sampler):
    """Yields (epoch, index) keys of a TrainingDataset: every index once per epoch, shuffled (or not) by a
    permutation drawn from (seed, epoch), so the order is the same after a resume.

    With world_size > 1 it is process `rank`'s share, exactly as torch's DistributedSampler splits it (the
    permutation padded to a multiple of world_size, then every world_size-th index from rank). The epoch
    travels with each index, so loader processes that persist across epochs draw each epoch's augmentation.
    """

    def __init__(self, length: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1):
        self.length, self.shuffle, self.seed, self.epoch = length, shuffle, seed, 0
        self.rank, self.world_size = rank, world_size
        self.per_rank = math.ceil(length / world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        if self.world_size > 1:
            total = self.per_rank * self.world_size
            order = (order * math.ceil(total / max(len(order), 1)))[:total][self.rank:total:self.world_size]
        return iter([(self.epoch, i) for i in order])

    def __len__(self) -> int:
        return self.per_rank


def loader_worker_init(worker_id: int) -> None:
    """The worker_init_fn of this toolkit's DataLoaders: SIGTERM as interrupts.loader_worker_sigterm says.

    OpenCV's thread count is left alone: cv2.setNumThreads in a worker forked while the parent's OpenCV thread
    pool was busy waits forever for pool threads that do not exist in the child (seen as a hung evaluation with
    --workers 2)."""
    loader_worker_sigterm(worker_id)


def build_train_loader(cfg: CfgNode, dataset: Dataset, dist_info: DistInfo, device: torch.device):
    """(loader, sampler, iterations per epoch) for TRAIN.IMAGES_PER_GPU images per process and step (a top-down
    network: TRAIN.BATCH_SIZE_PER_GPU person crops; fewer when the data set is smaller), WORKERS loader processes, shuffled by (SEED, epoch); under torchrun each
    process takes its share (EpochSampler). TRAIN.MAX_ITERS_PER_EPOCH > 0 cuts epochs short."""
    sampler = EpochSampler(len(dataset), cfg.TRAIN.SHUFFLE, cfg.SEED, dist_info.rank, dist_info.world_size)
    per_gpu = cfg.TRAIN.BATCH_SIZE_PER_GPU if model_entry(cfg.MODEL.NAME).top_down else cfg.TRAIN.IMAGES_PER_GPU
    batch = min(per_gpu, len(dataset) // dist_info.world_size or 1)
    # Workers persist across epochs (the sampler's keys carry the epoch): no start-up cost per epoch, and a
    # worker keeps the decoded images it cached (TrainingDataset's cache_mb).
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=cfg.WORKERS,
                        pin_memory=cfg.PIN_MEMORY and device.type == "cuda", drop_last=True,
                        persistent_workers=cfg.WORKERS > 0, worker_init_fn=loader_worker_init)
    iters = len(loader)
    if cfg.TRAIN.MAX_ITERS_PER_EPOCH > 0:
        iters = min(iters, cfg.TRAIN.MAX_ITERS_PER_EPOCH)
    return loader, sampler, iters
