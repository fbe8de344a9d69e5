"""Stage 3: states and reward parts from DuckDB (``rlv2.history.load_transitions``).

rlv2 returns one row per decision point and trade executed on it: the point's signals
per model, the trade and its close, the market state (volatility, market pressure,
regime label) at the decision and at the close, the regime over the holding period, the
account state (trailing win rate, equity, account health, equity-curve slope, Sharpe
signal) before the decision and after the trade's close, and the RL switch at both
times. DuckDB pivots and joins, numba kernels do the arithmetic. The baseline is what a
per-event Python bot does: read the tables into lists, join them with dicts, walk the
decisions in time order applying the closes to its account as they come, and compute
the same columns with loops over Python lists. Both run on the same synthetic history
(seeded random-walk candles, a trade history from ``rlv2.demo_data.build_history``),
generated untimed and cached in ``bench/build/histories/``; stage 4 reads the same files.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

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
from rlv2.domain import Model
from rlv2.history import FeatureConfig

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
FLOAT_RTOL = 1e-9
FLOAT_ATOL = 1e-12
"""Absolute slack for values that are 0 in one and ~1e-17 in the other (slopes)."""

RLV2_IMPL = "rlv2 load_transitions()"
NAIVE_IMPL = "baseline: naive Python, from DuckDB"
NAIVE_COMPUTE_IMPL = "(info) baseline: naive Python, compute only"
KERNEL_IMPL = "(info) rlv2.market kernel, compute only"
CASE = f"{N_SYMBOLS} symbols, 1 decision / {DECISION_EVERY} bars"
"""Workload label of every row; the history's size is in each row's note."""
CACHE_DIR = Path(__file__).parent / "build" / "histories"

_MODEL_NAMES = tuple(m.name for m in sorted(Model))
"""The models as the signals name them, in code order (the order of rlv2's per-model columns)."""
COMPARED_COLUMNS: dict[str, tuple[str, ...]] = {
    "float": (
        *(f"conf_{m.lower()}" for m in _MODEL_NAMES),
        "confidence",
        "trade_confidence",
        "size_multiplier",
        "portfolio_exposure",
        "action_prob",
        "pnl_pct",
        "max_drawdown_pct",
        "volatility",
        "market_pressure",
        "close_volatility",
        "close_market_pressure",
        "previous_winrate",
        "account_health",
        "equity_curve_slope",
        "equity",
        "close_winrate",
        "close_account_health",
        "close_equity_curve_slope",
        "close_sharpe_signal",
    ),
    "int": (
        *(f"dir_{m.lower()}" for m in _MODEL_NAMES),
        "trade_id",
        "leverage",
        "side",
        "closed_before",
    ),
    "label": (
        "symbol",
        *(f"regime_{m.lower()}" for m in _MODEL_NAMES),
        "trade_model",
        "trade_predicted_regime",
        "strategy",
        "weight_action",
        "regime",
        "close_regime",
        "actual_regime",
    ),
    "time": ("ts", "trade_ts", "closed_ts"),
    "flag": ("rl_at_signal", "rl_at_close"),
}
"""Every feature and reward part of ``load_transitions`` the bot computes, by how it is
compared: floats within FLOAT_RTOL / FLOAT_ATOL (NaN equal to NaN), the rest exactly."""
RLV2_INDEX_COLUMNS = ("decision_id", "bar_idx", "first_idx", "last_idx", "exit_idx")
"""rlv2's own row and bar-array indices: bookkeeping, not features; the bot has none."""
_KIND_OF = {name: kind for kind, names in COMPARED_COLUMNS.items() for name in names}
_DTYPE_OF_KIND: dict[str, Any] = {
    "float": np.float64,
    "int": np.int64,
    "label": object,
    "time": "datetime64[us]",
    "flag": np.bool_,
}


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
    for source in (Path(demo_data.__file__), store.SQL_DIR / "schema.sql"):
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

Signal = tuple[int, datetime, str, str, int, float, str]
"""A signals row: signal_id, ts, symbol, model, direction, confidence, predicted_regime."""
Trade = tuple[int, int, datetime, int, float, int, float, str, str, float | None]
"""A trades row: trade_id, signal_id, ts, side, size_multiplier, leverage,
portfolio_exposure, strategy, weight_action, action_prob."""
Close = tuple[int, datetime, float, float]
"""A positions row: trade_id, closed_ts, pnl_pct, max_drawdown_pct."""
AccountAfterClose = tuple[float, float, float, float]
"""Win rate, account health, equity-curve slope and Sharpe signal right after a close."""

_PIVOT_COLUMNS = {
    m: (f"dir_{m.lower()}", f"conf_{m.lower()}", f"regime_{m.lower()}") for m in _MODEL_NAMES
}
"""Each model's direction, confidence and predicted-regime columns of a decision's row."""
_NO_TRADE: dict[str, Any] = {
    "trade_id": -1,
    "trade_model": None,
    "trade_confidence": math.nan,
    "trade_predicted_regime": None,
    "strategy": None,
    "weight_action": None,
    "size_multiplier": math.nan,
    "leverage": -1,
    "portfolio_exposure": math.nan,
    "action_prob": math.nan,
    "side": 0,
    "trade_ts": None,
}
"""The trade columns of a point without a trade, by rlv2's NULL conventions (None is NaT)."""
_NO_CLOSE: dict[str, Any] = {
    "closed_ts": None,
    "pnl_pct": math.nan,
    "max_drawdown_pct": math.nan,
    "close_volatility": math.nan,
    "close_market_pressure": math.nan,
    "close_regime": None,
    "actual_regime": None,
    "rl_at_close": True,
}
"""The close columns of a row without a close; rlv2 reports the switch of no time as on."""
_CLOSE_ACCOUNT = (
    "close_winrate",
    "close_account_health",
    "close_equity_curve_slope",
    "close_sharpe_signal",
)
_NO_CLOSE_ACCOUNT: AccountAfterClose = (math.nan, math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class BotInputs:
    """What the naive bot sees, read with plain SELECTs into Python lists and dicts."""

    bar_ts: dict[str, list[datetime]]
    """Each symbol's bar times, ascending."""
    bar_close: dict[str, list[float]]
    signals: list[Signal]
    """The signals of the decision points, by (ts, symbol, model)."""
    trade_of_signal: dict[int, Trade]
    position_of_trade: dict[int, Close]
    closes: list[Close]
    """Every position in close order (closed_ts, zero-duration last, then trade_id)."""
    instant_trades: frozenset[int]
    """The trades entered and closed at one instant."""
    switch_ts: list[datetime]
    """Times the RL switch was set, ascending; ``switch_on`` holds the flags."""
    switch_on: list[bool]


def bot_inputs(
    con: Any,
    n_decisions: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> BotInputs:
    """Read the history into Python lists and dicts with plain SELECTs, as a bot would.

    Candles, the signals of the first ``n_decisions`` decision points (None: all) in
    ``[start, end)``, every trade (by signal id), every position (by trade id, and in
    close order) and the RL switch; no pivots or joins in SQL.
    """
    bar_ts: dict[str, list[datetime]] = {}
    bar_close: dict[str, list[float]] = {}
    for symbol, ts, close in con.execute(
        "SELECT symbol, ts, close FROM candles ORDER BY symbol, ts"
    ).fetchall():
        bar_ts.setdefault(symbol, []).append(ts)
        bar_close.setdefault(symbol, []).append(close)
    window = {"start": start or history.EARLIEST, "end": end or history.LATEST}
    last = (window["end"], "")  # no limit: a point at `end` comes after every one in the window
    if n_decisions is not None:
        if n_decisions < 1:
            raise ValueError(f"n_decisions must be >= 1, got {n_decisions}")
        last = (
            con.execute(
                "SELECT DISTINCT ts, symbol FROM signals WHERE ts >= $start AND ts < $end "
                "ORDER BY ts, symbol LIMIT 1 OFFSET $skip",
                {**window, "skip": n_decisions - 1},
            ).fetchone()
            or last
        )
    signals = con.execute(
        "SELECT signal_id, ts, symbol, model, direction, confidence, predicted_regime "
        "FROM signals WHERE ts >= $start AND ts < $end "
        "AND (ts < $last_ts OR (ts = $last_ts AND symbol <= $last_symbol)) "
        "ORDER BY ts, symbol, model",
        {**window, "last_ts": last[0], "last_symbol": last[1]},
    ).fetchall()
    trades = con.execute(
        "SELECT trade_id, signal_id, ts, side, size_multiplier, leverage, portfolio_exposure, "
        "strategy, weight_action, action_prob FROM trades"
    ).fetchall()
    # a trade entered and closed at one instant is not known at that instant: its close
    # comes last among that instant's closes, and the ledger holds it back (rlv2 does too)
    rows = con.execute(
        "SELECT p.trade_id, p.closed_ts, p.pnl_pct, p.max_drawdown_pct, p.closed_ts = t.ts "
        "FROM positions p JOIN trades t USING (trade_id) ORDER BY p.closed_ts, 5, p.trade_id"
    ).fetchall()
    closes: list[Close] = [(row[0], row[1], row[2], row[3]) for row in rows]
    instant = frozenset(row[0] for row in rows if row[4])
    switches = con.execute("SELECT ts, enable_rl FROM policy ORDER BY ts").fetchall()
    return BotInputs(
        bar_ts,
        bar_close,
        signals,
        {trade[1]: trade for trade in trades},
        {close[0]: close for close in closes},
        closes,
        instant,
        [ts for ts, _ in switches],
        [on for _, on in switches],
    )


def _pop_std(values: list[float]) -> float:
    """Population standard deviation (0 for an empty list)."""
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _returns(window: list[float]) -> list[float]:
    """Simple returns ``diff(p) / p[:-1]`` of a price window (SPEC A2)."""
    return [(window[i] - window[i - 1]) / window[i - 1] for i in range(1, len(window))]


def _regime(window: list[float], returns: list[float], config: FeatureConfig) -> str:
    """The regime rule of ``rlv2.states.label_regime`` with loops over one window."""
    rule = config.regime_rule
    if len(window) < 3:
        return "RANGE"
    last, prior = window[-1], window[:-1]
    prior_returns = returns[:-1]
    prior_rms = math.sqrt(sum(r * r for r in prior_returns) / len(prior_returns))
    if (last > max(prior) or last < min(prior)) and abs(returns[-1]) > rule.breakout_k * prior_rms:
        return "BREAKOUT"
    path = sum(abs(window[i] - window[i - 1]) for i in range(1, len(window)))
    efficiency = abs(last - window[0]) / path if path > 0 else 0.0
    if efficiency >= rule.trend_efficiency:
        return "TREND"
    std = _pop_std(window)
    if std > 0 and abs(last - sum(window) / len(window)) >= rule.reversion_z * std:
        return "MEAN_REVERSION"
    return "RANGE"


def _market_state(closes: list[float], bar: int, config: FeatureConfig) -> tuple[float, float, str]:
    """Volatility, market pressure and regime of the last ``lookback_bars`` closes to ``bar``."""
    window = closes[max(bar - config.lookback_bars + 1, 0) : bar + 1]
    returns = _returns(window)
    pressure = 0.0
    if len(window) >= config.pressure_bars:
        ref = window[-config.pressure_bars]
        pressure = math.tanh((window[-1] - ref) / ref * 20.0)
    return _pop_std(returns), pressure, _regime(window, returns, config)


def _slope(equities: list[float]) -> float:
    """Least-squares slope of equity over its index, over mean equity (SPEC A2); 0 under 2."""
    n = len(equities)
    if n < 2:
        return 0.0
    sx, sxx = sum(range(n)), sum(i * i for i in range(n))
    sy, sxy = sum(equities), sum(y * i for i, y in enumerate(equities))
    mean = sy / n
    if mean == 0:
        return 0.0
    return (n * sxy - sx * sy) / (n * sxx - sx * sx) / mean


def _sharpe(pnls: list[float]) -> float:
    """``tanh(mean / std)`` of the returns ``pnl_pct / 100`` (SPEC A1, C); 0 under 2 or flat."""
    if len(pnls) < 2:
        return 0.0
    returns = [p / 100.0 for p in pnls]
    std = _pop_std(returns)
    return math.tanh(sum(returns) / len(returns) / std) if std > 0 else 0.0


class _Ledger:
    """The bot's account: applies closes in close order and keeps the state after each."""

    def __init__(
        self, closes: list[Close], instant_trades: frozenset[int], config: FeatureConfig
    ) -> None:
        self._closes, self._next, self._config = closes, 0, config
        self._instant = instant_trades
        self._pnls: list[float] = []
        self._equities: list[float] = []
        self._cumulative_pnl, self._peak = 0.0, config.initial_equity
        self.state: dict[str, Any] = {
            "previous_winrate": 0.5,
            "account_health": 1.0,
            "equity_curve_slope": 0.0,
            "equity": config.initial_equity,
            "closed_before": 0,
        }
        """The account a decision sees: after every close applied so far."""
        self.after: dict[int, AccountAfterClose] = {}
        """The account right after each applied close, by trade id."""

    def apply_until(self, ts: datetime) -> None:
        """Apply every close known at ``ts``: before it, or at it if entered earlier."""
        while self._next < len(self._closes):
            trade_id, closed_ts, _, _ = self._closes[self._next]
            if closed_ts > ts or (closed_ts == ts and trade_id in self._instant):
                break
            self._apply(self._closes[self._next])

    def apply_until_closed(self, trade_ids: set[int]) -> None:
        """Apply closes until every trade of ``trade_ids`` has closed (or none are left)."""
        waiting = trade_ids - self.after.keys()
        while waiting and self._next < len(self._closes):
            waiting.discard(self._closes[self._next][0])
            self._apply(self._closes[self._next])

    def _apply(self, close: Close) -> None:
        """The account after one more close."""
        trade_id, _, pnl, _ = close
        config, window = self._config, self._config.winrate_window
        self._next += 1
        self._cumulative_pnl += pnl
        equity = config.initial_equity + config.margin_unit * self._cumulative_pnl / 100.0
        self._peak = max(self._peak, equity)
        self._pnls.append(pnl)
        self._equities.append(equity)
        recent = self._pnls[-window:]
        winrate = sum(1 for p in recent if p > 0) / len(recent)
        health = equity / self._peak
        slope = _slope(self._equities[-window:])
        self.state = {
            "previous_winrate": winrate,
            "account_health": health,
            "equity_curve_slope": slope,
            "equity": equity,
            "closed_before": len(self._pnls),
        }
        self.after[trade_id] = (winrate, health, slope, _sharpe(recent))


def _rl_at(inputs: BotInputs, ts: datetime | None) -> bool:
    """The RL switch in force at ``ts``: the latest one set at or before it (none: on)."""
    at = 0 if ts is None else bisect.bisect_right(inputs.switch_ts, ts)
    return inputs.switch_on[at - 1] if at else True


def _pivot(signals: list[Signal]) -> dict[str, Any]:
    """A point's signals side by side per model (a model without a signal: 0, NaN, None)."""
    row: dict[str, Any] = {}
    for direction, confidence, regime in _PIVOT_COLUMNS.values():
        row[direction], row[confidence], row[regime] = 0, math.nan, None
    for _, _, _, model, direction, confidence, regime in signals:
        columns = _PIVOT_COLUMNS[model]
        row[columns[0]], row[columns[1]], row[columns[2]] = direction, confidence, regime
    row["confidence"] = max(signal[5] for signal in signals)
    return row


def _trade_columns(trade: Trade, signal: Signal) -> dict[str, Any]:
    """The executed trade's columns; its model, confidence and regime are its signal's."""
    trade_id, _, ts, side, size, leverage, exposure, strategy, weight, prob = trade
    return {
        "trade_id": trade_id,
        "trade_model": signal[3],
        "trade_confidence": signal[5],
        "trade_predicted_regime": signal[6],
        "strategy": strategy,
        "weight_action": weight,
        "size_multiplier": size,
        "leverage": leverage,
        "portfolio_exposure": exposure,
        "action_prob": math.nan if prob is None else prob,
        "side": side,
        "trade_ts": ts,
    }


def _close_columns(
    inputs: BotInputs, symbol: str, bar: int, close: Close | None, config: FeatureConfig
) -> dict[str, Any]:
    """A trade's close, the market state at it and the regime over the holding period."""
    if close is None:
        return _NO_CLOSE
    _, closed_ts, pnl_pct, max_drawdown_pct = close
    prices = inputs.bar_close[symbol]
    exit_bar = bisect.bisect_right(inputs.bar_ts[symbol], closed_ts) - 1
    volatility, pressure, regime = _market_state(prices, exit_bar, config)
    held = prices[bar : exit_bar + 1]
    return {
        "closed_ts": closed_ts,
        "pnl_pct": pnl_pct,
        "max_drawdown_pct": max_drawdown_pct,
        "close_volatility": volatility,
        "close_market_pressure": pressure,
        "close_regime": regime,
        "actual_regime": _regime(held, _returns(held), config),
        "rl_at_close": _rl_at(inputs, closed_ts),
    }


def _decision_rows(
    inputs: BotInputs,
    signals: list[Signal],
    bar: int,
    account: dict[str, Any],
    config: FeatureConfig,
) -> list[dict[str, Any]]:
    """The rows of one decision point at ``bar``: one per trade executed on it, by trade id."""
    ts, symbol = signals[0][1], signals[0][2]
    volatility, pressure, regime = _market_state(inputs.bar_close[symbol], bar, config)
    decision = {
        "symbol": symbol,
        "ts": ts,
        **_pivot(signals),
        "volatility": volatility,
        "market_pressure": pressure,
        "regime": regime,
        **account,
        "rl_at_signal": _rl_at(inputs, ts),
    }
    # a trade row starts with its trade_id, so the pairs sort by trade id
    executed = sorted(
        (inputs.trade_of_signal[s[0]], s) for s in signals if s[0] in inputs.trade_of_signal
    )
    if not executed:
        return [{**decision, **_NO_TRADE, **_NO_CLOSE}]
    return [
        {
            **decision,
            **_trade_columns(trade, signal),
            **_close_columns(inputs, symbol, bar, inputs.position_of_trade.get(trade[0]), config),
        }
        for trade, signal in executed
    ]


def run_bot(inputs: BotInputs, config: FeatureConfig) -> dict[str, list[Any]]:
    """Every feature and reward part of ``load_transitions``, per event in plain Python.

    Walks the decision points in time order. Before each it applies the closes up to its
    time to the account; it logs one row per trade executed on the point (one without a
    trade if none): the point's signals per model, the trade and its close, the market
    state at the decision and at the close, the holding period's regime, the account
    and the RL switch. Once every logged trade has closed, each row gets the account
    right after its trade's close.
    """
    ledger = _Ledger(inputs.closes, inputs.instant_trades, config)
    rows: list[dict[str, Any]] = []
    for (ts, symbol), point in groupby(inputs.signals, key=itemgetter(1, 2)):
        ledger.apply_until(ts)
        bar = bisect.bisect_right(inputs.bar_ts.get(symbol, []), ts) - 1
        if bar < 0:
            continue  # before the symbol's first bar, or no candles: no state (as in rlv2)
        rows += _decision_rows(inputs, list(point), bar, ledger.state, config)
    ledger.apply_until_closed({row["trade_id"] for row in rows if row["closed_ts"] is not None})
    for row in rows:
        account = ledger.after.get(row["trade_id"], _NO_CLOSE_ACCOUNT)
        row.update(zip(_CLOSE_ACCOUNT, account, strict=True))
    return {name: [row[name] for row in rows] for name in _KIND_OF}


def _shown(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _differ(kind: str, ours: NDArray[Any], theirs: NDArray[Any]) -> NDArray[np.bool_]:
    """Where two columns of one kind differ (floats within tolerance, NaN and NaT equal)."""
    if kind == "float":
        return ~np.isclose(ours, theirs, rtol=FLOAT_RTOL, atol=FLOAT_ATOL, equal_nan=True)
    if kind == "time":
        return (ours != theirs) & ~(np.isnat(ours) & np.isnat(theirs))
    return np.asarray(ours != theirs, dtype=np.bool_)


def compare(bot: dict[str, list[Any]], sql: dict[str, NDArray[Any]]) -> list[str]:
    """Columns where the bot and ``load_transitions`` differ, with how (empty: identical).

    Every column of ``COMPARED_COLUMNS`` over all rows; a column rlv2 returns that the
    bot lacks (beside ``RLV2_INDEX_COLUMNS``) and a differing row count are problems too.
    """
    problems = [
        f"{name}: returned by load_transitions, not computed by the bot"
        for name in sql
        if name not in _KIND_OF and name not in RLV2_INDEX_COLUMNS
    ]
    n_bot, n_sql = len(bot["ts"]), len(sql["ts"])
    n = min(n_bot, n_sql)
    if n_bot != n_sql:
        problems.append(f"rows: {n_bot:,} from the bot, {n_sql:,} from rlv2 (first {n:,} compared)")
    for name, kind in _KIND_OF.items():
        if name not in sql:
            problems.append(f"{name}: computed by the bot, not returned by load_transitions")
            continue
        dtype = _DTYPE_OF_KIND[kind]
        ours, theirs = np.asarray(bot[name][:n], dtype), np.asarray(sql[name][:n], dtype)
        bad = _differ(kind, ours, theirs)
        if bad.any():
            at = int(np.argmax(bad))
            problems.append(
                f"{name}: {int(bad.sum()):,} of {n:,} rows differ (first at row {at}: "
                f"{_shown(ours[at])!r} vs rlv2 {_shown(theirs[at])!r})"
            )
    return problems


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
) -> tuple[Row, dict[str, NDArray[Any]], int | None]:
    """Time ``load_transitions`` on a history; return its row, its output and the peak RSS."""
    progress(f"stage 3: {RLV2_IMPL} on {hist.label}")
    output: dict[str, dict[str, NDArray[Any]]] = {}
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


def _time_naive(
    result: StageResult, hist: History, sql: dict[str, NDArray[Any]], repeat: int
) -> Row:
    """Time the naive bot from the DuckDB file to every decision's rows; compare them."""
    progress(f"stage 3: naive bot from DuckDB on all {hist.n_decisions:,} decisions")
    config = FeatureConfig()
    bot: dict[str, dict[str, list[Any]]] = {}
    with store.connect(hist.path, read_only=True) as con:

        def run() -> object:
            bot["features"] = run_bot(bot_inputs(con), config)
            return bot["features"]

        timing = time_call(run, repeat=repeat, allocation=False)
    problems = compare(bot["features"], sql)
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
        inputs = bot_inputs(con, n_decisions)
    config = FeatureConfig()
    timing = time_call(lambda: run_bot(inputs, config), repeat=repeat, allocation=False)
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
        history._decisions(con, None, None, bars["symbols"])
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


def _time_kernel(
    result: StageResult, hist: History, sql: dict[str, NDArray[Any]], repeat: int
) -> Row:
    """The market state of every decision by rlv2.market's kernel from arrays (info).

    One of the computations inside load_transitions, alone: the decision windows' closes
    already in memory, no SQL, no account features. Shown for its figure and equality,
    not compared with the bot's loop, which computes every column.
    """
    progress("stage 3: rlv2.market kernel on the decision windows (info)")
    with store.connect(hist.path, read_only=True) as con:
        bars = history.load_bars(con)
    config = FeatureConfig()
    hi = sql["bar_idx"].astype(np.int64)
    lo = np.maximum(hi - config.lookback_bars + 1, sql["first_idx"])
    out: dict[str, Any] = {}

    def run() -> object:
        out["features"] = history.window_features(bars, lo, hi, config)
        return out["features"]

    timing = time_call(run, repeat=repeat, warmup=run)
    feats = out["features"]
    equal = bool(np.array_equal(feats["regime"], sql["regime"])) and np.allclose(
        feats["volatility"], sql["volatility"], rtol=FLOAT_RTOL, atol=0
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
        "both times, with loops over Python lists: every column of load_transitions but its "
        f"row and bar indices ({', '.join(RLV2_INDEX_COLUMNS)}). Column 'Q equal' here: all "
        f"{len(_KIND_OF)} columns equal rlv2's on every row (floats np.isclose rtol "
        f"{FLOAT_RTOL:g}, atol {FLOAT_ATOL:g}, NaN equal; labels, integers, times and flags "
        "exactly) and the row counts match.",
        "call allocates (rlv2 rows): one untimed call's peak above the memory live before it "
        "(tracemalloc or the resident set, the larger; DuckDB's native memory included); "
        "the 4 GiB check uses the whole process's resident-set peak during that call.",
    ]
    return result


STAGE = Stage(3, TITLE, run)
