"""Stage 1: ``rlv2.qlearning.replay`` (exploring mode) against the three baselines.

Per workload and size: ``replay()`` as a caller calls it (argument validation and
output allocation included), the compiled loop alone (validated arrays and outputs
prepared beforehand; shown for information), the plain and the tuned C loops, and the
naive pure-Python bot on a subsample (it would take minutes at 1M events). Every
baseline's Q-table is compared with rlv2's on the same draws. The targets are checked
at the largest size of the one-event-episode workloads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bench.compiled import CompilerError, CReplay, load_baselines
from bench.harness import (
    BenchConfig,
    Row,
    Stage,
    StageResult,
    format_count,
    progress,
    ratio_check,
    time_call,
)
from bench.naive import DictQLearner, bot_events, run_bot
from bench.workloads import BENCH_HYPER, CASES, META, REPLAY_SEED, Case, Events, make_events
from rlv2 import qlearning
from rlv2.rng import make_rng

TITLE = "Replay kernel (exploring mode)"
SIZES = {"small": (1_000, 10_000, 100_000), "full": (10_000, 100_000, 1_000_000)}
NAIVE_EVENTS = {"small": 5_000, "full": 20_000}
"""Events the naive bot is timed on (the first ones of the workload)."""
EPISODE_VARIANT = 64
"""Episode length of the variant workload: 63 of 64 updates bootstrap on max Q(s')."""
DEFAULT_REPEAT = 5

TARGET_VS_PLAIN_C = 2.5
TARGET_VS_TUNED_C = 0.75
TARGET_VS_NAIVE = 100.0

REPLAY_IMPL = "rlv2 replay()"
KERNEL_IMPL = "rlv2 compiled loop only"
NAIVE_IMPL = "baseline: naive Python"


@dataclass(frozen=True)
class Workload:
    """Events to replay through one case's Q-table."""

    label: str
    case: Case
    events: Events
    binding: bool
    """Whether the issue's targets apply (the one-event-episode default) or it is a variant."""


def _workloads(case: Case, n_events: int) -> list[Workload]:
    """The default workload of a case, plus the episodic variant for the meta agent."""
    events = make_events(case, n_events)
    workloads = [Workload(case.label, case, events, binding=True)]
    if case is META:
        variant = events.with_episode_length(EPISODE_VARIANT)
        label = f"{case.label}, episodes of {EPISODE_VARIANT}"
        workloads.append(Workload(label, case, variant, binding=False))
    return workloads


def _time_replay(workload: Workload, events: Events, repeat: int) -> tuple[Row, NDArray]:
    """Time ``replay()``; return its row and the Q-table it produced."""
    case = workload.case
    q = np.zeros((case.n_states, case.n_actions))
    kwargs = BENCH_HYPER.as_kwargs()

    def run() -> object:
        arrays = (events.states, events.rewards, events.next_states, events.dones)
        return qlearning.replay(q, *arrays, **kwargs, seed=REPLAY_SEED)

    timing = time_call(run, repeat=repeat, setup=lambda: q.fill(0.0), warmup=run)
    n = events.n_events
    row = Row(1, workload.label, REPLAY_IMPL, n, n, timing, note="the reference")
    return row, q


def _compiled_loop_call(q: NDArray, events: Events) -> Callable[[], object]:
    """``replay()``'s compiled loop with its inputs validated and outputs allocated already."""
    n_states, n_actions = q.shape
    arrays = (events.states, events.rewards, events.next_states, events.dones)
    ev = qlearning._check_events(n_states, n_actions, *arrays, None, None)
    n = events.n_events
    n_episodes = int(np.count_nonzero(ev.dones))
    outputs = (np.empty(n, dtype=np.int64), *(np.empty(n_episodes) for _ in range(3)))
    rng = make_rng(REPLAY_SEED)
    h = BENCH_HYPER

    def run() -> object:
        rng[0] = REPLAY_SEED
        return qlearning._replay_core(
            q,
            *(ev.states, ev.rewards, ev.next_states, ev.dones, ev.terminals, ev.actions),
            True,
            *(h.alpha, h.gamma, h.epsilon, h.epsilon_decay, h.epsilon_min),
            rng,
            True,
            *outputs,
        )

    return run


def _time_compiled_loop(workload: Workload, events: Events, repeat: int, reference: NDArray) -> Row:
    """Time the compiled loop alone (rlv2's private ``_replay_core``, for information)."""
    case = workload.case
    q = np.zeros((case.n_states, case.n_actions))
    run = _compiled_loop_call(q, events)
    timing = time_call(run, repeat=repeat, setup=lambda: q.fill(0.0), warmup=run)
    n = events.n_events
    equal = bool(np.array_equal(q, reference))
    note = "no validation or allocation"
    return Row(1, workload.label, KERNEL_IMPL, n, n, timing, equal, note)


def _time_c(
    loop: CReplay, workload: Workload, events: Events, repeat: int, reference: NDArray
) -> Row:
    """Time one C baseline and compare its Q-table with rlv2's."""
    case = workload.case
    q = np.zeros((case.n_states, case.n_actions))

    def run() -> object:
        return loop(q, events, BENCH_HYPER, REPLAY_SEED)

    timing = time_call(run, repeat=repeat, setup=lambda: q.fill(0.0), warmup=run)
    n = events.n_events
    equal = bool(np.array_equal(q, reference))
    return Row(1, workload.label, loop.label, n, n, timing, equal)


def _time_naive(workload: Workload, n_events: int, repeat: int) -> Row:
    """Time the naive bot on the first ``n_events`` events; compare with rlv2 on the same."""
    case = workload.case
    events = workload.events.head(n_events)
    stream = bot_events(case, events)
    learners: list[DictQLearner] = []

    def setup() -> None:
        learners[:] = [DictQLearner(case, BENCH_HYPER, REPLAY_SEED)]

    timing = time_call(
        lambda: run_bot(learners[0], stream), repeat=repeat, setup=setup, allocation=False
    )
    q = np.zeros((case.n_states, case.n_actions))
    arrays = (events.states, events.rewards, events.next_states, events.dones)
    qlearning.replay(q, *arrays, **BENCH_HYPER.as_kwargs(), seed=REPLAY_SEED)
    equal = bool(np.array_equal(learners[0].q_array(), q))
    note = f"timed on the first {format_count(n_events)} events only"
    return Row(1, workload.label, NAIVE_IMPL, n_events, n_events, timing, equal, note)


def _measure_size(
    result: StageResult, workload: Workload, n: int, c_loops: tuple[CReplay, ...], repeat: int
) -> dict[str, Row]:
    """Time every implementation on the first n events; return the rows by impl."""
    progress(f"stage 1: {workload.label}, N={format_count(n)}")
    events = workload.events.head(n)
    replay_row, reference = _time_replay(workload, events, repeat)
    rows = [replay_row, _time_compiled_loop(workload, events, repeat, reference)]
    rows += [_time_c(loop, workload, events, repeat, reference) for loop in c_loops]
    result.rows.extend(rows)
    return {row.impl: row for row in rows}


def _add_checks(result: StageResult, workload: Workload, rows: dict[str, Row]) -> None:
    """The issue's three ratios for ``replay()``, and the same for the compiled loop (info)."""
    targets = (
        ("baseline: plain C", TARGET_VS_PLAIN_C),
        ("baseline: tuned C", TARGET_VS_TUNED_C),
        (NAIVE_IMPL, TARGET_VS_NAIVE),
    )
    n = rows[REPLAY_IMPL].n_events
    for impl in (REPLAY_IMPL, KERNEL_IMPL):
        for baseline, required in targets:
            if impl not in rows or baseline not in rows:
                continue
            what = f"{impl} / {baseline.removeprefix('baseline: ')} (N={format_count(n)})"
            binding = workload.binding and impl == REPLAY_IMPL
            check = ratio_check(
                1, workload.label, what, rows[impl], rows[baseline], required, binding=binding
            )
            result.checks.append(check)


def _load_c_loops(result: StageResult) -> tuple[CReplay, ...]:
    try:
        return load_baselines()
    except CompilerError as error:
        result.notes.append(f"C baselines unavailable: {error}")
        return ()


def run(config: BenchConfig) -> StageResult:
    """Run stage 1 at the configured sizes."""
    result = StageResult(1, TITLE)
    sizes = SIZES[config.sizes]
    n_naive = min(NAIVE_EVENTS[config.sizes], max(sizes))
    repeat = config.repeats(DEFAULT_REPEAT)
    c_loops = _load_c_loops(result)
    for case in CASES:
        for workload in _workloads(case, max(sizes)):
            largest: dict[str, Row] = {}
            for n in sizes:
                largest = _measure_size(result, workload, n, c_loops, repeat)
            progress(f"stage 1: {workload.label}, naive on {format_count(n_naive)} events")
            naive = _time_naive(workload, n_naive, repeat)
            result.rows.append(naive)
            largest[naive.impl] = naive
            _add_checks(result, workload, largest)
    result.notes += [
        f"Workloads: uniform states and next states, N(0, 1) rewards (N, A); dones all true "
        f"(one event per episode, SPEC C's default), and for the meta agent a variant with "
        f"episodes of {EPISODE_VARIANT} events (non-terminal updates bootstrap on max Q(s')).",
        f"Hyperparameters {BENCH_HYPER}; seed {REPLAY_SEED}.",
        f"'{REPLAY_IMPL}' is the public call; '{KERNEL_IMPL}' calls rlv2's private "
        "_replay_core on arrays already validated, with outputs already allocated.",
        "The naive bot's time per update does not depend on N (dict lookups); it is timed "
        "on a subsample and its ratio uses updates per second.",
        "Q equal: np.array_equal with rlv2's Q-table after the same events and draws.",
        "Call allocates: memory one more untimed call allocates at its peak (tracemalloc "
        "or the resident set's rise, the larger); replay() allocates its per-event and "
        "per-episode outputs (4 x 8 bytes per event here, every event ending an episode).",
    ]
    return result


STAGE = Stage(1, TITLE, run)
