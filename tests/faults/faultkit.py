"""What the fault tests share: tiny models (good, NaN), tiny COCO data, running the command as a user does,
and checking that every file left behind is complete."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch

import higherhrnet

from conftest import REPO, limit_file_size, randomize, tiny_cfg
from tinycoco import write_tiny_coco

# Tiny data and a short training run: two 2-image batches an epoch, no loader processes.
TRAIN_OPTS = ("DATASET.TRAIN", "train", "DATASET.TEST", "val", "WORKERS", "0", "TRAIN.IMAGES_PER_GPU", "2",
              "TRAIN.END_EPOCH", "1", "AUTO_RESUME", "True")


def make_models(folder: Path) -> Path:
    """tiny.yaml, random.pth (a random tiny network: low-scoring 'people' everywhere) and nan.pth (the same with
    NaN in one BatchNorm's running variance, saved around save_model's check as a diverged run would have)."""
    cfg = tiny_cfg()
    (folder / "tiny.yaml").write_text(cfg.dump())
    torch.manual_seed(0)
    model = randomize(higherhrnet.build_model(cfg))
    higherhrnet.save_model(folder / "random.pth", model, cfg)
    state = model.state_dict()
    state["stage2.0.fuse_layers.0.1.1.running_var"][3] = float("nan")
    torch.save({"state_dict": state}, folder / "nan.pth")
    return folder


def make_data(root: Path) -> Path:
    write_tiny_coco(root, split="train", num_images=4)
    write_tiny_coco(root, split="val", num_images=2, seed=1)
    return root


def train_args(cfg_path: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """The train command's arguments for the tiny network on the tiny data, writing under `out`."""
    return ["train", "--cfg", str(cfg_path), "DATASET.ROOT", str(data), *TRAIN_OPTS, "OUTPUT_DIR", str(out / "output"),
            "LOG_DIR", str(out / "log"), *extra]


def run_dir(out: Path) -> Path:
    """The run folder of train_args's runs (OUTPUT_DIR/<dataset>/<model>/<config name>)."""
    return out / "output" / "coco_kpt" / "pose_higher_hrnet" / "tiny"


def _default_sigint() -> None:
    # A process started from a shell's background job inherits SIGINT ignored; a user's terminal gives the
    # default, which Python turns into KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def command(*args, script: str | None = None) -> list[str]:
    """The command line of `higherhrnet ARGS` (or of a script in tools/ or demo/)."""
    entry = [str(REPO / script)] if script else ["-m", "higherhrnet"]
    return [sys.executable, *entry, *map(str, args)]


def run(*args, script: str | None = None, timeout: float = 300, cwd=REPO, file_size_limit: int | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """The command, to its end. file_size_limit: no file it writes can grow past that many bytes (a write beyond
    fails as on a full disk: conftest.limit_file_size); env: variables added to the environment."""
    def prepare() -> None:
        _default_sigint()
        if file_size_limit is not None:
            limit_file_size(file_size_limit)

    return subprocess.run(command(*args, script=script), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**_env(), **(env or {})}, preexec_fn=prepare)


def start(*args, script: str | None = None, cwd=REPO, own_group: bool = False) -> subprocess.Popen:
    """The command, started; own_group: in a process group of its own, for stop(..., group=True)."""
    return subprocess.Popen(command(*args, script=script), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, env=_env(), preexec_fn=_default_sigint, start_new_session=own_group)


# What a command stopped by each signal exits with and starts its last line with.
EXIT_STATUS = {"SIGINT": 130, "SIGTERM": 143}
STOPPED = {"SIGINT": "interrupted", "SIGTERM": "terminated (SIGTERM)"}


def stop(process: subprocess.Popen, name: str, group: bool = False) -> str:
    """Send the signal `name` ("SIGINT", "SIGTERM") to `process`, or with group to every process of its group
    (started with own_group): as a terminal's Ctrl-C, systemd and SLURM do, DataLoader workers and ffmpeg
    included. Returns its stderr once it has ended."""
    if group:
        assert os.getpgid(process.pid) == process.pid, "start(..., own_group=True) first"
        os.killpg(process.pid, getattr(signal, name))
    else:
        process.send_signal(getattr(signal, name))
    return process.communicate(timeout=120)[1]


def _env() -> dict:
    # One thread per process: the machine's cores are shared by the processes a test starts.
    return dict(os.environ, OMP_NUM_THREADS="1")


def hidden_files(folder: Path) -> list[str]:
    """Names starting with a dot anywhere under folder (temporary files left behind)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def check_complete(folder: Path) -> dict[str, int]:
    """Every output under `folder` is complete: JSON parses, pictures decode, videos open, checkpoints load.
    Returns how many of each kind there are."""
    counts = {"json": 0, "jpg": 0, "video": 0, "pth": 0}
    for path in folder.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
            counts["json"] += 1
        elif path.suffix == ".jpg":
            assert cv2.imread(str(path)) is not None, path
            counts["jpg"] += 1
        elif path.suffix in (".mp4", ".webm"):
            capture = cv2.VideoCapture(str(path))
            assert capture.isOpened() and capture.read()[0], path
            counts["video"] += 1
        elif path.suffix == ".pth":
            torch.load(path, map_location="cpu", weights_only=True)
            counts["pth"] += 1
    return counts


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A small PNG file whose header announces width x height: what a huge, well-compressed image looks like
    to anything that reads the header first (its pixel data is a few bytes of a zlib stream)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path


def noise_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    image = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def zero_filled_hole(path: Path, fraction: float = 0.125) -> Path:
    """The JPEG at `path` with a zero-filled hole of `fraction` of its image data in the middle, its length and
    end-of-image marker unchanged: what an interrupted download or a bad sector leaves."""
    data = path.read_bytes()
    scan = data.find(b"\xff\xda")
    start, end = scan + 2 + int.from_bytes(data[scan + 2: scan + 4], "big"), data.rfind(b"\xff\xd9")
    size = int((end - start) * fraction)
    middle = (start + end - size) // 2
    path.write_bytes(data[:middle] + bytes(size) + data[middle + size:])
    return path


def libjpeg_warnings(path: Path, capfd) -> str:
    """What OpenCV's libjpeg prints on stderr while decoding the file: an oracle for damaged data that does not
    go through the code under test."""
    capfd.readouterr()
    cv2.imread(str(path))
    return capfd.readouterr().err


def noise_folder(path: Path, count: int, width: int, height: int) -> Path:
    """A new folder of `count` noise JPEGs named 000.jpg, 001.jpg, ..."""
    path.mkdir()
    for i in range(count):
        noise_image(path / f"{i:03d}.jpg", width, height, seed=i)
    return path


def models_and_data(root: Path) -> Path:
    """`root` with the tiny models (make_models) and a tiny COCO-format data set under data/ (make_data)."""
    make_models(root)
    make_data(root / "data")
    return root
