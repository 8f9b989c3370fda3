"""Where the forward pass's time goes, layer by layer, against each layer's multiply-adds.

    python benchmarks/forward_layers.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml

Runs the network as the Predictor's default backend runs it on the CPU (BatchNorm folded, channels-last:
`prepare_network`) and times every leaf module (forward pre- and post-hooks around it; oneDNN runs
synchronously on the CPU, so the wall-clock time between the two hooks is the module's). What is not a
module (the residual and fuse-layer additions, the head's concatenation, the layout conversions at the
network's input and outputs) is the forward's time less the modules' sum; torch.profiler's per-operator
table splits it. Every convolution's multiply-adds come from its shapes (as `models.summary` counts them),
so each layer gets GFLOP/s and "x floor": its time over the time its MACs take at the compute floor's
throughput (compute_floor.py's best 3x3 convolution, measured here in the same run).

The floor of one well-shaped convolution is not what every layer can reach: a 1x1 conv, a stride-2 conv or
a 3x3 conv at 16 x 16 has a different best speed. So the script also times each distinct convolution of the
network alone (the same folded weights, in a loop, in both memory formats, without its fused ReLU or
addition) and gives the "shape floor": the
sum over the network's convolutions of their best isolated time. The forward over that is what layout
changes, memory traffic between layers and the non-convolution operators cost; the shape floor over the
compute floor is what the layer shapes themselves cost on this CPU's oneDNN kernels.

Outputs Markdown tables: per kind of layer (share of time, share of MACs, GFLOP/s, x compute floor,
x shape floor) and, with --layers, every layer. Also says how many CPUs other processes kept busy while it
timed, since a shared machine's neighbours show up in every figure.
"""
from __future__ import annotations

import argparse
import collections
import copy
import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import nn

import higherhrnet
from higherhrnet.models import ChannelsLast, fold_batchnorm, prepare_network
from higherhrnet.models.fuse import ConvPointwise
from higherhrnet.threads import CpuTimes, busy_between

from common import machine_description
from compute_floor import conv_throughput

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


@dataclass
class Layer:
    """One leaf module of the network as it ran: name, kind (its group in the tables), macs, the input
    shape (N, C, H, W) it saw first, and its seconds in each timed forward (the sum of its calls: a ReLU
    module is called several times per forward)."""

    name: str
    module: nn.Module
    kind: str = ""
    macs: int = 0
    input_shape: tuple[int, ...] = ()
    times: list[float] = field(default_factory=list)
    current: float = 0.0

    @property
    def seconds(self) -> float:
        return statistics.median(self.times) if self.times else 0.0


def conv_macs(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Exact multiply-adds of a conv or transposed conv for input x (N, C, H, W) and output y: a transposed
    conv spreads each input pixel over its kernel (input pixels x weight elements), a conv computes each
    output pixel from it (output pixels x weight elements); the same count as models.summary."""
    pixels = x.shape[2] * x.shape[3] if isinstance(module, nn.ConvTranspose2d) else y.shape[2] * y.shape[3]
    return module.weight.numel() * pixels * y.shape[0]


def kind_of(name: str, module: nn.Module, x: torch.Tensor) -> str:
    """The group a leaf module is reported in: convolutions (a ConvPointwise's ReLU and addition included) by
    kernel, stride and (for the 3x3 stride-1 convolutions, most of the MACs) channels x resolution; the rest
    by type."""
    if isinstance(module, ConvPointwise):
        module = module.conv
    if isinstance(module, nn.ConvTranspose2d):
        return "4x4 transposed conv (head)" if module.kernel_size == (4, 4) else "transposed conv (head)"
    if isinstance(module, nn.Conv2d):
        k, s = module.kernel_size[0], module.stride[0]
        if k == 1:
            where = "fuse-layer 1x1" if ".fuse_layers." in name else \
                "final 1x1 (head)" if name.startswith("final_layers") else "1x1 in bottlenecks / downsample"
            return f"1x1 conv, {where}"
        if s == 2:
            return "3x3 stride-2 conv (stem, transitions, fuse-layer down)"
        if module.in_channels == 3:
            return f"3x3 conv, 3 -> {module.out_channels} channels"
        return f"3x3 conv, {module.out_channels} ch, {x.shape[2]} x {x.shape[3]}" + \
            (" (head)" if name.startswith("deconv_layers") else "")
    if isinstance(module, nn.ReLU):
        return "ReLU (modules)"
    if isinstance(module, nn.Upsample):
        return "nearest upsample (fuse layers)"
    if isinstance(module, nn.Identity):
        return "folded BatchNorm (Identity)"
    return type(module).__name__


def leaf_layers(network: nn.Module) -> list[Layer]:
    """Every leaf module (no children, or a ConvPointwise: its conv child is not called) of `network`, in
    named_modules order, with its name relative to the model inside the ChannelsLast wrapper."""
    layers = []
    fused = [name for name, module in network.named_modules() if isinstance(module, ConvPointwise)]
    for name, module in network.named_modules():
        if any(name.startswith(f + ".") for f in fused):
            continue
        if (next(module.children(), None) is None or isinstance(module, ConvPointwise)) and name:
            layers.append(Layer(name.removeprefix("network."), module))
    return layers


@torch.inference_mode()
def time_layers(network: nn.Module, x: torch.Tensor, repeats: int) -> tuple[list[Layer], list[float]]:
    """(layers with their times, MACs and kinds; the hooked forward's wall-clock seconds per repeat)."""
    layers = leaf_layers(network)
    starts: dict[int, float] = {}

    def pre(layer):
        def hook(module, inputs):
            starts[id(layer)] = time.perf_counter()
        return hook

    def post(layer):
        def hook(module, inputs, output):
            layer.current += time.perf_counter() - starts[id(layer)]
            if not layer.input_shape:   # the first call: shapes, MACs, kind
                layer.input_shape = tuple(inputs[0].shape)
                layer.kind = kind_of(layer.name, module, inputs[0])
                conv = module.conv if isinstance(module, ConvPointwise) else module
                if isinstance(conv, _CONVS):
                    layer.macs = conv_macs(conv, inputs[0], output)
        return hook

    handles = []
    for layer in layers:
        handles.append(layer.module.register_forward_pre_hook(pre(layer)))
        handles.append(layer.module.register_forward_hook(post(layer)))
    try:
        network(x)   # warm-up (oneDNN builds its kernels on the first call of each shape)
        totals = []
        for _ in range(repeats):
            for layer in layers:
                layer.current = 0.0
            start = time.perf_counter()
            network(x)
            totals.append(time.perf_counter() - start)
            for layer in layers:
                layer.times.append(layer.current)
    finally:
        for h in handles:
            h.remove()
    return layers, totals


@torch.inference_mode()
def isolated_best(module: nn.Module, input_shape: tuple[int, ...], repeats: int) -> float:
    """The best median seconds of `module` (a conv) alone on a random input of input_shape, over the two
    memory formats (input and weight both in the format), the run long enough to measure."""
    best = float("inf")
    for layout in (torch.contiguous_format, torch.channels_last):
        conv = copy.deepcopy(module).to(memory_format=layout)
        x = torch.randn(input_shape).contiguous(memory_format=layout)
        conv(x)
        start = time.perf_counter()
        conv(x)
        loops = max(1, int(0.02 / max(time.perf_counter() - start, 1e-6)))   # about 20 ms per timed run
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(loops):
                conv(x)
            times.append((time.perf_counter() - start) / loops)
        best = min(best, statistics.median(times))
    return best


def shape_floors(layers: list[Layer], repeats: int) -> dict[str, float]:
    """Layer name -> its best isolated seconds, measured once per distinct (type, weight shape, stride,
    input shape)."""
    cache: dict[tuple, float] = {}
    floors = {}
    for layer in layers:
        m = layer.module.conv if isinstance(layer.module, ConvPointwise) else layer.module
        if not isinstance(m, _CONVS):
            continue
        key = (type(m), tuple(m.weight.shape), m.stride, m.padding, layer.input_shape)
        if key not in cache:
            cache[key] = isolated_best(m, layer.input_shape, repeats)
        floors[layer.name] = cache[key]
    return floors


@torch.inference_mode()
def operator_table(network: nn.Module, x: torch.Tensor, repeats: int) -> list[tuple[str, float, int]]:
    """torch.profiler's self CPU time per operator over `repeats` forwards: (name, seconds per forward,
    calls per forward), largest first."""
    from torch.profiler import ProfilerActivity, profile
    network(x)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            network(x)
    rows = [(e.key, e.self_cpu_time_total / 1e6 / repeats, e.count // repeats) for e in prof.key_averages()]
    return sorted((r for r in rows if r[1] > 0), key=lambda r: -r[1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--layers", action="store_true", help="also print every layer")
    parser.add_argument("--unfused", action="store_true",
                        help="profile folded + channels-last without the fused ReLUs and additions")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine_description()}")
    before = CpuTimes.read()

    peak = max(conv_throughput(args.repeats).values())
    cfg = higherhrnet.load_cfg(args.cfg)
    size = cfg.DATASET.INPUT_SIZE
    model = higherhrnet.build_model(cfg).eval()
    network = ChannelsLast(fold_batchnorm(model)) if args.unfused else prepare_network(model, torch.device("cpu"))
    x = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        network(x)
        plain = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            network(x)
            plain.append(time.perf_counter() - start)
    forward = statistics.median(plain)
    layers, hooked = time_layers(network, x, args.repeats)
    floors = shape_floors(layers, args.repeats)
    operators = operator_table(network, x, args.repeats)
    after = CpuTimes.read()

    macs = sum(layer.macs for layer in layers)
    compute_floor = 2 * macs / (peak * 1e9)
    shape_floor = sum(floors.values())
    modules_sum = sum(layer.seconds for layer in layers)
    outside = max(0.0, statistics.median(hooked) - modules_sum)
    what = "folded + channels-last, unfused" if args.unfused else "the default backend (prepare_network)"
    print(f"{args.cfg} at {size} x {size}, {what}, {args.repeats} repeats")
    if before and after:
        print(f"other processes kept {busy_between(before, after):.2f} CPUs busy on average during the run")
    print(f"\ncompute floor: {macs / 1e9:.1f} GMACs at {peak:.1f} GFLOP/s (best 3x3 conv) = {compute_floor:.3f} s")
    print(f"shape floor (each conv alone, best layout, summed): {shape_floor:.3f} s = "
          f"{shape_floor / compute_floor:.2f} x the compute floor")
    print(f"forward: {forward:.3f} s = {forward / compute_floor:.2f} x the compute floor, "
          f"{forward / shape_floor:.2f} x the shape floor (hooked: {statistics.median(hooked):.3f} s)\n")

    groups: dict[str, list[Layer]] = collections.defaultdict(list)
    for layer in layers:
        groups[layer.kind].append(layer)
    total = modules_sum + outside
    print("| layers | count | share of time | share of MACs | GFLOP/s | x compute floor | x shape floor |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = [(kind, len(g), sum(layer.seconds for layer in g), sum(layer.macs for layer in g),
             sum(floors.get(layer.name, 0.0) for layer in g)) for kind, g in groups.items()]
    rows.append(("not modules: additions, concatenation, layout conversions", "-", outside, 0, 0.0))
    for kind, count, seconds, kind_macs, kind_floor in sorted(rows, key=lambda r: -r[2]):
        if seconds < 1e-4 * total:
            continue
        rate = f"{2 * kind_macs / seconds / 1e9:.1f}" if kind_macs else "-"
        x_compute = f"{seconds / (2 * kind_macs / (peak * 1e9)):.2f}" if kind_macs else "-"
        x_shape = f"{seconds / kind_floor:.2f}" if kind_floor else "-"
        print(f"| {kind} | {count} | {100 * seconds / total:.1f}% | {100 * kind_macs / macs:.1f}% | {rate} "
              f"| {x_compute} | {x_shape} |")

    print("\n| operator (torch.profiler, self CPU time) | calls per forward | ms per forward | share |")
    print("| --- | --- | --- | --- |")
    op_total = sum(r[1] for r in operators)
    for name, seconds, calls in operators[:12]:
        print(f"| {name} | {calls} | {1e3 * seconds:.1f} | {100 * seconds / op_total:.1f}% |")

    if args.layers:
        print("\n| layer | kind | input | ms | GFLOP/s | x shape floor |")
        print("| --- | --- | --- | --- | --- | --- |")
        for layer in layers:
            if layer.seconds < 1e-5:
                continue
            rate = f"{2 * layer.macs / layer.seconds / 1e9:.1f}" if layer.macs else "-"
            x_shape = f"{layer.seconds / floors[layer.name]:.2f}" if layer.name in floors else "-"
            print(f"| {layer.name} | {layer.kind} | {'x'.join(map(str, layer.input_shape[1:]))} "
                  f"| {1e3 * layer.seconds:.2f} | {rate} | {x_shape} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
