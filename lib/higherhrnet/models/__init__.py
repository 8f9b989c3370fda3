from .build import build_model, model_output_channels
from .fuse import count_batchnorm, fold_batchnorm
from .higher_hrnet import HigherHRNet, init_weights
from .hrnet import HRNet, StageSpec

__all__ = ["build_model", "model_output_channels", "fold_batchnorm", "count_batchnorm", "HigherHRNet", "HRNet",
           "StageSpec", "init_weights"]
