"""ONNX export and the onnxruntime backend.

    data = export_onnx(fold_batchnorm(model.eval()), input_size=(512, 512))   # serialized, checked ONNX
    network = OnnxRuntimeNetwork(create_session(data))                          # or a path to a .onnx file
    heatmaps_and_tags, heatmaps_half = network(batch)                           # like model(batch)

The exported graph has one input, "image" (N, 3, H, W) float32, and one output per network output,
"output_0", "output_1", ... (N, C_i, H_i, W_i); N, H and W are dynamic. `OnnxRuntimeNetwork` is an
nn.Module taking and returning torch tensors, so the test pipeline (resize, flip, multi-scale, grouping)
runs on it unchanged.

The model's metadata_props hold the output strides ("higherhrnet.output_strides") and, from `higherhrnet
export`, what the model is (`onnx_metadata`): the config YAML ("higherhrnet.config"), the package version and
the model meta as JSON ("higherhrnet.meta", the fields of checkpoint/meta.py); `read_onnx_meta` reads them
back, so an exported file brings its config as a model file of ours does.

Exporters: "torchscript" (the default) traces the module with TorchScript, about ten times faster than
"dynamo", which uses torch.export and needs onnxscript. torch 2.9+ calls the TorchScript exporter legacy and
warns; we silence that because we chose it knowingly. Both give graphs that agree with PyTorch to about 1e-6
at any input size.

onnx, onnxruntime and onnxscript are imported only when used; install them with pip install -e ".[onnx]".
"""
from __future__ import annotations

import importlib
import io
import json
import os
import warnings
from types import ModuleType
from typing import Mapping, Sequence

import torch
from torch import nn

from ..outputs import OutputSpec

__all__ = ["OnnxError", "DEFAULT_OPSET", "MIN_OPSET", "EXPORTERS", "INPUT_NAME", "INSTALL_HINT", "require",
           "export_onnx", "create_session", "OnnxRuntimeNetwork", "max_differences",
           "check_output_channels", "CONFIG_KEY", "META_KEY", "onnx_metadata", "read_onnx_metadata",
           "read_onnx_meta"]

DEFAULT_OPSET = 18
# ONNX's Resize reproduces PyTorch's nearest upsampling (the HRNet fuse layers) from opset 11 on.
MIN_OPSET = 11
EXPORTERS = ("torchscript", "dynamo")
INPUT_NAME = "image"
INSTALL_HINT = 'pip install -e ".[onnx]"'
# metadata_props keys: the config YAML, and the model meta (checkpoint/meta.py) as JSON.
CONFIG_KEY = "higherhrnet.config"
META_KEY = "higherhrnet.meta"
VERSION_KEY = "higherhrnet.version"


class OnnxError(RuntimeError):
    """ONNX export or onnxruntime cannot do what was asked; the message says what and why."""


def require(name: str) -> ModuleType:
    """Import `name` (onnx, onnxruntime, onnxscript); OnnxError with the install command if it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise OnnxError(f"{name} is needed for ONNX export / the onnxruntime backend but cannot be imported "
                        f"({e}); install the ONNX extras: {INSTALL_HINT}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def output_names(count: int) -> list[str]:
    return [f"output_{i}" for i in range(count)]


def _export_torchscript(model: nn.Module, example: torch.Tensor, names: list[str], opset: int) -> bytes:
    dynamic_axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    for i, name in enumerate(names):
        dynamic_axes[name] = {0: "batch", 2: f"height_{i}", 3: f"width_{i}"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx\.")
        torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=[INPUT_NAME], output_names=names,
                          dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True)
    return buffer.getvalue()


def _export_dynamo(model: nn.Module, example: torch.Tensor, names: list[str], opset: int):
    require("onnxscript")
    dim = torch.export.Dim.DYNAMIC
    program = torch.onnx.export(model, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=names,
                                dynamic_shapes=({0: dim, 2: dim, 3: dim},), opset_version=opset, verbose=False)
    return program.model_proto


def export_onnx(model: nn.Module, input_size: tuple[int, int] = (512, 512), opset: int = DEFAULT_OPSET,
                exporter: str = "torchscript", metadata: Mapping[str, str] | None = None) -> bytes:
    """The serialized ONNX model of eval-mode `model`, checked with onnx.checker.

    input_size (W, H): the example input traced (any size works afterwards: batch, height and width are
    dynamic). metadata: extra key/value strings stored in the model (e.g. the config YAML).
    Raises OnnxError when the export or the check fails.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter {exporter!r}: expected one of {list(EXPORTERS)}")
    if model.training:
        raise ValueError("export_onnx needs an eval-mode model; call model.eval() first")
    if opset < MIN_OPSET:
        raise OnnxError(f"opset {opset} is too old: nearest upsampling matches PyTorch from opset {MIN_OPSET} on")
    onnx = require("onnx")
    width, height = input_size
    parameter = next(model.parameters(), None)
    example = torch.zeros(1, 3, height, width, device=parameter.device if parameter is not None else "cpu")
    with torch.no_grad():
        outputs = model(example)
    if isinstance(outputs, torch.Tensor):
        outputs = [outputs]
    names = output_names(len(outputs))
    try:
        if exporter == "torchscript":
            proto = onnx.load_from_string(_export_torchscript(model, example, names, opset))
        else:
            proto = _export_dynamo(model, example, names, opset)
    except OnnxError:
        raise
    except Exception as e:  # the exporters raise many types (RuntimeError, torch.export errors, onnx errors ...)
        raise OnnxError(f"ONNX export ({exporter} exporter, opset {opset}) failed: {_first_line(e)}") from e
    strides = ",".join(str(height // output.shape[2]) for output in outputs)
    for key, value in {"higherhrnet.output_strides": strides, **(metadata or {})}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:  # onnx.checker.ValidationError, onnx.shape_inference.InferenceError
        raise OnnxError(f"the exported ONNX model fails onnx.checker: {_first_line(e)}") from e
    return proto.SerializeToString()


def onnx_metadata(meta: Mapping) -> dict[str, str]:
    """The metadata_props entries (for `export_onnx(metadata=...)`) that store a model meta (checkpoint/meta.py:
    format, version, config, keypoints, ...): its config YAML, its version and the whole meta as JSON."""
    entries = {META_KEY: json.dumps(dict(meta), sort_keys=True)}
    if isinstance(meta.get("config"), str):
        entries[CONFIG_KEY] = meta["config"]
    if meta.get("version") is not None:
        entries[VERSION_KEY] = str(meta["version"])
    return entries


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata_props of the ONNX model file `path` as a dict. Raises OnnxError when it is not one."""
    onnx = require("onnx")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise OnnxError(f"ONNX model not found: {path}")
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as e:  # google.protobuf DecodeError, onnx errors: no useful common base
        raise OnnxError(f"cannot read {path} as an ONNX model: {_first_line(e)}") from None
    return {entry.key: entry.value for entry in proto.metadata_props}


def read_onnx_meta(path: str | os.PathLike) -> dict:
    """What an exported model says it is: the model meta stored by `higherhrnet export` (format, version,
    config, keypoints, ...); for files that store only the config YAML, {"config": ..., "version": ...};
    {} for ONNX files exported by other tools. Raises OnnxError when `path` is not an ONNX model."""
    metadata = read_onnx_metadata(path)
    if META_KEY in metadata:
        try:
            meta = json.loads(metadata[META_KEY])
        except ValueError:
            meta = None
        if isinstance(meta, dict):
            return meta
    return {key: metadata[name] for key, name in (("config", CONFIG_KEY), ("version", VERSION_KEY)) if name in metadata}


def _providers(ort: ModuleType, device: torch.device) -> list:
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type == "cuda":
        available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            raise OnnxError(f"device {device} needs onnxruntime's CUDAExecutionProvider, which this onnxruntime "
                            f"build lacks (it has {', '.join(available)}); install onnxruntime-gpu instead of "
                            f"onnxruntime, or run on the CPU (device cpu, --device cpu)")
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    raise OnnxError(f"the onnxruntime backend runs on cpu or cuda, not on {device}")


def create_session(model: bytes | str | os.PathLike, device: str | torch.device = "cpu", threads: int | None = None):
    """An onnxruntime InferenceSession over serialized ONNX or a .onnx file.

    threads: intra-op threads (default: torch.get_num_threads(), as the torch backend uses). Full graph
    optimisation; the CPU execution provider, or CUDA's when device is cuda (an error if this onnxruntime
    has none).
    """
    ort = require("onnxruntime")
    device = torch.device(device)
    source = "the exported model" if isinstance(model, bytes) else os.fspath(model)
    if not isinstance(model, bytes):
        model = os.fspath(model)
        if not os.path.isfile(model):
            raise OnnxError(f"ONNX model not found: {model}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    # Idle onnxruntime threads otherwise spin for a while after each run, taking the cores from the
    # resizing and grouping that follow in PyTorch and NumPy.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.inter_op_num_threads = 1
    providers = _providers(ort, device)
    try:
        return ort.InferenceSession(model, options, providers=providers)
    except Exception as e:  # onnxruntime's pybind errors (InvalidProtobuf, Fail, ...) share no useful base
        raise OnnxError(f"onnxruntime cannot load {source}: {_first_line(e)}") from None


class OnnxRuntimeNetwork(nn.Module):
    """An onnxruntime session that behaves like the network it was exported from.

    forward(image (N, 3, H, W) float32) -> [output_0 (N, C_0, H_0, W_0), ...] as float32 torch tensors on
    the image's device. On the CPU, inputs and outputs are shared with NumPy without copies; with CUDA
    they pass through host memory. note: one line for the user about the model (how an int8 model was
    calibrated), or None.
    """

    def __init__(self, session, note: str | None = None):
        super().__init__()
        self.note = note
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise OnnxError(f"expected an ONNX model with one (N, 3, H, W) input, got "
                            f"{[(i.name, i.shape) for i in inputs]}")
        self.session = session
        self.input_name = inputs[0].name
        self.output_names = [output.name for output in session.get_outputs()]

    @property
    def metadata(self) -> dict[str, str]:
        """The model's metadata_props (export_onnx's metadata, onnx_metadata, an int8 model's calibration)."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    @property
    def output_channels(self) -> list[int | None]:
        """Channels of each output as the ONNX model declares them (None where not fixed)."""
        return [shape[1] if len(shape) == 4 and isinstance(shape[1], int) else None
                for shape in (output.shape for output in self.session.get_outputs())]

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        array = image.detach().to("cpu", torch.float32).contiguous().numpy()
        outputs = self.session.run(self.output_names, {self.input_name: array})
        return [torch.from_numpy(output).to(image.device) for output in outputs]


def max_differences(reference: nn.Module, network: nn.Module, input_size: tuple[int, int], batch_size: int = 1,
                    seed: int = 0) -> list[float]:
    """Max absolute difference per output between two networks on one random (N, 3, H, W) batch.

    input_size (W, H). The batch is drawn on the CPU and moved to the reference's device.
    """
    width, height = input_size
    batch = torch.randn(batch_size, 3, height, width, generator=torch.Generator().manual_seed(seed))
    parameter = next(reference.parameters(), None)
    if parameter is not None:
        batch = batch.to(parameter.device)
    with torch.inference_mode():
        expected, actual = reference(batch), network(batch)
    if len(expected) != len(actual):
        raise OnnxError(f"the networks disagree on the number of outputs: {len(expected)} and {len(actual)}")
    differences = []
    for i, (a, b) in enumerate(zip(expected, actual)):
        if a.shape != b.shape:
            raise OnnxError(f"output {i}: shape {tuple(b.shape)} instead of {tuple(a.shape)} at {width}x{height}")
        differences.append(float((a.float() - b.float()).abs().max()))
    return differences


def check_output_channels(network: OnnxRuntimeNetwork, outputs: Sequence[OutputSpec], source: str) -> None:
    """Raise OnnxError unless the ONNX model's outputs have the channels the output specs describe."""
    expected = [spec.channels for spec in outputs]
    channels = network.output_channels
    if len(channels) != len(expected) or any(c is not None and c != e for c, e in zip(channels, expected)):
        raise OnnxError(f"{source} has outputs with {channels} channels but the config's network has "
                        f"{list(expected)}; export it with the same config (tools/export_onnx.py)")
