"""MODEL.NAME stacked_hourglass, bearpaw/pytorch-pose's network: the released checkpoints' key layout and outputs
(tests/assets/hourglass, facts computed with the official code), loading its checkpoint files (as its main.py
saves them, and as its 2017 releases were written), the loss summed over the stacks against the official
JointsMSELoss, the output specs, the config checks, the recipes' optimiser and schedule, the registered names."""
from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pytest
import torch

import higherhrnet
from higherhrnet import CheckpointError, ConfigError, zoo
from higherhrnet.checkpoint import read_checkpoint
from higherhrnet.engine.build import build_optimizer, build_scheduler
from higherhrnet.losses import TopDownLoss, build_loss, loss_term_names
from higherhrnet.models import build_output_specs
from higherhrnet.models.stacked_hourglass import StackedHourglassNet

from conftest import EXPERIMENTS, randomize, state_dict_layout, tiny_pose_hrnet_cfg, tiny_stacked_hourglass_cfg
from python2_checkpoint import legacy_opcodes, save_as_pytorch_0_2

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "hourglass"
RECIPES = EXPERIMENTS / "mpii" / "hourglass"


def asset(name: str) -> dict:
    return json.loads((ASSETS / name).read_text())


def bearpaw_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, epoch: int = 3) -> dict:
    """The dict bearpaw's example/main.py hands to save_checkpoint, which torch.saves it: the state_dict of the
    network wrapped in nn.DataParallel (its keys under "module."; not wrapped here, because DataParallel would move
    the network to a GPU where there is one), best_acc a 0-d tensor (its accuracy's running average)."""
    return {"epoch": epoch, "arch": "hg", "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
            "best_acc": torch.tensor(0.8125), "optimizer": optimizer.state_dict()}


# The recipes' optimiser, for tiny configs.
RMSPROP = ["TRAIN.OPTIMIZER", "rmsprop", "TRAIN.LR", "0.00025", "TRAIN.MOMENTUM", "0", "TRAIN.WD", "0"]


def trained_one_step(cfg) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A network of `cfg` after one optimiser step, so that its optimiser has state."""
    torch.manual_seed(0)
    model = higherhrnet.build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    loss = build_loss(cfg)
    outputs = model(torch.rand(2, 3, 64, 64))
    terms = loss(outputs, [torch.rand(2, 16, 16, 16)], [torch.ones(2, 16, 1)])
    sum(term.mean() for term in terms.values()).backward()
    optimizer.step()
    return model, optimizer


# ---------------------------------------------------------------- the released checkpoints' layout and outputs

@pytest.mark.parametrize("recipe, keys, millions", [("hg_s2_b1.yaml", "hg_s2_b1_keys.json", 6.7),
                                                    ("hg_s8_b1.yaml", "hg_s8_b1_keys.json", 25.6)])
def test_state_dict_is_the_released_checkpoints(recipe, keys, millions):
    spec = asset(keys)
    model = higherhrnet.build_model(higherhrnet.load_cfg(RECIPES / recipe))
    ours = state_dict_layout(model, prefix="module.")
    assert [k for k, _, _ in ours] == [k for k, _, _ in spec["keys"]]       # names, in registration order
    assert ours == spec["keys"]                                              # and shapes and dtypes
    n = sum(p.numel() for p in model.parameters())
    assert n == spec["num_parameters"] and round(n / 1e6, 1) == millions


def test_outputs_equal_the_official_network():
    """The official hg_s2_b1 network's heatmaps for the same weights and input (float32 on a CPU: equal up to the
    convolutions' rounding, which may differ between machines)."""
    official = asset("official_forward_hg_s2_b1.json")
    model = randomize(higherhrnet.build_model(higherhrnet.load_cfg(RECIPES / "hg_s2_b1.yaml")), seed=0)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outputs = model(image)
    assert [list(o.shape) for o in outputs] == official["output_shapes"]
    for output, expected in zip(outputs, official["heatmaps"]):
        expected = torch.tensor(expected)
        torch.testing.assert_close(output[0, official["joints"]], expected, rtol=1e-4,
                                   atol=1e-4 * float(expected.abs().max()))


def test_forward_gives_every_stacks_heatmaps():
    cfg = tiny_stacked_hourglass_cfg("MODEL.EXTRA.NUM_STACKS", "3", "MODEL.EXTRA.NUM_BLOCKS", "2",
                                     "MODEL.IMAGE_SIZE", "[64, 128]", "MODEL.HEATMAP_SIZE", "[16, 32]")
    model = randomize(higherhrnet.build_model(cfg))
    assert isinstance(model, StackedHourglassNet)
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, 128, 64))
    assert isinstance(outputs, list) and [tuple(o.shape) for o in outputs] == [(2, 16, 32, 16)] * 3
    assert all(torch.isfinite(o).all() for o in outputs)
    assert not torch.equal(outputs[0], outputs[2])
    # Widths: the stem's 4 -> bottlenecks of 8 and 16 channels, the hourglasses' 2 x NUM_FEATS = 16; 2 blocks each.
    assert tuple(model.conv1.weight.shape) == (4, 3, 7, 7) and tuple(model.layer2[0].conv3.weight.shape) == (16, 8, 1, 1)
    assert len(model.hg[2].hg[0]) == 4 and len(model.hg[2].hg[3]) == 3 and len(model.res[0]) == 2
    assert len(model.fc_) == len(model.score_) == 2


# ---------------------------------------------------------------- checkpoint files

@pytest.mark.parametrize("zip_format", [True, False])
def test_a_checkpoint_saved_as_bearpaws_main_saves_it_loads_strict(tmp_path, zip_format):
    """torch.save of main.py's dict (epoch, arch, state_dict of the DataParallel network, best_acc, optimizer),
    read with weights_only=True; the legacy format is how PyTorch < 1.6 wrote it."""
    cfg = tiny_stacked_hourglass_cfg(*RMSPROP)
    model, optimizer = trained_one_step(cfg)
    path = tmp_path / "model_best.pth.tar"
    torch.save(bearpaw_checkpoint(model, optimizer), path, _use_new_zipfile_serialization=zip_format)
    torch.load(path, map_location="cpu", weights_only=True)         # plain values and tensors only
    fresh = higherhrnet.build_model(cfg)
    loaded = higherhrnet.load_checkpoint(fresh, path)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())
    assert loaded["epoch"] == 3 and loaded["arch"] == "hg" and float(loaded["best_acc"]) == 0.8125
    assert loaded["optimizer"]["param_groups"][0]["lr"] == 2.5e-4 and len(loaded["optimizer"]["state"]) == len(
        list(model.parameters()))


def test_the_released_layout_loads_strict_with_or_without_batch_counters():
    """Every key of the released hg_s2_b1 (tests/assets), random values; files of PyTorch < 0.4.1 lack the
    BatchNorm num_batches_tracked counters."""
    spec = asset("hg_s2_b1_keys.json")
    g = torch.Generator().manual_seed(0)
    state = {key: torch.rand(shape, generator=g) if dtype == "float32" else torch.tensor(7)
             for key, shape, dtype in spec["keys"]}
    model = higherhrnet.build_model(higherhrnet.load_cfg(RECIPES / "hg_s2_b1.yaml"))
    for weights in (state, {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}):
        higherhrnet.load_checkpoint(model, {"epoch": 100, "arch": "hg", "state_dict": weights, "best_acc": 0.5,
                                            "optimizer": {}})
        loaded = model.state_dict()
        assert all(torch.equal(loaded[k.removeprefix("module.")], v) for k, v in weights.items())


def test_the_legacy_writer_writes_as_bearpaws_2017_files():
    """tests/python2_checkpoint.py against the opcodes of a file bearpaw's repository holds from 2017."""
    recorded = asset("bearpaw_mean_file_2017.json")
    buffer = io.BytesIO()
    save_as_pytorch_0_2({k: torch.tensor(v) for k, v in recorded["tensors"].items()}, buffer,
                        storage_type=torch.FloatStorage, location="cpu", storage_keys=recorded["storage_keys"],
                        long_size=recorded["long_size"])
    assert json.loads(json.dumps(legacy_opcodes(buffer.getvalue()))) == recorded["opcodes"]


def test_a_checkpoint_written_as_the_2017_releases_loads(tmp_path):
    """Python 2 and PyTorch 0.2, as the released files were written: no num_batches_tracked, GPU storages, and
    the optimiser state keyed by parameter ids beyond 32 bits, which Python 2 pickles with a text opcode that
    torch's weights_only reader refuses; read_checkpoint rewrites those opcodes and still reads weights only."""
    cfg = tiny_stacked_hourglass_cfg(*RMSPROP)
    model, optimizer = trained_one_step(cfg)
    params = list(model.parameters())
    ids = [140_234_500_000_000 + 4096 * i for i in range(len(params))]     # id() of objects on 64-bit CPython
    state_dict = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    rmsprop = optimizer.state_dict()
    old_optimizer = {"state": {pid: {"step": 1, "square_avg": rmsprop["state"][i]["square_avg"]}
                               for i, pid in enumerate(ids)},
                     "param_groups": [{"lr": 2.5e-4, "momentum": 0, "alpha": 0.99, "eps": 1e-08, "weight_decay": 0,
                                       "centered": False, "params": ids}]}
    path = tmp_path / "checkpoint.pth.tar"
    with open(path, "wb") as f:
        save_as_pytorch_0_2({"epoch": 90, "arch": "hg", "state_dict": state_dict, "best_acc": 0.8695,
                             "optimizer": old_optimizer}, f)
    with pytest.raises(pickle.UnpicklingError, match="Unsupported operand"):
        torch.load(path, map_location="cpu", weights_only=True)
    assert read_checkpoint(path)["optimizer"]["param_groups"][0]["params"] == ids
    fresh = higherhrnet.build_model(cfg)
    loaded = higherhrnet.load_checkpoint(fresh, path)
    assert loaded["epoch"] == 90 and loaded["best_acc"] == 0.8695
    assert all(torch.equal(fresh.state_dict()[k.removeprefix("module.")], v) for k, v in state_dict.items())


def test_a_file_with_objects_is_still_refused(tmp_path):
    path = tmp_path / "evil.pth.tar"
    with open(path, "wb") as f:
        save_as_pytorch_0_2({"state_dict": {"conv1.weight": torch.zeros(1)}, "epoch": 2 ** 40,
                             "arch": Path("hg")}, f)
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_checkpoint(path)


def test_other_weights_are_named():
    model = higherhrnet.build_model(tiny_stacked_hourglass_cfg())
    pose_hrnet = higherhrnet.build_model(tiny_pose_hrnet_cfg())
    with pytest.raises(CheckpointError, match=r"holds the weights of a top-down HRNet-W8 .* not of this config's "
                                              r"network, a stacked hourglass \(bearpaw/pytorch-pose; 2 stacks, 16 "
                                              r"heatmaps\)"):
        higherhrnet.load_checkpoint(model, pose_hrnet.state_dict())
    three = higherhrnet.build_model(tiny_stacked_hourglass_cfg("MODEL.EXTRA.NUM_STACKS", "3"))
    with pytest.raises(CheckpointError, match=r"holds the weights of a stacked hourglass \(bearpaw/pytorch-pose; 3 "
                                              r"stacks, 16 heatmaps\), not of this config's network, a stacked "
                                              r"hourglass \(bearpaw/pytorch-pose; 2 stacks"):
        higherhrnet.load_checkpoint(model, three.state_dict())
    wider = higherhrnet.build_model(tiny_stacked_hourglass_cfg("MODEL.EXTRA.NUM_FEATS", "12"))
    with pytest.raises(CheckpointError, match="does not fit the model of this config"):
        higherhrnet.load_checkpoint(model, wider.state_dict())


# ---------------------------------------------------------------- the loss

@pytest.mark.parametrize("use_target_weight", [True, False])
def test_loss_is_the_official_jointsmseloss_summed_over_the_stacks(use_target_weight):
    recorded = asset("official_loss.json")
    cfg = tiny_stacked_hourglass_cfg("MODEL.NUM_JOINTS", "4", "DATASET.NUM_JOINTS", "4",
                                     "LOSS.USE_TARGET_WEIGHT", str(use_target_weight))
    loss = build_loss(cfg)
    assert isinstance(loss, TopDownLoss)
    for case in recorded["cases"]:
        official = case["with_target_weight" if use_target_weight else "without_target_weight"]
        outputs = [torch.tensor(o) for o in case["outputs"]]
        terms = loss(outputs, [torch.tensor(case["target"])], [torch.tensor(case["target_weight"])])
        assert list(terms) == ["heatmaps_1/4_output0", "heatmaps_1/4_output1"]
        means = [term.mean().item() for term in terms.values()]          # the training loop's batch means
        assert means == pytest.approx(official["per_stack"], rel=1e-6)
        assert sum(means) == pytest.approx(official["loss"], rel=1e-6)


# ---------------------------------------------------------------- outputs, config, recipes

def test_one_output_spec_per_stack_the_last_read_at_test_time():
    cfg = higherhrnet.load_cfg(RECIPES / "hg_s8_b1.yaml")
    specs = build_output_specs(cfg)
    assert len(specs) == 8
    assert {(s.stride, s.channels, s.target_index, s.target_size, s.heatmap_loss_factor, s.tag_channels)
            for s in specs} == {(4.0, 16, 0, (64, 64), 1.0, 0)}
    assert [s.test_heatmaps for s in specs] == [False] * 7 + [True]
    assert loss_term_names(specs) == tuple(f"heatmaps_1/4_output{i}" for i in range(8))
    (pose_hrnet,) = build_output_specs(tiny_pose_hrnet_cfg())
    assert pose_hrnet.test_heatmaps


@pytest.mark.parametrize("opts, message", [
    (["MODEL.EXTRA.NUM_STACKS", "0"], "MODEL.EXTRA.NUM_STACKS must be at least 1"),
    (["MODEL.EXTRA.NUM_BLOCKS", "0"], "MODEL.EXTRA.NUM_BLOCKS must be at least 1"),
    (["MODEL.EXTRA.NUM_FEATS", "0"], "MODEL.EXTRA.NUM_FEATS must be at least 1"),
    (["MODEL.IMAGE_SIZE", "[96, 96]", "MODEL.HEATMAP_SIZE", "[24, 24]"], "MODEL.IMAGE_SIZE .* multiples of 64"),
    (["MODEL.HEATMAP_SIZE", "[32, 32]"], r"MODEL.HEATMAP_SIZE must be MODEL.IMAGE_SIZE / 4 \(\[16, 16\]\)"),
    (["MODEL.IMAGE_SIZE", "[64]"], r"MODEL.IMAGE_SIZE must be \[width, height\]"),
    (["MODEL.SWAHR", "True"], "MODEL.SWAHR .* not MODEL.NAME stacked_hourglass"),
    (["MODEL.TARGET_TYPE", "offset"], "MODEL.TARGET_TYPE must be 'gaussian'"),
    (["TRAIN.OPTIMIZER", "rms"], "TRAIN.OPTIMIZER must be adam, adamw, sgd or rmsprop"),
])
def test_config_checks(opts, message):
    with pytest.raises(ConfigError, match=message):
        tiny_stacked_hourglass_cfg(*opts)


@pytest.mark.parametrize("recipe, stacks", [("hg_s2_b1.yaml", 2), ("hg_s8_b1.yaml", 8)])
def test_recipes_are_bearpaws_defaults(recipe, stacks):
    cfg = higherhrnet.load_cfg(RECIPES / recipe)
    m, t = cfg.MODEL, cfg.TRAIN
    assert (m.NAME, m.EXTRA.NUM_STACKS, m.EXTRA.NUM_BLOCKS, m.NUM_JOINTS) == ("stacked_hourglass", stacks, 1, 16)
    assert (list(m.IMAGE_SIZE), list(m.HEATMAP_SIZE), m.SIGMA) == ([256, 256], [64, 64], 1.0)
    assert (t.OPTIMIZER, t.LR, t.MOMENTUM, t.WD, list(t.LR_STEP), t.LR_FACTOR) == ("rmsprop", 2.5e-4, 0.0, 0.0,
                                                                                  [60, 90], 0.1)
    assert (t.BEGIN_EPOCH, t.END_EPOCH, t.BATCH_SIZE_PER_GPU, cfg.TEST.BATCH_SIZE_PER_GPU) == (0, 100, 6, 6)
    assert (cfg.DATASET.SCALE_FACTOR, cfg.DATASET.ROT_FACTOR, cfg.DATASET.FLIP, cfg.DATASET.PROB_HALF_BODY) == (
        0.25, 30.0, 0.5, 0.0)
    assert (cfg.TEST.FLIP_TEST, cfg.TEST.SHIFT_HEATMAP, cfg.LOSS.USE_TARGET_WEIGHT) == (False, False, True)


def test_rmsprop_with_bearpaws_arguments():
    cfg = higherhrnet.load_cfg(RECIPES / "hg_s2_b1.yaml")
    optimizer = build_optimizer(cfg, torch.nn.Linear(2, 2))
    assert type(optimizer) is torch.optim.RMSprop
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["alpha"], group["eps"], group["centered"]) \
        == (2.5e-4, 0.0, 0.0, 0.99, 1e-8, False)


def test_learning_rate_steps_where_bearpaws_adjust_learning_rate_does():
    """bearpaw's main.py calls adjust_learning_rate(optimizer, epoch, lr, [60, 90], 0.1) before training each
    epoch (0-based, printed as epoch + 1): x 0.1 when the epoch is in the schedule. Written out here."""
    cfg = higherhrnet.load_cfg(RECIPES / "hg_s2_b1.yaml")
    iters = 2
    optimizer = build_optimizer(cfg, torch.nn.Linear(2, 2))
    scheduler = build_scheduler(cfg, optimizer, iters)
    official, lr = [], 2.5e-4
    for epoch in range(100):
        if epoch in (60, 90):
            lr *= 0.1
        official.append(lr)
    ours = []
    for epoch in range(100):
        ours.append(optimizer.param_groups[0]["lr"])
        for _ in range(iters):
            optimizer.step()
            scheduler.step()
    assert ours == pytest.approx(official, rel=1e-12)
    assert ours[59] == 2.5e-4 and ours[60] == pytest.approx(2.5e-5) and ours[90] == pytest.approx(2.5e-6)


def test_summary_counts_the_released_networks_parameters(capsys):
    from higherhrnet.cli import main

    assert main(["summary", "--cfg", str(RECIPES / "hg_s2_b1.yaml"), "--input-size", "64", "64"]) == 0
    out = capsys.readouterr().out
    assert "stacked_hourglass" in out and "parameters: 6.7M" in out and "6,730,912" in out
    assert "output 1: [1, 16, 16, 16]  (stride 4)" in out


@pytest.mark.parametrize("name, recipe, pckh", [
    ("hg_s2_b1_256x256_mpii", "hg_s2_b1.yaml", 86.95), ("hg_s2_b1_256x256_mpii_last", "hg_s2_b1.yaml", 86.76),
    ("hg_s8_b1_256x256_mpii", "hg_s8_b1.yaml", 88.78), ("hg_s8_b1_256x256_mpii_last", "hg_s8_b1.yaml", 88.64),
])
def test_registered_names(name, recipe, pckh):
    entry = zoo.REGISTRY[name]
    assert (entry.ap, entry.ap_multiscale, entry.ap_split, entry.layout) == (pckh, None, "MPII val, PCKh@0.5",
                                                                             "bearpaw")
    assert entry.config == f"experiments/mpii/hourglass/{recipe}" and entry.page and entry.url is None
    assert entry.filename == ("checkpoint.pth.tar" if name.endswith("_last") else "model_best.pth.tar")
