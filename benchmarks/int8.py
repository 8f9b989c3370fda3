"""int8 on the CPU: the onnxruntime-int8 backend against onnxruntime fp32 and the default PyTorch path.

    python benchmarks/int8.py speed --repeats 20
    python benchmarks/int8.py accuracy --data /tmp/int8-scratch/data --variants

speed: for the bundled model (synthetic_w16_256) and HigherHRNet-W32-512 (random weights: the time of a pass
does not depend on them), on a 768 x 576 frame (a synthetic scene of 4 people): the network's forward pass on the
frame's test-time input, and the whole Predictor call (resize, the config's single scale + flip, grouping,
people), with PyTorch (the default: BatchNorm folded, channels-last), onnxruntime fp32 and onnxruntime int8, in
interleaved rounds (common.interleaved_times); medians and speed-ups. W32's random weights give maps of noise,
whose grouping would swamp the time: its Predictor runs the painted network (common.painted_predictor: the real
forward pass of each backend, then the maps a trained network would give for the scene).

accuracy: the bundled model on the synthetic val split (--data: `higherhrnet make-synthetic --out DIR`), COCO AP
with each backend (every grouped person, as `higherhrnet eval` scores), and how the int8 people agree with the
fp32 onnxruntime ones: per image the people scoring at least 0.2 (what predict shows), matched by mean joint
distance (Hungarian); images with as many people in both, and the share of matched joints within 1 and 2 px
(image pixels; the val images are 256 x 256, so 1 px is half a pixel of the stride-2 heatmaps), of all joints
and of those whose fp32 value is at least 0.2 (the joints predict draws; the others are guesses). The same
agreement of fp32 onnxruntime with PyTorch is the floor that float rounding alone gives. --variants adds the
remedies for a quantized HRNet head: calibration on the train split, per-layer weights, the heatmap / tag
convolutions or the first convolution kept float, 64 calibration images, percentile ranges, full 8-bit weights.
Calibration uses the default 16 images of the val split (DATASET.ROOT --data), as the backend does.

Quantized models land in the int8 cache (models/quantize.py; $HIGHERHRNET_CACHE), so a second run only measures.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

import higherhrnet
from higherhrnet import Predictor
from higherhrnet.calibration import int8_calibration
from higherhrnet.data import build_dataset
from higherhrnet.data.synthetic import SyntheticSpec, render_scene
from higherhrnet.engine import evaluate
from higherhrnet.geometry import multi_scale_size
from higherhrnet.models import prepare_network
from higherhrnet.models.quantize import Int8Settings
from higherhrnet.zoo import REGISTRY, config_path, resolve_weights

from common import interleaved_times, machine_description, painted_predictor, print_speedups

BUNDLED = "synthetic_w16_256"
W32 = "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml"
BACKENDS = ("torch", "onnxruntime", "onnxruntime-int8")
FRAME = (768, 576)

# label -> (settings, config overrides for the calibration only)
VARIANTS = {
    "default: minmax, per-channel 7-bit weights, 16 images": (Int8Settings(), []),
    "calibrated on 16 train images instead": (Int8Settings(), ["DATASET.TEST", "train"]),
    "per-layer weights": (Int8Settings(per_channel=False), []),
    "heatmap / tag convolutions (final_layers) float": (Int8Settings(keep_float=("final_layers",)), []),
    "first convolution float": (Int8Settings(keep_float=("/conv1/",)), []),
    "both float": (Int8Settings(keep_float=("final_layers", "/conv1/")), []),
    "64 calibration images": (Int8Settings(images=64), []),
    "percentile ranges (99.999%)": (Int8Settings(method="percentile"), []),
    "8-bit weights (no reduce_range)": (Int8Settings(reduce_range=False), []),
}


def frame() -> tuple[np.ndarray, np.ndarray]:
    """A 768 x 576 synthetic scene: the image and its labelled people's keypoints (P, J, 3)."""
    spec = SyntheticSpec(image_size=FRAME, max_people=4, min_height=150, max_height=450)
    image, annotations = render_scene(np.random.default_rng(7), spec)
    people = [a["keypoints"] for a in annotations if a["num_keypoints"] > 0]
    return image, np.asarray(people, np.float64).reshape(len(people), -1, 3)


def bundled_model(opts=()):
    cfg = higherhrnet.load_cfg(config_path(REGISTRY[BUNDLED]), list(opts))
    model = higherhrnet.build_model(cfg)
    higherhrnet.load_checkpoint(model, resolve_weights(BUNDLED))
    return cfg, model.eval()


def w32_model():
    cfg = higherhrnet.load_cfg(os.path.join(os.path.dirname(__file__), "..", W32))
    torch.manual_seed(0)
    return cfg, higherhrnet.build_model(cfg).eval()


def speed(name: str, cfg, model, repeats: int, painted: bool) -> None:
    image, people = frame()
    predictors = {}
    for backend in BACKENDS:
        start = time.perf_counter()
        predictors[backend] = Predictor.from_model(cfg, model, device="cpu", backend=backend)
        ready = time.perf_counter() - start
        note = getattr(predictors[backend].network, "note", None)
        print(f"{name}, {backend}: ready in {ready:.1f} s" + (f"; {note}" if note else ""))
    params = predictors["torch"].params
    (width, height), _, _ = multi_scale_size(*FRAME, params.input_size, 1.0, min(params.scale_factors))
    batch = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        forward = interleaved_times({b: (lambda p=p: p.network(batch)) for b, p in predictors.items()}, repeats)
    if painted:
        predictors = {b: painted_predictor(cfg, p.network, image, people)[0] for b, p in predictors.items()}
    whole = interleaved_times({b: (lambda p=p: p(image)) for b, p in predictors.items()}, repeats)
    print(f"\n{name}, forward pass on the {FRAME[0]}x{FRAME[1]} frame's input ({width}x{height}), {repeats} rounds:\n")
    print_speedups(forward, "torch", "backend")
    maps = ", the painted network's maps" if painted else ""
    print(f"\n{name}, Predictor on the {FRAME[0]}x{FRAME[1]} frame (flip test {params.flip_test}, scales "
          f"{list(params.scale_factors)}{maps}), {repeats} rounds:\n")
    print_speedups(whole, "torch", "backend")
    print()


def people_by_image(results: list[dict], min_score: float) -> dict[int, list[np.ndarray]]:
    """image id -> the (J, 3) keypoints (x, y, value) of its people scoring at least min_score."""
    people: dict[int, list[np.ndarray]] = {}
    for r in results:
        people.setdefault(r["image_id"], [])
        if r["score"] >= min_score:
            people[r["image_id"]].append(np.asarray(r["keypoints"], np.float64).reshape(-1, 3))
    return people


def agreement(reference: list[dict], other: list[dict], images: list[int], min_score: float = 0.2,
              shown: float = 0.2) -> dict:
    """Images with as many people scoring >= min_score in both; of the joints of matched people, the share within 1
    and 2 px, of all joints and of those whose reference value is at least `shown` (the joints predict draws)."""
    a, b = people_by_image(reference, min_score), people_by_image(other, min_score)
    same, distances, values = 0, [], []
    for image in images:
        pa, pb = a.get(image, []), b.get(image, [])
        same += len(pa) == len(pb)
        if pa and pb:
            cost = np.array([[np.linalg.norm(x[:, :2] - y[:, :2], axis=1).mean() for y in pb] for x in pa])
            for i, j in zip(*linear_sum_assignment(cost)):
                distances.append(np.linalg.norm(pa[i][:, :2] - pb[j][:, :2], axis=1))
                values.append(pa[i][:, 2])
    d = np.concatenate(distances) if distances else np.zeros(0)
    seen = d[np.concatenate(values) >= shown] if values else d
    return {"same": same, "images": len(images), "1px": float((d <= 1).mean()), "2px": float((d <= 2).mean()),
            "shown 1px": float((seen <= 1).mean()), "shown 2px": float((seen <= 2).mean())}


def accuracy(data: str, variants: bool) -> None:
    cfg, model = bundled_model(["DATASET.ROOT", data])
    dataset = build_dataset(cfg, is_train=False)
    images = list(dataset.source.ids)
    reference = Predictor.from_model(cfg, model, device="cpu", raw=True)

    def score(network):
        start = time.perf_counter()
        # Batches of TEST.IMAGES_PER_GPU, as `higherhrnet eval` runs them.
        metrics, results = evaluate(Predictor(network, reference.params, reference.keypoints, raw=True), dataset,
                                    cfg.TEST.IMAGES_PER_GPU, progress=False)
        return metrics, results, time.perf_counter() - start

    runs = {"torch (default)": reference.network,
            "onnxruntime fp32": prepare_network(model, torch.device("cpu"), "onnxruntime", export_size=(256, 256))}
    for label, (settings, opts) in (VARIANTS if variants else {"default": (Int8Settings(), [])}).items():
        calibration = int8_calibration(bundled_model(["DATASET.ROOT", data, *opts])[0], reference.params, settings)
        runs[f"int8, {label}"] = prepare_network(model, torch.device("cpu"), "onnxruntime-int8",
                                                 export_size=(256, 256), calibration=calibration)
        print(f"int8, {label}: {runs[f'int8, {label}'].note}")
    print()
    print("| backend | AP | AP .5 | AR | same number of people | joints within 1 px | within 2 px | "
          "shown joints (value >= 0.2) within 1 px | within 2 px | eval s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    results = {}
    for label, network in runs.items():
        metrics, results[label], seconds = score(network)
        cells = "- | - | - | - | -"
        if label != "torch (default)":
            reference_label = "torch (default)" if label == "onnxruntime fp32" else "onnxruntime fp32"
            ag = agreement(results[reference_label], results[label], images)
            cells = (f"{ag['same']}/{ag['images']} | {ag['1px']:.3f} | {ag['2px']:.3f} | {ag['shown 1px']:.3f} | "
                     f"{ag['shown 2px']:.3f}")
        print(f"| {label} | {metrics['AP']:.4f} | {metrics['AP .5']:.4f} | {metrics['AR']:.4f} | {cells} | "
              f"{seconds:.0f} |", flush=True)
    print("\n(agreement: onnxruntime fp32 against PyTorch, int8 against onnxruntime fp32)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("speed", "accuracy"))
    parser.add_argument("--repeats", type=int, default=20, help="speed: rounds (each backend once per round)")
    parser.add_argument("--models", nargs="+", choices=("bundled", "w32"), default=["bundled", "w32"])
    parser.add_argument("--data", help="accuracy: the synthetic dataset (higherhrnet make-synthetic --out DIR)")
    parser.add_argument("--variants", action="store_true", help="accuracy: also the remedies (VARIANTS)")
    parser.add_argument("--threads", type=int, help="torch and onnxruntime threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine_description()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    if args.part == "speed":
        for which in args.models:
            if which == "bundled":
                speed(BUNDLED, *bundled_model(), args.repeats, painted=False)
            else:
                speed("HigherHRNet-W32-512", *w32_model(), args.repeats, painted=True)
    else:
        if not args.data:
            parser.error("accuracy needs --data (higherhrnet make-synthetic --out DIR)")
        accuracy(args.data, args.variants)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
