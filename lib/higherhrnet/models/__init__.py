from .ae_hourglass import AEHourglassNet
from .registry import MODELS, ModelEntry, build_model, build_output_specs, model_entry
from .fuse import ChannelsLast, count_batchnorm, fold_batchnorm
from .higher_hrnet import HigherHRNet, init_weights
from .hourglass import ResidualHourglassNet
from .hrnet import HRNet, StageSpec
from .runtime import BACKENDS, load_onnx_network, prepare_network

__all__ = ["build_model", "build_output_specs", "model_entry", "MODELS", "ModelEntry", "fold_batchnorm", "count_batchnorm", "ChannelsLast", "HigherHRNet", "AEHourglassNet",
           "ResidualHourglassNet", "HRNet", "StageSpec", "init_weights", "BACKENDS", "prepare_network",
           "load_onnx_network"]
