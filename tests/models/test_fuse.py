from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import higherhrnet
from higherhrnet import Predictor
from higherhrnet.inference import run_network
from higherhrnet.models import count_batchnorm, fold_batchnorm

from conftest import randomize, tiny_cfg


def outputs(model, x):
    with torch.no_grad():
        out = model(x)
    return [out] if isinstance(out, torch.Tensor) else list(out)


def assert_same_outputs(a, b, x, atol=1e-4):
    expected_all, actual_all = outputs(a, x), outputs(b, x)
    assert len(expected_all) == len(actual_all)
    for expected, actual in zip(expected_all, actual_all):
        assert expected.shape == actual.shape
        assert torch.isfinite(actual).all()
        torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def test_folded_higher_hrnet_equals_original_and_has_no_batchnorm(tiny_model):
    before = copy.deepcopy(tiny_model.state_dict())
    num_bn = count_batchnorm(tiny_model)
    folded = fold_batchnorm(tiny_model)
    assert num_bn == 80 and count_batchnorm(folded) == 0
    assert sum(isinstance(m, nn.Identity) for m in folded.modules()) == num_bn
    assert isinstance(folded, type(tiny_model)) and not folded.training
    # The stem, a residual block, a fuse layer and the deconv (a ConvTranspose2d) all gained a bias.
    for name in ("conv1", "layer1.0.conv3", "stage2.0.fuse_layers.1.0.0.0", "deconv_layers.0.0.0"):
        assert folded.get_submodule(name).bias is not None
    g = torch.Generator().manual_seed(1)
    for shape in [(2, 3, 128, 192), (1, 3, 96, 64)]:
        assert_same_outputs(tiny_model, folded, torch.randn(shape, generator=g))
    # The original is untouched.
    assert count_batchnorm(tiny_model) == num_bn
    after = tiny_model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_grouped_conv_and_transposed_conv_fold_with_their_weight_layouts():
    model = nn.Sequential(
        nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=True), nn.BatchNorm2d(6), nn.ReLU(),
        nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1, groups=2, bias=False), nn.BatchNorm2d(4),
        nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, bias=True), nn.BatchNorm2d(3, affine=False),
    )
    randomize(model, seed=3)
    folded = fold_batchnorm(model)
    assert count_batchnorm(folded) == 0
    assert_same_outputs(model, folded, torch.randn(2, 4, 10, 14), atol=1e-5)


class Unfoldable(nn.Module):
    """Three BNs that must stay (conv output read twice, BN after a ReLU, BN without running statistics),
    a conv + BN pair called twice (shared), and one ordinary pair that folds."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.bn2 = nn.BatchNorm2d(4)
        self.conv3, self.bn3 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4, track_running_stats=False)
        self.shared = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.conv4, self.bn4 = nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2)

    def forward(self, x):
        y = self.conv1(x)
        y = self.bn1(y) + y
        y = self.bn2(torch.relu(y))
        y = self.bn3(self.conv3(y))
        y = self.shared(self.shared(y))
        return self.bn4(self.conv4(y))


def test_batchnorms_that_cannot_be_folded_stay_in_place():
    model = randomize(Unfoldable(), seed=2)
    folded = fold_batchnorm(model)
    for name in ("bn1", "bn2", "bn3", "shared.1"):
        assert isinstance(folded.get_submodule(name), nn.BatchNorm2d), name
    assert isinstance(folded.bn4, nn.Identity)
    assert_same_outputs(model, folded, torch.randn(2, 3, 12, 9), atol=1e-5)


class DataDependent(nn.Module):
    """torch.fx cannot trace the `if` on a tensor value."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.conv, self.bn = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.block(x)
        if y.mean() > 0:
            y = -y
        return self.bn(self.conv(y))


def test_untraceable_model_folds_only_sequential_pairs_and_says_so():
    model = randomize(DataDependent(), seed=4)
    with pytest.warns(UserWarning, match="cannot trace DataDependent"):
        folded = fold_batchnorm(model)
    assert isinstance(folded.block[1], nn.Identity)
    assert isinstance(folded.bn, nn.BatchNorm2d)   # folding it would be right, but nothing proves it here
    assert_same_outputs(model, folded, torch.randn(1, 3, 8, 8), atol=1e-5)


def test_training_mode_batchnorm_is_refused():
    model = randomize(higherhrnet.build_model(tiny_cfg())).train()
    with pytest.raises(ValueError, match="training mode.*call model.eval"):
        fold_batchnorm(model)


def test_predictor_runs_the_folded_network_by_default():
    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = randomize(higherhrnet.build_model(cfg))
    folded = Predictor(cfg, model.state_dict(), raw=True)
    plain = Predictor(cfg, model.state_dict(), fold_bn=False, raw=True)
    assert count_batchnorm(folded.network) == 0 and count_batchnorm(plain.network) == 80
    wrapped = Predictor.from_model(cfg, model, raw=True)
    assert count_batchnorm(wrapped.network) == 0 and count_batchnorm(model) == 80   # the caller's model is kept
    # On CPU the folded copy runs in channels-last memory format; the caller's model keeps its layout.
    conv_weights = [m.weight for m in folded.network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert conv_weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights
                                if w.shape[2:] != (1, 1))
    assert all(p.is_contiguous() for p in model.parameters())
    # ... with the convolutions' ReLUs and additions fused into them (fuse_conv_pointwise).
    from higherhrnet.models.fuse import ConvPointwise
    assert sum(isinstance(m, ConvPointwise) for m in folded.network.modules()) > 50
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 255, shape, dtype=np.uint8) for shape in [(120, 160, 3), (200, 90, 3)]]
    for a, b in zip(run_network(plain.network, images, plain.params), run_network(folded.network, images, folded.params)):
        torch.testing.assert_close(b[0], a[0], atol=1e-4, rtol=0)   # heatmaps
        torch.testing.assert_close(b[1], a[1], atol=1e-4, rtol=0)   # tags
    for people_plain, people_folded in zip(plain(images), folded(images)):
        assert len(people_plain) == len(people_folded) > 0
        for p, q in zip(people_plain, people_folded):
            np.testing.assert_allclose(q.keypoints, p.keypoints, atol=1e-4)


def test_fused_higher_hrnet_equals_folded_network(tiny_model):
    from higherhrnet.models import ChannelsLast
    from higherhrnet.models.fuse import ConvPointwise, fuse_conv_pointwise
    folded = fold_batchnorm(tiny_model)
    fused = fuse_conv_pointwise(folded)
    pointwise = [m for m in fused.modules() if isinstance(m, ConvPointwise)]
    # Every residual block's relu(conv(x) + identity), its inner conv -> ReLU, the transitions' and the fuse
    # layers' stride-2 convs: most of the network's convolutions take their ReLU or addition with them.
    assert sum(m.add for m in pointwise) > 20 and sum(m.relu and not m.add for m in pointwise) > 20
    assert any(m.add and not m.relu for m in pointwise)          # a fuse-layer sum that continues
    assert not any(isinstance(m, nn.Identity) for m in fused.modules())
    assert count_batchnorm(fused) == 0
    g = torch.Generator().manual_seed(5)
    for shape in [(1, 3, 128, 192), (2, 3, 96, 64)]:
        x = torch.randn(shape, generator=g)
        # The fused network in either memory format, against the folded one in channels-last (the former
        # default) and the original.
        assert_same_outputs(ChannelsLast(copy.deepcopy(folded)), ChannelsLast(copy.deepcopy(fused)), x, atol=1e-5)
        assert_same_outputs(folded, fused, x, atol=1e-5)
        assert_same_outputs(tiny_model, fused, x)


class PointwisePatterns(nn.Module):
    """Each way a convolution's output can meet a ReLU or an addition, fusable or not."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 6, 3, padding=1)                       # -> ReLU module
        self.b = nn.Conv2d(6, 6, 3, stride=2, padding=1, bias=False)  # other + conv -> F.relu
        self.c = nn.Conv2d(6, 6, 1)                                   # conv + other, the sum read twice
        self.d = nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=2)  # -> .relu() method
        self.e = nn.Conv2d(6, 6, 3, padding=1)                        # read twice: not fused
        self.f = nn.Conv2d(6, 6, 1)                                   # + a broadcast bias: falls back
        self.g = nn.Conv2d(6, 6, 3, padding=1, padding_mode="reflect")  # not zero padding: not fused
        self.h = nn.Conv2d(6, 6, 1)                                   # 1x1, nothing to fuse: oneDNN's kernel
        self.relu = nn.ReLU(inplace=True)
        self.down = nn.AvgPool2d(2)
        self.bias = nn.Parameter(torch.randn(1, 6, 1, 1))

    def forward(self, x):
        y = self.relu(self.a(x))
        z = torch.nn.functional.relu(self.down(y) + self.b(y))
        s = self.c(z) + z
        t = self.d(s).relu() * s
        u = self.e(t)
        v = self.f(u + torch.sigmoid(u)) + self.bias
        h = self.h(t)
        return torch.relu(self.g(v)) + t + h * h


def test_conv_pointwise_fuses_what_is_safe_and_computes_the_same():
    from higherhrnet.models.fuse import ConvPointwise, fuse_conv_pointwise
    model = randomize(PointwisePatterns(), seed=7).eval()
    fused = fuse_conv_pointwise(model)
    kinds = {name: (m.add, m.relu) for name, m in fused.named_modules() if isinstance(m, ConvPointwise)}
    assert kinds == {"a": (False, True), "b": (True, True), "c": (True, False), "d": (False, True),
                     "f": (True, False), "h": (False, False)}
    assert type(fused.get_submodule("e")) is nn.Conv2d and type(fused.get_submodule("g")) is nn.Conv2d
    unfused_1x1 = fuse_conv_pointwise(model, plain_1x1=False)
    assert type(unfused_1x1.get_submodule("h")) is nn.Conv2d
    g = torch.Generator().manual_seed(8)
    for layout in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(2, 4, 16, 12, generator=g).contiguous(memory_format=layout)
        assert_same_outputs(model, fused, x, atol=1e-5)
    # The broadcast addition (f's output + a (1, 6, 1, 1) parameter) took the unfused path, with autograd.
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    fused(x).sum().backward()
    expected = x.grad.clone()
    x.grad = None
    model(x).sum().backward()
    torch.testing.assert_close(expected, x.grad, atol=1e-5, rtol=1e-5)


def test_conv_pointwise_checks_its_call():
    from higherhrnet.models.fuse import ConvPointwise
    fused = ConvPointwise(nn.Conv2d(2, 2, 1), add=True, relu=False)
    with pytest.raises(ValueError, match="without `other`"):
        fused(torch.randn(1, 2, 4, 4))


def test_untraceable_model_is_returned_unfused():
    from higherhrnet.models.fuse import fuse_conv_pointwise
    model = randomize(DataDependent(), seed=4).eval()
    assert fuse_conv_pointwise(model) is model
