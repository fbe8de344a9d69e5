"""Stage 2: ``rlv2.qlearning.replay_sweep``, K configurations over the same events.

Per case, K and size: the sweep as a caller calls it (K = 64 and K = 1,024, α, γ and
ε varying across K), and the plain C loop running one configuration on the same events,
the yardstick of the target. Configurations 0 and K-1 of the sweep are compared with
the plain C loop run on their own hyperparameters and streams (``stream_seed``).

Memory: the resident set is read before the events and Q-tables are made and at its
peak during the call; their difference should be the K x S x A x 8 bytes of the tables
plus the events, with nothing copied per configuration.
"""

from __future__ import annotations

import tracemalloc

import numba
import numpy as np
from numpy.typing import NDArray

from bench.compiled import CompilerError, CReplay, load
from bench.harness import (
    BenchConfig,
    Check,
    Row,
    Stage,
    StageResult,
    format_bytes,
    format_count,
    progress,
    ratio_check,
    time_call,
)
from bench.workloads import (
    BENCH_HYPER,
    CASES,
    REPLAY_SEED,
    Case,
    Events,
    SweepGrid,
    make_events,
    make_sweep_grid,
)
from rlv2 import qlearning
from rlv2.rng import stream_seed

TITLE = "Hyperparameter sweep"
PLANS = {
    "small": ((64, (1_000, 10_000, 100_000)), (1_024, (100, 1_000, 10_000))),
    "full": ((64, (10_000, 100_000, 1_000_000)), (1_024, (1_000, 10_000, 100_000))),
}
"""(K, event counts) per size set."""
DEFAULT_REPEAT = 3
WARMUP_EVENTS = 1_000
TARGET_VS_PLAIN_C = 5.0
MEMORY_SLACK_FRACTION = 0.05
MEMORY_SLACK_BYTES = 16 * 2**20
"""Allowance over the expected footprint: interpreter, thread pool, page granularity."""

BUSY_CORES = 1.5
"""Below this many cores busy during a sweep, the machine was shared: the report says so."""

SWEEP_IMPL = "rlv2 replay_sweep()"
PLAIN_IMPL = "baseline: plain C, 1 config"


def _sweep_call(qs: NDArray, events: Events, grid: SweepGrid) -> object:
    arrays = (events.states, events.rewards, events.next_states, events.dones)
    return qlearning.replay_sweep(qs, *arrays, **grid.as_kwargs(), seed=REPLAY_SEED)


def _configs_equal(qs: NDArray, events: Events, grid: SweepGrid, plain: CReplay) -> bool:
    """Whether configurations 0 and K-1 equal the plain C loop on their own stream."""
    equal = True
    for k in sorted({0, grid.n_configs - 1}):
        q = np.zeros(qs.shape[1:])
        plain(q, events, grid.config(k), stream_seed(REPLAY_SEED, k))
        equal = equal and bool(np.array_equal(q, qs[k]))
    return equal


def _time_plain(plain: CReplay, label: str, events: Events, case: Case, repeat: int) -> Row:
    q = np.zeros((case.n_states, case.n_actions))

    def run() -> object:
        return plain(q, events, BENCH_HYPER, REPLAY_SEED)

    timing = time_call(run, repeat=repeat, setup=lambda: q.fill(0.0), warmup=run)
    n = events.n_events
    return Row(2, label, PLAIN_IMPL, n, n, timing, note="single thread, the yardstick")


def _memory_check(label: str, n: int, expected: int, inputs: int, allocated: int | None) -> Check:
    """Whether the sweep's peak footprint is its tables and events, nothing per config more."""
    measured = None if allocated is None else inputs + allocated
    allowed = int(expected * (1 + MEMORY_SLACK_FRACTION)) + MEMORY_SLACK_BYTES
    return Check(
        2,
        label,
        f"peak memory (N={format_count(n)}): measured vs expected K*S*A*8 + events",
        f"{format_bytes(measured)} (inputs {format_bytes(inputs)}, call {format_bytes(allocated)})",
        f"<= {format_bytes(allowed)} (expected {format_bytes(expected)} + slack)",
        measured is not None and measured <= allowed,
    )


def _make_inputs(case: Case, n_configs: int, n: int) -> tuple[Events, NDArray, SweepGrid, int]:
    """Fresh events, zeroed tables and the grid, and the bytes they take (tracemalloc)."""
    tracemalloc.start()
    try:
        events = make_events(case, n)
        qs = np.zeros((n_configs, case.n_states, case.n_actions))
        grid = make_sweep_grid(n_configs)
        inputs = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return events, qs, grid, inputs


def _measure(
    case: Case, n_configs: int, n: int, plain: CReplay, repeat: int
) -> tuple[Row, Row, Check]:
    """Time the sweep and the plain C loop on fresh events; check the sweep's footprint."""
    label = f"{case.label}, K={n_configs:,}"
    progress(f"stage 2: {label}, N={format_count(n)}")
    events, qs, grid, inputs = _make_inputs(case, n_configs, n)
    timing = time_call(
        lambda: _sweep_call(qs, events, grid),
        repeat=repeat,
        setup=lambda: qs.fill(0.0),
        warmup=lambda: _sweep_call(qs, events.head(min(n, WARMUP_EVENTS)), grid),
    )
    equal = _configs_equal(qs, events, grid, plain)
    note = f"{numba.get_num_threads()} threads; configs 0 and K-1 checked"
    sweep_row = Row(2, label, SWEEP_IMPL, n, n_configs * n, timing, equal, note)
    plain_row = _time_plain(plain, label, events, case, repeat)
    expected = qs.nbytes + events.nbytes
    memory = _memory_check(label, n, expected, inputs, timing.allocated)
    return sweep_row, plain_row, memory


def _measure_plan(
    result: StageResult,
    case: Case,
    n_configs: int,
    sizes: tuple[int, ...],
    plain: CReplay,
    repeat: int,
) -> None:
    """Measure one K at every size; check the target and the memory at the largest."""
    measured = [_measure(case, n_configs, n, plain, repeat) for n in sizes]
    for sweep_row, plain_row, _ in measured:
        result.rows += [sweep_row, plain_row]
    sweep_row, plain_row, memory = measured[-1]
    cores = sweep_row.timing.cores_busy
    what = (
        f"sweep config-updates/s / plain C updates/s (N={format_count(sizes[-1])}, "
        f"{cores:.2f} cores busy{'' if cores > BUSY_CORES else ': other processes running?'})"
    )
    result.checks += [
        ratio_check(2, sweep_row.case, what, sweep_row, plain_row, TARGET_VS_PLAIN_C),
        memory,
    ]


def run(config: BenchConfig) -> StageResult:
    """Run stage 2 at the configured sizes."""
    result = StageResult(2, TITLE)
    repeat = config.repeats(DEFAULT_REPEAT)
    try:
        plain = load("replay_plain", PLAIN_IMPL)
    except CompilerError as error:
        result.notes.append(f"stage 2 skipped: the plain C yardstick is unavailable: {error}")
        return result
    for case in CASES:
        for n_configs, sizes in PLANS[config.sizes]:
            _measure_plan(result, case, n_configs, sizes, plain, repeat)
    result.notes += [
        "Workloads as in stage 1 (dones all true); configuration k has its own α, γ, ε "
        "(uniform in [0.01, 0.5], [0.8, 0.999], [0.02, 0.3]), decay "
        f"{BENCH_HYPER.epsilon_decay}, min {BENCH_HYPER.epsilon_min}, and stream "
        f"stream_seed({REPLAY_SEED}, k); record_curves=False (the default).",
        "Throughput of the sweep counts config-updates (K x N per call); cores = CPU time "
        "over wall time (2.0 = both cores busy).",
        "Peak memory = the inputs as allocated (tracemalloc from before they were made) plus "
        "what one call allocates at its peak (the larger of tracemalloc's and the resident "
        "set's rise).",
    ]
    return result


STAGE = Stage(2, TITLE, run)
