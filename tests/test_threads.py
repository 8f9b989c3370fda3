"""CPU threads on a shared machine (higherhrnet.threads): the thread count chosen from the free CPUs, the OpenMP
wait policy the command line sets before torch loads, --threads and Predictor(threads=...). How fast each
choice is lives in benchmarks/contention.py and BENCHMARKS.md."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import higherhrnet.threads
from higherhrnet import Predictor
from higherhrnet.cli import build_parser, main
from higherhrnet.threads import CallThreads, CpuTimes, busy_between, choose_threads, quota_cpus, set_wait_policy

from conftest import REPO, tiny_cfg

TINY_YAML = str(REPO / "experiments/synthetic/w16_256_tiny.yaml")


@pytest.mark.parametrize("cpus, busy, limit, threads", [
    (2, 0, 2, 2),           # idle: a thread per core
    (2, 1, 2, 1),           # one core busy: the other one
    (2, 2, 2, 1),           # both busy: still one thread
    (2, 5, 2, 1),
    (2, 0.4, 2, 2),         # busy rounded to whole CPUs
    (2, 0.6, 2, 1),
    (16, 3, 16, 13),
    (16, 3, 8, 8),          # never more than the limit (PyTorch's count, OMP_NUM_THREADS, ...)
    (4, 0, 1, 1),
    (1, 0, 4, 1),
])
def test_one_thread_per_free_cpu_within_the_limit(cpus, busy, limit, threads):
    assert choose_threads(cpus, busy, limit) == threads


@pytest.mark.parametrize("cpu_max, cpus", [("max 100000\n", None), ("150000 100000\n", 2), ("200000 100000", 2),
                                           ("50000 100000", 1), ("", None), ("garbage", None)])
def test_a_containers_cpu_quota_counts_as_that_many_cpus(cpu_max, cpus):
    assert quota_cpus(cpu_max) == cpus


def test_the_wait_policy_is_set_only_when_nobody_chose_one():
    environ = {"PATH": "/bin"}
    assert set_wait_policy(environ, modules={}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert environ == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    for chosen in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "10000"}, {"KMP_BLOCKTIME": "200"}):
        environ = dict(chosen)
        assert set_wait_policy(environ, modules={}) == {} and environ == chosen
    # torch loaded: its OpenMP has read the environment, and child processes would wait otherwise than this one.
    environ = {}
    assert set_wait_policy(environ, modules={"torch": torch}) == {} and environ == {}


def _spin_count(env: dict) -> str:
    """GNU OpenMP's spin count in a `higherhrnet summary` process started with `env` (OMP_DISPLAY_ENV prints
    what OpenMP read when torch loaded it)."""
    env = {k: v for k, v in os.environ.items() if k not in higherhrnet.threads.WAIT_VARIABLES} | env
    result = subprocess.run([sys.executable, "-m", "higherhrnet", "summary", "--cfg", TINY_YAML, "--json",
                             "--threads", "1"], env=env | {"OMP_DISPLAY_ENV": "VERBOSE"}, capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    found = re.search(r"GOMP_SPINCOUNT = '(\d+)'", result.stderr)
    if found is None:
        pytest.skip("PyTorch does not run on GNU OpenMP here")
    return found.group(1)


@pytest.mark.slow
def test_the_command_line_makes_idle_openmp_threads_sleep_unless_the_user_chose():
    assert _spin_count({}) == "0"                                   # OMP_WAIT_POLICY=PASSIVE: no spinning
    assert _spin_count({"GOMP_SPINCOUNT": "1000"}) == "1000"        # the user's own choice stands
    assert _spin_count({"OMP_WAIT_POLICY": "ACTIVE"}) == "30000000000"


def test_the_command_line_runs_in_a_process_whose_torch_is_loaded_without_touching_its_environment(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert main(["summary", "--cfg", TINY_YAML, "--json"]) == 0
    assert "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.parametrize("command, required", [("predict", []), ("eval", []), ("train", ["--cfg", "c.yaml"]),
                                               ("export", ["--out", "m.onnx"]), ("summary", ["--cfg", "c.yaml"])])
def test_every_command_that_computes_takes_threads(command, required):
    assert build_parser().parse_args([command, *required, "--threads", "3"]).threads == 3
    assert build_parser().parse_args([command, *required]).threads is None


def test_threads_sets_pytorchs_count_and_is_refused_below_one(capsys):
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["summary", "--cfg", TINY_YAML, "--json", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
    capsys.readouterr()
    assert main(["summary", "--cfg", TINY_YAML, "--threads", "0"]) == 2
    assert "higherhrnet summary: error: --threads must be at least 1, got 0" in capsys.readouterr().err


def test_predict_passes_threads_to_its_predictor(monkeypatch, tmp_path):
    given = []
    original = Predictor.from_config.__func__

    def from_config(cls, *args, **kwargs):
        given.append(kwargs.get("threads"))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Predictor, "from_config", classmethod(from_config))
    previous = torch.get_num_threads()
    try:
        assert main(["predict", "--weights", "synthetic_w16_256", str(REPO / "demo/samples/three_people.jpg"),
                     "--out", str(tmp_path / "out"), "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(previous)
    assert given == [1]


class _Counting(nn.Module):
    """The network as it is, noting PyTorch's thread count at every forward."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.counts: list[int] = []

    def forward(self, x):
        self.counts.append(torch.get_num_threads())
        return self.network(x)


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def _counting_predictor(tiny_model, **options):
    network = _Counting(tiny_model)
    return Predictor.from_model(tiny_cfg(), network, fold_bn=False, raw=True, **options), network


IMAGE = np.full((96, 128, 3), 90, np.uint8)


def test_a_predictor_with_threads_runs_every_call_on_that_many(tiny_model, two_threads):
    predictor, network = _counting_predictor(tiny_model, threads=1)
    predictor(IMAGE)
    predictor.predict_batch([IMAGE, IMAGE])
    assert set(network.counts) == {1} and predictor.threads.last == 1
    assert torch.get_num_threads() == 2                 # the program's own count, set back after the call
    # The same with a ready network, and under the option's earlier name.
    ready = Predictor(network, predictor.params, predictor.keypoints, threads=1)
    network.counts.clear()
    ready(IMAGE)
    assert set(network.counts) == {1}
    assert Predictor.from_model(tiny_cfg(), tiny_model, onnx_threads=1).threads.threads == 1


def _spinning(monkeypatch):
    """The environment of a program that imported torch with OpenMP's default wait policy."""
    for name in higherhrnet.threads.WAIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_a_predictor_without_threads_keeps_pytorchs_count_where_idle_threads_sleep(tiny_model, two_threads,
                                                                                   monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setattr(higherhrnet.threads, "busy_cpus", lambda cpus=None: 2.0)     # however busy
    predictor, network = _counting_predictor(tiny_model)
    predictor(IMAGE)
    assert set(network.counts) == {2} and predictor.threads.last == 2


@pytest.mark.parametrize("environ, sleep", [({}, False), ({"OMP_WAIT_POLICY": "PASSIVE"}, True),
                                            ({"OMP_WAIT_POLICY": "passive "}, True),
                                            ({"OMP_WAIT_POLICY": "ACTIVE"}, False), ({"GOMP_SPINCOUNT": "0"}, True),
                                            ({"GOMP_SPINCOUNT": "300000"}, False),
                                            ({"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"}, False)])
def test_whether_idle_openmp_threads_sleep(environ, sleep):
    assert higherhrnet.threads.idle_threads_sleep(environ) is sleep


def test_a_predictor_without_threads_takes_the_cpus_other_work_left_free(tiny_model, two_threads, monkeypatch):
    _spinning(monkeypatch)
    predictor, network = _counting_predictor(tiny_model)
    monkeypatch.setattr(higherhrnet.threads, "usable_cpus", lambda: 2)
    monkeypatch.setattr(higherhrnet.threads, "busy_cpus", lambda cpus=None: 1.0)     # one other thread running now
    readings = iter([CpuTimes(busy=0.0, own=0.0, wall=0.0),      # first call: nothing to average, the count now
                     CpuTimes(busy=0.6, own=0.5, wall=1.0),      # others kept 0.1 CPU busy since: both CPUs
                     CpuTimes(busy=2.1, own=0.5, wall=2.0),      # others kept 1.5 CPUs busy: one thread
                     CpuTimes(busy=2.1, own=0.55, wall=2.05)])   # 50 ms later, too short to tell: as before
    monkeypatch.setattr(higherhrnet.threads.CpuTimes, "read", classmethod(lambda cls: next(readings)))
    for expected in (1, 2, 1, 1):
        network.counts.clear()
        predictor(IMAGE)
        assert set(network.counts) == {expected} and predictor.threads.last == expected
        assert torch.get_num_threads() == 2                 # set back after each call
    # Never more than the program's own count.
    torch.set_num_threads(1)
    monkeypatch.setattr(higherhrnet.threads.CpuTimes, "read", classmethod(lambda cls: None))
    monkeypatch.setattr(higherhrnet.threads, "busy_cpus", lambda cpus=None: 0.0)
    predictor, network = _counting_predictor(tiny_model)
    predictor(IMAGE)
    assert set(network.counts) == {1}


def test_busy_cpus_between_two_readings_by_hand():
    earlier = CpuTimes(busy=100.0, own=10.0, wall=50.0)
    assert busy_between(earlier, CpuTimes(busy=100.4, own=10.2, wall=50.2)) == pytest.approx(1.0)   # a busy core
    assert busy_between(earlier, CpuTimes(busy=100.4, own=10.4, wall=50.2)) == pytest.approx(0.0)  # all this process
    assert busy_between(earlier, CpuTimes(busy=100.0, own=10.1, wall=50.2)) == 0.0    # tick rounding: not below 0
    assert busy_between(earlier, earlier) == 0.0


def test_the_onnxruntime_session_gets_the_same_threads(tiny_model, two_threads):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    for threads, expected in ((1, 1), (None, 2)):
        network = Predictor.from_model(tiny_cfg(), tiny_model, backend="onnxruntime", threads=threads).network
        assert network.session.get_session_options().intra_op_num_threads == expected


def test_bad_thread_counts_are_refused(tiny_model):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a whole number of at least 1"):
            Predictor.from_model(tiny_cfg(), tiny_model, threads=bad)
    with pytest.raises(TypeError, match="onnx_threads is the earlier name of threads"):
        Predictor.from_model(tiny_cfg(), tiny_model, threads=1, onnx_threads=2)
    with pytest.raises(ValueError):
        CallThreads(0)


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="needs Linux's /proc")
def test_busy_cpus_reads_the_kernels_count_less_this_process():
    # The thread reading is running: it is counted as this process's own, never as other work.
    assert higherhrnet.threads._own_runnable_threads() >= 1
    busy = higherhrnet.threads.busy_cpus()
    assert busy is not None and 0 <= busy <= os.cpu_count() * 64
    # This process's own CPU time is what it spends; the machine's busy time covers it.
    earlier = CpuTimes.read()
    sum(i * i for i in range(2_000_000))
    later = CpuTimes.read()
    assert later.own - earlier.own > 0 and later.busy >= earlier.busy
    assert 0 <= busy_between(earlier, later) <= len(os.sched_getaffinity(0)) + 0.5      # + tick rounding

