"""Predictor: images, folders, URLs and videos in, people out.

    predictor = higherhrnet.Predictor("synthetic_w16_256")   # a registered name, a model file or a URL;
    result = predictor("photo.jpg")                          # Predictor() alone: COCO weights by name
    result.plot(); result.save("photo_pose.jpg"); result.to_json(); result[0]["left_wrist"]
    results = predictor("photos/")                           # folders, globs, lists: a list of Results
    for frame in predictor("clip.mp4"): ...                  # videos and webcams (0): a Result per frame

Results are cleaned by default, exactly as `higherhrnet predict` shows them (people scoring at least 0.2, no
duplicate poses, joints kept inside the image: `CLEAN`); `raw=True` keeps every grouped person as the
official evaluation does (`RAW`). Arrays are taken as RGB: pass channels="bgr" for OpenCV's cv2.imread
arrays.

refine=<top-down model> (a registered name such as pose_hrnet_w32_256x192, or a model file) runs a top-down
network (MODEL.NAME pose_hrnet) on each person the bottom-up model finds (`TopDownRefiner`): the person's joints
give a box (topdown.boxes_from_poses), the top-down pipeline gives the person's joints anew, and the person's
score becomes the bottom-up score x the mean of the new joint values above TEST.IN_VIS_THRE (the official
rescoring, the bottom-up score standing for the detector's). A top-down model alone is refused: it needs boxes.

A Predictor is a thin object around a ready network, the test-time parameters and the keypoint set;
`from_config(cfg, weights)` (and, as in the first releases, `Predictor(cfg, weights, ...)`) builds those from a
config, `from_model(cfg, network)` from a network in memory.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .calibration import int8_calibration
from .checkpoint import load_checkpoint, read_model_meta
from .config import CfgNode, load_cfg
from .data.registry import dataset_info, keypoints_from_config
from .devices import resolve_device
from .errors import ConfigError
from .geometry import multi_scale_size
from .images import image_size, read_image_reduced, uint16_to_uint8
from .inference import ImageMaps, InferenceParams, decode_people, run_network
from .keypoints import KeypointSpec
from .models import BACKENDS, build_model, build_output_specs, load_onnx_network, prepare_network
from .models.onnx import OnnxRuntimeNetwork, read_onnx_meta
from .models.registry import model_entry
from .models.quantize import INT8_KEY
from .models.runtime import INT8_BACKEND, check_backend
from .oks import oks_nms
from .results import Person, Result
from .sources import Source, collect_sources, local_file
from .streaming import run_stages
from .threads import CallThreads, check_threads
from .topdown import TopDownParams, boxes_from_poses, estimate_poses, rescore
from .tracking import PoseTracker
from .video import Frame, VideoSource

__all__ = ["Person", "Result", "Predictor", "BACKENDS", "DEFAULT_MAX_INPUT_PIXELS", "DEFAULT_MAX_IMAGE_PIXELS",
           "CLEAN", "RAW", "SyntheticModelWarning", "TopDownRefiner", "as_rgb_image", "synthetic_model_note"]

logger = logging.getLogger("higherhrnet")

# About 36 times a 512 x 512 input: a few GB of activations for HigherHRNet-W32.
DEFAULT_MAX_INPUT_PIXELS = 3072 * 3072
# Image files larger than this are read reduced (JPEG) or refused (images.read_image_reduced); people are
# still reported in the full image's pixels.
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000

# The default: what `higherhrnet predict` shows. People scoring at least 0.2 (the mean of their joint values),
# duplicates (OKS above 0.5 with a higher-scoring person) removed, joints that fall outside the image moved
# onto its nearest pixel with value 0.
CLEAN = {"min_score": 0.2, "oks_nms_threshold": 0.5, "clip_to_image": True}
# raw=True: every grouped person as the grouping placed it, as the official evaluation does (AP counts on
# low-scoring people too); `higherhrnet eval` and validation during training use it.
RAW = {"min_score": 0.0, "oks_nms_threshold": None, "clip_to_image": False}

_OPTIONS = ("min_score", "oks_nms_threshold", "clip_to_image")


class SyntheticModelWarning(UserWarning):
    """The model was trained on the synthetic stick figures, not on photos of people."""


def _filters(raw: bool, given: Mapping) -> dict:
    """The preset (CLEAN, or RAW with raw=True) with the filter options given explicitly (not None) on top;
    oks_nms_threshold=0 turns duplicate removal off."""
    options = dict(RAW if raw else CLEAN)
    options.update({k: v for k, v in given.items() if k in _OPTIONS and v is not None})
    if options["oks_nms_threshold"] == 0:
        options["oks_nms_threshold"] = None
    return options


def require_bottom_up(cfg: CfgNode) -> None:
    """ConfigError when cfg's network is top-down: it cannot find people on its own (the check runs before any
    download of the weights)."""
    if model_entry(cfg.MODEL.NAME).top_down:
        raise ConfigError(f"MODEL.NAME {cfg.MODEL.NAME} is a top-down model: it estimates the pose of a person in a "
                          f"given box and cannot find people alone; use it to refine a bottom-up model's people "
                          f"(higherhrnet predict --refine MODEL; in Python the Predictor's refine option), or score "
                          f"it on ground-truth or detector boxes with higherhrnet eval")


def require_top_down(cfg: CfgNode) -> None:
    """ConfigError unless cfg's network is top-down (what refine= needs)."""
    if not model_entry(cfg.MODEL.NAME).top_down:
        raise ConfigError(f"refine: MODEL.NAME {cfg.MODEL.NAME} is a bottom-up model; refinement needs a top-down "
                          f"one (MODEL.NAME pose_hrnet, e.g. pose_hrnet_w32_256x192)")


@dataclass(frozen=True)
class TopDownRefiner:
    """A top-down network (eval mode) with its test-time parameters, run on the people another model found.
    name: the model's name, for describe()."""

    network: nn.Module
    params: TopDownParams
    name: str | None = None

    @classmethod
    def load(cls, model: str | os.PathLike, device: str | torch.device | None = None,
             keypoints: KeypointSpec | None = None, progress: bool = True) -> "TopDownRefiner":
        """The refiner of a registered name, a model file or a URL (hub.resolve_model); ConfigError for a
        bottom-up model, before any download when the name is registered."""
        from .hub import resolve_model

        resolved = resolve_model(model, None, (), progress=progress, check=require_top_down)
        cfg = resolved.cfg
        network = build_model(cfg)
        load_checkpoint(network, resolved.weights)
        network = network.to(resolve_device(device)).eval()
        params = TopDownParams.from_config(cfg, keypoints or keypoints_from_config(cfg))
        return cls(network, params, resolved.name or os.path.basename(resolved.weights))

    def refine(self, image: np.ndarray, people: Sequence[Person], clip_to_image: bool = False) -> list[Person]:
        """The same people, in their order, their joints from the top-down network on boxes around their joints
        (topdown.boxes_from_poses) and their scores rescored (topdown.rescore with the people's scores as box
        scores); tags and names kept. image: (H, W, 3) uint8 RGB, the people's frame. clip_to_image: joints
        outside the image are moved onto its nearest pixel with value 0 before rescoring; a person with no
        joint left inside is dropped."""
        if not people:
            return []
        boxes = boxes_from_poses(np.stack([p.keypoints for p in people]))
        keypoints = estimate_poses(self.network, image, boxes, self.params).keypoints.astype(np.float32)
        inside = np.ones(keypoints.shape[:2], dtype=bool)
        if clip_to_image:
            height, width = image.shape[:2]
            xs, ys = keypoints[..., 0], keypoints[..., 1]
            inside = (xs >= -0.5) & (xs <= width - 0.5) & (ys >= -0.5) & (ys <= height - 0.5)
            keypoints[..., 0] = np.where(inside, xs, np.clip(xs, 0, width - 1))
            keypoints[..., 1] = np.where(inside, ys, np.clip(ys, 0, height - 1))
            keypoints[..., 2] = np.where(inside, keypoints[..., 2], 0)
        scores = rescore(keypoints, [p.score for p in people], self.params.in_vis_thre)
        return [Person(keypoints=k, score=float(score), tags=p.tags, names=p.names)
                for p, k, score, seen in zip(people, keypoints, scores, inside) if seen.any()]


class Predictor:
    """Multi-person pose estimation with a ready network.

    The usual ways to make one:
        Predictor(model=None, *, cfg=None, opts=(), device=None, raw=False, ...)   model: a registered name
            (`higherhrnet weights` lists them), a model file (.pth this toolkit wrote, or official / mmpose /
            SWAHR weights of a registered model; .onnx exported by this toolkit) or an http(s) URL; None: the
            default COCO weights, downloaded once (the bundled demo model where they cannot be had, with a
            line saying so). The config comes from the model file or the registry; cfg (a YAML path or
            CfgNode) and opts (KEY VALUE overrides) replace or adjust it.
        Predictor.from_config(cfg, weights, ...), Predictor(cfg, weights, ...): a config and its weights.
        Predictor.from_model(cfg, network, ...): a network in memory.
        Predictor(network, params, keypoints, device=None, ...): a ready network, test-time parameters
            (inference.InferenceParams) and the keypoint set, as they are.

    Options everywhere: raw=False gives clean results (`CLEAN`), raw=True the official unfiltered ones
    (`RAW`); min_score (drop people scoring below it), oks_nms_threshold (drop a person whose OKS with a
    better one exceeds it; 0 or None with raw: off) and clip_to_image (a joint outside the image is moved onto
    its nearest pixel with value 0, the person's score losing that joint's share; a person with no joint left
    inside is dropped) override the preset one by one. device: where inputs go (from_config / from_model /
    model: the network is moved there; default CUDA when available, else the CPU: devices.resolve_device;
    a ready network: where its parameters are). max_input_pixels: refuse images whose network input (largest
    test scale) would exceed this many pixels, instead of running out of memory (only extreme aspect ratios
    reach it). max_image_pixels: image files larger than this are read reduced (JPEG) or refused.
    accept_damaged: use a JPEG file whose compressed data is corrupt (an interrupted download, a bad sector) as
    libjpeg decodes it, a different picture; by default it is refused (images.DamagedImageError). meta: what
    the weights say about themselves (checkpoint.read_model_meta: dataset, keypoints, metrics, ...; {} when
    unknown). name: the model's name, for results' JSON. refine: a top-down model (a registered name, a
    model file, a URL, or a TopDownRefiner) that re-estimates each person found (the module's docstring says
    how); the filters apply to the bottom-up people, then the refined ones are re-sorted and clipped.
    threads: the CPU threads PyTorch uses in every call (and an onnxruntime session's threads); None (the
    default): torch.get_num_threads() where idle OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE, as the command
    line sets it), else, at each call (each frame of a video), one per CPU that other processes left free, at
    most that many (threads.CallThreads; docs/performance.md); an onnxruntime session, whose threads never
    spin, gets torch.get_num_threads(). PyTorch's count is set back after each call.
    """

    def __init__(self, model=None, params: InferenceParams | None = None, *args, **kwargs):
        if isinstance(model, nn.Module):
            names = ("keypoints", "device")
        elif _is_config(model):
            # The first releases' Predictor(cfg, weights, device, opts, keypoints, oks_nms_threshold).
            names = ("device", "opts", "keypoints", "oks_nms_threshold")
        else:
            if params is not None or args:
                raise TypeError("Predictor takes one positional argument, the model (a registered name, a model "
                                "file or a URL); pass the other options by name")
            self._init(**_from_model_source(model, **kwargs))
            return
        if len(args) > len(names):
            raise TypeError(f"Predictor takes at most {len(names) + 2} positional arguments")
        for name, value in zip(names, args):
            if name in kwargs:
                raise TypeError(f"Predictor got multiple values for argument {name!r}")
            kwargs[name] = value
        if isinstance(model, nn.Module):
            unknown = set(kwargs) - {"keypoints", "device", "max_input_pixels", "max_image_pixels", "accept_damaged",
                                     "meta", "name", "raw", "refine", "threads", *_OPTIONS}
            if unknown:
                raise TypeError(f"unexpected arguments {sorted(unknown)}: they are options of Predictor.from_config, "
                                f"for building a network from a config")
            self._init(model, params, **kwargs)
        else:
            self._init(**_from_config(model, params, **kwargs))

    def _init(self, network: nn.Module, params: InferenceParams, keypoints: KeypointSpec | None = None,
              device: str | torch.device | None = None, raw: bool = False, min_score: float | None = None,
              oks_nms_threshold: float | None = None, clip_to_image: bool | None = None,
              max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
              accept_damaged: bool = False, meta: Mapping | None = None, name: str | None = None,
              refine: "TopDownRefiner | str | os.PathLike | None" = None, threads: int | None = None) -> None:
        if not isinstance(params, InferenceParams) or not isinstance(keypoints, KeypointSpec):
            raise TypeError("Predictor(network, params, keypoints): params must be InferenceParams and keypoints a "
                            "KeypointSpec (or use Predictor.from_config)")
        self.network = network
        self.params = params
        self.keypoints = keypoints
        self.threads = CallThreads(threads)
        self.device = _network_device(network) if device is None else resolve_device(device)
        options = _filters(raw, {"min_score": min_score, "oks_nms_threshold": oks_nms_threshold,
                                 "clip_to_image": clip_to_image})
        self.min_score = float(options["min_score"])
        self.oks_nms_threshold = options["oks_nms_threshold"]
        self.clip_to_image = bool(options["clip_to_image"])
        self.max_input_pixels = max_input_pixels
        self.max_image_pixels = max_image_pixels
        self.accept_damaged = bool(accept_damaged)
        self.meta = dict(meta or {})
        self.name = name
        if refine is not None and not isinstance(refine, TopDownRefiner):
            refine = TopDownRefiner.load(refine, self.device, keypoints)
        if refine is not None and len(refine.params.flip_index) != keypoints.num_joints:
            raise ConfigError(f"refine: the top-down model has {len(refine.params.flip_index)} joints, the "
                              f"keypoint set {keypoints.name!r} has {keypoints.num_joints}")
        self.refiner = refine
        note = synthetic_model_note(self.meta)
        if note:
            warnings.warn(note, SyntheticModelWarning, stacklevel=_outside_the_package())

    @classmethod
    def from_config(cls, cfg: CfgNode | str | os.PathLike | None, weights: str | os.PathLike | Mapping,
                    device: str | torch.device | None = None, opts: Sequence[str] = (),
                    keypoints: KeypointSpec | None = None, oks_nms_threshold: float | None = None, *,
                    backend: str = "torch", fold_bn: bool = True, threads: int | None = None,
                    onnx_threads: int | None = None, raw: bool = False, min_score: float | None = None,
                    clip_to_image: bool | None = None, max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
                    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, accept_damaged: bool = False,
                    name: str | None = None, refine=None) -> "Predictor":
        """A Predictor for a trained network of a config.

        cfg: a config (CfgNode) or the path of an experiment YAML file; opts: KEY VALUE overrides when it
        is a path; None: the config the weights bring (a model file this toolkit wrote or exported, or
        registered weights: as Predictor(weights)). weights: path of a checkpoint (any layout `load_checkpoint` accepts) or a loaded state
        dict; with the onnxruntime backends also a .onnx file (`higherhrnet export`). keypoints: default the
        config's set. backend "torch" (default), "onnxruntime" (the checkpoint is exported to ONNX in memory
        first, which takes seconds) or "onnxruntime-int8" (that export quantized to int8 for the CPU,
        calibrated on images of the config's test split, else synthetic scenes: calibration.int8_calibration;
        cached, so that only the first run spends the seconds to minutes it takes); fold_bn: torch backend,
        run a BatchNorm-folded copy (default; same outputs up to float rounding, faster), False runs the
        network tensor operation for tensor operation as the reference. threads, onnx_threads (its earlier
        name): as the class says. The Predictor's `meta` is the checkpoint's (read_model_meta; {} for official
        weights and ONNX files). Filter options (raw, min_score, ...) as the class says.
        """
        options = dict(raw=raw, min_score=min_score, oks_nms_threshold=oks_nms_threshold, clip_to_image=clip_to_image,
                       max_input_pixels=max_input_pixels, max_image_pixels=max_image_pixels,
                       accept_damaged=accept_damaged, refine=refine, threads=threads, onnx_threads=onnx_threads)
        if cfg is None:
            if isinstance(weights, Mapping):
                raise ValueError("weights given as a state dict carry no config: pass cfg (a YAML path or CfgNode)")
            return cls._from_parts(**_from_model_source(weights, opts=opts, device=device, keypoints=keypoints,
                                                        backend=backend, fold_bn=fold_bn, **options))
        return cls._from_parts(**_from_config(cfg, weights, device, opts, keypoints, backend=backend, fold_bn=fold_bn,
                                             name=name, **options))

    @classmethod
    def _from_parts(cls, **parts) -> "Predictor":
        """A Predictor from _init's arguments (what _from_config and _from_model_source return)."""
        predictor = cls.__new__(cls)
        predictor._init(**parts)
        return predictor

    @classmethod
    def from_model(cls, cfg: CfgNode, model: nn.Module, device: str | torch.device | None = None,
                   keypoints: KeypointSpec | None = None, oks_nms_threshold: float | None = None, *,
                   backend: str = "torch", fold_bn: bool = True, threads: int | None = None,
                   onnx_threads: int | None = None, raw: bool = False, min_score: float | None = None,
                   clip_to_image: bool | None = None, max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
                   max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, accept_damaged: bool = False,
                   refine: "TopDownRefiner | str | os.PathLike | None" = None) -> "Predictor":
        """A Predictor around a network you already have: any module returning the outputs the config's
        output specs describe (heatmaps first, then tags). refine: a top-down model (a TopDownRefiner, a
        registered name or a model file) run on the people found; threads (onnx_threads, its earlier name)
        and the filter options as the class says.

        The model is switched to eval mode; with fold_bn or an onnxruntime backend the Predictor runs a
        folded copy (or an export) of it, so later changes to the model do not reach the Predictor.
        """
        check_backend(backend)
        keypoints = keypoints or keypoints_from_config(cfg)
        params = InferenceParams.from_config(cfg, keypoints)
        device = resolve_device(device)
        size = params.input_size
        threads = _thread_option(threads, onnx_threads)
        calibration = int8_calibration(cfg, params) if backend == INT8_BACKEND else None
        network = prepare_network(model, device, backend, fold_bn, threads, export_size=(size, size),
                                  calibration=calibration)
        return cls(network, params, keypoints, device, raw=raw, min_score=min_score,
                   oks_nms_threshold=oks_nms_threshold, clip_to_image=clip_to_image,
                   max_input_pixels=max_input_pixels, max_image_pixels=max_image_pixels,
                   accept_damaged=accept_damaged, refine=refine, threads=threads)

    @property
    def backend(self) -> str:
        """"onnxruntime-int8" when the network is an onnxruntime session of an int8 model, "onnxruntime" for
        another session, else "torch"."""
        if isinstance(self.network, OnnxRuntimeNetwork):
            return INT8_BACKEND if INT8_KEY in self.network.metadata else "onnxruntime"
        return "torch"

    def describe(self) -> dict:
        """What predicts and how it filters, as plain values (results' JSON carries it): model name, dataset
        it was trained on, min_score, OKS-NMS threshold, clip_to_image, test scales and flip."""
        return {"name": self.name, "dataset": self.meta.get("dataset"), "min_score": self.min_score,
                "oks_nms_threshold": self.oks_nms_threshold, "clip_to_image": self.clip_to_image,
                "scale_factors": list(self.params.scale_factors), "flip_test": self.params.flip_test,
                "refine": self.refiner.name if self.refiner is not None else None}

    # ------------------------------------------------------------------ inputs

    def __call__(self, source, channels: str = "rgb"):
        """People in `source`:

        - an image array (H, W, 3) uint8, RGB unless channels="bgr" (cv2.imread's order; gray, RGBA, uint16,
          CPU uint8 tensors and torchvision's float (C, H, W) tensors of values 0..1 are converted:
          as_rgb_image), a path of an image file or an http(s) URL of one -> a Result;
        - a list or tuple of those (arrays and image files or URLs; arrays of equal size share network
          passes, equal to one call per image up to float rounding, not bit for bit), a folder (its image
          files) or a glob pattern -> a list of Results;
        - a video file, its URL or a webcam index (an int, or "0") -> a generator of Results, one per frame,
          people tracked across frames (see `stream` for its options).
        """
        _check_channels(channels)
        if isinstance(source, (list, tuple)):
            if not any(isinstance(s, (str, os.PathLike)) for s in source):
                return self.predict_batch(source, channels=channels)       # arrays, or refused naming the item
            return [self.predict_file(s) if isinstance(s, (str, os.PathLike)) else
                    self.predict_batch([as_rgb_image(s, f"image {i}", channels)])[0] for i, s in enumerate(source)]
        if not isinstance(source, (str, os.PathLike, int)) or isinstance(source, bool):
            return self.predict_batch([as_rgb_image(source, channels=channels)])[0]
        found, _ = collect_sources([source])
        if len(found) == 1 and found[0].is_stream:
            return self.stream(found[0])
        if any(s.is_stream for s in found):
            raise ValueError(f"{source} names videos among its images: call the Predictor on each video "
                             f"(a generator of frames) and on the images apart")
        results = [self.predict_file(s) for s in found]
        single = len(found) == 1 and not os.path.isdir(os.fspath(source)) and found[0].location == os.fspath(source)
        return results[0] if single else results

    def predict_file(self, source: Source | str | os.PathLike, work_dir: str | None = None) -> Result:
        """The Result of one image file or http(s) URL (downloaded into work_dir, default a temporary folder).
        A file over max_image_pixels is read reduced (JPEG) or refused; the people are in its full pixels. A JPEG
        with corrupt data is refused (images.DamagedImageError) unless accept_damaged."""
        if not isinstance(source, Source):
            source = Source("image", os.fspath(source))
        if work_dir is None:
            with tempfile.TemporaryDirectory(prefix="higherhrnet-") as folder:
                return self.predict_file(source, folder)
        path = local_file(source, work_dir)
        image, factor = read_image_reduced(path, self.max_image_pixels, accept_damaged=self.accept_damaged)
        size = None
        if factor != 1.0:           # the full size, from the file's header (EXIF orientation applied)
            with open(path, "rb") as f:
                size = image_size(f.read(), path)
        people = self.predict_batch([image])[0]
        for person in people:
            person.keypoints[:, :2] /= factor          # the full image's pixels
        return Result(people, image, self.keypoints, name=source.name, size=size, downscale=factor,
                      model=self.describe())

    def stream(self, source: Source | str | int | os.PathLike, track: bool = True, frame_stride: int = 1,
               max_frames: int | None = None, keypoint_threshold: float = 0.2,
               concurrent: bool = True) -> "ResultStream":
        """The Results of a video file, video URL or webcam index, frame by frame (a ResultStream: iterate it;
        it also says the video's fps and whether it ended early). Every frame_stride-th frame, at most
        max_frames. track: people keep an id across frames (Result.track_ids; tracking.PoseTracker, joints
        counted from keypoint_threshold). Decoding, the network and grouping run side by side in threads of
        their own while the caller handles the frames before (concurrent=False: one after the other, the same
        results)."""
        if not isinstance(source, Source):
            kinds = None if isinstance(source, int) else {os.fspath(source): "video"}
            source = collect_sources([source], kinds)[0][0]
        tracker = PoseTracker(self.keypoints.sigmas_array, keypoint_threshold=keypoint_threshold) if track else None
        return ResultStream(self, source, tracker, frame_stride, max_frames, concurrent)

    # ------------------------------------------------------------------ the pipeline

    def _check_input_size(self, image: np.ndarray, name: str) -> None:
        h, w = image.shape[:2]
        p = self.params
        scale = max(p.scale_factors)
        size = multi_scale_size(w, h, p.input_size, scale, min(p.scale_factors))[0]
        if size[0] * size[1] > self.max_input_pixels:
            ratio = max(w, h) / min(w, h)
            raise ValueError(
                f"{name} ({w}x{h}, aspect ratio {ratio:.0f}:1) would need a {size[0]}x{size[1]} network input at "
                f"scale {scale}, over the limit of {self.max_input_pixels} pixels; crop the image or raise "
                f"max_input_pixels")

    def predict_batch(self, images: Sequence[np.ndarray | torch.Tensor], channels: str = "rgb") -> list[Result]:
        """A Result for each image array (people in the grouping's order, or by falling score when filtered);
        images of equal size share network passes (equal to one image per call up to float rounding: a batch
        runs other kernels). Images as __call__ takes arrays."""
        _check_channels(channels)
        images = [as_rgb_image(image, f"image {i}", channels) for i, image in enumerate(images)]
        with self.threads.applied():
            maps = self._maps(images)
            return [Result(self.people_from_maps(image, m, f" for image {i} of the batch" if len(images) > 1 else ""),
                           image, self.keypoints, model=self.describe())
                    for i, (image, m) in enumerate(zip(images, maps))]

    def maps(self, images: Sequence[np.ndarray | torch.Tensor]) -> list[ImageMaps]:
        """The first stage of predict_batch: the network's aggregated heatmaps and tags for each RGB image
        (inference.ImageMaps: in the frame of the resized network input, every TEST.* option applied), what
        grouping reads. Images of equal size share network passes."""
        return self._maps([as_rgb_image(image, f"image {i}") for i, image in enumerate(images)])

    def _maps(self, images: Sequence[np.ndarray]) -> list[ImageMaps]:
        """maps() for images already converted to (H, W, 3) uint8 RGB."""
        for i, image in enumerate(images):
            self._check_input_size(image, f"image {i}")
        with self.threads.applied():
            return run_network(self.network, images, self.params, self.device)

    def people_from_maps(self, image: np.ndarray, maps: ImageMaps, which: str = "") -> list[Person]:
        """The second stage of predict_batch: the people in `maps` (from `maps([image])`), in `image`'s pixels,
        with this Predictor's min_score, OKS-NMS and clip_to_image applied. NonFiniteOutputError when the maps
        hold NaN or infinity (`which` ends its first clause, e.g. " for image 2 of the batch")."""
        with self.threads.applied():
            return self._people_from_maps(image, maps, which)

    def _people_from_maps(self, image: np.ndarray, maps: ImageMaps, which: str) -> list[Person]:
        persons, scores = decode_people(maps, self.params, which)
        names = self.keypoints.names
        people = [Person(keypoints=person[:, :3].copy(), score=float(score), tags=person[:, 3:].copy(), names=names)
                  for person, score in zip(persons, scores)]
        if self.clip_to_image:
            height, width = image.shape[:2]
            people = _clip_to_image(people, width, height)
        people = self._filter(people)
        if self.refiner is not None:
            people = self.refiner.refine(image, people, self.clip_to_image)
            if self.min_score > 0 or self.oks_nms_threshold is not None:
                people.sort(key=lambda p: -p.score)
        return people

    def _filter(self, people: list[Person]) -> list[Person]:
        if self.min_score > 0:
            people = [p for p in people if p.score >= self.min_score]
        if self.oks_nms_threshold is not None and people:
            kept = oks_nms(np.stack([p.keypoints for p in people]), np.array([p.score for p in people]),
                           self.keypoints.sigmas_array, self.oks_nms_threshold)
            people = [people[i] for i in kept]
        if self.min_score > 0 or self.oks_nms_threshold is not None:
            people.sort(key=lambda p: -p.score)
        return people


class ResultStream:
    """A video's or webcam's Results, frame by frame (Predictor.stream). Iterate it once; the video is opened
    when the stream is made and closed when the iteration ends (or, stopping early, by close()).

    name: the source's name. fps: frames per second of the source. After the iteration: decoded (frames read),
    frame_count (what the file announced; None when unknown), truncated (the file ended before that: a damaged or
    partly copied video; the frames read are still yielded). concurrent: decoding, the network and grouping
    with tracking run in threads of their own, a frame or two ahead of the caller (streaming.run_stages);
    False: one after the other in the caller's thread. Either way the same functions on the same frames, so
    the Results are the same.
    """

    def __init__(self, predictor: Predictor, source: Source, tracker: PoseTracker | None, frame_stride: int,
                 max_frames: int | None, concurrent: bool = True):
        self.predictor, self.source, self.tracker = predictor, source, tracker
        self.concurrent = concurrent
        self._results: Iterator[Result] | None = None     # the stages' iteration, once started
        self._work_dir = tempfile.TemporaryDirectory(prefix="higherhrnet-")
        try:
            self.video = VideoSource(local_file(source, self._work_dir.name), stride=frame_stride,
                                     max_frames=max_frames)
        except BaseException:
            self._work_dir.cleanup()
            raise
        self.name = source.name

    @property
    def fps(self) -> float:
        return self.video.fps

    @property
    def decoded(self) -> int:
        return self.video.decoded

    @property
    def frame_count(self) -> int:
        return self.video.frame_count

    @property
    def truncated(self) -> bool:
        return self.video.truncated

    def __len__(self) -> int:
        """The frames that will be yielded, as far as the file says (0 when unknown: webcams, some files)."""
        return len(self.video)

    def __iter__(self) -> Iterator[Result]:
        """Decoding, the network, and grouping with tracking run side by side, each in a thread of its own
        (streaming.run_stages: frames in order, a stage's failure raised here after every thread stopped; the
        caller's loop, drawing and writing, is a further stage); with concurrent=False one after the other."""
        stages = [self._network_stage, self._people_stage]
        if self.predictor.refiner is not None:
            # The top-down network runs in the grouping stage, and must run within the Predictor's thread
            # setting as the bottom-up one does (--threads); a CallThreads is held by one thread at a time.
            stages = [self._refined_frame_stage]
        self._results = run_stages(self.video, stages, concurrent=self.concurrent)
        try:
            yield from self._results
        finally:
            self.close()

    def _network_stage(self, frame: Frame) -> tuple[Frame, ImageMaps]:
        """The first stage of Predictor.predict_batch for one frame: its maps (the network's thread count)."""
        return frame, self.predictor._maps([frame.image])[0]

    def _people_stage(self, framed_maps: tuple[Frame, ImageMaps]) -> Result:
        """The second stage of Predictor.predict_batch, then the tracker: the frame's Result. Outside the
        Predictor's thread setting (CallThreads), which the network's thread holds: grouping is NumPy's and
        numba's (with a refiner, _refined_frame_stage holds the setting)."""
        frame, maps = framed_maps
        predictor, keypoints = self.predictor, self.predictor.keypoints
        people = predictor._people_from_maps(frame.image, maps, "")
        ids = None
        if self.tracker is not None:
            stacked = (np.stack([p.keypoints for p in people]) if people
                       else np.zeros((0, keypoints.num_joints, 3), np.float32))
            ids = self.tracker.update(stacked, [p.score for p in people])
        return Result(people, frame.image, keypoints, name=self.name, model=predictor.describe(),
                      track_ids=ids, frame=frame.index, time=frame.time)

    def _refined_frame_stage(self, frame: Frame) -> Result:
        """Both stages in one, within the Predictor's thread setting: with a top-down refiner."""
        with self.predictor.threads.applied():
            return self._people_stage(self._network_stage(frame))

    def close(self) -> None:
        """Stop the stages (each finishes the frame in hand), then close the video."""
        if self._results is not None:
            self._results.close()
        self.video.close()
        self._work_dir.cleanup()


def _outside_the_package() -> int:
    """The warnings stacklevel, seen from the function that calls this one, of the first frame outside this
    package: the user's line that made the Predictor, however many of our functions lie in between."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _is_config(value) -> bool:
    """A config (CfgNode) or the path of a YAML file: the first releases' Predictor(cfg, weights)."""
    if isinstance(value, CfgNode):
        return True
    return isinstance(value, (str, os.PathLike)) and os.fspath(value).lower().endswith((".yaml", ".yml"))


def _check_channels(channels: str) -> None:
    if channels not in ("rgb", "bgr"):
        raise ValueError(f"channels must be \"rgb\" (the default: images.read_image, PIL) or \"bgr\" (cv2.imread, "
                         f"cv2.VideoCapture), got {channels!r}")


def _from_model_source(model=None, *, cfg=None, opts: Sequence[str] = (), device=None, keypoints=None,
                       backend: str | None = None, fold_bn: bool = True, progress: bool = True, **options) -> dict:
    """Predictor(model, ...)'s parts: the model resolved (hub.resolve_model: registry, model file, URL, the
    default), then built as from_config builds it. backend None: onnxruntime for .onnx files, else torch."""
    from .hub import resolve_model

    resolved = resolve_model(model, cfg, opts, progress=progress, check=require_bottom_up)
    if resolved.note:
        logger.warning("note: %s", resolved.note)
    if backend is None:
        backend = "onnxruntime" if resolved.weights.lower().endswith(".onnx") else "torch"
    return _from_config(resolved.cfg, resolved.weights, device, (), keypoints, backend=backend, fold_bn=fold_bn,
                        name=resolved.name or os.path.basename(resolved.weights), **options)


def _from_config(cfg, weights, device=None, opts: Sequence[str] = (), keypoints: KeypointSpec | None = None, *,
                 backend: str = "torch", fold_bn: bool = True, threads: int | None = None,
                 onnx_threads: int | None = None, **options) -> dict:
    """The Predictor's arguments (network, params, keypoints, device, meta, threads, and `options` passed on)
    for a config and its weights."""
    if not isinstance(cfg, CfgNode):
        cfg = load_cfg(cfg, opts)
    elif opts:
        raise ValueError("opts are only used when cfg is a file path; merge them into the CfgNode instead")
    check_backend(backend)
    require_bottom_up(cfg)
    keypoints = keypoints or keypoints_from_config(cfg)
    outputs = build_output_specs(cfg)
    params = InferenceParams.from_config(cfg, keypoints, outputs)
    device = resolve_device(device)
    threads = _thread_option(threads, onnx_threads)
    calibration = int8_calibration(cfg, params) if backend == INT8_BACKEND else None
    if isinstance(weights, (str, os.PathLike)) and os.fspath(weights).lower().endswith(".onnx"):
        if backend == "torch":
            raise ValueError(f"{os.fspath(weights)} is an ONNX model: run it with the onnxruntime backend "
                             f"(backend onnxruntime, --backend onnxruntime); the torch backend needs a PyTorch "
                             f"checkpoint")
        network = load_onnx_network(weights, outputs, device, threads, calibration)
        meta = read_onnx_meta(weights)            # what `higherhrnet export` stored ({} for other exports)
        return dict(options, network=network, params=params, keypoints=keypoints, device=device, meta=meta,
                    threads=threads)
    model = build_model(cfg, outputs)
    meta = read_model_meta(load_checkpoint(model, weights))
    size = params.input_size
    network = prepare_network(model, device, backend, fold_bn, threads, export_size=(size, size),
                              calibration=calibration)
    return dict(options, network=network, params=params, keypoints=keypoints, device=device, meta=meta,
                threads=threads)


def _thread_option(threads: int | None, onnx_threads: int | None) -> int | None:
    """threads, or onnx_threads: its name in earlier releases, when it set the onnxruntime session's threads
    only (TypeError when both are given and differ)."""
    if threads is not None and onnx_threads is not None and threads != onnx_threads:
        raise TypeError(f"threads={threads} and onnx_threads={onnx_threads}: onnx_threads is the earlier name of "
                        f"threads; pass threads only")
    return check_threads(threads if threads is not None else onnx_threads)


def _network_device(network: nn.Module) -> torch.device:
    """Where a ready network's parameters (or buffers) are: the Predictor does not move a network it is given.
    The CPU for one with neither (an onnxruntime session reads its inputs from host memory)."""
    for tensor in (*network.parameters(), *network.buffers()):
        return tensor.device
    return torch.device("cpu")


def _clip_to_image(people: list[Person], width: int, height: int) -> list[Person]:
    """Joints outside the image ([-0.5, width - 0.5] x [-0.5, height - 0.5], the outer pixels' edges) moved to
    the nearest pixel centre with value 0, the score lowered by their share of the mean; people with no joint
    inside dropped."""
    kept = []
    for person in people:
        xs, ys = person.keypoints[:, 0], person.keypoints[:, 1]
        outside = (xs < -0.5) | (xs > width - 0.5) | (ys < -0.5) | (ys > height - 0.5)
        if outside.all():
            continue
        if outside.any():
            keypoints = person.keypoints.copy()
            score = person.score - float(keypoints[outside, 2].sum()) / len(keypoints)
            keypoints[outside, 0] = np.clip(keypoints[outside, 0], 0, width - 1)
            keypoints[outside, 1] = np.clip(keypoints[outside, 1], 0, height - 1)
            keypoints[outside, 2] = 0
            person = Person(keypoints=keypoints, score=score, tags=person.tags)
        kept.append(person)
    return kept


_IMAGE_LAYOUTS = "(H, W, 3) RGB, (H, W) or (H, W, 1) gray, or (H, W, 4) RGBA"


def as_rgb_image(image, name: str = "image", channels: str = "rgb") -> np.ndarray:
    """`image` as the (H, W, 3) uint8 RGB array the network pipeline takes; ValueError naming `name` otherwise.
    channels: the order of a colour image's channels, "rgb" or "bgr" (OpenCV's: reversed here).

    Accepted: uint8 arrays laid out (H, W, 3) (returned as they are), (H, W) or (H, W, 1) (gray, repeated to
    RGB), (H, W, 4) (RGBA: alpha dropped); uint16 arrays of those layouts (scaled by 1/257 and rounded, as
    images.read_image reads 16-bit files); torch uint8 tensors on the CPU of those layouts; float tensors on
    the CPU as torchvision's ToTensor makes them, (C, H, W) with C 1, 3 or 4 and values 0..1 (multiplied by 255
    and rounded, which gives back the uint8 pixels ToTensor divided by 255; `channels` says their order as for
    arrays; a width of 1, 3 or 4 pixels is refused, the layout being ambiguous). Refused, with what to do: None (what cv2.imread returns for a file it cannot read), float, bool and
    other integer arrays, float tensors of other layouts or ranges, channel-first (3, H, W) uint8 arrays and
    tensors, empty images, lists (a list of images is a batch: pass it to the Predictor itself) and anything
    else.
    """
    if image is None:
        raise ValueError(f"{name} is None: cv2.imread returns None when it cannot read a file (missing, unreadable "
                         f"or not an image); higherhrnet.images.read_image(path) says which, and returns RGB")
    kind = "array"
    if isinstance(image, torch.Tensor):
        if image.device.type != "cpu":
            raise ValueError(f"{name} is a tensor on {image.device}: pass image.cpu() (the pipeline resizes on the "
                             f"CPU before the network runs on the Predictor's device)")
        if image.is_floating_point():
            image = _from_float_tensor(image, name)
        elif image.dtype != torch.uint8:
            raise ValueError(f"{name} is a {image.dtype} tensor: expected torch.uint8 {_IMAGE_LAYOUTS} pixels "
                             f"0..255, or a float (C, H, W) tensor of values 0..1 as torchvision's ToTensor makes")
        image, kind = image.numpy(), "tensor"
    if not isinstance(image, np.ndarray):
        what = ("a list of lists (a nested list is not an image: np.asarray(...) makes it an array)"
                if isinstance(image, (list, tuple)) else type(image).__name__)
        raise ValueError(f"{name}: expected a NumPy array {_IMAGE_LAYOUTS} uint8 (or a list of them, a batch), "
                         f"got {what}")
    if image.size == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if image.dtype == np.bool_:
        raise ValueError(f"{name} is a bool {kind} (a mask?): expected uint8 pixels 0..255; a picture stored as bool "
                         f"converts with image.astype(np.uint8) * 255")
    if np.issubdtype(image.dtype, np.floating):
        low, high = float(np.nanmin(image)), float(np.nanmax(image))
        raise ValueError(f"{name} is a {image.dtype} {kind} (values {low:.3g} to {high:.3g}): expected uint8 pixels "
                         f"0..255; convert with (image * 255).round().clip(0, 255).astype(np.uint8) for values in "
                         f"0..1, or image.round().clip(0, 255).astype(np.uint8) for values in 0..255")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{name} is a {image.dtype} {kind}: expected uint8 pixels 0..255 (or uint16); convert with "
                         f"image.astype(np.uint8) once its values are known to be in 0..255")
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4) and image.shape[0] in (1, 3, 4):
        flip = "image.permute(1, 2, 0)" if kind == "tensor" else "image.transpose(1, 2, 0)"
        raise ValueError(f"{name} of shape {tuple(image.shape)} looks channel-first (C, H, W); the Predictor takes "
                         f"channels last, {_IMAGE_LAYOUTS}: pass {flip}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        hint = "; for a batch pass a list of images: list(images)" if image.ndim == 4 else ""
        raise ValueError(f"{name} has shape {tuple(image.shape)}: expected {_IMAGE_LAYOUTS}{hint}")
    if image.dtype == np.uint16:
        image = uint16_to_uint8(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    if channels == "bgr":
        image = image[:, :, ::-1]
    # Negative strides (image[:, :, ::-1]) and views reach OpenCV, which needs plain contiguous memory.
    return np.ascontiguousarray(image)


def _from_float_tensor(image: torch.Tensor, name: str) -> torch.Tensor:
    """A float (C, H, W) tensor of values 0..1 (torchvision's ToTensor) as the uint8 (H, W, C) tensor it was made
    from; ValueError saying how to convert any other float tensor."""
    shape = tuple(image.shape)
    # A last axis of 1, 3 or 4 would make (C, H, W) and (H, W, C) indistinguishable: such shapes are refused.
    if image.ndim != 3 or shape[0] not in (1, 3, 4) or shape[2] in (1, 3, 4) or image.numel() == 0:
        raise ValueError(f"{name} is a {image.dtype} tensor of shape {shape}: a float tensor is taken as "
                         f"torchvision's ToTensor makes it, (C, H, W) with C 1, 3 or 4, W not, and values 0..1; "
                         f"for other float images pass (image * 255).round().clamp(0, 255).to(torch.uint8) laid out "
                         f"{_IMAGE_LAYOUTS}")
    values = image.detach().float()
    low, high = float(values.min()), float(values.max())
    if not (0.0 <= low and high <= 1.0):        # also NaN, which fails every comparison
        raise ValueError(f"{name} is a {image.dtype} (C, H, W) tensor with values {low:.4g} to {high:.4g}, not the "
                         f"0..1 of torchvision's ToTensor: for pixels 0..255 pass "
                         f"image.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)")
    return (values * 255).round().to(torch.uint8).permute(1, 2, 0)


def synthetic_model_note(meta: Mapping) -> str | None:
    """One line to print when a model's metadata (Predictor.meta) says it was trained on a dataset of no real
    people (the synthetic stick figures); None for other models and for models that do not say."""
    dataset = meta.get("dataset")
    if not isinstance(dataset, str) or dataset_info(dataset).real_people:
        return None
    return (f"note: this model was trained on synthetic stick figures (dataset {dataset!r}), not on real photos; "
            f"for photos of people use COCO weights, e.g. "
            f"`higherhrnet predict --weights mmpose_higherhrnet_w32_512 ...` (downloaded once; `higherhrnet weights` lists every name)")
