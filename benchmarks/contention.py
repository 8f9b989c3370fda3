"""The bundled model's forward pass and per-frame Predictor time on an idle machine and beside other work, with
PyTorch's thread defaults (as before) and with this toolkit's (threads.py), measured side by side.

    cd benchmarks && python contention.py --rounds 2

Neighbours: none (the machine as it is); one process keeping a core busy (a Python loop); a two-thread PyTorch job (matrix products
on two threads, OpenMP's default spinning, as another training or inference job runs). Thread settings, each
in a fresh process because OpenMP reads its wait policy when torch is imported:

- before: PyTorch's defaults, one thread per core, idle OpenMP threads spinning (torch.get_num_threads() fixed);
- 1 thread: one thread, the reference the ratios are taken to (its idle time is what a lone core does);
- now, command line: what the commands do (OMP_WAIT_POLICY=PASSIVE; the Predictor keeps PyTorch's count);
- now, torch imported first: a Python program that imported torch before higherhrnet (the wait policy left
  at OpenMP's default, spinning; the Predictor takes one thread per CPU other work left free, at each call).

--alternatives adds what was measured against them: the passive wait policy with one thread per free CPU,
and PyTorch's count with GNU OpenMP spinning --spin-counts iterations (GOMP_SPINCOUNT; default 1,000)
instead of 300,000 before it sleeps.

The forward pass is the network alone on a (1, 3, 256, 352) input, the Predictor's per-frame time a 768 x 576
synthetic frame (resizing, network, grouping, filters); both within the Predictor's thread setting. Each
cell is the median over `--repeats` runs of each of `--rounds` rounds (every round runs every setting beside
every neighbour, so that the machine's drift falls on all alike), and its ratio to the 1-thread time without
a neighbour.
Others: how much CPU other processes on the machine took while the cell was measured (a shared machine).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import machine_description, median_time

WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

# name -> (environment added to the cleared wait variables, the Predictor's threads: an int, "default" for
# torch.get_num_threads() fixed, None for the Predictor's default, "per-free-cpu" for one thread per free CPU
# whatever the wait policy)
SETTINGS = {
    "before (torch defaults: 2 threads, spinning)": ({}, "default"),
    "1 thread": ({}, 1),
    "now, command line (passive wait, 2 threads)": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
    "now, torch imported first (spinning, a thread per free CPU)": ({}, None),
}
ALTERNATIVE = ("passive wait, a thread per free CPU", ({"OMP_WAIT_POLICY": "PASSIVE"}, "per-free-cpu"))
REFERENCE = "1 thread"
NEIGHBOURS = {
    "no neighbour": [],
    "one busy core": [[sys.executable, "-c", "while True: pass"]],
    "two-thread job": [[sys.executable, "-c", "import torch\ntorch.set_num_threads(2)\nx = torch.randn(512, 2048)\n"
                                              "while True: x @ x.T"]],
}


def child(threads: str, repeats: int) -> None:
    """Time the forward pass and the per-frame Predictor in this process; print them as JSON."""
    import warnings

    import numpy as np
    import torch

    import higherhrnet
    import higherhrnet.threads
    from higherhrnet.data.synthetic import SyntheticSpec, render_scene

    if threads == "per-free-cpu":
        higherhrnet.threads.idle_threads_sleep = lambda environ=None: False
    count = (torch.get_num_threads() if threads == "default" else int(threads) if threads.isdigit() else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the synthetic model's note
        predictor = higherhrnet.Predictor("synthetic_w16_256", device="cpu", threads=count)
    spec = SyntheticSpec(image_size=(768, 576), max_people=4, min_height=150, max_height=500, crowd_prob=0.0)
    frame, _ = render_scene(np.random.default_rng(0), spec)
    x = torch.randn(1, 3, 256, 352)

    def forward():
        with torch.inference_mode(), predictor.threads.applied():
            predictor.network(x)

    def per_frame():
        predictor(frame)

    result, used = {}, []
    for name, fn in (("forward", forward), ("frame", per_frame)):
        def run_and_note_threads(fn=fn):
            fn()
            used.append(predictor.threads.last)
        result[name] = median_time(run_and_note_threads, repeats, warmup=2)
    result["threads_used"] = sorted(set(used))
    print(json.dumps(result))


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs)."""
    with open("/proc/stat", encoding="ascii") as f:
        user, nice, system, _, _, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(extra: dict, threads, neighbours: list, repeats: int) -> dict:
    """One child process with the environment `extra` and the Predictor's `threads` beside `neighbours`
    (started first, stopped after); its times and the share of the machine's CPU time other processes took
    meanwhile."""
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARIABLES}
    env.update(extra)
    procs = [subprocess.Popen(command) for command in neighbours]
    try:
        time.sleep(1.0)         # the neighbours started
        busy, wall = _busy_seconds(), time.monotonic()
        ours = sum(_cpu_seconds(p.pid) for p in procs)
        run = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", str(threads).lower(),
                                "--repeats", str(repeats)], env=env, stdout=subprocess.PIPE, text=True)
        # The child's CPU time, read before it is reaped, from the last /proc/<pid>/stat it has.
        child_cpu = 0.0
        while run.poll() is None:
            try:
                child_cpu = _cpu_seconds(run.pid)
            except OSError:
                pass
            time.sleep(0.05)
        out = run.stdout.read()
        ours += sum(_cpu_seconds(p.pid) for p in procs) + child_cpu
        others = (_busy_seconds() - busy - ours) / ((time.monotonic() - wall) * (os.cpu_count() or 1))
    finally:
        for p in procs:
            p.kill()
            p.wait()
    if run.returncode:
        raise SystemExit(f"{extra}, threads {threads}, beside {neighbours}: the child failed")
    result = json.loads(out.strip().splitlines()[-1])
    result["others"] = max(0.0, others)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="rounds over every setting and neighbour")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each kind per child process")
    parser.add_argument("--alternatives", action="store_true",
                        help="also passive waiting with a thread per free CPU, and short spinning")
    parser.add_argument("--spin-counts", type=int, nargs="+", default=[1000], metavar="N",
                        help="--alternatives: GOMP_SPINCOUNT values tried at PyTorch's count (default 1000)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.repeats)
        return 0

    settings = dict(SETTINGS)
    if args.alternatives:
        settings[ALTERNATIVE[0]] = ALTERNATIVE[1]
        for count in args.spin_counts:
            settings[f"2 threads, GOMP_SPINCOUNT={count}"] = ({"GOMP_SPINCOUNT": str(count)}, "default")
    with open("/proc/loadavg", encoding="ascii") as f:
        load_before = f.read().split()[:3]
    results = {(s, n): [] for s in settings for n in NEIGHBOURS}
    for round_index in range(args.rounds):
        for neighbour, commands in NEIGHBOURS.items():
            for setting, (extra, threads) in settings.items():
                result = measure(extra, threads, commands, args.repeats)
                results[setting, neighbour].append(result)
                print(f"round {round_index + 1}, {neighbour}, {setting}: forward {result['forward'] * 1e3:.1f} ms, "
                      f"frame {result['frame'] * 1e3:.1f} ms, threads {result['threads_used']}, others "
                      f"{result['others']:.0%}", file=sys.stderr, flush=True)
    with open("/proc/loadavg", encoding="ascii") as f:
        load_after = f.read().split()[:3]

    print(f"machine: {machine_description()}")
    print(f"load average before / after: {' '.join(load_before)} / {' '.join(load_after)}; {args.rounds} rounds of "
          f"{args.repeats} runs each\n")

    def median(setting, neighbour, key):
        return statistics.median(r[key] for r in results[setting, neighbour])

    for key, title in (("forward", "forward pass, (1, 3, 256, 352)"), ("frame", "Predictor, 768 x 576 frame")):
        reference = median(REFERENCE, "no neighbour", key)
        print(f"| {title}: ms (x 1 thread, no neighbour) | " + " | ".join(NEIGHBOURS) + " |")
        print("| --- |" + " --- |" * len(NEIGHBOURS))
        for setting in settings:
            cells = [f"{median(setting, n, key) * 1e3:.1f} ({median(setting, n, key) / reference:.2f}x)"
                     for n in NEIGHBOURS]
            print(f"| {setting} | " + " | ".join(cells) + " |")
        print()
    print("| threads used; others' share of the CPUs | " + " | ".join(NEIGHBOURS) + " |")
    print("| --- |" + " --- |" * len(NEIGHBOURS))
    for setting in settings:
        cells = []
        for n in NEIGHBOURS:
            used = sorted({t for r in results[setting, n] for t in r["threads_used"]})
            others = max(r["others"] for r in results[setting, n])
            cells.append(f"{', '.join(map(str, used))}; {others:.0%}")
        print(f"| {setting} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
