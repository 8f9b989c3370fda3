"""BatchNorm folding for inference: conv -> BN becomes one conv with a bias.

In eval mode a BatchNorm layer is a per-channel affine map y = x * scale + shift, with
scale = weight / sqrt(running_var + eps) and shift = bias - running_mean * scale. When it reads the output
of a convolution and nothing else reads that output, the map can be moved into the convolution's weights
and bias: one pass over the activations less, same result up to float rounding.

Which BN follows which convolution is read from the data flow, not guessed from names: the model is traced
with torch.fx, and a BN is folded only when its input is the output of a convolution module that is called
once and whose output goes nowhere else. A model that fx cannot trace (data-dependent Python control flow)
falls back to the pairs that are certain without a trace: a convolution directly followed by a BN inside an
nn.Sequential. Anything else is left as it is.
"""
from __future__ import annotations

import copy
import warnings
from collections import Counter

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["fold_batchnorm", "fold_into_conv", "count_batchnorm", "ChannelsLast"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED_CONVS = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def count_batchnorm(model: nn.Module) -> int:
    """Number of BatchNorm layers (any dimension, SyncBatchNorm included) in `model`."""
    return sum(isinstance(m, _BatchNorm) for m in model.modules())


def _foldable_bn(bn: nn.Module) -> bool:
    # Without running statistics a BN normalises with the batch's statistics even in eval mode.
    return isinstance(bn, _BatchNorm) and bn.track_running_stats and bn.running_mean is not None


def fold_into_conv(conv: nn.Module, bn: _BatchNorm) -> None:
    """Fold eval-mode `bn` into `conv` in place (conv's weight rescaled, bias created or updated).

    conv: Conv1d/2d/3d, weight (C_out, C_in / groups, *k), or ConvTranspose1d/2d/3d, weight
    (C_in, C_out / groups, *k). bn: C_out channels. The arithmetic is done in float64.
    """
    if conv.out_channels != bn.num_features:
        raise ValueError(f"cannot fold a BatchNorm of {bn.num_features} channels into a convolution with "
                         f"{conv.out_channels} output channels")
    with torch.no_grad():
        weight = conv.weight.double()
        var = bn.running_var.double()
        mean = bn.running_mean.double()
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
        scale = gamma / torch.sqrt(var + bn.eps)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(var)
        kernel_dims = (1,) * (weight.dim() - 2)
        if isinstance(conv, _TRANSPOSED_CONVS):
            # Output channel o = g * (C_out / groups) + j sits at weight[g * (C_in / groups) + i, j].
            groups = conv.groups
            grouped = weight.reshape(groups, weight.shape[0] // groups, *weight.shape[1:])
            grouped = grouped * scale.reshape(groups, 1, -1, *kernel_dims)
            weight = grouped.reshape(weight.shape)
        else:
            weight = weight * scale.reshape(-1, 1, *kernel_dims)
        dtype, requires_grad = conv.weight.dtype, conv.weight.requires_grad
        conv.weight = nn.Parameter(weight.to(dtype), requires_grad=requires_grad)
        conv.bias = nn.Parameter(((bias - mean) * scale + beta).to(dtype), requires_grad=requires_grad)


def _pairs_from_graph(model: nn.Module, graph: fx.Graph) -> list[tuple[str, str]]:
    """(conv name, bn name) pairs where the BN reads only a conv output that nothing else reads."""
    modules = dict(model.named_modules())
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not _foldable_bn(modules.get(node.target)):
            continue
        source = node.args[0] if node.args else None
        if not isinstance(source, fx.Node) or source.op != "call_module":
            continue
        if not isinstance(modules.get(source.target), _CONVS + _TRANSPOSED_CONVS):
            continue
        if len(node.args) == 1 and not node.kwargs and len(source.users) == 1 \
                and calls[source.target] == 1 and calls[node.target] == 1:
            pairs.append((source.target, node.target))
    return pairs


def _pairs_in_sequentials(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, _CONVS + _TRANSPOSED_CONVS) and _foldable_bn(bn):
                prefix = f"{name}." if name else ""
                pairs.append((prefix + conv_name, prefix + bn_name))
    return pairs


def _shared(model: nn.Module) -> set[int]:
    """ids of modules registered under more than one name (used in several places)."""
    counts = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    return {key for key, n in counts.items() if n > 1}


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of eval-mode `model` with every foldable BatchNorm folded into the convolution before it.

    Folded BNs are replaced by nn.Identity, their convolutions get a bias; the outputs equal the original's
    up to float rounding (about 1e-6 relative). The original model is not changed. BNs that do not directly
    follow a convolution (or whose convolution output is also used elsewhere) stay in place.

    Raises ValueError when a BatchNorm layer is in training mode: it normalises with batch statistics
    then, which no fixed weights can reproduce. Call model.eval() first.
    """
    training = [name for name, m in model.named_modules() if isinstance(m, _BatchNorm) and m.training]
    if training:
        raise ValueError(f"fold_batchnorm needs an eval-mode model: {len(training)} BatchNorm layers are in "
                         f"training mode (first: {training[0]!r}); call model.eval() first")
    folded = copy.deepcopy(model)
    if count_batchnorm(folded) == 0:
        return folded
    try:
        pairs = _pairs_from_graph(folded, fx.symbolic_trace(folded).graph)
    except Exception as e:  # fx raises many types for code it cannot trace (TraceError, TypeError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        warnings.warn(f"fold_batchnorm: torch.fx cannot trace {type(model).__name__} ({first}); folding only "
                      f"convolution -> BatchNorm pairs inside nn.Sequential", stacklevel=2)
        pairs = _pairs_in_sequentials(folded)
    shared = _shared(folded)
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        if id(conv) in shared or id(bn) in shared or conv.out_channels != bn.num_features:
            continue
        fold_into_conv(conv, bn)
        parent_name, _, child = bn_name.rpartition(".")
        setattr(folded.get_submodule(parent_name), child, nn.Identity())
    return folded.eval()


class ChannelsLast(nn.Module):
    """Runs `network` (converted in place) in channels-last memory format and returns its outputs in the
    usual contiguous layout. On CPU, oneDNN's convolutions are faster on channels-last tensors (HigherHRNet-W32
    at 512 x 512: about 0.71 -> 0.57 s per forward on one thread); the outputs are the same up to float
    rounding."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor):
        outputs = self.network(x.contiguous(memory_format=torch.channels_last))
        if isinstance(outputs, torch.Tensor):
            return outputs.contiguous()
        return type(outputs)(o.contiguous() for o in outputs)
