"""CPU threads: how many PyTorch's work uses and how its idle ones wait, so that a machine shared with other work
slows this toolkit down by about what losing the busy cores should, not ten times that (docs/performance.md).

Two settings decide it, and neither can be left to PyTorch's defaults on a shared machine:

- How an idle OpenMP thread waits. GNU OpenMP (PyTorch's Linux wheels) lets a thread that finished its share
  of an operation spin for about 300,000 iterations (a few milliseconds) before it sleeps, longer than the gap
  to the next operation, so each of PyTorch's threads holds a core all the time. When another process wants
  one of those cores, every operation waits for the thread that lost its core while the other spins:
  measured up to 44x slower (BENCHMARKS.md, "Sharing the CPU"). OMP_WAIT_POLICY=PASSIVE makes the thread
  sleep at once. OpenMP reads it once, when it is loaded (when torch is imported): `set_wait_policy`, called
  by the command line's entry point before anything imports torch, sets it unless the user chose a wait
  behaviour; a Python program that wants it sets it before importing torch.
- How many threads. Threads that sleep when idle can stay one per core: measured beside a busy core or a
  two-thread job, two of them took about what one thread takes on a free core, and won more of a crowded
  machine than one thread did.
  Threads that spin must never outnumber the free cores: where the policy could not be set (a program that
  imported torch before higherhrnet), `CallThreads` (a Predictor's) chooses the count at each call from the
  CPUs other work kept busy since its last call (`choose_threads`, `CpuTimes`, `busy_between`; at its first
  call, from the threads running at that instant: `busy_cpus`), and sets PyTorch's count back after the call.

Nothing here imports torch at module level: the command line imports this module before torch.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from dataclasses import dataclass
from typing import Iterator, Mapping, MutableMapping

__all__ = ["WAIT_POLICY", "WAIT_VARIABLES", "set_wait_policy", "idle_threads_sleep", "choose_threads", "busy_cpus",
           "usable_cpus", "quota_cpus", "CpuTimes", "busy_between", "check_threads", "CallThreads"]

# What set_wait_policy sets: idle OpenMP threads sleep instead of spinning (every OpenMP runtime reads it).
WAIT_POLICY = {"OMP_WAIT_POLICY": "PASSIVE"}
# Variables by which a user chooses how idle OpenMP threads wait: GNU OpenMP's spin count, LLVM / Intel
# OpenMP's block time, or the policy itself. set_wait_policy leaves the environment alone when one is set.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def set_wait_policy(environ: MutableMapping[str, str] | None = None,
                    modules: Mapping[str, object] | None = None) -> dict[str, str]:
    """Put WAIT_POLICY into `environ` (default os.environ) unless a WAIT_VARIABLES variable is set there, or
    torch is already among `modules` (default sys.modules): its OpenMP has read the environment then, and
    child processes would wait differently from this one. Returns what was set ({} when nothing)."""
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    if "torch" in modules or any(name in environ for name in WAIT_VARIABLES):
        return {}
    environ.update(WAIT_POLICY)
    return dict(WAIT_POLICY)


def idle_threads_sleep(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `environ` (default os.environ) tells OpenMP to put an idle thread to sleep at once: GNU OpenMP's
    GOMP_SPINCOUNT 0, or, without GOMP_SPINCOUNT (which wins over the policy), OMP_WAIT_POLICY PASSIVE. What
    OpenMP read when torch was imported, as long as nobody changed the environment since."""
    environ = os.environ if environ is None else environ
    spin_count = environ.get("GOMP_SPINCOUNT")
    if spin_count is not None:
        return spin_count.strip() == "0"
    return environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


def choose_threads(cpus: int, busy: float, limit: int) -> int:
    """The intra-op thread count for `cpus` CPUs this process may use, `busy` of which run other work: one
    thread per free CPU (busy rounded to the nearest whole CPU), at least 1 and at most `limit`."""
    free = int(cpus - busy + 0.5)
    return max(1, min(limit, free))


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the system has one, fewer where a cgroup v2
    CPU quota (a container's --cpus) allows less, rounded up."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as f:
            quota = quota_cpus(f.read())
    except OSError:
        quota = None
    return cpus if quota is None else min(cpus, quota)


def quota_cpus(cpu_max: str) -> int | None:
    """The CPUs a cgroup v2 quota allows, rounded up, from its cpu.max ("150000 100000": 2); None for "max ..."
    (no quota) or text that is not a quota."""
    try:
        quota, period = cpu_max.split()[:2]
        return None if quota == "max" else max(1, -(-int(quota) // int(period)))
    except ValueError:
        return None


def busy_cpus(cpus: int | None = None) -> float | None:
    """How many of this process's `cpus` (default usable_cpus()) other work is running on now: the kernel's
    count of runnable threads (/proc/loadavg) less this process's own, scaled by the share of the machine's
    CPUs this process may use. None where /proc cannot tell (not Linux).

    A count at one instant: a process that keeps a core busy (a training job, a video encoder) is always in
    it; a short burst may or may not be, which costs one call a thread at most."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            runnable = int(f.read().split()[3].split("/")[0])
        # The thread reading is one of them: with no other, this process's other threads need no counting.
        own = _own_runnable_threads() if runnable > 1 else runnable
    except (OSError, ValueError, IndexError):
        return None
    online = os.cpu_count() or 1
    cpus = usable_cpus() if cpus is None else cpus
    return max(0, runnable - own) * min(1.0, cpus / online)


@dataclass(frozen=True)
class CpuTimes:
    """What the CPUs this process may run on have done, at one moment (read()): busy, the seconds they spent
    running any process (the kernel's per-CPU counts, /proc/stat, since boot), times `share` (usable_cpus() over
    the CPUs counted, below 1 under a CPU quota); own, the CPU seconds of this process's threads
    (time.process_time); wall, time.monotonic()."""

    busy: float
    own: float
    wall: float

    @classmethod
    def read(cls) -> "CpuTimes | None":
        """Now; None where /proc/stat cannot tell (not Linux)."""
        try:
            allowed = {f"cpu{i}" for i in os.sched_getaffinity(0)}
            ticks = 0
            with open("/proc/stat", encoding="ascii") as f:
                for line in f:
                    name, *values = line.split()
                    if name in allowed:
                        # user, nice, system, idle, iowait, irq, softirq, steal; guest time is inside user.
                        user, nice, system, _, _, irq, softirq, steal = map(int, values[:8])
                        ticks += user + nice + system + irq + softirq + steal
        except (AttributeError, OSError, ValueError):
            return None
        share = min(1.0, usable_cpus() / max(1, len(allowed)))
        return cls(ticks / os.sysconf("SC_CLK_TCK") * share, time.process_time(), time.monotonic())


def busy_between(earlier: CpuTimes, later: CpuTimes) -> float:
    """How many CPUs other work kept busy on average between two readings: the CPUs' busy time less this
    process's own, over the time between (not below 0)."""
    wall = later.wall - earlier.wall
    if wall <= 0:
        return 0.0
    return max(0.0, (later.busy - earlier.busy) - (later.own - earlier.own)) / wall


def _own_runnable_threads() -> int:
    """This process's threads in state R (running or waiting for a CPU), the one reading included."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:         # the thread ended meanwhile
            continue
        # The state follows the command name, which is in parentheses and may itself hold spaces or ")".
        count += stat[stat.rindex(")") + 2:stat.rindex(")") + 3] == "R"
    return count


def check_threads(threads: int | None) -> int | None:
    """`threads` as given (None: chosen per call); ValueError unless None or at least 1."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a whole number of at least 1 (or None: chosen for each call), got "
                         f"{threads!r}")
    return threads


@functools.lru_cache(maxsize=None)
def _openmp_backend() -> bool:
    """Whether PyTorch runs its intra-op work on OpenMP, whose thread count may change at any time (the native
    thread pool refuses changes once it has started)."""
    import torch

    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


class CallThreads:
    """The intra-op thread count of a Predictor's calls.

    threads: that many threads for every call. None: PyTorch's count as the call starts (its default, one per
    core, or what the program set: torch.set_num_threads, OMP_NUM_THREADS) where idle OpenMP threads sleep
    (idle_threads_sleep: the command line's default); where they spin, at each call one thread per CPU that
    other work left free (choose_threads), at most that count. How busy the CPUs are is their average since
    the reading of an earlier call at least WINDOW seconds before (busy_between): the bursts of a DataLoader
    worker that starts on the next batch as a call starts, or of short commands, average out, while a process
    that keeps a core busy counts as one CPU. The first call, with nothing to average, counts the threads
    running at that instant (busy_cpus).

    Within `applied()` PyTorch's count is the chosen one; it is set back after, so the program's own setting
    stands between calls. `last`: the count the last call ran with. Left alone where /proc cannot tell how
    busy the machine is (threads None) or where PyTorch does not run on OpenMP. PyTorch's count is one for the
    whole process: calls from several Python threads at once share it.
    """

    # Seconds a reading has to be older than the next to be averaged over: the kernel counts CPU time in
    # ticks of 1 - 10 ms, too coarse for shorter spans.
    WINDOW = 0.1

    def __init__(self, threads: int | None = None):
        self.threads = check_threads(threads)
        self.last: int | None = None
        self._since: CpuTimes | None = None     # the reading the next average starts from
        self._busy: float | None = None         # the last average
        self._depth = 0

    def choose(self, limit: int) -> int | None:
        """The count for a call starting now, PyTorch's count being `limit`; None: leave it."""
        if self.threads is not None:
            return self.threads
        if idle_threads_sleep():
            return None
        cpus = usable_cpus()
        now = CpuTimes.read()
        if now is not None and self._since is not None and now.wall - self._since.wall >= self.WINDOW:
            self._busy = busy_between(self._since, now)
            self._since = now
        elif self._since is None:
            self._since = now
        busy = self._busy if self._busy is not None else busy_cpus(cpus)
        return None if busy is None else choose_threads(cpus, busy, limit)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Run the block with the chosen count (nested blocks keep the outer one's)."""
        import torch

        if self._depth:
            count = previous = None
        else:
            previous = torch.get_num_threads()
            # PyTorch's native thread pool takes one count for the life of the process: a fixed count is set
            # once, and nothing is chosen per call.
            per_call = _openmp_backend()
            count = self.choose(previous) if per_call or self.threads is not None else None
            self.last = previous if count is None else count
            if count is not None and count != previous:
                torch.set_num_threads(count)
            if not per_call:
                previous = count
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if count is not None and count != previous:
                torch.set_num_threads(previous)

