"""int8 on the CPU: onnxruntime's static quantization of an exported network, calibrated on images, cached.

    calibration = Calibration(source, key, batches)                 # what to calibrate on (higherhrnet.calibration)
    model = int8_model(network, calibration)                        # Int8Model: QDQ ONNX bytes, cached
    net = OnnxRuntimeNetwork(create_session(model.data), note=model.note)

The float network is exported (onnx.py), run in onnxruntime on the calibration inputs, and quantized with
onnxruntime.quantization.quantize_static in the QDQ format: weights int8, per output channel, in 7 bits
(`reduce_range`: x86 CPUs without VNNI multiply uint8 by int8 into 16-bit sums that saturate with full 8-bit
weights), activations uint8 with the ranges seen in calibration (MinMax). onnxruntime fuses the QDQ pairs into
QLinearConv / QLinearAdd kernels, the nearest-neighbour upsamplings move uint8 values, and the deconvolution
runs in float between a dequantize and a quantize. BENCHMARKS.md ("int8 on the CPU") has the measurements
behind these choices and what else was tried.

Quantizing takes seconds to minutes, so the result is cached: <cache_dir()>/int8/<key hash>.onnx (zoo.py's
cache folder, $HIGHERHRNET_CACHE to move it), written atomically. The key holds the network (a digest of its
weights and layout, or of the ONNX file), the calibration (its images and the test-time inputs made of them),
the settings and the versions of this package and onnxruntime: changing any of them quantizes again. The
model's metadata_props hold the calibration and settings as JSON ("higherhrnet.int8"), so a quantized file
says what it is wherever it goes (`higherhrnet export --int8`).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from ..fileio import WriteError, write_bytes
from ..version import __version__
from ..zoo import cache_dir
from .fuse import fold_batchnorm
from .onnx import INPUT_NAME, OnnxError, OnnxRuntimeNetwork, create_session, export_onnx, require

__all__ = ["INT8_KEY", "CALIBRATION_METHODS", "Int8Settings", "Calibration", "Int8Model", "int8_model",
           "int8_model_of_file", "calibrate_and_quantize", "quantize_onnx", "network_digest", "int8_cache_file",
           "int8_note"]

logger = logging.getLogger(__name__)

# metadata_props key of a quantized model: its settings and calibration, as JSON.
INT8_KEY = "higherhrnet.int8"
# No "entropy": quantize_static runs it with as many histogram bins as quantized ones, which gives MinMax's
# ranges, and with the usual 2048 bins its KL-divergence thresholds cut the rare heatmap peaks off (the bundled
# model then found nobody on the synthetic val split; BENCHMARKS.md).
CALIBRATION_METHODS = ("minmax", "percentile")
# Part of the cache key: raise it when quantize_onnx changes what it makes from the same inputs.
RECIPE = 1


@dataclass(frozen=True)
class Int8Settings:
    """How to quantize. images: calibration images. method: how activation ranges are chosen from what
    calibration saw: "minmax" (the whole range) or "percentile" (onnxruntime's: 99.999% of the values of a
    2048-bin histogram, clipping outliers). per_channel: a weight scale per output channel (else one per
    layer). reduce_range: 7-bit weights (see the module docstring). keep_float: node-name fragments whose nodes
    stay float (e.g. "final_layers", the heatmap and tag convolutions)."""

    images: int = 16
    method: str = "minmax"
    per_channel: bool = True
    reduce_range: bool = True
    keep_float: tuple[str, ...] = ()

    def __post_init__(self):
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(f"int8 calibration method {self.method!r}: expected one of {list(CALIBRATION_METHODS)}")
        if self.images < 1:
            raise ValueError(f"int8 calibration needs at least one image, got {self.images}")

    def describe(self) -> str:
        kept = f", {', '.join(self.keep_float)} kept float" if self.keep_float else ""
        weights = "per-channel" if self.per_channel else "per-layer"
        bits = "7-bit" if self.reduce_range else "8-bit"
        return f"{self.method} ranges, {weights} {bits} weights{kept}"


@dataclass(frozen=True)
class Calibration:
    """What a network is calibrated on. source: where the images come from, in words (stored in the model and
    shown to the user). key: what identifies them and the inputs made of them (JSON-able; part of the cache
    key). batches(network): the network inputs (N, 3, H, W) float32, as the test pipeline feeds them to
    `network` (any module taking and returning what the float network does). settings: how to quantize."""

    source: str
    key: Mapping
    batches: Callable[[nn.Module], Iterable[np.ndarray]] = field(compare=False)
    settings: Int8Settings = Int8Settings()


@dataclass(frozen=True)
class Int8Model:
    """A quantized model. data: serialized ONNX. path: its file in the cache. cached: read from the cache
    (else quantized now, in `seconds`)."""

    data: bytes
    path: str
    cached: bool
    seconds: float = 0.0

    @property
    def note(self) -> str:
        """One line for the user: how the model was calibrated and where it is cached."""
        how = "from the cache" if self.cached else f"quantized in {self.seconds:.0f} s"
        return f"{int8_note(_metadata(self.data))} ({how}: {self.path})"


def int8_note(metadata: Mapping[str, str]) -> str | None:
    """What a quantized model's metadata_props (`metadata`) say about it, in one line; None for a float model."""
    try:
        info = json.loads(metadata[INT8_KEY])
    except (KeyError, ValueError):
        return None
    return f"int8: calibrated on {info.get('source', 'unknown images')}; {info.get('settings_text', '')}".rstrip("; ")


def network_digest(model: nn.Module) -> str:
    """sha256 of what a network computes from: its class, and every parameter and buffer (name, dtype, shape,
    values), in state-dict order."""
    digest = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def int8_cache_file(network_key: str, calibration: Calibration) -> str:
    """The cache file of the int8 model of the network `network_key` names (network_digest, or the sha256 of
    its ONNX file) calibrated as `calibration` says, with this package's and onnxruntime's versions."""
    ort = require("onnxruntime")
    key = {"network": network_key, "calibration": dict(calibration.key), "settings": asdict(calibration.settings),
           "recipe": RECIPE, "higherhrnet": __version__, "onnxruntime": ort.__version__}
    text = json.dumps(key, sort_keys=True)
    return os.path.join(cache_dir(), "int8", hashlib.sha256(text.encode()).hexdigest()[:32] + ".onnx")


def int8_model(model: nn.Module, calibration: Calibration, export_size: tuple[int, int] = (512, 512)) -> Int8Model:
    """The quantized model of eval-mode `model` (BatchNorm folded, exported at export_size (W, H); any input
    size runs), from the cache or quantized now and cached."""
    return _cached(network_digest(model), calibration,
                   lambda: export_onnx(fold_batchnorm(model), input_size=export_size))


def int8_model_of_file(path: str | os.PathLike, calibration: Calibration) -> Int8Model:
    """The quantized model of the float ONNX file `path` (`higherhrnet export`), from the cache or quantized now.
    OnnxError for a file that is already quantized: run it as it is (backend onnxruntime)."""
    with open(path, "rb") as f:
        data = f.read()
    if INT8_KEY in _metadata(data):
        raise OnnxError(f"{os.fspath(path)} is already an int8 model: run it with the onnxruntime backend")
    return _cached(hashlib.sha256(data).hexdigest(), calibration, lambda: data)


def _cached(network_key: str, calibration: Calibration, export: Callable[[], bytes]) -> Int8Model:
    path = int8_cache_file(network_key, calibration)
    if os.path.isfile(path):
        with open(path, "rb") as f:
            data = f.read()
        if INT8_KEY in _metadata(data):
            return Int8Model(data, path, cached=True)
        logger.warning("the cached int8 model %s is damaged: quantizing again", path)
    start = time.perf_counter()
    data = calibrate_and_quantize(export(), calibration)
    seconds = time.perf_counter() - start
    try:
        write_bytes(data, path)
    except WriteError as e:
        # A read-only or full cache costs the next run the quantization again, nothing else.
        logger.warning("the int8 model is not cached: %s", e)
    return Int8Model(data, path, cached=False, seconds=seconds)


def calibrate_and_quantize(model: bytes, calibration: Calibration) -> bytes:
    """The int8 model of the float ONNX `model` (serialized; its metadata is kept), calibrated as `calibration`
    says on the inputs it makes with `model` run in onnxruntime."""
    # Read first, so that an unreadable calibration image is reported as itself, not as a quantizer error.
    batches = list(calibration.batches(OnnxRuntimeNetwork(create_session(model))))
    return quantize_onnx(model, batches, calibration.settings, calibration.source)


def quantize_onnx(model: bytes, batches: Iterable[np.ndarray], settings: Int8Settings = Int8Settings(),
                  source: str = "") -> bytes:
    """The serialized QDQ int8 model of the float ONNX `model` (one input, "image"), activation ranges
    calibrated on `batches` ((N, 3, H, W) float32 each; any sizes), as `settings` say. source: the calibration
    images in words, stored in the model's metadata with the settings (INT8_KEY)."""
    onnx = require("onnx")
    quantization = require("onnxruntime.quantization")
    proto = onnx.load_from_string(model)
    _unshare_initializers(proto)
    keep = [node.name for node in proto.graph.node if any(part in node.name for part in settings.keep_float)]
    method = {"minmax": quantization.CalibrationMethod.MinMax,
              "percentile": quantization.CalibrationMethod.Percentile}[settings.method]
    with tempfile.TemporaryDirectory(prefix="higherhrnet-int8-") as folder:
        # quantize_static wants files: a ModelProto of a large network goes through its external-data path,
        # which fails for models the exporter wrote in one piece.
        source_path, output_path = os.path.join(folder, "float.onnx"), os.path.join(folder, "int8.onnx")
        with open(source_path, "wb") as f:
            f.write(proto.SerializeToString())
        try:
            with _quiet_quantizer():
                quantization.quantize_static(
                    source_path, output_path, _calibration_reader(batches, quantization.CalibrationDataReader),
                    quant_format=quantization.QuantFormat.QDQ, activation_type=quantization.QuantType.QUInt8,
                    weight_type=quantization.QuantType.QInt8, per_channel=settings.per_channel,
                    reduce_range=settings.reduce_range, nodes_to_exclude=keep, calibrate_method=method)
        except Exception as e:  # onnxruntime's quantizer raises many types (ValueError, onnx errors, pybind)
            raise OnnxError(f"int8 quantization failed: {type(e).__name__}: {str(e).strip()[:300]}") from e
        quantized = onnx.load(output_path)
    onnx.checker.check_model(quantized)
    info = {"source": source, "settings": asdict(settings), "settings_text": settings.describe()}
    entry = quantized.metadata_props.add()
    entry.key, entry.value = INT8_KEY, json.dumps(info, sort_keys=True)
    return quantized.SerializeToString()


def _unshare_initializers(proto) -> None:
    """Give every node its own initializers: the TorchScript exporter shares equal ones through Identity nodes
    (all the zero biases that untrained BatchNorm layers fold into), and the quantizer quantizes only biases that
    are initializers, leaving those convolutions in float between a dequantize and a quantize (HigherHRNet-W32
    with random weights: 91 of 302)."""
    onnx = require("onnx")
    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    outputs = {output.name for output in proto.graph.output}
    nodes = []
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers and node.output[0] not in outputs:
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[node.input[0]])
            copy.name = node.output[0]
            proto.graph.initializer.append(copy)
        else:
            nodes.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


def _calibration_reader(batches: Iterable[np.ndarray], base: type):
    """An onnxruntime CalibrationDataReader over `batches` (made here: onnxruntime is imported when used)."""

    class Reader(base):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)}

    return Reader()


class _DropPreprocessingAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_quantizer():
    """quantize_static logs (on the root logger) that the model should be pre-processed first, which its symbolic
    shape inference cannot do for a network of dynamic height and width (and QDQ quantizes every convolution
    without it); its histogram calibration prints its progress. Neither is for our users."""
    drop = _DropPreprocessingAdvice()
    logging.getLogger().addFilter(drop)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.getLogger().removeFilter(drop)


def _metadata(data: bytes) -> dict[str, str]:
    onnx = require("onnx")
    try:
        proto = onnx.load_from_string(data)
    except Exception:  # google.protobuf DecodeError: a damaged file
        return {}
    return {entry.key: entry.value for entry in proto.metadata_props}
