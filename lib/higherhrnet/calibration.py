"""What an int8 model is calibrated on: images of the model's own dataset, fed to the network as test time feeds it.

    calibration = int8_calibration(cfg, params)       # models.quantize.Calibration
    network = prepare_network(model, device, "onnxruntime-int8", calibration=calibration)

The images: `settings.images` images of the config's test split (DATASET.ROOT, DATASET.TEST), evenly spaced
over it, when that split is there; otherwise as many scenes of the synthetic validation split
(`higherhrnet make-synthetic`'s val images, rendered in memory), which is the bundled model's own data but
only stick figures for a model of photos (the calibration's `source` says which, and the commands print it).
The network inputs are those the test pipeline makes of them (inference.run_network: every test scale and,
with flip test, the mirror), so activation ranges are measured on what the network will see.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .config import CfgNode
from .data import build_dataset, dataset_splits
from .data.registry import dataset_info
from .data.synthetic import SyntheticSpec, render_scene
from .inference import InferenceParams, run_network
from .models.quantize import Calibration, Int8Settings

__all__ = ["int8_calibration", "pipeline_inputs", "synthetic_val_scenes"]

# The seed and split index of `higherhrnet make-synthetic`'s val split (data/synthetic.write_synthetic_coco's
# defaults: seed 0, splits train then val).
_SYNTHETIC_SEED, _SYNTHETIC_VAL = 0, 1


def int8_calibration(cfg: CfgNode, params: InferenceParams, settings: Int8Settings = Int8Settings()) -> Calibration:
    """The calibration of cfg's network for the int8 backend: images as the module docstring says, inputs made
    by the test pipeline of `params`. Nothing is read until the calibration runs (a cache miss); the cache
    key names the split's annotation file with its size and time, or the synthetic scenes."""
    count = settings.images
    root, split = cfg.DATASET.ROOT, dataset_splits(cfg)[1]
    info = dataset_info(cfg.DATASET.DATASET_TEST)
    annotations, image_dir = info.paths(root, split)
    if info.layout == "coco" and os.path.isfile(annotations) and os.path.isdir(image_dir):
        stat = os.stat(annotations)
        source = f"{count} images of the {split} split of {root} (DATASET.ROOT)"
        key = {"images": os.path.realpath(annotations), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}

        def images() -> list[np.ndarray]:
            return _split_images(cfg, count)
    else:
        photos = dataset_info(cfg.DATASET.DATASET).real_people
        advice = ("; stick figures, not photos: for this model set DATASET.ROOT to its dataset" if photos else "")
        source = f"{count} scenes of the synthetic val split (the config's DATASET.ROOT has no {split} split{advice})"
        key = {"images": "synthetic val", "seed": _SYNTHETIC_SEED}

        def images() -> list[np.ndarray]:
            return synthetic_val_scenes(count)
    key.update(count=count, input_size=params.input_size, scale_factors=list(params.scale_factors),
               flip_test=params.flip_test, mean=params.mean, std=params.std)
    return Calibration(source, key, lambda network: pipeline_inputs(network, images(), params), settings)


def synthetic_val_scenes(count: int) -> list[np.ndarray]:
    """The first `count` images of `higherhrnet make-synthetic`'s val split, (H, W, 3) uint8 RGB, as rendered
    (before the JPEG compression of the written files)."""
    spec = SyntheticSpec()
    return [render_scene(np.random.default_rng((_SYNTHETIC_SEED, _SYNTHETIC_VAL, i)), spec)[0] for i in range(count)]


def _split_images(cfg: CfgNode, count: int) -> list[np.ndarray]:
    """`count` images of cfg's test split, evenly spaced over it (all of them when it holds fewer)."""
    dataset = build_dataset(cfg, is_train=False)
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int))
    return [dataset[int(i)][0] for i in indices]


class _Recorder(nn.Module):
    """`network`, keeping a copy of every input it is given."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.inputs: list[np.ndarray] = []

    def forward(self, batch: torch.Tensor):
        self.inputs.append(batch.detach().to("cpu", torch.float32).numpy().copy())
        return self.network(batch)


def pipeline_inputs(network: nn.Module, images: Sequence[np.ndarray], params: InferenceParams) -> list[np.ndarray]:
    """The inputs (1, 3, H, W) float32 the test pipeline gives `network` for each (H, W, 3) uint8 RGB image, one
    image at a time as predict runs: every test scale and, with flip test, the mirrored input."""
    recorder = _Recorder(network)
    for image in images:
        run_network(recorder, [image], params)
    return recorder.inputs
