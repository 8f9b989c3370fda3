"""Find people in images, folders, globs, URLs, videos and webcams.

    higherhrnet predict --weights higherhrnet_w32_512 photo.jpg               # registered weights, own config
    higherhrnet predict --cfg CFG --weights W photos/ --recursive --coco-json results.json
    higherhrnet predict --cfg CFG --weights W "shots/*.png" https://example.com/street.jpg
    higherhrnet predict --cfg CFG --weights W clip.mp4 --frame-stride 2 --max-frames 300
    higherhrnet predict --cfg CFG --weights W 0 --show                          # webcam 0, in a window
    higherhrnet predict --cfg CFG --weights W --image a.jpg --threshold 0.3 TEST.FLIP_TEST False

Shown and written by default: people scoring at least --min-score, without duplicates (OKS above --nms with a
better person); joints below --threshold are not drawn. --all keeps every grouped person, as the official
evaluation does (`higherhrnet eval` always does). For each image: <name>_pose.jpg (the people drawn, each in
its own colour, left limbs lighter, right limbs darker) and <name>.json (image, width, height, people sorted
by score with score, box [x, y, w, h] around the visible joints and keypoints as [x, y, score] triples in
image pixels). For a video or webcam: <name>_pose.mp4 (H.264 with imageio-ffmpeg; see README) and one
<name>.json with every processed frame; people keep a track id (and colour) from frame to frame. Ctrl-C stops
cleanly: what is finished is kept, the video and its JSON are closed, exit status 130.
Every file is written whole under a temporary name and then renamed: a reader never sees half a file.
Exit status: 0 all inputs done, 1 some inputs failed or were damaged (each is reported; a video cut short
keeps the frames it had), 2 bad arguments / config / weights / output folder, 130 interrupted.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass

from .common import (EXIT_FAILED, EXIT_INTERRUPTED, CommandError, add_config_options, check_writable_file,
                     check_writable_folder, finish_before_interrupt, load_config_and_weights)

__all__ = ["add_arguments", "run", "collect_inputs", "Input"]

DEFAULT_MAX_PIXELS = 50_000_000
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")

# The values of predictor.CLEAN, for the help text (predictor.py imports PyTorch; a test checks they agree).
DEFAULT_MIN_SCORE = 0.2
DEFAULT_NMS = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, cfg_required=False,
                       weights="checkpoint (.pth), .onnx file (with --backend onnxruntime), http(s) URL or registered "
                               "name (see README); default: TEST.MODEL_FILE of the config")
    parser.add_argument("sources", nargs="*", metavar="SOURCE",
                        help="images, folders, glob patterns (quoted), http(s) URLs, video files, webcam indices (0)")
    parser.add_argument("--image", nargs="+", default=[], metavar="F", help="image files (same as SOURCE)")
    parser.add_argument("--folder", action="append", default=[], metavar="DIR", help="a folder (same as SOURCE)")
    parser.add_argument("--video", action="append", default=[], metavar="F", help="a video file (same as SOURCE)")
    parser.add_argument("--recursive", action="store_true", help="also look in the folders' subfolders")
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="run the network in PyTorch (default) or onnxruntime (pip install -e \".[onnx]\")")
    parser.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE,
                        help=f"keep people scoring at least this (mean joint value; default {DEFAULT_MIN_SCORE})")
    parser.add_argument("--nms", type=float, default=DEFAULT_NMS, metavar="OKS",
                        help=f"drop a person whose OKS with a better one exceeds this (default {DEFAULT_NMS}; "
                             f"0 keeps duplicates)")
    parser.add_argument("--all", action="store_true",
                        help="keep every grouped person, as the official evaluation (--min-score 0 --nms 0)")
    parser.add_argument("--threshold", type=float, default=0.2,
                        help="joints with a lower value are not drawn nor boxed (default 0.2); the JSON keeps all")
    parser.add_argument("--coco-json", metavar="FILE",
                        help="also write every image's people to FILE in COCO's results format (image_id: the "
                             "number in a COCO-style file name, else the image's position)")
    parser.add_argument("--show", action="store_true", help="show the results in a window (needs a display)")
    parser.add_argument("--frame-stride", type=int, default=1, metavar="N", help="videos: every N-th frame")
    parser.add_argument("--max-frames", type=int, metavar="N", help="videos: stop after N processed frames")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="larger images are read reduced (JPEG) or refused; keypoints are mapped back to the "
                             "original (default 50e6)")
    parser.add_argument("--max-input-pixels", type=int, default=3072 * 3072,
                        help="refuse images whose network input would be larger (extreme aspect ratios)")


@dataclass
class Input:
    """One thing to run on: kind "image", "video" or "webcam"; location: path, URL or webcam index."""

    kind: str
    location: str | int

    @property
    def name(self) -> str:
        if self.kind == "webcam":
            return f"webcam{self.location}"
        return os.path.basename(urllib.parse.urlparse(str(self.location)).path) or str(self.location)


def _kind_of(path: str) -> str | None:
    from ..images import IMAGE_EXTENSIONS

    lower = path.lower()
    if lower.endswith(VIDEO_EXTENSIONS):
        return "video"
    if lower.endswith(IMAGE_EXTENSIONS):
        return "image"
    return None


def collect_inputs(sources: list[str], kinds: dict[str, str], recursive: bool) -> tuple[list[Input], list[str]]:
    """The inputs named on the command line, in order, and notes on what was left out (one line each).

    sources: SOURCE words (any kind); kinds: a word -> the kind its option said (--image, --folder, --video).
    Raises CommandError for a source that names nothing.
    """
    inputs: list[Input] = []
    notes: list[str] = []
    for source in sources:
        told = kinds.get(source)
        if told is None and source.isdigit():
            inputs.append(Input("webcam", int(source)))
        elif urllib.parse.urlparse(source).scheme in ("http", "https"):
            inputs.append(Input(told or _kind_of(urllib.parse.urlparse(source).path) or "image", source))
        elif os.path.isdir(source):
            found, note = _list_folder(source, recursive)
            if not found:
                raise CommandError(f"{source}: no image or video files" + (f" ({note})" if note else ""))
            inputs += found
            if note:
                notes.append(f"{source}: {note}")
        elif os.path.exists(source) or told:
            inputs.append(Input(told or _kind_of(source) or "image", source))
        elif glob.has_magic(source):
            files = [p for p in glob.glob(source, recursive=True) if os.path.isfile(p)]
            matches = sorted(p for p in files if _kind_of(p))
            if not matches:
                raise CommandError(f"{source}: no image or video file matches")
            inputs += [Input(_kind_of(p), p) for p in matches]
            if len(files) > len(matches):
                notes.append(f"{source}: skipped {len(files) - len(matches)} files of other types")
        else:
            raise CommandError(f"{source}: no such file, folder, glob match, URL or webcam index")
    return inputs, notes


def _list_folder(folder: str, recursive: bool) -> tuple[list[Input], str]:
    """A folder's image and video files (sorted), and a note on what was skipped."""
    found, hidden, subfolders, other = [], 0, 0, 0
    for root, dirs, files in os.walk(folder):
        hidden += sum(d.startswith(".") for d in dirs) + sum(f.startswith(".") for f in files)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if not recursive:
            subfolders += len(dirs)
            dirs[:] = []
        for name in sorted(f for f in files if not f.startswith(".")):
            kind = _kind_of(name)
            if kind is None:
                other += 1
            else:
                found.append(Input(kind, os.path.join(root, name)))
    skipped = [f"{n} {what}" for n, what in ((hidden, "hidden"), (subfolders, "subfolders (see --recursive)"),
                                             (other, "files of other types")) if n]
    return found, ("skipped " + ", ".join(skipped)) if skipped else ""


def _unique_stem(name: str, used: set[str]) -> str:
    stem = os.path.splitext(name)[0] or "image"
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate)
    return candidate


def _coco_image_id(name: str, position: int) -> int:
    stem = os.path.splitext(name)[0]
    return int(stem) if stem.isdigit() else position


def dumps(record: dict, list_key: str) -> str:
    """JSON with one line per element of record[list_key] (a person, a frame) and everything else on top."""
    head = {k: v for k, v in record.items() if k != list_key}
    items = ",\n  ".join(json.dumps(item, separators=(", ", ": ")) for item in record[list_key])
    body = json.dumps(head, separators=(", ", ": "))[:-1]
    return f'{body}, "{list_key}": [\n  {items}\n]}}\n' if record[list_key] else f'{body}, "{list_key}": []}}\n'


class Display:
    """A window for --show; refuses with a clear message where there is no display or no GUI support."""

    def __init__(self):
        import cv2

        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise CommandError("--show needs a display, and this session has none (DISPLAY is not set); the "
                               "results are written to --out either way")
        try:
            cv2.namedWindow("higherhrnet", cv2.WINDOW_NORMAL)
        except cv2.error:
            raise CommandError("--show needs OpenCV with window support: pip install opencv-python (the "
                               "'-headless' build installed has none)") from None
        self.cv2 = cv2

    def show(self, image_rgb) -> bool:
        """Show a frame; False when the user pressed q or Esc."""
        self.cv2.imshow("higherhrnet", self.cv2.cvtColor(image_rgb, self.cv2.COLOR_RGB2BGR))
        return self.cv2.waitKey(1) & 0xFF not in (ord("q"), 27)


class Run:
    """One predict command: the predictor, the options and what has been written so far."""

    def __init__(self, predictor, args: argparse.Namespace, display: Display | None):
        self.predictor, self.args, self.display = predictor, args, display
        self.used_stems: set[str] = set()
        self.coco_results: list[dict] = []
        self.failures: list[str] = []
        self.people = self.images = self.videos = self.frames = 0

    def image(self, item: Input, position: int, work_dir: str) -> None:
        from ..fileio import atomic_write
        import cv2

        from ..images import image_size, read_image_reduced
        from ..vis import draw_people

        args = self.args
        start = time.perf_counter()
        path = self._local(item, work_dir)
        image, factor = read_image_reduced(path, args.max_pixels)
        height, width = image.shape[:2]
        if factor != 1.0:
            with open(path, "rb") as f:
                width, height = image_size(f.read(), path)
        people = self.predictor(image)
        drawn = draw_people(image, people, self.predictor.keypoints, args.threshold)
        for person in people:
            person.keypoints[:, :2] /= factor          # original image pixels for the JSON
        stem = _unique_stem(item.name, self.used_stems)
        image_id = _coco_image_id(item.name, position)
        record = {"image": item.name, "image_id": image_id, "width": width, "height": height,
                  "keypoint_names": list(self.predictor.keypoints.names), "inference_downscale": round(factor, 6),
                  "people": [p.to_json(args.threshold) for p in people]}
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"could not encode the drawing of {item.name}")
        with finish_before_interrupt():   # an image counts as done with both files written
            with atomic_write(os.path.join(args.out, f"{stem}_pose.jpg")) as f:
                f.write(encoded.tobytes())
            with atomic_write(os.path.join(args.out, f"{stem}.json"), text=True) as f:
                f.write(dumps(record, "people"))
            self.coco_results += [{**p.to_coco(image_id), "score": round(float(p.score), 5)} for p in people]
            self.images += 1
            self.people += len(people)
        note = f" (read at x{factor:.2f} of its size)" if factor != 1.0 else ""
        _say(f"{item.name}: {len(people)} {'person' if len(people) == 1 else 'people'}, "
             f"{time.perf_counter() - start:.2f} s{note}")
        if self.display is not None and not self.display.show(drawn):
            raise KeyboardInterrupt

    def _local(self, item: Input, work_dir: str) -> str:
        """The input as a local file (URLs downloaded once into work_dir)."""
        if not isinstance(item.location, str) or not item.location.startswith(("http://", "https://")):
            return str(item.location)
        from ..zoo import WeightsError, download

        target = os.path.join(work_dir, f"{len(os.listdir(work_dir))}_{item.name or 'download'}")
        try:
            download(item.location, target, progress=False)
        except WeightsError as e:
            raise OSError(str(e).replace("weights", "file")) from None
        return target

    def video(self, item: Input, work_dir: str) -> None:
        from ..fileio import write_text
        from ..tracking import PoseTracker
        from ..vis import draw_people
        from ..video import VideoSource, VideoWriter

        args = self.args
        source = VideoSource(item.location if item.kind == "webcam" else self._local(item, work_dir),
                             stride=args.frame_stride, max_frames=args.max_frames)
        keypoints = self.predictor.keypoints
        tracker = PoseTracker(keypoints.sigmas_array, keypoint_threshold=args.threshold)
        stem = _unique_stem(item.name, self.used_stems)
        record = {"video": item.name, "fps": source.fps, "frame_stride": args.frame_stride,
                  "keypoint_names": list(keypoints.names), "frames": []}
        writer = None
        start = time.perf_counter()
        interrupted = False
        bar = _progress(len(source) or None, "frame")
        try:
            for frame in source:
                people = self.predictor(frame.image)
                ids = tracker.update(_stack(people, keypoints.num_joints), [p.score for p in people])
                drawn = draw_people(frame.image, people, keypoints, args.threshold, ids=ids, labels=True)
                if writer is None:
                    record["height"], record["width"] = frame.image.shape[:2]
                    writer = VideoWriter(os.path.join(args.out, f"{stem}_pose"), source.fps / args.frame_stride,
                                         (drawn.shape[1], drawn.shape[0]))
                writer.write(drawn)
                record["frames"].append({"frame": frame.index, "time": round(frame.time, 3), "people": [
                    {"track_id": int(track), **p.to_json(args.threshold)} for track, p in zip(ids, people)]})
                self.people += len(people)
                self.frames += 1
                bar.update(1)
                if self.display is not None and not self.display.show(drawn):
                    break
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            source.close()
        frames = len(record["frames"])
        if writer is None:
            if interrupted:
                raise KeyboardInterrupt
            raise OSError(f"{item.name}: no frame could be decoded")
        video_path = writer.close()
        write_text(dumps(record, "frames"), os.path.join(args.out, f"{stem}.json"))
        self.videos += 1
        elapsed = time.perf_counter() - start
        tracks = len({person["track_id"] for f in record["frames"] for person in f["people"]} - {0})
        print(f"{item.name}: {frames} frames in {elapsed:.1f} s ({frames / max(elapsed, 1e-9):.1f} frames/s), "
              f"{tracks} tracks -> {video_path} ({writer.description})", flush=True)
        if interrupted:
            raise KeyboardInterrupt
        if source.truncated:
            # What could be read is kept; the input still counts as failed (exit status 1), so that scripts notice.
            message = (f"{item.name} ended after {source.decoded} of the {source.frame_count} frames it announces "
                       f"(a damaged or partly copied file?); the {frames} frames read are in {video_path}")
            self.failures.append(message)
            _say(f"warning: {message}", error=True)


def _say(message: str, error: bool = False) -> None:
    """A line on stdout (stderr for errors) that does not break a progress bar."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr if error else sys.stdout)


def _stack(people, num_joints: int):
    import numpy as np

    return np.stack([p.keypoints for p in people]) if people else np.zeros((0, num_joints, 3), np.float32)


def _progress(total: int | None, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, leave=False, file=sys.stderr)


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from .. import CheckpointError, ConfigError, Predictor
    from ..fileio import write_json
    from ..images import ImageError
    from ..predictor import synthetic_model_note
    from ..video import VideoError

    if args.frame_stride < 1 or (args.max_frames is not None and args.max_frames < 1):
        raise CommandError("--frame-stride and --max-frames must be at least 1")
    kinds = {**{p: "image" for p in args.image}, **{p: "video" for p in args.video}}
    sources = [*args.sources, *args.image, *args.folder, *args.video]
    if not sources:
        raise CommandError("nothing to run on: give images, folders, globs, URLs, videos or a webcam index")
    inputs, notes = collect_inputs(sources, kinds, args.recursive)
    for note in notes:
        print(note, file=sys.stderr)
    check_writable_folder(args.out)
    if args.coco_json:
        check_writable_file(args.coco_json, "--coco-json")
    display = Display() if args.show else None
    cfg, _, weights = load_config_and_weights(args.cfg, args.weights, overrides)
    min_score, nms = (0.0, None) if args.all else (args.min_score, args.nms or None)
    try:
        predictor = Predictor.from_config(cfg, weights, device=args.device, backend=args.backend,
                                          min_score=min_score, oks_nms_threshold=nms, clip_to_image=not args.all,
                                          max_input_pixels=args.max_input_pixels)
    except (ConfigError, CheckpointError, RuntimeError, ValueError) as e:
        raise CommandError(str(e)) from None
    note = synthetic_model_note(predictor.meta)
    if note:
        print(note, file=sys.stderr)

    state = Run(predictor, args, display)
    images = [item for item in inputs if item.kind == "image"]
    bar = _progress(len(images), "image") if len(images) > 1 else None
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="higherhrnet-downloads-") as work_dir:
        try:
            for position, item in enumerate(inputs, start=1):
                try:
                    if item.kind == "image":
                        state.image(item, position, work_dir)
                        if bar is not None:
                            bar.update(1)
                    else:
                        state.video(item, work_dir)
                except (ImageError, VideoError, ValueError, OSError) as e:
                    message = str(e) if str(e).startswith(str(item.location)) else f"{item.name}: {e}"
                    state.failures.append(message)
                    _say(f"error: {message}", error=True)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if bar is not None:
                bar.close()
    if args.coco_json:
        write_json(state.coco_results, args.coco_json)
    videos = (f"{state.videos} video{'s' if state.videos != 1 else ''} ({state.frames} frames), "
              if state.videos else "")
    summary = (f"{state.images} image{'s' if state.images != 1 else ''}, {videos}{state.people} "
               f"{'person' if state.people == 1 else 'people'} -> {args.out}")
    if interrupted:
        print(f"interrupted: {summary} (every file written there is complete)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if state.failures:
        print(f"{summary}; {len(state.failures)} of {len(inputs)} inputs failed:", file=sys.stderr)
        for message in state.failures:
            print(f"  {message}", file=sys.stderr)
        return EXIT_FAILED
    print(f"done: {summary}")
    return 0
