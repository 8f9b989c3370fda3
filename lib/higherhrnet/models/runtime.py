"""Getting a trained network ready to run at test time: the one place that chooses how it runs.

backend "torch": with fold_bn, a copy with every BatchNorm folded into its convolution (fuse.py), in
channels-last memory format on the CPU, where oneDNN's convolutions are faster that way; without, the
network as given. backend "onnxruntime": the folded network exported to ONNX in memory and run by an
onnxruntime session (onnx.py). Every choice gives the same outputs up to float rounding.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import nn

from ..outputs import OutputSpec
from .fuse import ChannelsLast, fold_batchnorm
from .onnx import OnnxRuntimeNetwork, check_output_channels, create_session, export_onnx, require

__all__ = ["BACKENDS", "prepare_network", "load_onnx_network"]

BACKENDS = ("torch", "onnxruntime")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: expected one of {list(BACKENDS)}")


def prepare_network(model: nn.Module, device: torch.device, backend: str = "torch", fold_bn: bool = True,
                    onnx_threads: int | None = None, export_size: tuple[int, int] = (512, 512)) -> nn.Module:
    """The network to run for `model` (switched to eval mode): see the module docstring.

    The folded copy and the export do not follow later changes to `model`. export_size (W, H): the example
    input traced for the ONNX export (the exported graph takes any size). An OnnxRuntimeNetwork is returned
    as it is.
    """
    check_backend(backend)
    model = model.eval()
    if isinstance(model, OnnxRuntimeNetwork):
        return model
    if backend == "onnxruntime":
        require("onnxruntime")   # before the export, which takes seconds
        data = export_onnx(fold_batchnorm(model), input_size=export_size)
        return OnnxRuntimeNetwork(create_session(data, device, onnx_threads))
    if fold_bn:
        folded = fold_batchnorm(model).to(device)
        return ChannelsLast(folded) if device.type == "cpu" else folded
    return model.to(device)


def load_onnx_network(path: str | os.PathLike, outputs: Sequence[OutputSpec], device: torch.device,
                      threads: int | None = None) -> OnnxRuntimeNetwork:
    """An exported .onnx file as a network, checked to have the channels the output specs describe."""
    network = OnnxRuntimeNetwork(create_session(path, device, threads))
    check_output_channels(network, outputs, os.fspath(path))
    return network
