"""Parameter and multiply-add counts of a network, measured with forward hooks on one input."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["ModelSummary", "summarize"]


@dataclass
class ModelSummary:
    """num_parameters: trainable + frozen parameters (buffers excluded).
    macs: exact multiply-adds of all convolutions and transposed convolutions.
    official_flops: the official HigherHRNet repo's count, which the paper's GFLOPs use: for every conv
        and transposed conv, weight elements x output pixels (this over-counts a stride-2 transposed conv
        by 4x, hence the difference from `macs`).
    per_module: top-level child name -> (parameters, macs).
    output_shapes: the shape of every network output for the given input.
    """

    input_shape: tuple[int, ...]
    num_parameters: int
    macs: int
    official_flops: int
    output_shapes: list[tuple[int, ...]]
    per_module: dict[str, tuple[int, int]] = field(default_factory=dict)


@torch.inference_mode()
def summarize(model: nn.Module, input_shape: tuple[int, int, int, int] = (1, 3, 512, 512)) -> ModelSummary:
    counts: dict[nn.Module, list[int]] = {}

    def hook(module, inputs, output):
        weight_elems = module.weight.numel()
        out_pixels = output.shape[2] * output.shape[3]
        in_pixels = inputs[0].shape[2] * inputs[0].shape[3]
        # A transposed conv spreads every input pixel over the kernel: in_pixels x weight elements.
        exact = weight_elems * (in_pixels if isinstance(module, nn.ConvTranspose2d) else out_pixels)
        exact *= output.shape[0]
        counts[module] = [exact, weight_elems * out_pixels * output.shape[0]]

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        outputs = model(torch.zeros(input_shape, dtype=param.dtype, device=param.device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]

    per_module = {}
    for name, child in model.named_children():
        params = sum(p.numel() for p in child.parameters())
        macs = sum(counts.get(m, [0, 0])[0] for m in child.modules())
        per_module[name] = (params, macs)
    return ModelSummary(
        input_shape=tuple(input_shape),
        num_parameters=sum(p.numel() for p in model.parameters()),
        macs=sum(c[0] for c in counts.values()),
        official_flops=sum(c[1] for c in counts.values()),
        output_shapes=[tuple(o.shape) for o in outputs],
        per_module=per_module,
    )
