"""Stage 3: states and reward parts from DuckDB (``rlv2.history.load_transitions``).

rlv2 returns one row per decision point and trade executed on it: the point's signals
per model, the trade and its close, the market state (volatility, market pressure,
regime label) at the decision and at the close, the regime over the holding period, the
account state (trailing win rate, equity, account health, equity-curve slope, Sharpe
signal) before the decision and after the trade's close, and the RL switch at both
times. DuckDB pivots and joins, numba kernels do the arithmetic. The baseline is what a
per-event Python bot does: read the tables into lists, join them with dicts, walk the
decisions in time order applying the closes to its account as they come, and compute
the same columns with loops over Python lists. That bot is the feature oracle the tests
hold ``load_transitions`` equal to (``tests/feature_oracle.py``, imported from the
checkout like ``bench`` itself); this stage times it. Both run on the same synthetic
history (seeded random-walk candles, a trade history from
``rlv2.demo_data.build_history``), generated untimed and cached in
``bench/build/histories/``; stage 4 reads the same files.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, replace
from itertools import groupby, islice
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.harness import (
    BenchConfig,
    Check,
    Row,
    Stage,
    StageResult,
    Timing,
    _status_kib,
    format_bytes,
    format_count,
    format_seconds,
    measure_allocation,
    progress,
    ratio_check,
    time_call,
)
from rlv2 import demo_data, history, store
from rlv2.market import window_features
from rlv2.records import Transitions
from rlv2.states import FeatureConfig
from tests.feature_oracle import (
    COLUMNS,
    FLOAT_ATOL,
    FLOAT_RTOL,
    INDEX_COLUMNS,
    OracleInputs,
    mismatches,
    oracle_transitions,
    read_tables,
)

TITLE = "States and rewards from DuckDB"
SIZES = {"small": (3_000, 30_000, 300_000), "full": (100_000, 1_000_000, 10_050_000)}
"""Candle rows of each workload; the issue's target is 10M candles and 1M trades, and
10.05M candles give just over 1M trades (about one trade per 10.02 candles)."""
TARGET_CANDLES = 10_000_000
TARGET_TRADES = 1_000_000
NAIVE_DECISIONS = {"small": 5_000, "full": 20_000}
"""Decisions the compute-only naive row is timed on (the first ones of the largest history)."""
DEFAULT_REPEAT = 3

N_SYMBOLS = 4
BAR_SIGMA = 2e-4
"""Per-bar log-return std of the random walk (minute bars of a major FX pair). With the
demo's leverage, larger moves liquidate positions and empty the account within 100k
trades, after which build_history stops trading."""
DECISION_EVERY = 10
"""A decision every 10 bars: about one trade per 10 candles, the issue's 1M : 10M."""
CANDLES_SEED = 20_240_602

TARGET_VS_NAIVE = 20.0
TARGET_PEAK_BYTES = 4 * 2**30

RLV2_IMPL = "rlv2 load_transitions()"
NAIVE_IMPL = "baseline: naive Python, from DuckDB"
NAIVE_COMPUTE_IMPL = "(info) baseline: naive Python, compute only"
KERNEL_IMPL = "(info) rlv2.market kernel, compute only"
CASE = f"{N_SYMBOLS} symbols, 1 decision / {DECISION_EVERY} bars"
"""Workload label of every row; the history's size is in each row's note."""
CACHE_DIR = Path(__file__).parent / "build" / "histories"

# --- workload -----------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """A DuckDB file holding synthetic candles and the demo trade history built on them."""

    path: Path
    n_candles: int
    n_decisions: int
    n_trades: int

    @property
    def label(self) -> str:
        """Workload label for the tables."""
        return f"{format_count(self.n_candles)} candles, {self.n_trades:,} trades"


def random_walk_candles(n_candles: int, seed: int = CANDLES_SEED) -> pd.DataFrame:
    """``n_candles`` minute bars over ``N_SYMBOLS`` symbols: a seeded geometric random walk."""
    rng = np.random.default_rng(seed)
    per_symbol = n_candles // N_SYMBOLS
    frames = []
    for s in range(N_SYMBOLS):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, BAR_SIGMA, per_symbol)))
        open_ = np.r_[close[0], close[:-1]]
        wick = np.abs(rng.normal(0.0, BAR_SIGMA / 2, per_symbol)) * close
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"SYM{s}",
                    "ts": pd.date_range("2020-01-01", periods=per_symbol, freq="min"),
                    "open": open_,
                    "high": np.maximum(open_, close) + wick,
                    "low": np.minimum(open_, close) - wick,
                    "close": close,
                    "volume": rng.random(per_symbol) * 1e3,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _cache_path(n_candles: int) -> Path:
    """Cache file of a history, keyed by its parameters and the code that builds and stores it."""
    key = hashlib.sha256(repr((N_SYMBOLS, BAR_SIGMA, DECISION_EVERY, CANDLES_SEED)).encode())
    for source in (Path(demo_data.__file__), store.sql_path("schema")):
        key.update(source.read_bytes())
    return CACHE_DIR / f"history_{n_candles}_{key.hexdigest()[:12]}.duckdb"


def write_history(path: Path, candles: pd.DataFrame, config: demo_data.DemoConfig) -> None:
    """Build the demo history of ``candles`` and write both into a new DuckDB file."""
    built = demo_data.build_history(candles, config)
    tables = {
        "candles": candles,
        "signals": built.signals,
        "trades": built.trades,
        "positions": built.positions,
        "policy": built.policy,
    }
    with store.connect(path) as con:
        store.apply_schema(con)
        for table, frame in tables.items():
            con.register("bench_frame", frame)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM bench_frame")
            con.unregister("bench_frame")


def history_db(n_candles: int) -> History:
    """The history of ``n_candles`` random-walk candles, generated once and cached."""
    path = _cache_path(n_candles)
    if not path.is_file():
        progress(f"generating a history of {format_count(n_candles)} candles (untimed)")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        candles = random_walk_candles(n_candles)
        write_history(partial, candles, demo_data.DemoConfig(decision_every=DECISION_EVERY))
        os.replace(partial, path)
    with store.connect(path, read_only=True) as con:
        counts = con.execute(
            "SELECT (SELECT count(*) FROM candles), "
            "(SELECT count(DISTINCT (symbol, ts)) FROM signals), (SELECT count(*) FROM trades)"
        ).fetchone()
    assert counts is not None
    return History(path, *(int(c) for c in counts))


# --- baseline -----------------------------------------------------------------------------


def _first_decisions(inputs: OracleInputs, n_decisions: int) -> OracleInputs:
    """The oracle's inputs with the signals of the first ``n_decisions`` decision points only."""
    points = groupby(inputs.signals, key=itemgetter(1, 2))
    n_signals = sum(len(list(signals)) for _, signals in islice(points, n_decisions))
    return replace(inputs, signals=inputs.signals[:n_signals])


# --- measurements -------------------------------------------------------------------------


def _memory(run: Any) -> tuple[int | None, int | None]:
    """What ``run()`` allocates at its peak, and the process's resident-set peak during it.

    The second is Linux's VmHWM, which ``measure_allocation`` resets just before the call.
    """
    allocated = measure_allocation(run)
    peak = _status_kib("VmHWM")
    return allocated, None if peak is None else peak * 1024


def _time_sql(
    result: StageResult, hist: History, repeat: int
) -> tuple[Row, Transitions, int | None]:
    """Time ``load_transitions`` on a history; return its row, its output and the peak RSS."""
    progress(f"stage 3: {RLV2_IMPL} on {hist.label}")
    output: dict[str, Transitions] = {}
    with store.connect(hist.path, read_only=True) as con:

        def run() -> object:
            output["transitions"] = history.load_transitions(con)
            return output["transitions"]

        allocated, peak = _memory(run)  # this untimed first call also warms the file cache
        timing = time_call(run, repeat=repeat, allocation=False)
    timing = Timing(timing.seconds, timing.cpu_seconds, allocated)
    n = hist.n_decisions
    row = Row(3, CASE, RLV2_IMPL, n, n, timing, note=hist.label)
    result.rows.append(row)
    return row, output["transitions"], peak


def _time_naive(result: StageResult, hist: History, sql: Transitions, repeat: int) -> Row:
    """Time the naive bot from the DuckDB file to every decision's rows; compare them."""
    progress(f"stage 3: naive bot from DuckDB on all {hist.n_decisions:,} decisions")
    config = FeatureConfig()
    bot: dict[str, dict[str, list[Any]]] = {}
    with store.connect(hist.path, read_only=True) as con:

        def run() -> object:
            bot["features"] = oracle_transitions(read_tables(con), config)
            return bot["features"]

        timing = time_call(run, repeat=repeat, allocation=False)
    problems = mismatches(bot["features"], sql)
    n = hist.n_decisions
    note = f"{hist.label}; reads its lists from DuckDB, joins them in dicts, loops per event"
    row = Row(3, CASE, NAIVE_IMPL, n, n, timing, not problems, note)
    result.rows.append(row)
    result.notes += [f"naive vs rlv2 mismatch: {p}" for p in problems]
    return row


def _time_naive_compute(result: StageResult, hist: History, n_decisions: int, repeat: int) -> Row:
    """Time the naive bot's per-event loop alone, its lists prepared untimed (info)."""
    progress(f"stage 3: naive bot, compute only, first {format_count(n_decisions)} decisions")
    with store.connect(hist.path, read_only=True) as con:
        inputs = _first_decisions(read_tables(con), n_decisions)
    config = FeatureConfig()
    timing = time_call(lambda: oracle_transitions(inputs, config), repeat=repeat, allocation=False)
    note = f"timed on the first {format_count(n_decisions)} decisions; lists prepared untimed"
    row = Row(3, CASE, NAIVE_COMPUTE_IMPL, n_decisions, n_decisions, timing, None, note)
    result.rows.append(row)
    return row


def profile_steps(path: Path) -> list[tuple[str, float]]:
    """Seconds of each step of ``load_transitions``, run one by one as it runs them."""
    config = FeatureConfig()
    with store.connect(path, read_only=True) as con:
        history.load_transitions(con)  # warm: numba cache, file cache
        t0 = time.perf_counter()
        bars = history.load_bars(con)
        t1 = time.perf_counter()
        history._decisions(con, None, None, bars.symbols)
        t2 = time.perf_counter()
        con.execute(store.sql_text("account_closes")).fetchnumpy()
        t3 = time.perf_counter()
        history.load_transitions(con, config=config, bars=bars)
        t4 = time.perf_counter()
    return [
        ("load_bars (bars_*.sql)", t1 - t0),
        ("features_decisions.sql", t2 - t1),
        ("account_closes.sql", t3 - t2),
        ("kernels and assembly", max(t4 - t3 - (t3 - t1), 0.0)),
    ]


def _time_kernel(result: StageResult, hist: History, sql: Transitions, repeat: int) -> Row:
    """The market state of every decision by rlv2.market's kernel from arrays (info).

    One of the computations inside load_transitions, alone: the decision windows' closes
    already in memory, no SQL, no account features. Shown for its figure and equality,
    not compared with the bot's loop, which computes every column.
    """
    progress("stage 3: rlv2.market kernel on the decision windows (info)")
    with store.connect(hist.path, read_only=True) as con:
        bars = history.load_bars(con)
    config = FeatureConfig()
    hi = sql.bar_idx.astype(np.int64)
    lo = np.maximum(hi - config.lookback_bars + 1, sql.first_idx)
    out: dict[str, Any] = {}

    def run() -> object:
        out["features"] = window_features(bars, lo, hi, config)
        return out["features"]

    timing = time_call(run, repeat=repeat, warmup=run)
    feats = out["features"]
    equal = bool(np.array_equal(feats.regime, sql.regime)) and np.allclose(
        feats.volatility, sql.volatility, rtol=FLOAT_RTOL, atol=0
    )
    n = len(hi)
    note = "volatility, pressure, regime of each decision window; no account, no joins"
    row = Row(3, CASE, KERNEL_IMPL, n, n, timing, equal, note)
    result.rows.append(row)
    return row


def _profile_note(hist: History) -> str:
    steps = profile_steps(hist.path)
    total = sum(s for _, s in steps)
    parts = ", ".join(f"{name} {format_seconds(s)} ({s / total:.0%})" for name, s in steps)
    return (
        f"Profile of load_transitions on {hist.label} ({hist.n_decisions:,} decisions), "
        f"its steps run one by one: {parts}."
    )


def _checks(
    result: StageResult, hist: History, sql_row: Row, naive_row: Row, peak: int | None
) -> None:
    case = hist.label
    result.checks += [
        ratio_check(3, case, f"{RLV2_IMPL} / naive Python", sql_row, naive_row, TARGET_VS_NAIVE),
        Check(
            3,
            case,
            f"every column equal to the baseline's (all {naive_row.n_events:,} decisions)",
            "yes" if naive_row.equal else "NO",
            f"floats rtol {FLOAT_RTOL:g}, the rest exactly",
            bool(naive_row.equal),
        ),
        Check(
            3,
            case,
            "peak RSS of the process during load_transitions",
            format_bytes(peak),
            f"< {format_bytes(TARGET_PEAK_BYTES)}",
            peak is not None and peak < TARGET_PEAK_BYTES,
        ),
        Check(
            3,
            case,
            "workload size reached (candles, trades)",
            f"{format_count(hist.n_candles)}, {hist.n_trades:,}",
            f"{format_count(TARGET_CANDLES)}, {TARGET_TRADES:,}",
            hist.n_candles >= TARGET_CANDLES and hist.n_trades >= TARGET_TRADES,
            binding=False,
        ),
    ]


def _extrapolated_peak(histories: list[History], peaks: list[int | None]) -> Check:
    """The 4 GiB check at the target size: peak RSS extrapolated linearly in trades."""
    (small, large), (p_small, p_large) = histories[-2:], peaks[-2:]
    if p_small is None or p_large is None:
        estimate = None
    else:
        per_trade = (p_large - p_small) / (large.n_trades - small.n_trades)
        estimate = int(p_large + per_trade * (TARGET_TRADES - large.n_trades))
    return Check(
        3,
        large.label,
        f"peak RSS at {TARGET_TRADES:,} trades, extrapolated from the two largest sizes",
        format_bytes(estimate),
        f"< {format_bytes(TARGET_PEAK_BYTES)}",
        estimate is not None and estimate < TARGET_PEAK_BYTES,
        binding=False,
    )


def run(config: BenchConfig) -> StageResult:
    """Run stage 3 at the configured sizes."""
    result = StageResult(3, TITLE)
    repeat = config.repeats(DEFAULT_REPEAT)
    histories = [history_db(n) for n in SIZES[config.sizes]]
    measured = [_time_sql(result, hist, repeat) for hist in histories]
    sql_row, sql, peak = measured[-1]
    hist = histories[-1]
    naive_row = _time_naive(result, hist, sql, repeat)
    n_compute = min(NAIVE_DECISIONS[config.sizes], hist.n_decisions)
    compute_row = _time_naive_compute(result, hist, n_compute, repeat)
    _time_kernel(result, hist, sql, repeat)
    _checks(result, hist, sql_row, naive_row, peak)
    result.checks.append(_extrapolated_peak(histories, [m[2] for m in measured]))
    result.checks += [
        ratio_check(
            3,
            hist.label,
            f"{RLV2_IMPL} / naive loop alone (lists untimed)",
            sql_row,
            compute_row,
            TARGET_VS_NAIVE,
            binding=False,
        ),
    ]
    progress("stage 3: profiling load_transitions step by step")
    result.notes.append(_profile_note(hist))
    result.notes += [
        f"Workloads: {N_SYMBOLS} symbols of seeded random-walk minute bars (per-bar sigma "
        f"{BAR_SIGMA:g}); rlv2.demo_data.build_history with decision_every={DECISION_EVERY} "
        "(about one trade per 10 candles). Generated untimed, cached in bench/build/histories/ "
        "(the largest takes ~45 s the first time).",
        "Both sides start from the same open DuckDB connection and end with the same "
        "rows: rlv2 with load_transitions, the naive bot by reading candles, signals, "
        "trades, positions and the RL switch with plain SELECTs into Python lists, then "
        "joining and looping per event. The '(info)' rows split out the compute alone: the "
        "bot's loop on lists prepared untimed (inputs limited to those decisions), and "
        "rlv2.market's kernel on arrays in memory.",
        "Throughput is decisions per second (ns/update = ns per decision). DuckDB sorts, "
        "pivots and joins on its own threads; the bar lookup, the window features and the "
        "account features run in numba kernels (rlv2.market, rlv2.account).",
        "The naive bot joins in Python (trade by signal id, position by trade id) and walks "
        "the decision points in time order. It applies each close to its account as it "
        "comes (equity, health; win rate, Sharpe signal, equity slope over the last "
        f"{FeatureConfig().winrate_window} closed trades) and records the account after it; "
        "per point it pivots the signals per model and logs one row per executed trade "
        "(one with NULLs if none) with the trade and its close, the market state at the "
        f"decision and at the close (volatility, pressure, regime over the last "
        f"{FeatureConfig().lookback_bars} closes), the regime over the holding period, the "
        "account before the decision and after the trade's close, and the RL switch at "
        "both times, with loops over Python lists: every column of load_transitions, its row "
        f"and bar indices ({', '.join(INDEX_COLUMNS)}) included. Column 'Q equal' here: all "
        f"{len(COLUMNS)} columns equal rlv2's on every row (floats np.isclose rtol "
        f"{FLOAT_RTOL:g}, atol {FLOAT_ATOL:g}, NaN equal; labels, integers, times and flags "
        "exactly) and the row counts match.",
        "call allocates (rlv2 rows): one untimed call's peak above the memory live before it "
        "(tracemalloc or the resident set, the larger; DuckDB's native memory included); "
        "the 4 GiB check uses the whole process's resident-set peak during that call.",
    ]
    return result


STAGE = Stage(3, TITLE, run)
