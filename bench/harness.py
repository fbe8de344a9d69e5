"""What every stage shares: the run configuration, the timer, result rows and the tables.

A stage is a module ``bench/stage<N>_<name>.py`` that defines ``STAGE``, a :class:`Stage`
whose ``run`` turns a :class:`BenchConfig` into a :class:`StageResult`. ``python -m
bench`` finds the stage modules by name, so adding a stage is adding a module.
"""

from __future__ import annotations

import gc
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

SizeSet = Literal["small", "full"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESET_PEAK_RSS = "5"  # proc(5): writing 5 to clear_refs resets the peak RSS (VmHWM)


@dataclass(frozen=True)
class BenchConfig:
    """How large and how often: what ``python -m bench``'s flags select."""

    sizes: SizeSet = "full"
    """``full`` spans the issue's sizes (up to 1M events); ``small`` is 10x smaller."""
    repeat: int | None = None
    """Timed repeats per measurement (median reported); None: each stage's default."""
    quick: bool = False
    """Smoke run: small sizes, fewest repeats, smaller baseline subsamples."""

    def repeats(self, default: int) -> int:
        """Number of timed repeats: the flag, else the stage's default; at least 3."""
        return max(3, self.repeat if self.repeat is not None else (3 if self.quick else default))


@dataclass(frozen=True)
class Timing:
    """Repeated timings of one call."""

    seconds: tuple[float, ...]
    """Wall time of each timed repeat."""
    cpu_seconds: tuple[float, ...]
    """User + system CPU time of the process (all threads) during each repeat."""
    allocated: int | None
    """Memory one more (untimed) call allocated at its peak, in bytes; None: not measured."""

    @property
    def median(self) -> float:
        """Median wall time (seconds)."""
        return statistics.median(self.seconds)

    @property
    def cores_busy(self) -> float:
        """CPU time over wall time at the median: 1.0 is one core fully busy."""
        return statistics.median(c / s for c, s in zip(self.cpu_seconds, self.seconds, strict=True))


def _status_kib(field_name: str) -> int | None:
    """A ``kB`` field of /proc/self/status, or None where there is no /proc."""
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return None


def _rss_peak_rise(run: Callable[[], object]) -> int | None:
    """Rise of the resident set's peak during ``run()`` above its level before (Linux)."""
    before = _status_kib("VmRSS")
    try:
        _CLEAR_REFS.write_text(_RESET_PEAK_RSS)
    except OSError:
        before = None
    run()
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) * 1024


def measure_allocation(run: Callable[[], object]) -> int | None:
    """Bytes ``run()`` allocates at its peak beyond what was live before.

    Two views, the larger reported: tracemalloc sees every numpy array and Python
    object, however the allocator recycles memory; the resident set's peak (Linux
    /proc) also sees native allocations, but misses memory freed earlier and reused.
    """
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    gc.collect()
    tracemalloc.reset_peak()
    live_before = tracemalloc.get_traced_memory()[0]
    rss_rise = _rss_peak_rise(run)
    traced_rise = tracemalloc.get_traced_memory()[1] - live_before
    if not tracing:
        tracemalloc.stop()
    return max(traced_rise, rss_rise or 0)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_call(
    run: Callable[[], object],
    *,
    repeat: int,
    setup: Callable[[], object] | None = None,
    warmup: Callable[[], object] | None = None,
    allocation: bool = True,
) -> Timing:
    """Time ``run()`` ``repeat`` times, each after an untimed ``setup()``.

    ``warmup`` (untimed, once) compiles or loads what the first call would; pass
    ``run`` itself when a full call is cheap. With ``allocation``, one more untimed call
    measures the memory a call allocates (:func:`measure_allocation`; skip it for pure
    Python code, which tracemalloc slows down). The garbage collector is off while a
    timed call runs, as in :mod:`timeit`.
    """
    if warmup is not None:
        if setup is not None:
            setup()
        warmup()
    allocated = None
    if allocation:
        if setup is not None:
            setup()
        allocated = measure_allocation(run)
    seconds: list[float] = []
    cpu: list[float] = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        gc.disable()
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        try:
            run()
        finally:
            t1 = time.perf_counter()
            cpu1 = _cpu_seconds()
            gc.enable()
        seconds.append(t1 - t0)
        cpu.append(cpu1 - cpu0)
    return Timing(tuple(seconds), tuple(cpu), allocated)


@dataclass(frozen=True)
class Row:
    """One implementation timed on one workload."""

    stage: int
    case: str
    """Workload label, e.g. ``meta S=972 A=48`` or ``meta S=972 A=48, K=64``."""
    impl: str
    """What ran; baselines are labelled ``baseline: ...``."""
    n_events: int
    work: int
    """Updates done by one call: N, or K x N config-updates in a sweep."""
    timing: Timing
    equal: bool | None = None
    """Q-table equal (np.array_equal) to the reference's on the same draws; None: not checked."""
    note: str = ""

    @property
    def throughput(self) -> float:
        """Updates (or config-updates) per second at the median time."""
        return self.work / self.timing.median

    @property
    def ns_per_update(self) -> float:
        """Median time per update (or config-update), in nanoseconds."""
        return self.timing.median / self.work * 1e9


@dataclass(frozen=True)
class Check:
    """A target from the issue (or an informational comparison) and how this run did."""

    stage: int
    case: str
    what: str
    measured: str
    target: str
    passed: bool
    binding: bool = True
    """False for comparisons shown for information only (not one of the issue's targets)."""

    @property
    def marker(self) -> str:
        """PASS / MISS for a target; lower case for an informational comparison."""
        word = "PASS" if self.passed else "MISS"
        return word if self.binding else f"({word.lower()}, info)"


def ratio_check(
    stage: int,
    case: str,
    what: str,
    numerator: Row,
    denominator: Row,
    required: float,
    *,
    binding: bool = True,
) -> Check:
    """Compare two rows' throughputs against a required ratio (numerator / denominator)."""
    ratio = numerator.throughput / denominator.throughput
    return Check(
        stage, case, what, f"{ratio:,.2f}x", f">= {required:g}x", ratio >= required, binding
    )


@dataclass
class StageResult:
    """Everything one stage measured."""

    number: int
    title: str
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """A stage of the benchmark: its number, its title and how to run it."""

    number: int
    title: str
    run: Callable[[BenchConfig], StageResult]


def progress(message: str) -> None:
    """Say what is running now (stderr, so the tables on stdout stay clean)."""
    print(f"  .. {message}", file=sys.stderr, flush=True)


# --- formatting ---------------------------------------------------------------------------


def format_seconds(seconds: float) -> str:
    """Seconds with a readable unit."""
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def format_bytes(n: int | None) -> str:
    """Bytes in MiB (or n/a)."""
    if n is None:
        return "n/a"
    return f"{n / 2**20:,.1f} MiB"


def format_rate(per_second: float) -> str:
    """A throughput in millions (or thousands) per second."""
    if per_second >= 1e6:
        return f"{per_second / 1e6:,.1f} M/s"
    return f"{per_second / 1e3:,.1f} k/s"


def format_count(n: int) -> str:
    """An event count, e.g. 1M, 100k, 20k, 1,500."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n:,}"


def format_equal(equal: bool | None) -> str:
    """The Q-equality column."""
    return {True: "yes", False: "NO", None: "-"}[equal]


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool) -> str:
    """A table as aligned text or as GitHub markdown."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt.format(*headers), rule, *(fmt.format(*r) for r in rows)])
