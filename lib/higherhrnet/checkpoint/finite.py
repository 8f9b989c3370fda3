"""Refusing weights that hold NaN or infinity: such a network outputs NaN, which decodes to no people at all."""
from __future__ import annotations

from typing import Mapping

import torch

from .io import CheckpointError, _listing

__all__ = ["non_finite_tensors", "check_finite"]


def non_finite_tensors(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The floating-point tensors of `state` holding NaN or infinity, each as "name (n of N values: NaN, inf)"."""
    found = []
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            continue
        finite = torch.isfinite(tensor)
        if bool(finite.all()):
            continue
        kinds = [kind for kind, present in (("NaN", torch.isnan(tensor).any()), ("inf", torch.isinf(tensor).any()))
                 if bool(present)]
        found.append(f"{name} ({int((~finite).sum())} of {tensor.numel()} values: {', '.join(kinds)})")
    return found


def check_finite(state: Mapping[str, torch.Tensor], what: str, advice: str = "") -> None:
    """CheckpointError naming every tensor of `state` that holds NaN or infinity (`what` says whose they are)."""
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(f"{what} has NaN or infinite values in {len(bad)} tensor{'s' if len(bad) > 1 else ''}: "
                              f"{_listing(bad)}" + (f"; {advice}" if advice else ""))
