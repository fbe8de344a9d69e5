"""Stage 6: ``rlv2.full_information.accumulate``, the full-information learner's updates.

Per workload and size: ``accumulate()`` as a caller calls it (its validation and the
(S, A) sums and (S,) counts it allocates included), the compiled loop alone
(``_accumulate`` on zeroed tables; shown for information), the plain and the tuned C
loops, and the naive dict bot on a subsample. Each event adds its (A,) reward row to its
state's sums and counts it: A action-value updates per event, the unit of every
throughput here. Every baseline's sums and counts are compared with rlv2's bit for bit.
The target is checked at the largest size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from bench.compiled import CAccumulate, CompilerError, load_accumulate_baselines
from bench.harness import (
    BenchConfig,
    Row,
    Stage,
    StageResult,
    Timing,
    format_count,
    progress,
    ratio_check,
    time_call,
)
from bench.naive import DictAccumulator, bot_events, run_accumulator
from bench.workloads import CASES, Case, Events, make_events
from rlv2 import full_information

TITLE = "Full-information accumulate (A action-value updates per event)"
SIZES = {"small": (1_000, 10_000, 100_000), "full": (10_000, 100_000, 1_000_000)}
NAIVE_EVENTS = {"small": 5_000, "full": 20_000}
"""Events the naive bot is timed on (the first ones of the workload)."""
DEFAULT_REPEAT = 5

TARGET_VS_TUNED_C = 0.75
INFO_VS_PLAIN_C = 1.0
INFO_VS_NAIVE = 100.0

CALL_IMPL = "rlv2 accumulate()"
KERNEL_IMPL = "rlv2 compiled loop only"
PLAIN_IMPL = "baseline: plain C"
TUNED_IMPL = "baseline: tuned C"
NAIVE_IMPL = "baseline: naive Python"

Tables = tuple[NDArray[np.float64], NDArray[np.float64]]


def _equal(tables: Tables, reference: Tables) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(tables, reference, strict=True))


def _row(
    case: Case, impl: str, n: int, timing: Timing, equal: bool | None = None, note: str = ""
) -> Row:
    return Row(6, case.label, impl, n, n * case.n_actions, timing, equal, note)


def _time_call(case: Case, events: Events, repeat: int) -> tuple[Row, Tables]:
    """Time ``accumulate()`` as a caller calls it; return its row and its tables."""

    def run() -> Tables:
        return full_information.accumulate(events.states, events.rewards, case.n_states)

    timing = time_call(run, repeat=repeat, warmup=run)
    note = "the reference; validation and outputs included"
    return _row(case, CALL_IMPL, events.n_events, timing, note=note), run()


def _time_in_place(
    case: Case,
    impl: str,
    events: Events,
    repeat: int,
    reference: Tables,
    loop: Callable[[NDArray[np.float64], NDArray[np.float64]], object],
    note: str = "",
) -> Row:
    """Time a loop that accumulates into zeroed tables; compare them with rlv2's."""
    sums = np.zeros((case.n_states, case.n_actions))
    counts = np.zeros(case.n_states)

    def setup() -> None:
        sums.fill(0.0)
        counts.fill(0.0)

    def run() -> object:
        return loop(sums, counts)

    timing = time_call(run, repeat=repeat, setup=setup, warmup=run)
    equal = _equal((sums, counts), reference)
    return _row(case, impl, events.n_events, timing, equal, note)


def _time_naive(case: Case, events: Events, n_events: int, repeat: int) -> Row:
    """Time the dict bot on the first ``n_events`` events; compare with rlv2 on the same."""
    head = events.head(n_events)
    stream = bot_events(case, head)
    bots: list[DictAccumulator] = []

    def setup() -> None:
        bots[:] = [DictAccumulator(case)]

    timing = time_call(
        lambda: run_accumulator(bots[0], stream), repeat=repeat, setup=setup, allocation=False
    )
    reference = full_information.accumulate(head.states, head.rewards, case.n_states)
    equal = _equal(bots[0].arrays(), reference)
    note = f"timed on the first {format_count(n_events)} events only"
    return _row(case, NAIVE_IMPL, n_events, timing, equal, note)


def _measure_size(
    result: StageResult, case: Case, events: Events, c_loops: tuple[CAccumulate, ...], repeat: int
) -> dict[str, Row]:
    """Time every implementation on these events; return the rows by impl."""
    progress(f"stage 6: {case.label}, N={format_count(events.n_events)}")
    call_row, reference = _time_call(case, events, repeat)
    rows = [
        call_row,
        _time_in_place(
            case,
            KERNEL_IMPL,
            events,
            repeat,
            reference,
            lambda s, c: full_information._accumulate(events.states, events.rewards, s, c),
            "no validation or allocation",
        ),
    ]
    for c_loop in c_loops:
        rows.append(
            _time_in_place(
                case,
                c_loop.label,
                events,
                repeat,
                reference,
                lambda s, c, f=c_loop: f(s, c, events.states, events.rewards),
            )
        )
    result.rows.extend(rows)
    return {row.impl: row for row in rows}


def _add_checks(result: StageResult, case: Case, rows: dict[str, Row]) -> None:
    """The target (accumulate() vs tuned C) and the comparisons shown for information."""
    n = format_count(rows[CALL_IMPL].n_events)
    comparisons = (
        (CALL_IMPL, TUNED_IMPL, TARGET_VS_TUNED_C, True),
        (KERNEL_IMPL, TUNED_IMPL, TARGET_VS_TUNED_C, False),
        (CALL_IMPL, PLAIN_IMPL, INFO_VS_PLAIN_C, False),
        (CALL_IMPL, NAIVE_IMPL, INFO_VS_NAIVE, False),
    )
    for impl, baseline, required, binding in comparisons:
        if impl not in rows or baseline not in rows:
            continue
        what = f"{impl} / {baseline.removeprefix('baseline: ')} (N={n})"
        result.checks.append(
            ratio_check(6, case.label, what, rows[impl], rows[baseline], required, binding=binding)
        )


def _load_c_loops(result: StageResult) -> tuple[CAccumulate, ...]:
    try:
        return load_accumulate_baselines()
    except CompilerError as error:
        result.notes.append(f"C baselines unavailable: {error}")
        return ()


def run(config: BenchConfig) -> StageResult:
    """Run stage 6 at the configured sizes."""
    result = StageResult(6, TITLE)
    sizes = SIZES[config.sizes]
    n_naive = min(NAIVE_EVENTS[config.sizes], max(sizes))
    repeat = config.repeats(DEFAULT_REPEAT)
    c_loops = _load_c_loops(result)
    for case in CASES:
        events = make_events(case, max(sizes))
        largest: dict[str, Row] = {}
        for n in sizes:
            largest = _measure_size(result, case, events.head(n), c_loops, repeat)
        progress(f"stage 6: {case.label}, naive on {format_count(n_naive)} events")
        naive = _time_naive(case, events, n_naive, repeat)
        result.rows.append(naive)
        largest[naive.impl] = naive
        _add_checks(result, case, largest)
        del events
    result.notes += [
        "Workloads as in stage 1: uniform states, N(0, 1) rewards (N, A); each event adds "
        "its reward row to its state's sums (one addition per cell, in event order) and "
        "counts the event.",
        "Throughput and ns/update count action-value updates: N x A per call.",
        f"'{CALL_IMPL}' is the public call (it validates the states and allocates the "
        f"sums and counts); '{KERNEL_IMPL}' calls rlv2's private _accumulate on tables "
        "already allocated and zeroed (zeroing untimed, as for the C loops).",
        "Q equal: the sums and the counts both np.array_equal to accumulate()'s on the "
        "same events.",
        "The loop streams the (N, A) rewards once into a table that stays in cache: it is "
        "bound by memory bandwidth, so plain C, tuned C and rlv2 lie close together at "
        "the largest size; the comparison with plain C is shown for information.",
        "The naive bot's time per update does not depend on N (dict lookups); it is timed "
        "on a subsample and its ratio uses updates per second.",
    ]
    return result


STAGE = Stage(6, TITLE, run)
