"""Find people in images, folders and videos.

    higherhrnet predict --cfg CFG --weights W --image a.jpg [b.jpg ...] [--out DIR]
    higherhrnet predict --cfg CFG --weights W --folder photos/ --threshold 0.3
    higherhrnet predict --cfg CFG --weights W --video clip.mp4 --device cuda
    higherhrnet predict --cfg CFG --weights W --image a.jpg TEST.SCALE_FACTOR "[0.5,1.0,2.0]"

For each input it writes the picture with the skeletons drawn (<name>_pose.jpg, or _pose.mp4 for a
video) and <name>.json with the image size and every person's COCO-format keypoints and score.
Exit status: 0 all inputs done, 1 some inputs failed (each is reported), 2 bad arguments / config /
weights / output folder.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import cv2
import numpy as np
from tqdm import tqdm

from ..images import IMAGE_EXTENSIONS, ImageError, read_image
from ..vis import draw_people
from .common import CommandError, add_config_options, default_device, fail, load_config_and_weights

__all__ = ["add_arguments", "run"]

DEFAULT_MAX_PIXELS = 50_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, cfg_required=False,
                       weights="checkpoint (.pth), .onnx file (with --backend onnxruntime), http(s) URL or registered "
                               "name; default: TEST.MODEL_FILE of the config")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", nargs="+", help="one or more image files")
    source.add_argument("--folder", help="a folder of images (not recursive)")
    source.add_argument("--video", help="a video file, processed frame by frame")
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="run the network in PyTorch (default) or onnxruntime (pip install -e \".[onnx]\")")
    parser.add_argument("--threshold", type=float, default=0.2,
                        help="joints with a lower value are not drawn (default 0.2); the JSON keeps all")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="larger images are downscaled to this many pixels for inference; keypoints are "
                             "mapped back to the original (default 50e6)")
    parser.add_argument("--max-input-pixels", type=int, default=3072 * 3072,
                        help="refuse images whose network input would be larger (extreme aspect ratios)")


def check_output_folder(folder: str) -> None:
    """Create the folder and prove it is writable, before any slow work."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as e:
        raise OSError(f"cannot write to output folder {folder}: {e.strerror or e}") from None


def unique_stem(path: str, used: set[str]) -> str:
    stem = os.path.splitext(os.path.basename(path))[0] or "image"
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate)
    return candidate


def predict_full_size(predictor, image: np.ndarray, max_pixels: int):
    """People in original pixels; images over max_pixels are run downscaled (keypoints scaled back)."""
    h, w = image.shape[:2]
    factor = 1.0
    if h * w > max_pixels:
        factor = (max_pixels / (h * w)) ** 0.5
        size = (max(1, int(w * factor)), max(1, int(h * factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        factor = size[0] / w
    people = predictor(image)
    if factor != 1.0:
        for person in people:
            person.keypoints[:, :2] = person.keypoints[:, :2] / factor
    return people, factor


def people_json(people, image_id: int = 0) -> list[dict]:
    out = []
    for person in people:
        record = person.to_coco(image_id)
        out.append({"keypoints": record["keypoints"], "score": record["score"], "bbox": record["bbox"]})
    return out


def write_image_outputs(out_dir: str, stem: str, source: str, image: np.ndarray, people, keypoints,
                        threshold: float, downscale: float) -> None:
    drawn = draw_people(image, people, keypoints, threshold)
    target = os.path.join(out_dir, f"{stem}_pose.jpg")
    if not cv2.imwrite(target, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {target}")
    record = {
        "image": source, "width": int(image.shape[1]), "height": int(image.shape[0]),
        "keypoint_names": list(keypoints.names), "inference_downscale": downscale,
        "people": people_json(people),
    }
    with open(os.path.join(out_dir, f"{stem}.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)


def list_folder(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--folder {folder}: not a folder")
    names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    return [os.path.join(folder, n) for n in names
            if os.path.isfile(os.path.join(folder, n)) and n.lower().endswith(IMAGE_EXTENSIONS)]


def run_images(predictor, paths, args, show_progress: bool) -> int:
    used: set[str] = set()
    failures = []
    bar = tqdm(paths, unit="image", disable=not show_progress)
    for path in bar:
        start = time.perf_counter()
        try:
            image = read_image(path)
            people, factor = predict_full_size(predictor, image, args.max_pixels)
            write_image_outputs(args.out, unique_stem(path, used), path, image, people, predictor.keypoints,
                                args.threshold, factor)
        except (ImageError, ValueError, OSError) as e:
            message = str(e) if str(e).startswith(path) else f"{path}: {e}"
            failures.append(message)
            tqdm.write(f"error: {message}", file=sys.stderr)
            continue
        note = f" (downscaled x{factor:.2f} for inference)" if factor != 1.0 else ""
        tqdm.write(f"{path}: {len(people)} {'person' if len(people) == 1 else 'people'}, "
                   f"{time.perf_counter() - start:.2f} s{note}")
    if failures:
        print(f"{len(failures)} of {len(paths)} inputs failed:", file=sys.stderr)
        for message in failures:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0


def run_video(predictor, path: str, args) -> int:
    if not os.path.isfile(path):
        return fail(f"--video {path}: file not found", 1)
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        return fail(f"{path}: cannot open as a video", 1)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    stem = unique_stem(path, set())
    target = os.path.join(args.out, f"{stem}_pose.mp4")
    writer, frames = None, []
    start = time.perf_counter()
    with tqdm(total=total, unit="frame") as bar:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            image = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            people, _ = predict_full_size(predictor, image, args.max_pixels)
            drawn = draw_people(image, people, predictor.keypoints, args.threshold)
            if writer is None:
                h, w = drawn.shape[:2]
                writer = cv2.VideoWriter(target, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                if not writer.isOpened():
                    capture.release()
                    return fail(f"cannot write video {target}", 1)
            writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            frames.append({"frame": len(frames), "people": people_json(people)})
            bar.update(1)
    capture.release()
    if writer is None:
        return fail(f"{path}: no frame could be decoded", 1)
    writer.release()
    h, w = drawn.shape[:2]
    with open(os.path.join(args.out, f"{stem}.json"), "w", encoding="utf-8") as f:
        json.dump({"video": path, "width": w, "height": h, "fps": fps,
                   "keypoint_names": list(predictor.keypoints.names), "frames": frames}, f)
    print(f"{path}: {len(frames)} frames, {time.perf_counter() - start:.1f} s -> {target}")
    return 0


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from .. import CheckpointError, ConfigError, Predictor

    try:
        check_output_folder(args.out)
    except OSError as e:
        raise CommandError(str(e)) from None
    try:
        paths = list_folder(args.folder) if args.folder else args.image
    except FileNotFoundError as e:
        raise CommandError(str(e)) from None
    if args.folder and not paths:
        raise CommandError(f"--folder {args.folder}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    cfg, _, weights = load_config_and_weights(args.cfg, args.weights, overrides)
    try:
        predictor = Predictor.from_config(cfg, weights, device=default_device(args.device), backend=args.backend,
                                          max_input_pixels=args.max_input_pixels)
    except (ConfigError, CheckpointError, RuntimeError, ValueError) as e:
        raise CommandError(str(e)) from None
    if args.video:
        return run_video(predictor, args.video, args)
    return run_images(predictor, paths, args, show_progress=bool(args.folder))
