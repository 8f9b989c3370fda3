"""Getting a trained network ready to run at test time: the one place that chooses how it runs.

backend "torch": with fold_bn, a copy with every BatchNorm folded into its convolution (fuse.py); on the
CPU, in channels-last memory format, where oneDNN's convolutions are faster that way, and with every ReLU
and addition that follows a convolution done by that convolution (fuse_conv_pointwise: oneDNN post-ops, one
pass over the activations less each); without fold_bn, the network as given. backend "onnxruntime": the
folded network exported to ONNX in memory and run by an onnxruntime session (onnx.py). Every choice so far
gives the same outputs up to float rounding. backend "onnxruntime-int8": that export quantized to int8
(quantize.py; calibrated on the images a quantize.Calibration names, cached), on the CPU only; its outputs
differ from the float network's by the quantization error (BENCHMARKS.md measures what that does to people
and AP).
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import nn

from ..outputs import OutputSpec
from .fuse import ChannelsLast, fold_batchnorm, fuse_conv_pointwise
from .onnx import (OnnxError, OnnxRuntimeNetwork, check_output_channels, create_session, export_onnx,
                   read_onnx_metadata, require)
from .quantize import INT8_KEY, Calibration, int8_model, int8_model_of_file, int8_note

__all__ = ["BACKENDS", "INT8_BACKEND", "prepare_network", "load_onnx_network"]

INT8_BACKEND = "onnxruntime-int8"
BACKENDS = ("torch", "onnxruntime", INT8_BACKEND)


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: expected one of {list(BACKENDS)}")


def _check_int8_device(device: torch.device) -> None:
    if device.type != "cpu":
        raise OnnxError(f"the {INT8_BACKEND} backend runs on the CPU (onnxruntime's int8 kernels are CPU kernels), "
                        f"not on {device}: use device cpu (--device cpu), or the onnxruntime backend on {device}")


def prepare_network(model: nn.Module, device: torch.device, backend: str = "torch", fold_bn: bool = True,
                    onnx_threads: int | None = None, export_size: tuple[int, int] = (512, 512),
                    calibration: Calibration | None = None) -> nn.Module:
    """The network to run for `model` (switched to eval mode): see the module docstring.

    The folded copy and the export do not follow later changes to `model`. export_size (W, H): the example
    input traced for the ONNX export (the exported graph takes any size). calibration: what the int8 backend
    calibrates on (higherhrnet.calibration.int8_calibration makes it from a config); needed by that backend
    only. An OnnxRuntimeNetwork is returned as it is.
    """
    check_backend(backend)
    model = model.eval()
    if isinstance(model, OnnxRuntimeNetwork):
        return model
    if backend == INT8_BACKEND:
        _check_int8_device(device)
        if calibration is None:
            raise ValueError(f"the {INT8_BACKEND} backend needs a calibration "
                             f"(higherhrnet.calibration.int8_calibration)")
        require("onnxruntime")
        quantized = int8_model(model, calibration, export_size)
        return OnnxRuntimeNetwork(create_session(quantized.data, device, onnx_threads), note=quantized.note)
    if backend == "onnxruntime":
        require("onnxruntime")   # before the export, which takes seconds
        data = export_onnx(fold_batchnorm(model), input_size=export_size)
        return OnnxRuntimeNetwork(create_session(data, device, onnx_threads))
    if fold_bn:
        folded = fold_batchnorm(model).to(device)
        return ChannelsLast(fuse_conv_pointwise(folded)) if device.type == "cpu" else folded
    return model.to(device)


def load_onnx_network(path: str | os.PathLike, outputs: Sequence[OutputSpec], device: torch.device,
                      threads: int | None = None, calibration: Calibration | None = None) -> OnnxRuntimeNetwork:
    """An exported .onnx file as a network, checked to have the channels the output specs describe.
    calibration: quantize a float model to int8 first (the int8 backend); a model that is int8 already runs as
    it is."""
    if calibration is not None:
        _check_int8_device(device)
        if INT8_KEY not in read_onnx_metadata(path):
            quantized = int8_model_of_file(path, calibration)
            network = OnnxRuntimeNetwork(create_session(quantized.data, device, threads), note=quantized.note)
            check_output_channels(network, outputs, os.fspath(path))
            return network
    network = OnnxRuntimeNetwork(create_session(path, device, threads))
    network.note = int8_note(network.metadata)
    check_output_channels(network, outputs, os.fspath(path))
    return network
