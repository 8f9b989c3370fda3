"""build_* functions: the training objects of a config (the only training code that reads the config)."""
from __future__ import annotations

import bisect
import logging
import os

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from ..checkpoint import load_pretrained_backbone
from ..codec.scale_adaptive import swahr_step_lr_factor
from ..config import CfgNode, ConfigError
from ..models import build_model
from ..outputs import OutputSpec
from .distributed import DistInfo

__all__ = ["resolve_device", "apply_cudnn_settings", "build_grad_scaler", "build_training_model", "build_optimizer", "build_scheduler", "EpochSampler",
           "build_train_loader"]

logger = logging.getLogger("higherhrnet.train")


def resolve_device(device: str | None) -> torch.device:
    """The device to train or evaluate on: `device` ("cpu", "cuda", "cuda:1"), default CUDA when available."""
    want_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if not want_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device} requested but CUDA is not available")
    return torch.device("cuda", torch.device(device).index or 0 if device else 0)


def apply_cudnn_settings(cfg: CfgNode) -> None:
    """CUDNN.ENABLED / BENCHMARK / DETERMINISTIC into torch.backends.cudnn (they only matter on CUDA)."""
    torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED
    torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
    torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC


def build_grad_scaler(cfg: CfgNode, device: torch.device) -> tuple[torch.amp.GradScaler, bool]:
    """(scaler, amp): mixed precision with FP16.ENABLED on CUDA (a warning elsewhere). The loss scale is
    dynamic with FP16.DYNAMIC_LOSS_SCALE, else it starts at FP16.STATIC_LOSS_SCALE and never grows."""
    amp = bool(cfg.FP16.ENABLED) and device.type == "cuda"
    if cfg.FP16.ENABLED and not amp:
        logger.warning("FP16.ENABLED: mixed precision needs CUDA; training in float32 on %s", device)
    if cfg.FP16.DYNAMIC_LOSS_SCALE:
        return torch.amp.GradScaler("cuda", enabled=amp), amp
    return torch.amp.GradScaler("cuda", init_scale=cfg.FP16.STATIC_LOSS_SCALE, growth_interval=2 ** 31 - 1,
                                enabled=amp), amp


def build_training_model(cfg: CfgNode, outputs: tuple[OutputSpec, ...], device: torch.device,
                         dist_info: DistInfo) -> tuple[nn.Module, nn.Module]:
    """(model, network to train): the config's network, initialised (MODEL.PRETRAINED backbone weights when
    given), with SyncBatchNorm under MODEL.SYNC_BN on CUDA with several processes, on `device`; the network to
    train is the model wrapped in DistributedDataParallel when there are several processes."""
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
    if not dist_info.enabled:
        return model, model
    return model, nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                      else None)


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """TRAIN.OPTIMIZER adam | adamw | sgd with the rate TRAIN.LR x WORLD_SIZE and TRAIN.WD.

    WORLD_SIZE is SWAHR's config constant (1 by default, 8 in the SWAHR recipes), not the number of
    processes. TRAIN.WD is applied by every optimiser here. The official code silently drops it for Adam,
    so its recipes trained with no weight decay: set TRAIN.WD 0.0 to reproduce them exactly.
    """
    t = cfg.TRAIN
    params = [p for p in model.parameters() if p.requires_grad]
    lr = t.LR * cfg.WORLD_SIZE
    if t.OPTIMIZER == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=t.WD)
    if t.OPTIMIZER == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=t.WD)
    if t.OPTIMIZER == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=t.MOMENTUM, weight_decay=t.WD, nesterov=t.NESTEROV)
    raise ConfigError(f"TRAIN.OPTIMIZER must be adam, adamw or sgd, got {t.OPTIMIZER!r}")


def build_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer, iters_per_epoch: int):
    """A LambdaLR stepped every iteration, by TRAIN.LR_SCHEDULE:

    multistep: linear warm-up over TRAIN.WARMUP_EPOCHS from LR x WARMUP_FACTOR, and the multi-step decay
    (x LR_FACTOR at each epoch of LR_STEP), i.e. MultiStepLR with optional warm-up.
    swahr: SWAHR's schedule (codec.scale_adaptive.swahr_step_lr_factor): linear from 0.1 x the rate to the
    rate over TRAIN.WARM_UP_EPOCH epochs, then linear decay to 0 at TRAIN.END_EPOCH; like SWAHR's code, each
    step uses the rate set after the previous one (the first step runs at the full rate).
    """
    t = cfg.TRAIN
    if t.LR_SCHEDULE == "swahr":
        if t.WARMUP_EPOCHS > 0:
            raise ConfigError("TRAIN.WARMUP_EPOCHS belongs to TRAIN.LR_SCHEDULE multistep; the swahr schedule warms "
                              "up over TRAIN.WARM_UP_EPOCH: set TRAIN.WARMUP_EPOCHS 0")
        if not 0 <= t.WARM_UP_EPOCH < t.END_EPOCH:
            raise ConfigError(f"TRAIN.LR_SCHEDULE swahr needs 0 <= TRAIN.WARM_UP_EPOCH ({t.WARM_UP_EPOCH}) < "
                              f"TRAIN.END_EPOCH ({t.END_EPOCH})")
        iters = max(iters_per_epoch, 1)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: swahr_step_lr_factor(step, iters, t.WARM_UP_EPOCH, t.END_EPOCH))
    if t.LR_SCHEDULE != "multistep":
        raise ConfigError(f"TRAIN.LR_SCHEDULE must be multistep or swahr, got {t.LR_SCHEDULE!r}")
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


def build_train_loader(cfg: CfgNode, dataset: Dataset, dist_info: DistInfo, device: torch.device):
    """(loader, sampler, iterations per epoch) for TRAIN.IMAGES_PER_GPU images per process and step (fewer
    when the data set is smaller), WORKERS loader processes, shuffled by (SEED, epoch); under torchrun each
    process takes its share. TRAIN.MAX_ITERS_PER_EPOCH > 0 cuts epochs short."""
    if dist_info.enabled:
        sampler = DistributedSampler(dataset, num_replicas=dist_info.world_size, rank=dist_info.rank,
                                     shuffle=cfg.TRAIN.SHUFFLE, seed=cfg.SEED)
    else:
        sampler = EpochSampler(len(dataset), cfg.TRAIN.SHUFFLE, cfg.SEED)
    batch = min(cfg.TRAIN.IMAGES_PER_GPU, len(dataset) // dist_info.world_size or 1)
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=cfg.WORKERS,
                        pin_memory=cfg.PIN_MEMORY and device.type == "cuda", drop_last=True)
    iters = len(loader)
    if cfg.TRAIN.MAX_ITERS_PER_EPOCH > 0:
        iters = min(iters, cfg.TRAIN.MAX_ITERS_PER_EPOCH)
    return loader, sampler, iters
