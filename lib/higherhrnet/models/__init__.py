from .build import build_model
from .higher_hrnet import HigherHRNet, init_weights
from .hrnet import HRNet, StageSpec

__all__ = ["build_model", "HigherHRNet", "HRNet", "StageSpec", "init_weights"]
