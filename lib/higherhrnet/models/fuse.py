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

fuse_conv_pointwise goes one step further for the CPU: a convolution whose output is only passed through a
ReLU, added to another tensor, or both (the residual blocks' relu(conv(x) + identity), the fuse layers'
partial sums), becomes one oneDNN convolution with the ReLU and the addition as post-operations
(mkldnn::_convolution_pointwise): one pass over the activations instead of two or three.
"""
from __future__ import annotations

import copy
import operator
import warnings
from collections import Counter

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["fold_batchnorm", "fold_into_conv", "count_batchnorm", "ChannelsLast", "ConvPointwise",
           "fuse_conv_pointwise", "conv_pointwise_available"]

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


def conv_pointwise_available() -> bool:
    """Whether this torch has oneDNN's fused convolution (mkldnn::_convolution_pointwise) on the CPU."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


class ConvPointwise(nn.Module):
    """conv(x) [+ other] [then ReLU] in one oneDNN convolution with post-operations.

    conv: an nn.Conv2d with zero padding given as integers (its weight and bias are used as they are; the
    module keeps it as `conv`). add: forward takes `other`, a tensor of the convolution's output shape
    (N, C_out, H_out, W_out), and adds it; relu: a ReLU follows (after the addition). The result equals
    relu(conv(x) + other) up to float rounding (on HigherHRNet-W32 at 512 x 512 the whole network's outputs
    came out equal to the unfused network's to the last bit). The fused kernel runs float32 CPU tensors outside autograd; for
    anything else (a GPU tensor, another dtype, gradients wanted, an `other` that would broadcast) forward
    computes the same thing with the separate operators.
    """

    def __init__(self, conv: nn.Conv2d, add: bool, relu: bool):
        super().__init__()
        self.conv, self.add, self.relu = conv, add, relu

    def extra_repr(self) -> str:
        return f"add={self.add}, relu={self.relu}"

    def _fused(self, x: torch.Tensor, other: torch.Tensor | None) -> bool:
        conv = self.conv
        if not (x.device.type == "cpu" and x.dtype == torch.float32 and conv.weight.device.type == "cpu"
                and conv.weight.dtype == torch.float32 and x.dim() == 4):
            return False
        if torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad
                                        or (other is not None and other.requires_grad)):
            return False   # the fused operator has no backward
        if other is None:
            return True
        n, _, h, w = x.shape
        size = [n, conv.out_channels] + [
            (s + 2 * p - d * (k - 1) - 1) // st + 1
            for s, p, d, k, st in zip((h, w), conv.padding, conv.dilation, conv.kernel_size, conv.stride)]
        return list(other.shape) == size and other.dtype == torch.float32 and other.device.type == "cpu"

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, C_in, H, W); other (N, C_out, H_out, W_out) when built with add, else None."""
        if (other is not None) != self.add:
            raise ValueError(f"ConvPointwise(add={self.add}) called with{'out' if self.add else ''} `other`")
        conv = self.conv
        if not self._fused(x, other):
            y = conv(x)
            y = y + other if other is not None else y
            return F.relu(y) if self.relu else y
        args = (conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        unary = "relu" if self.relu else None
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(x, *args, unary or "none", [], "")
        return torch.ops.mkldnn._convolution_pointwise.binary(x, other, *args, "add", 1.0, unary, [], "")


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(node.target), nn.ReLU)
    if node.op == "call_function":
        return node.target in (torch.relu, torch.relu_, F.relu) and len(node.args) == 1 \
            and set(node.kwargs) <= {"inplace"}
    return node.op == "call_method" and node.target in ("relu", "relu_") and len(node.args) == 1 \
        and not node.kwargs


def _added_to(node: fx.Node, conv: fx.Node) -> fx.Node | None:
    """The other operand when `node` is `conv + other` or `other + conv` (a plain tensor addition), else
    None."""
    if node.op != "call_function" or node.target not in (operator.add, torch.add) or node.kwargs \
            or len(node.args) != 2:
        return None
    a, b = node.args
    other = b if a is conv else a if b is conv else None
    return other if isinstance(other, fx.Node) and other is not conv else None


def _fusable_conv(module: nn.Module | None) -> bool:
    return (type(module) is nn.Conv2d and module.padding_mode == "zeros"
            and not isinstance(module.padding, str))


def fuse_conv_pointwise(model: nn.Module, plain_1x1: bool = True) -> nn.Module:
    """A copy of eval-mode `model` (a torch.fx GraphModule) with every Conv2d whose output goes only into a
    ReLU, into one addition, or into one addition whose result goes only into a ReLU replaced by a
    ConvPointwise; with plain_1x1, every other 1x1 Conv2d too (a ConvPointwise without post-ops: in
    channels-last PyTorch sends a 1x1 convolution to its im2col + GEMM kernel with a layout copy either side,
    oneDNN's runs it in place). The outputs equal the original's up to float rounding. Identity modules (folded
    BatchNorms) are dropped from the graph first, so fold_batchnorm(model) is the model to pass.

    Returns `model` itself when there is nothing to fuse, when oneDNN's fused convolution is not in this
    torch, or when torch.fx cannot trace the model (fold_batchnorm warns about that already).
    """
    if not conv_pointwise_available():
        return model
    try:
        graph_module = fx.symbolic_trace(copy.deepcopy(model))
    except Exception:   # fx raises many types for code it cannot trace
        return model
    graph = graph_module.graph
    modules = dict(graph_module.named_modules())
    for node in list(graph.nodes):
        if node.op == "call_module" and isinstance(modules.get(node.target), nn.Identity) and len(node.args) == 1:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    fused = 0
    for node in list(graph.nodes):
        if node.op != "call_module" or not _fusable_conv(modules.get(node.target)) or calls[node.target] != 1 \
                or len(node.args) != 1 or node.kwargs:
            continue
        parent, _, child = node.target.rpartition(".")
        user = next(iter(node.users)) if len(node.users) == 1 else None
        other = _added_to(user, node) if user is not None else None
        last = user
        if other is not None and len(user.users) == 1 and _is_relu(next(iter(user.users)), modules):
            last = next(iter(user.users))
        elif other is None and (user is None or not _is_relu(user, modules)):
            if modules[node.target].kernel_size == (1, 1) and plain_1x1:
                # Nothing to fuse, but PyTorch runs a channels-last 1x1 convolution with its slow
                # im2col + GEMM kernel and two layout copies; oneDNN's takes it as it is.
                setattr(graph_module.get_submodule(parent), child,
                        ConvPointwise(modules[node.target], add=False, relu=False))
                fused += 1
            continue
        # The fused module takes the convolution's place and name (its weights become `<name>.conv.*`).
        setattr(graph_module.get_submodule(parent), child, ConvPointwise(
            modules[node.target], add=other is not None, relu=last is not user or other is None))
        with graph.inserting_before(last):
            replacement = graph.call_module(node.target, (node.args[0],) if other is None
                                            else (node.args[0], other))
        last.replace_all_uses_with(replacement)
        for dead in ([last, user] if last is not user else [last]) + [node]:
            graph.erase_node(dead)
        fused += 1
    if not fused:
        return model
    graph.lint()
    graph_module.recompile()
    graph_module.delete_all_unused_submodules()
    return graph_module.eval()
