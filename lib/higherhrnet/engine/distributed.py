"""torch.distributed helpers: which process this is, start-up, barriers and a check that replicas agree.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; without them everything runs as a single process.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "group_place", "init_distributed", "replicas_identical", "shutdown_distributed"]


@dataclass
class DistInfo:
    """This process's place: rank of world_size processes, local_rank on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> "DistInfo":
        """This process's place as torchrun's WORLD_SIZE, RANK and LOCAL_RANK say (a single process without
        them), read without joining any process group."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def process_device(self, device: torch.device) -> torch.device:
        """The device this process runs on when the command asked for `device`: with several processes on
        CUDA, its own GPU (cuda:local_rank, one GPU per process); otherwise `device` itself."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" and self.enabled else device

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def group_place() -> tuple[int, int]:
    """(rank, world size) in the process group this process has joined, (0, 1) when it has joined none: for the
    evaluation code, which is handed no DistInfo and runs the same in `higherhrnet eval` and during training."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device_kind: str, cuda_backend: str = "nccl") -> DistInfo:
    """Join torchrun's process group when WORLD_SIZE > 1: `cuda_backend` on CUDA (one GPU per local rank),
    gloo on the CPU."""
    info = DistInfo.from_environment()
    if not info.enabled:
        return info
    if device_kind == "cuda":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=cuda_backend if device_kind == "cuda" else "gloo")
    return info


def replicas_identical(model: nn.Module, info: DistInfo, device: torch.device) -> bool:
    """True when every rank holds the same parameters (compared by two float64 fingerprints)."""
    with torch.no_grad():
        flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
        weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device).remainder(97)
        fingerprint = torch.stack([flat.sum(), (flat * weights).sum()]).to(device)
    gathered = [torch.zeros_like(fingerprint) for _ in range(info.world_size)]
    dist.all_gather(gathered, fingerprint)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def shutdown_distributed(info: DistInfo) -> None:
    """Leave the process group (after every DDP wrapper is gone: this torch aborts at exit otherwise)."""
    if info.enabled and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
