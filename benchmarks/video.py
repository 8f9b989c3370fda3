"""Frames per second of a whole video, as `higherhrnet predict VIDEO` processes it: decoding, the network, grouping
with tracking, drawing, encoding (H.264 through ffmpeg) and the JSON, one frame after the other (the loop as it
was: ResultStream(concurrent=False), the same stage functions) against streamed (stages side by side in threads,
the default), for the bundled model and for HigherHRNet-W32-512 with random weights, on an idle machine and
beside a neighbour that keeps a core busy (contention.py's "one busy core").

    cd benchmarks && python video.py --rounds 2 [--before ../../main/lib]

The video: a synthetic 768 x 576 scene with people (data.synthetic.render_scene) sliding right, written to a
temporary folder as H.264. Each cell is one pass over the video (after one untimed pass of each model); the
rounds interleave every neighbour, model and mode, so that a machine whose speed drifts affects all alike; a
cell's figure is the median over the rounds, and the ratio is to one-frame-after-the-other beside the same
neighbour. "streamed, 1 torch thread" gives the network one PyTorch thread instead of PyTorch's count, leaving
the other core to the other stages.

--before LIB adds `higherhrnet predict` on the video, the bundled model, run with the package in LIB (the code
before streaming, from another checkout) and with this one, in the same rounds: the frames/s the command
reports for its video loop.

Also printed: where a frame's time goes when the stages run one after the other (milliseconds per frame, no
neighbour; ffmpeg's CPU time is the encoder process's, spent beside the loop), and the network alone on the
first 4 frames in batches of 1, 2 and 4 (milliseconds per frame; 5 interleaved repeats, 1 for W32), which says
whether batching frames would help.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

from higherhrnet.threads import set_wait_policy

set_wait_policy()       # as the command line does, before torch is imported (threads.py)

import numpy as np  # noqa: E402

import higherhrnet  # noqa: E402
from higherhrnet.data.synthetic import SyntheticSpec, render_scene  # noqa: E402
from higherhrnet.inference import run_network  # noqa: E402
from higherhrnet.tracking import PoseTracker  # noqa: E402
from higherhrnet.video import VideoSource, VideoWriter  # noqa: E402

from common import interleaved_times, machine_description  # noqa: E402
from contention import NEIGHBOURS  # noqa: E402

W32 = "../experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml"
THRESHOLD = 0.2
MODES = ("one after the other", "streamed", "streamed, 1 torch thread")


def write_video(path: str, frames: int, size=(768, 576)) -> str:
    """A synthetic scene with four people, sliding right 3 pixels a frame; the H.264 file's path."""
    spec = SyntheticSpec(image_size=size, max_people=4, min_height=150, max_height=500, crowd_prob=0.0)
    scene, _ = render_scene(np.random.default_rng(0), spec)
    with VideoWriter(path, 25.0, size) as writer:
        for i in range(frames):
            writer.write(np.roll(scene, 3 * i, axis=1))
    return writer.path


def predict_video(predictor, video: str, out: str, concurrent: bool, max_frames: int | None) -> int:
    """What `higherhrnet predict VIDEO --out OUT` does with a video (cli/predict.py, Run.video): the stream's
    Results drawn, encoded and listed in a JSON file. Returns the number of frames."""
    frames = predictor.stream(video, max_frames=max_frames, keypoint_threshold=THRESHOLD, concurrent=concurrent)
    records, writer = [], None
    for result in frames:
        drawn = result.plot(THRESHOLD)
        if writer is None:
            writer = VideoWriter(os.path.join(out, "clip_pose"), frames.fps, (drawn.shape[1], drawn.shape[0]))
        writer.write(drawn)
        records.append(result.to_json(THRESHOLD))
    writer.close()
    with open(os.path.join(out, "clip.json"), "w", encoding="utf-8") as f:
        json.dump({"frames": records}, f)
    return len(records)


def command_fps(lib: str, video: str, out: str) -> float:
    """The frames/s `higherhrnet predict VIDEO` reports (its video loop alone: no start-up, no model loading),
    run with the package in `lib` (a checkout's lib folder), the bundled model."""
    env = {**os.environ, "PYTHONPATH": lib}
    done = subprocess.run([sys.executable, "-m", "higherhrnet", "predict", "--weights", "synthetic_w16_256", video,
                           "--out", out, "--exist-ok"], env=env, capture_output=True, text=True, check=True)
    return float(re.search(r"\(([\d.]+) frames/s\)", done.stdout).group(1))


def stage_times(predictor, video: str, out: str, max_frames: int) -> dict[str, float]:
    """Seconds per frame of each stage, run one after the other as the loop did."""
    source = VideoSource(video, max_frames=max_frames)
    tracker = PoseTracker(predictor.keypoints.sigmas_array, keypoint_threshold=THRESHOLD)
    totals = dict.fromkeys(("decode", "network", "grouping + tracking", "drawing", "to ffmpeg's pipe", "JSON"), 0.0)
    writer, count = None, 0
    encoder_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    frames = iter(source)
    while True:
        start = time.perf_counter()
        frame = next(frames, None)
        totals["decode"] += time.perf_counter() - start
        if frame is None:
            break
        start = time.perf_counter()
        maps = predictor._maps([frame.image])[0]
        totals["network"] += time.perf_counter() - start
        start = time.perf_counter()
        people = predictor._people_from_maps(frame.image, maps, "")
        stacked = (np.stack([p.keypoints for p in people]) if people
                   else np.zeros((0, predictor.keypoints.num_joints, 3)))
        ids = tracker.update(stacked, [p.score for p in people])
        result = higherhrnet.Result(people, frame.image, predictor.keypoints, track_ids=ids)
        totals["grouping + tracking"] += time.perf_counter() - start
        start = time.perf_counter()
        drawn = result.plot(THRESHOLD)
        totals["drawing"] += time.perf_counter() - start
        start = time.perf_counter()
        if writer is None:
            writer = VideoWriter(os.path.join(out, "stages_pose"), source.fps, (drawn.shape[1], drawn.shape[0]))
        writer.write(drawn)
        totals["to ffmpeg's pipe"] += time.perf_counter() - start
        start = time.perf_counter()
        json.dumps(result.to_json(THRESHOLD))
        totals["JSON"] += time.perf_counter() - start
        count += 1
    writer.close()
    source.close()
    encoder_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    per_frame = {name: seconds / count for name, seconds in totals.items()}
    per_frame["ffmpeg's CPU time (its own process)"] = (
        encoder_after.ru_utime + encoder_after.ru_stime - encoder_before.ru_utime - encoder_before.ru_stime) / count
    return per_frame


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="rounds over every neighbour, model and mode")
    parser.add_argument("--frames", type=int, default=48, help="frames of the video the bundled model runs on")
    parser.add_argument("--w32-frames", type=int, default=4, help="of them, the first N for W32-512")
    parser.add_argument("--before", metavar="LIB",
                        help="also run `higherhrnet predict` on the video with the package in LIB (another checkout's "
                             "lib folder, e.g. the code before streaming) and with this one, in the same rounds")
    parser.add_argument("--neighbours", nargs="+", default=["no neighbour", "one busy core"], choices=list(NEIGHBOURS))
    args = parser.parse_args(argv)

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the synthetic model's note
        bundled = {threads: higherhrnet.Predictor("synthetic_w16_256", device="cpu", threads=threads)
                   for threads in (None, 1)}
    cfg = higherhrnet.load_cfg(W32)
    torch.manual_seed(0)
    network = higherhrnet.build_model(cfg).eval()
    w32 = {threads: higherhrnet.Predictor.from_model(cfg, network, device="cpu", threads=threads)
           for threads in (None, 1)}
    models = {"bundled (synthetic_w16_256)": (bundled, args.frames), "W32-512, random weights": (w32, args.w32_frames)}

    with tempfile.TemporaryDirectory(prefix="higherhrnet-video-bench-") as folder:
        video = write_video(os.path.join(folder, "clip"), args.frames)
        out = os.path.join(folder, "out")
        os.makedirs(out)

        def run(model: str, mode: str) -> float:
            """Frames per second of one pass."""
            predictors, frames = models[model]
            predictor = predictors[1 if mode.endswith("1 torch thread") else None]
            start = time.perf_counter()
            count = predict_video(predictor, video, out, mode != "one after the other", frames)
            return count / (time.perf_counter() - start)

        with open("/proc/loadavg", encoding="ascii") as f:
            load_before = f.read().split()[:3]
        for model in models:        # warm-up
            run(model, "streamed")
        fps = {(n, m, mode): [] for n in args.neighbours for m in models for mode in MODES}
        here = os.path.dirname(os.path.dirname(os.path.abspath(higherhrnet.__file__)))
        libs = {f"before ({args.before})": args.before, "now": here} if args.before else {}
        commands = {(n, version): [] for n in args.neighbours for version in libs}
        for round_index in range(args.rounds):
            for neighbour in args.neighbours:
                procs = [subprocess.Popen(command) for command in NEIGHBOURS[neighbour]]
                try:
                    time.sleep(1.0)     # the neighbours started
                    for model in models:
                        for mode in MODES:
                            fps[neighbour, model, mode].append(run(model, mode))
                            print(f"round {round_index + 1}, {neighbour}, {model}, {mode}: "
                                  f"{fps[neighbour, model, mode][-1]:.2f} frames/s", file=sys.stderr, flush=True)
                    for version, lib in libs.items():
                        commands[neighbour, version].append(command_fps(lib, video, out))
                        print(f"round {round_index + 1}, {neighbour}, higherhrnet predict, {version}: "
                              f"{commands[neighbour, version][-1]:.2f} frames/s", file=sys.stderr, flush=True)
                finally:
                    for p in procs:
                        p.kill()
                        p.wait()
        stages = {model: stage_times(predictors[None], video, out, frames)
                  for model, (predictors, frames) in models.items()}
        decoded = [f.image for f in VideoSource(video, max_frames=4)]
        batches = {}
        for model, (predictors, _) in models.items():
            predictor = predictors[None]
            runs = {size: (lambda size=size: [run_network(predictor.network, decoded[i:i + size], predictor.params,
                                                          predictor.device) for i in range(0, 4, size)])
                    for size in (1, 2, 4)}
            batches[model] = interleaved_times(runs, 1 if model.startswith("W32") else 5)
        with open("/proc/loadavg", encoding="ascii") as f:
            load_after = f.read().split()[:3]

    print(f"machine: {machine_description()}")
    print(f"load average before / after: {' '.join(load_before)} / {' '.join(load_after)}; {args.rounds} rounds; "
          f"768 x 576 video, {args.frames} frames (W32-512: the first {args.w32_frames})\n")
    print("| frames/s (x one after the other) | " + " | ".join(
        f"{model}, {n}" for model in models for n in args.neighbours) + " |")
    print("| --- |" + " --- |" * (len(models) * len(args.neighbours)))
    for mode in MODES:
        cells = []
        for model in models:
            for n in args.neighbours:
                median = statistics.median(fps[n, model, mode])
                reference = statistics.median(fps[n, model, MODES[0]])
                cells.append(f"{median:.2f} ({median / reference:.2f}x)")
        print(f"| {mode} | " + " | ".join(cells) + " |")
    if libs:
        print("\n| higherhrnet predict, bundled model: frames/s (x before) | " + " | ".join(args.neighbours) + " |")
        print("| --- |" + " --- |" * len(args.neighbours))
        before = next(iter(libs))
        for version in libs:
            cells = [f"{statistics.median(commands[n, version]):.2f} "
                     f"({statistics.median(commands[n, version]) / statistics.median(commands[n, before]):.2f}x)"
                     for n in args.neighbours]
            print(f"| {version} | " + " | ".join(cells) + " |")
    print("\n| one after the other, no neighbour: ms per frame | " + " | ".join(models) + " |")
    print("| --- |" + " --- |" * len(models))
    for stage in stages[next(iter(models))]:
        print(f"| {stage} | " + " | ".join(f"{stages[model][stage] * 1e3:.1f}" for model in models) + " |")
    print("\n| the network alone (run_network), ms per frame | batch 1 | batch 2 | batch 4 |")
    print("| --- | --- | --- | --- |")
    for model, times in batches.items():
        cells = [f"{statistics.median(times[size]) / 4 * 1e3:.1f}" for size in (1, 2, 4)]
        print(f"| {model} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
