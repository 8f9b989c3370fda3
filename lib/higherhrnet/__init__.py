"""higherhrnet: bottom-up multi-person pose estimation with HigherHRNet.

Public API (stable names):
    get_cfg(), load_cfg(path, opts=())   configuration (yacs)
    build_model(cfg)                     the network of a config
    load_checkpoint(model, path)         official or our checkpoints, loaded safely
    KeypointSpec, COCO_KEYPOINTS         joint names, flip pairs, sigmas, skeleton
    Predictor.from_config(cfg, weights)(image)   people in an image (also Predictor(cfg, weights))
    build_dataset(cfg, is_train=True)    COCO-format training / evaluation data
    build_loss(cfg)                      heatmap + associative-embedding losses per output
"""
from .checkpoint import CheckpointError, load_checkpoint, save_model
from .config import ConfigError, get_cfg, load_cfg
from .core.loss import build_loss
from .data import build_dataset
from .keypoints import COCO_KEYPOINTS, KeypointSpec
from .models import build_model
from .predictor import Person, Predictor

__version__ = "0.1.0"

__all__ = [
    "get_cfg", "load_cfg", "build_model", "load_checkpoint", "Predictor", "Person", "build_dataset", "build_loss", "save_model", "KeypointSpec", "COCO_KEYPOINTS",
    "ConfigError", "CheckpointError", "__version__",
]
