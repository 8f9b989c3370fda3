from .build import build_model, model_output_channels, output_targets
from .fuse import ChannelsLast, count_batchnorm, fold_batchnorm
from .higher_hrnet import HigherHRNet, init_weights
from .hourglass import HourglassAE
from .hrnet import HRNet, StageSpec

__all__ = ["build_model", "output_targets", "model_output_channels", "fold_batchnorm", "count_batchnorm",
           "ChannelsLast", "HigherHRNet", "HourglassAE", "HRNet", "StageSpec", "init_weights"]
