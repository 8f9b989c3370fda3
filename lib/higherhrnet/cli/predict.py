"""Find people in images, folders, globs, URLs, videos and webcams.

    higherhrnet predict --weights higherhrnet_w32_512 photo.jpg               # registered weights, own config
    higherhrnet predict --cfg CFG --weights W photos/ --recursive --coco-json results.json
    higherhrnet predict --cfg CFG --weights W "shots/*.png" https://example.com/street.jpg
    higherhrnet predict --cfg CFG --weights W clip.mp4 --frame-stride 2 --max-frames 300
    higherhrnet predict --cfg CFG --weights W 0 --show                          # webcam 0, in a window
    higherhrnet predict --cfg CFG --weights W --image a.jpg --threshold 0.3 TEST.FLIP_TEST False
    higherhrnet predict --weights synthetic_w16_256 --refine pose_hrnet_w32_256x192 photo.jpg   # hybrid

A thin layer over the library's Predictor (`higherhrnet.Predictor`: the same clean results, the same Result
objects). Shown and written by default: people scoring at least --min-score, without duplicates (OKS above
--nms with a better person); joints below --threshold are not drawn. --all keeps every grouped person, as the
official evaluation does (`higherhrnet eval` always does). --refine MODEL re-estimates each person with a
top-down model on a box around the person's joints (docs/topdown.md); a top-down model alone is refused (it
needs boxes: --refine, or `higherhrnet eval` on ground-truth or detector boxes). For each image: <name>_pose.jpg (the people drawn,
each in its own colour, left limbs lighter, right limbs darker) and <name>.json (image, image_id, width,
height, the model and its thresholds, people sorted by score with score, box [x, y, w, h] around the visible
joints and keypoints as [x, y, score] triples in image pixels). For a video or webcam: <name>_pose.mp4 (H.264
with imageio-ffmpeg; see docs/predict.md) and one <name>.json with every processed frame; people keep a track
id (and colour) from frame to frame (--no-track: none). A video's decoding, network, grouping and tracking,
drawing and encoding run side by side (threads, and ffmpeg's process), its frames kept in order. --coco-json
FILE also writes COCO results, with FILE's image ids explained in <FILE stem>_images.json (file name, size, the
model): an image's id is the number of a COCO-style file name (000000000785.jpg -> 785), else a number derived
from its name, the same in every run.
The output folder: --out, which must be new or empty unless --exist-ok; by default demo_output, or
demo_output2, 3, ... when it already holds files. Ctrl-C stops cleanly: what is finished is kept, the video
and its JSON are closed, exit status 130; SIGTERM (docker stop, systemd, Kubernetes, SLURM) does the same, exit
status 143.
Every file is written whole under a temporary name and then renamed: a reader never sees half a file. A file
that cannot be written (a full disk, a folder made read-only) stops the run with one line naming it and what is
kept; a video that cannot be written keeps the JSON of its frames done.
Exit status: 0 all inputs done, 1 some inputs failed or were damaged (each is reported; a video cut short
keeps the frames it had), 2 bad arguments / config / weights / output folder, or an output that could not be
written, 130 interrupted, 143 terminated.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zlib

from ..fileio import finish_before_interrupt, write_text
from ..interrupts import stopped
from .common import (EXIT_FAILED, EXIT_USAGE, CommandError, UsageError, add_config_options, add_threads_option,
                     check_writable_file, check_writable_folder, exit_status, load_config_and_weights, set_threads)

__all__ = ["add_arguments", "run", "coco_image_id", "output_folder"]

# The values of predictor.CLEAN and DEFAULT_MAX_IMAGE_PIXELS, for the help text (predictor.py imports PyTorch;
# a test checks they agree).
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MIN_SCORE = 0.2
DEFAULT_NMS = 0.5
DEFAULT_OUT = "demo_output"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, cfg_required=False,
                       weights="checkpoint (.pth), .onnx file (with --backend onnxruntime), http(s) URL or registered "
                               "name (higherhrnet weights lists them); default: TEST.MODEL_FILE of --cfg, else the "
                               "default COCO model (the bundled demo model when it cannot be downloaded)")
    parser.add_argument("sources", nargs="*", metavar="SOURCE",
                        help="images, folders, glob patterns (quoted), http(s) URLs, video files, webcam indices (0)")
    parser.add_argument("--image", nargs="+", default=[], metavar="F", help="image files (same as SOURCE)")
    parser.add_argument("--folder", action="append", default=[], metavar="DIR", help="a folder (same as SOURCE)")
    parser.add_argument("--video", action="append", default=[], metavar="F", help="a video file (same as SOURCE)")
    parser.add_argument("--recursive", action="store_true", help="also look in the folders' subfolders")
    parser.add_argument("--out", help=f"output folder, new or empty unless --exist-ok (default: {DEFAULT_OUT}, or "
                                      f"{DEFAULT_OUT}2, 3, ... when it already holds files)")
    parser.add_argument("--exist-ok", action="store_true",
                        help="write into --out even when it already holds files (same names are replaced)")
    parser.add_argument("--refine", metavar="MODEL",
                        help="refine each person with a top-down model (pose_hrnet: a registered name such as "
                             "pose_hrnet_w32_256x192, a model file or a URL) on a box around the person's joints; "
                             "scores become the person's score x the mean confident joint score")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "onnxruntime-int8"), default="torch",
                        help="run the network in PyTorch (default) or onnxruntime (pip install -e \".[onnx]\"); "
                             "onnxruntime-int8: quantized to int8 for the CPU, calibrated on the config's test split "
                             "(else synthetic scenes) the first time, then cached")
    add_threads_option(parser)
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
                             "number of a COCO-style file name, else one derived from the name; FILE's "
                             "<stem>_images.json maps ids to files and names the model)")
    parser.add_argument("--show", action="store_true", help="show the results in a window (needs a display)")
    parser.add_argument("--no-track", action="store_true",
                        help="videos: no tracking (people get no id across frames; colours by rank)")
    parser.add_argument("--frame-stride", type=int, default=1, metavar="N", help="videos: every N-th frame")
    parser.add_argument("--max-frames", type=int, metavar="N", help="videos: stop after N processed frames")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="larger images are read reduced (JPEG) or refused; keypoints are mapped back to the "
                             "original (default 50e6)")
    parser.add_argument("--max-input-pixels", type=int, default=3072 * 3072,
                        help="refuse images whose network input would be larger (extreme aspect ratios)")
    parser.add_argument("--accept-damaged", action="store_true",
                        help="use JPEG files whose compressed data is corrupt (an interrupted download, a bad sector) "
                             "as libjpeg decodes them, a different picture; by default each is a failed input")


def _unique_stem(name: str, used: set[str]) -> str:
    stem = os.path.splitext(name)[0] or "image"
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate)
    return candidate


def coco_image_id(name: str, used: set[int]) -> int:
    """A COCO image id for the file `name`, the same in every run: the number of a COCO-style name
    ("000000000785.jpg" -> 785), else a 31-bit CRC-32 of the name; the next free number where two names
    meet (`used`: the ids given so far, updated)."""
    stem = os.path.splitext(name)[0]
    image_id = int(stem) if stem.isdigit() else zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF
    while image_id in used:
        image_id += 1
    used.add(image_id)
    return image_id


def output_folder(out: str | None, exist_ok: bool) -> str:
    """Where predict writes: --out (CommandError when it already holds files, unless exist_ok), or by default
    demo_output, demo_output2, ... : the first that is missing or empty."""
    def has_files(folder: str) -> bool:
        return os.path.isdir(folder) and any(not n.startswith(".") for n in os.listdir(folder))

    if out is not None:
        if has_files(out) and not exist_ok:
            raise CommandError(f"--out {out} already holds files: choose a new folder, or add --exist-ok to write "
                               f"into it (files of the same names are replaced)")
        return out
    folder, n = DEFAULT_OUT, 1
    while has_files(folder) and not exist_ok:
        n += 1
        folder = f"{DEFAULT_OUT}{n}"
    return folder


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
        self.used_ids: set[int] = set()
        self.coco_results: list[dict] = []
        self.coco_images: list[dict] = []
        self.failures: list[str] = []
        self.people = self.images = self.videos = self.frames = 0

    def fail(self, source, message: str) -> None:
        """Report that `source` failed (the others go on) and list it for the summary."""
        message = message if message.startswith(str(source.location)) else f"{source.name}: {message}"
        self.failures.append(message)
        _say(f"error: {message}", error=True)

    def image(self, source, work_dir: str) -> None:
        args = self.args
        start = time.perf_counter()
        result = self.predictor.predict_file(source, work_dir)
        stem = _unique_stem(source.name, self.used_stems)
        image_id = coco_image_id(source.name, self.used_ids)
        record = result.to_json(args.threshold, image_id=image_id)
        with finish_before_interrupt():   # an image counts as done with both files written
            result.save(os.path.join(args.out, f"{stem}_pose.jpg"), args.threshold)
            write_text(dumps(record, "people"), os.path.join(args.out, f"{stem}.json"))
            self.coco_results += result.to_coco(image_id, threshold=args.threshold)
            self.coco_images.append({"id": image_id, "file_name": source.name, "width": record["width"],
                                     "height": record["height"], "source": str(source.location)})
            self.images += 1
            self.people += len(result)
        factor = result.downscale
        note = f" (read at x{factor:.2f} of its size)" if factor != 1.0 else ""
        _say(f"{source.name}: {len(result)} {'person' if len(result) == 1 else 'people'}, "
             f"{time.perf_counter() - start:.2f} s{note}")
        if self.display is not None and not self.display.show(result.plot(args.threshold)):
            raise KeyboardInterrupt

    def video(self, source) -> None:
        from ..video import VideoError, VideoWriter

        args = self.args
        frames = self.predictor.stream(source, track=not args.no_track, frame_stride=args.frame_stride,
                                       max_frames=args.max_frames, keypoint_threshold=args.threshold)
        stem = _unique_stem(source.name, self.used_stems)
        record = {"video": source.name, "fps": frames.fps, "frame_stride": args.frame_stride,
                  "keypoint_names": list(self.predictor.keypoints.names), "model": self.predictor.describe(),
                  "frames": []}
        writer = None
        start = time.perf_counter()
        stop = None         # the KeyboardInterrupt (Ctrl-C, SIGTERM) that ended the video early
        failure = None      # the video could not be written (a full disk): the frames done are kept as JSON
        bar = _progress(len(frames) or None, "frame")
        try:
            for result in frames:
                drawn = result.plot(args.threshold)
                if writer is None:
                    record["height"], record["width"] = drawn.shape[:2]
                    writer = VideoWriter(os.path.join(args.out, f"{stem}_pose"), frames.fps / args.frame_stride,
                                         (drawn.shape[1], drawn.shape[0]))
                writer.write(drawn)
                record["frames"].append(result.to_json(args.threshold))
                self.people += len(result)
                self.frames += 1
                bar.update(1)
                if self.display is not None and not self.display.show(drawn):
                    break
        except KeyboardInterrupt as e:
            stop = e
        except VideoError as e:
            if writer is None:
                raise
            failure = e
        except Exception:
            if writer is not None:
                writer.abort()
            raise
        finally:
            bar.close()
            frames.close()
        count = len(record["frames"])
        if writer is None:
            if stop is not None:
                raise stop
            raise OSError(f"{source.name}: no frame could be decoded")
        json_path = os.path.join(args.out, f"{stem}.json")
        if failure is None:
            try:
                video_path = writer.close()
            except (VideoError, OSError) as e:
                failure = e
        if failure is not None:
            try:
                write_text(dumps(record, "frames"), json_path)
                kept = f"the video is not kept; the {count} frames done are in {json_path}"
            except OSError as e:
                kept = f"nothing is kept ({json_path}: {e.strerror})"
            if stop is not None:
                _say(f"error: {source.name}: {failure}; {kept}", error=True)
                raise stop
            raise VideoError(f"{failure}; {kept}")
        write_text(dumps(record, "frames"), json_path)
        self.videos += 1
        elapsed = time.perf_counter() - start
        tracks = len({person.get("track_id", 0) for f in record["frames"] for person in f["people"]} - {0})
        tracked = f", {tracks} tracks" if not args.no_track else ""
        print(f"{source.name}: {count} frames in {elapsed:.1f} s ({count / max(elapsed, 1e-9):.1f} frames/s)"
              f"{tracked} -> {video_path} ({writer.description})", flush=True)
        if stop is not None:
            raise stop
        if frames.truncated:
            # What could be read is kept; the input still counts as failed (exit status 1), so that scripts notice.
            message = (f"{source.name} ended after {frames.decoded} of the {frames.frame_count} frames it announces "
                       f"(a damaged or partly copied file?); the {count} frames read are in {video_path}")
            self.failures.append(message)
            _say(f"warning: {message}", error=True)


def _say(message: str, error: bool = False) -> None:
    """A line on stdout (stderr for errors) that does not break a progress bar."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr if error else sys.stdout)


def _progress(total: int | None, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, leave=False, file=sys.stderr)


def coco_images_path(coco_json: str) -> str:
    """The file beside --coco-json FILE that maps its image ids to files: <FILE without .json>_images.json."""
    stem = coco_json[:-5] if coco_json.lower().endswith(".json") else coco_json
    return f"{stem}_images.json"


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    import warnings

    from .. import CheckpointError, ConfigError, Predictor
    from ..devices import memory_error_line, out_of_memory
    from ..fileio import WriteError, write_json
    from ..images import DamagedImageError, ImageError
    from ..hub import MissingConfigError
    from ..predictor import SyntheticModelWarning, require_bottom_up, synthetic_model_note
    from ..sources import SourceError, collect_sources
    from ..video import VideoError
    from ..zoo import WeightsError

    if args.frame_stride < 1 or (args.max_frames is not None and args.max_frames < 1):
        raise UsageError("--frame-stride and --max-frames must be at least 1")
    set_threads(args.threads)
    kinds = {**{p: "image" for p in args.image}, **{p: "video" for p in args.video}}
    words = [*args.sources, *args.image, *args.folder, *args.video]
    if not words:
        raise UsageError("nothing to run on: give images, folders, globs, URLs, videos or a webcam index")
    try:
        inputs, notes = collect_sources(words, kinds, args.recursive)
    except SourceError as e:
        raise CommandError(str(e)) from None
    for note in notes:
        print(note, file=sys.stderr)
    args.out = output_folder(args.out, args.exist_ok)
    check_writable_folder(args.out)
    if args.coco_json:
        check_writable_file(args.coco_json, "--coco-json")
    display = Display() if args.show else None
    cfg, _, weights = load_config_and_weights(args.cfg, args.weights, overrides, default_model=True,
                                              check=require_bottom_up)
    options = {"raw": True} if args.all else {"min_score": args.min_score, "oks_nms_threshold": args.nms}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntheticModelWarning)     # printed below as a note
            predictor = Predictor.from_config(cfg, weights, device=args.device, backend=args.backend,
                                              max_input_pixels=args.max_input_pixels,
                                              max_image_pixels=args.max_pixels, accept_damaged=args.accept_damaged,
                                              name=os.path.basename(args.weights or weights), refine=args.refine,
                                              threads=args.threads, **options)
    except (ConfigError, CheckpointError, WeightsError, MissingConfigError, RuntimeError, ValueError) as e:
        raise CommandError(f"--refine {args.refine}: {e}" if isinstance(e, MissingConfigError) else str(e)) from None
    for note in (synthetic_model_note(predictor.meta), getattr(predictor.network, "note", None)):
        if note:
            print(note, file=sys.stderr)

    state = Run(predictor, args, display)
    images = [item for item in inputs if item.kind == "image"]
    bar = _progress(len(images), "image") if len(images) > 1 else None
    stop = None         # the KeyboardInterrupt (Ctrl-C, SIGTERM) that ended the run
    stopped_by = None   # a file that could not be written (a full disk, a read-only folder): the next would fail too
    with tempfile.TemporaryDirectory(prefix="higherhrnet-downloads-") as work_dir:
        try:
            for item in inputs:
                try:
                    if item.kind == "image":
                        state.image(item, work_dir)
                        if bar is not None:
                            bar.update(1)
                    else:
                        state.video(item)
                except WriteError as e:
                    stopped_by = e
                    break
                except (ImageError, VideoError, ValueError, OSError) as e:
                    if isinstance(e, DamagedImageError):
                        e = e.with_fix("add --accept-damaged to use it as decoded")
                    state.fail(item, str(e))
                except RuntimeError as e:
                    if not out_of_memory(e):
                        raise
                    state.fail(item, f"out of memory ({memory_error_line(e)}); try a smaller --max-input-pixels, "
                                     f"fewer TEST.SCALE_FACTOR scales or TEST.FLIP_TEST False")
        except KeyboardInterrupt as e:
            stop = e
        finally:
            if bar is not None:
                bar.close()
    unwritten = None
    if args.coco_json:
        try:
            write_json(state.coco_results, args.coco_json)
            write_json({"model": predictor.describe(), "threshold": args.threshold, "images": state.coco_images},
                       coco_images_path(args.coco_json), indent=1)
        except WriteError as e:
            unwritten = e
    videos = (f"{state.videos} video{'s' if state.videos != 1 else ''} ({state.frames} frames), "
              if state.videos else "")
    summary = (f"{state.images} image{'s' if state.images != 1 else ''}, {videos}{state.people} "
               f"{'person' if state.people == 1 else 'people'} -> {args.out}")
    if stopped_by is not None or unwritten is not None:
        kept = (f"stopped; kept: {summary} (every file there is complete)" if stopped_by is not None else
                f"the results of each input are kept: {summary}")
        if stopped_by is not None and args.coco_json:
            kept += (f"; --coco-json {args.coco_json} was not written either ({unwritten.strerror})"
                     if unwritten is not None else f"; --coco-json {args.coco_json} holds them")
        elif unwritten is not None and unwritten.filename != os.fspath(args.coco_json):
            kept += f"; {args.coco_json} was written"
        print(f"error: {(stopped_by or unwritten).keeping(kept)}", file=sys.stderr)
        return exit_status(stop) if stop is not None else EXIT_USAGE
    if stop is not None:
        print(f"{stopped(stop)}: {summary} (every file written there is complete)", file=sys.stderr)
        return exit_status(stop)
    if state.failures:
        print(f"{summary}; {len(state.failures)} of {len(inputs)} inputs failed:", file=sys.stderr)
        for message in state.failures:
            print(f"  {message}", file=sys.stderr)
        return EXIT_FAILED
    print(f"done: {summary}")
    return 0
