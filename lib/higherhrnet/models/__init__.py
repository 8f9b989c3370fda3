from .build import build_model, output_targets
from .higher_hrnet import HigherHRNet, init_weights
from .hourglass import HourglassAE
from .hrnet import HRNet, StageSpec

__all__ = ["build_model", "output_targets", "HigherHRNet", "HourglassAE", "HRNet", "StageSpec", "init_weights"]
