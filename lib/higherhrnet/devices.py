"""The device a command, the Trainer or the Predictor runs on, resolved in one place with one default:
CUDA when PyTorch finds a GPU, else the CPU."""
from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["DeviceError", "resolve_device", "out_of_memory", "memory_error_line"]


class DeviceError(ConfigError, RuntimeError):
    """A device that cannot be used here (CUDA without a GPU, a GPU index beyond the last, an unknown name).

    A ConfigError, as the Trainer reported a bad --device, and a RuntimeError, as the Predictor did: code
    catching either keeps working."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch.device to run on.

    device: "cpu", "cuda" (PyTorch's current CUDA device, cuda:0 unless changed), "cuda:1", ..., or a
    torch.device; other PyTorch device types ("mps", ...) are taken as they are. None or "": CUDA when PyTorch
    finds a GPU, else the CPU. DeviceError, in words that serve the command line and Python alike, for CUDA
    on a machine without it, a GPU index beyond the last and a name PyTorch does not know.
    """
    if device is None or device == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        resolved = device
    elif isinstance(device, str):
        try:
            resolved = torch.device(device)
        except RuntimeError:
            raise DeviceError(f"unknown device {device}: use cpu, cuda or cuda:N (N the GPU's number)") from None
    else:
        raise TypeError(f"device must be a name (cpu, cuda, cuda:1) or a torch.device, got {type(device).__name__}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device} requested but CUDA is not available on this machine (no GPU, or a "
                              f"PyTorch built without CUDA): use device cpu (--device cpu)")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise DeviceError(f"device {device} requested but this machine has {count} CUDA device"
                              f"{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})")
    return resolved


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocator's refusal: torch.OutOfMemoryError on CUDA, a DefaultCPUAllocator error
    on the CPU."""
    text = str(error).lower()
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def memory_error_line(error: BaseException) -> str:
    """The first line of an allocator's error, at most 160 characters: for one-line messages."""
    return str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
