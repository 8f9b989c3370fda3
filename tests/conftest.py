from __future__ import annotations

import os
from pathlib import Path

# Before torch loads (OpenMP reads it then), as the command line does: idle OpenMP threads sleep, so a
# Predictor keeps PyTorch's thread count at every call instead of choosing one from how busy the machine is
# (threads.CallThreads), and results compared bit for bit with a direct computation are computed with the same
# count whatever else runs on the machine. Tests of the choice itself take the setting away (test_threads.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import higherhrnet
from higherhrnet.models import build_output_specs
from higherhrnet.testing import PaintedNetwork

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
SPEC = REPO / "tests" / "assets" / "spec"      # key lists of the official checkpoints (README there)
COCO_MINI = REPO.parent / "shared" / "data" / "coco-mini"

# A small HRNet backbone with every structural feature of the real one (4 stages, multi-module stages,
# downsampling chains in the fuse layers) that runs in milliseconds on a CPU.
TINY_HRNET_BACKBONE_OPTS = [
    "MODEL.EXTRA.STEM_INPLANES", "16",
    "MODEL.EXTRA.STAGE1.NUM_BLOCKS", "[1]", "MODEL.EXTRA.STAGE1.NUM_CHANNELS", "[8]",
    "MODEL.EXTRA.STAGE2.NUM_BLOCKS", "[1, 1]", "MODEL.EXTRA.STAGE2.NUM_CHANNELS", "[8, 16]",
    "MODEL.EXTRA.STAGE3.NUM_MODULES", "2",
    "MODEL.EXTRA.STAGE3.NUM_BLOCKS", "[1, 1, 1]", "MODEL.EXTRA.STAGE3.NUM_CHANNELS", "[8, 16, 32]",
    "MODEL.EXTRA.STAGE4.NUM_MODULES", "2",
    "MODEL.EXTRA.STAGE4.NUM_BLOCKS", "[1, 1, 1, 1]", "MODEL.EXTRA.STAGE4.NUM_CHANNELS", "[8, 16, 32, 64]",
]

# A small HigherHRNet: that backbone with the deconv module.
TINY_OPTS = TINY_HRNET_BACKBONE_OPTS + [
    "MODEL.EXTRA.DECONV.NUM_CHANNELS", "[8]", "MODEL.EXTRA.DECONV.NUM_BASIC_BLOCKS", "1",
    "DATASET.INPUT_SIZE", "128", "DATASET.OUTPUT_SIZE", "[32, 64]",
]


# A small residual stacked hourglass (hourglass_residual): 2 stacks, 2 poolings deep, both stacks supervised,
# the last one used at test time.
TINY_HOURGLASS_OPTS = [
    "MODEL.NAME", "hourglass_residual", "MODEL.INPUT_MEAN", "[]", "MODEL.INPUT_STD", "[]",
    "MODEL.HOURGLASS.NUM_STACKS", "2", "MODEL.HOURGLASS.DEPTH", "2",
    "MODEL.HOURGLASS.NUM_CHANNELS", "[8, 12, 16]", "MODEL.HOURGLASS.STEM_CHANNELS", "[8, 8]",
    "LOSS.NUM_STAGES", "2", "LOSS.WITH_AE_LOSS", "[True, True]", "LOSS.WITH_HEATMAPS_LOSS", "[True, True]",
    "TEST.WITH_HEATMAPS", "(False, True)", "TEST.WITH_AE", "(False, True)",
    "DATASET.INPUT_SIZE", "128", "DATASET.OUTPUT_SIZE", "[32]",
]


# A small top-down HRNet (pose_hrnet): the same backbone on 64x96 person crops (16x24 heatmaps).
TINY_POSE_HRNET_OPTS = ["MODEL.NAME", "pose_hrnet", *TINY_HRNET_BACKBONE_OPTS,
                        "MODEL.IMAGE_SIZE", "[64, 96]", "MODEL.HEATMAP_SIZE", "[16, 24]"]


# A small stacked hourglass (stacked_hourglass, bearpaw/pytorch-pose's network): 2 stacks at narrow widths on
# 64x64 person crops (16x16 heatmaps), MPII's 16 joints.
TINY_STACKED_HOURGLASS_OPTS = ["MODEL.NAME", "stacked_hourglass", "MODEL.NUM_JOINTS", "16", "DATASET.NUM_JOINTS", "16",
                               "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]",
                               "MODEL.EXTRA.NUM_STACKS", "2", "MODEL.EXTRA.NUM_FEATS", "8",
                               "MODEL.EXTRA.STEM_INPLANES", "4"]


def tiny_cfg(*opts: str):
    return higherhrnet.load_cfg(None, TINY_OPTS + list(opts))


def tiny_pose_hrnet_cfg(*opts: str):
    return higherhrnet.load_cfg(None, TINY_POSE_HRNET_OPTS + list(opts))


def tiny_stacked_hourglass_cfg(*opts: str):
    return higherhrnet.load_cfg(None, TINY_STACKED_HOURGLASS_OPTS + list(opts))


def tiny_hourglass_cfg(*opts: str):
    return higherhrnet.load_cfg(None, TINY_HOURGLASS_OPTS + list(opts))


def state_dict_layout(model: torch.nn.Module, prefix: str = "") -> list[list]:
    """[key, shape, dtype] of every state-dict entry in registration order, as the key lists of released
    checkpoints in ../shared/spec and tests/assets are written (prefix: e.g. "module." of a DataParallel save)."""
    return [[f"{prefix}{k}", list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BN statistic distinct random values (official init is too uniform to
    reveal wiring mistakes) and switch to eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                values = torch.rand(t.shape, generator=g) * 0.5 + 0.75 if name.endswith("running_var") \
                    else torch.randn(t.shape, generator=g) * 0.2
                t.copy_(values)
    return model.eval()


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return randomize(higherhrnet.build_model(tiny_cfg()))


def painted_network(cfg, people, image_size, **options) -> PaintedNetwork:
    """The shared painted network (higherhrnet.testing) for `cfg`'s outputs, COCO joints and test scales:
    Gaussian heatmaps at `people` (P, J, 2) of an image of image_size (W, H), and perfect tags."""
    return PaintedNetwork(people, image_size, cfg.DATASET.INPUT_SIZE, cfg.TEST.SCALE_FACTOR, build_output_specs(cfg),
                          higherhrnet.COCO_KEYPOINTS.flip_index, **options)


def painted_image(w, h):
    """A noisy image whose left side is bright, so that it differs from its mirror."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 100, (h, w, 3), dtype=np.uint8)
    image[:, : w // 8] = 255
    return image


def people_in(w, h, n, seed, num_joints=17):
    """(n, J, 2) random poses (joints scattered around a centre) inside a w x h image."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h], size=(n, 1, 2))
    return centres + rng.normal(0, 0.06 * min(w, h), size=(n, num_joints, 2))


def assert_same_maps(a, b, images, atol: float) -> None:
    """Predictors a and b give the same test-time heatmaps and tags (to atol) and the same crops for `images`."""
    from higherhrnet.inference import run_network

    for (heat_a, tags_a, center_a, scale_a), (heat_b, tags_b, center_b, scale_b) in zip(
            run_network(a.network, images, a.params), run_network(b.network, images, b.params)):
        torch.testing.assert_close(heat_b, heat_a, atol=atol, rtol=0)
        torch.testing.assert_close(tags_b, tags_a, atol=atol, rtol=0)
        assert np.array_equal(center_a, center_b) and np.array_equal(scale_a, scale_b)


def train_once(cfg, name: str = "tiny.yaml"):
    """(trainer, result of Trainer.run()) on the CPU; the trainer closed afterwards."""
    from higherhrnet.engine import Trainer

    trainer = Trainer(cfg, name, device="cpu")
    try:
        return trainer, trainer.run()
    finally:
        trainer.close()


def torchrun_train(cfg, folder, *overrides: str):
    """tools/train.py in 2 processes under torchrun on the CPU (gloo, one thread each), `cfg` written to
    folder/tiny.yaml, `overrides` on the command line: the finished subprocess.CompletedProcess (stderr holds
    the log)."""
    import os
    import subprocess
    import sys

    path = Path(folder) / "tiny.yaml"
    path.write_text(cfg.dump())
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(REPO / "tools/train.py"), "--cfg", str(path), "--device", "cpu", *overrides],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))


def limit_file_size(limit: int) -> None:
    """For a test's subprocess (preexec_fn): its files cannot grow past `limit` bytes (RLIMIT_FSIZE, inherited by
    what it starts). A write beyond fails with EFBIG, "File too large", where a full disk fails with ENOSPC: the
    same OSError through the same code, without root or a small file system. Python ignores SIGXFSZ, which would
    otherwise end the process; programs it starts get that signal back (subprocess restores it)."""
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


@pytest.fixture
def read_only():
    """make(folder): no file can be created, renamed or removed in `folder` any more (its existing files stay
    writable), until the test ends. chmod a-w; for root, whom permissions do not stop, the immutable attribute
    (chattr +i); the test is skipped where neither works. Errors: EACCES "Permission denied" or EPERM
    "Operation not permitted"."""
    import os
    import shutil
    import subprocess

    undo = []

    def make(folder) -> None:
        folder = str(folder)
        if os.geteuid() != 0:
            mode = os.stat(folder).st_mode
            os.chmod(folder, mode & ~0o222)
            undo.append(lambda: os.chmod(folder, mode))
            return
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", folder], capture_output=True).returncode:
            pytest.skip("running as root, and chattr +i does not work here: a folder cannot be made read-only")
        undo.append(lambda: subprocess.run(["chattr", "-i", folder], capture_output=True))

    yield make
    for step in reversed(undo):
        step()


def sparse_maps(spec) -> np.ndarray:
    """Heatmaps recorded sparsely in a test asset (tests/assets/hourglass/*.json): background / 8 everywhere,
    k / 8 at each [n, j, y, x, k] of spec["pixels"]; spec["shape"] is (N, J, H, W)."""
    n, j, h, w = spec["shape"]
    maps = np.broadcast_to(np.asarray(spec["background"], np.float32)[..., None, None] / 8, (n, j, h, w)).copy()
    for a, b, y, x, k in spec["pixels"]:
        maps[a, b, y, x] = np.float32(k) / 8
    return maps
