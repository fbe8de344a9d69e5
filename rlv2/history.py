"""The edge to DuckDB for reading history: states, rewards' parts and transitions as arrays.

DuckDB does the data work: it sorts the candles into bar arrays (``sql/bars_*.sql``),
pivots and joins signals, trades, closes and the RL switch into one row per decision
(``sql/features_decisions.sql``) and lists the closes in order
(``sql/account_closes.sql``). The arithmetic runs in compiled kernels: the bar known
at each time and the market features over price windows in ``rlv2.market``, the
account features after each close in ``rlv2.account``. No Python loop touches a row;
the result is numpy arrays ready for ``rlv2.replay``, the same on every rerun (the
kernels sum in a fixed order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from rlv2.account import account_after_closes
from rlv2.market import asof_bars, simple_returns, window_features
from rlv2.outcomes import WEIGHT_SCALES, account_equity, position_notional
from rlv2.records import MODEL_COLUMNS, AccountStart, Bars, Transitions
from rlv2.states import NEUTRAL_WINRATE, FeatureConfig
from rlv2.store import has_account, sql_text

EARLIEST = datetime(1900, 1, 1)
LATEST = datetime(2200, 1, 1)

Arrays = dict[str, NDArray[Any]]
"""Columns of a query result by name (this module's own, before they become records)."""

Connection = duckdb.DuckDBPyConnection
"""A DuckDB connection, for modules that pass one through without importing DuckDB."""


def _unmask(values: Any) -> NDArray[Any]:
    """Turn a masked fetchnumpy column into a plain array: NULL is NaN, -1, False, NaT, None."""
    if not isinstance(values, np.ma.MaskedArray):
        return np.asarray(values)
    if not np.ma.is_masked(values):
        return np.asarray(values.data)
    kind = values.dtype.kind
    if kind == "O":
        out = np.asarray(values.data, dtype=object).copy()
        out[np.ma.getmaskarray(values)] = None
        return out
    if kind in "iu":
        return np.ma.filled(values.astype(np.int64), -1)
    if kind == "b":
        return values.filled(False)
    if kind in "mM":
        nat: Any = np.array("NaT", dtype=values.dtype)[()]  # NaT of the column's unit
        return values.filled(nat)
    return np.ma.filled(values.astype(np.float64), np.nan)


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> Arrays:
    result = con.execute(sql, params).fetchnumpy()
    return {k: _unmask(v) for k, v in result.items()}


def _fetch_dense(con: duckdb.DuckDBPyConnection, sql: str) -> Arrays:
    """Columns of a query without NULLs as arrays, through Arrow (half fetchnumpy's time)."""
    table = con.execute(sql).to_arrow_table().combine_chunks()
    return {name: table.column(name).to_numpy() for name in table.column_names}


def load_bars(con: duckdb.DuckDBPyConnection) -> Bars:
    """Every candle as price arrays in (symbol, ts) order, with each symbol's bar range.

    Bar ``i`` is row ``i`` of ``ts``, ``high``, ``low``, ``close``. ``symbols`` lists the
    symbols in code order and ``symbol_first`` / ``symbol_last`` their bar ranges, so no
    window or price path crosses into another symbol.
    """
    per_symbol = _fetch(con, sql_text("bars_symbols"), {})
    out = _fetch_dense(con, sql_text("bars_arrays"))
    counts = per_symbol["n_bars"].astype(np.int64)
    if int(counts.sum()) != len(out["close"]):
        raise RuntimeError("the candles changed while their bars were loading; load again")
    symbol_last = np.cumsum(counts) - 1
    return Bars(
        ts=out["ts"],
        high=out["high"],
        low=out["low"],
        close=out["close"],
        ret=simple_returns(out["close"]),
        symbols=per_symbol["symbol"].astype(object),
        symbol_first=symbol_last - counts + 1,
        symbol_last=symbol_last,
    )


def _decisions(
    con: duckdb.DuckDBPyConnection, start: Any, end: Any, symbols: NDArray[Any]
) -> Arrays:
    """Rows of ``sql/features_decisions.sql``: decision points with their trade and close.

    ``symbol_code`` is the position in ``symbols`` (the bars' symbols, ``load_bars``).
    Ordered by (ts, symbol, trade_id) here: sorting three key arrays and taking the rows
    costs a third of DuckDB sorting all thirty columns. ``trade_id`` is the trade's code
    (its id's place in the ids' text order, from 0; ids are text), so trades at one point
    come in their ids' text order. A decision without a trade has one row (trade_id -1);
    one on a symbol without candles (code -1) is dropped later.
    """
    params = {"start": start or EARLIEST, "end": end or LATEST, "symbols": list(symbols)}
    rows = _fetch(con, sql_text("features_decisions"), params)
    order = np.lexsort((rows["trade_id"], rows["symbol_code"], rows["ts"]))
    return {name: column[order] for name, column in rows.items()}


def _account_columns(
    con: duckdb.DuckDBPyConnection,
    ts: NDArray[Any],
    trade_id: NDArray[np.int64],
    traded: NDArray[np.bool_],
    config: FeatureConfig,
) -> Arrays:
    """Account state before each decision at ``ts`` and after the close of ``trade_id``
    (trade codes, as ``account_closes.sql`` and ``features_decisions.sql`` give them).

    Before: after every trade closed before ``ts``, or at ``ts`` but entered before it (a
    trade entered and closed at ``ts`` is not known yet); the neutral start when none.
    After the close: NaN for a trade without a close, or a row without a trade
    (``traded`` False, which is the test; a row without a trade has code -1).
    """
    closes = _fetch(con, sql_text("account_closes"), {})
    acct = account_after_closes(
        closes["pnl_pct"],
        config.initial_equity,
        config.margin_fraction,
        config.winrate_window,
        recorded_equity_at(con, closes["closed_ts"], config),
    )
    # a neutral row 0 (no close yet) and a NaN row 1 (no close of this trade) ahead of
    # the closes, so that every lookup is one take
    neutral = {
        "winrate": NEUTRAL_WINRATE,
        "account_health": 1.0,
        "equity_curve_slope": 0.0,
        "equity": config.initial_equity,
        "sharpe_signal": 0.0,
    }
    table = {k: np.r_[neutral[k], np.nan, v] for k, v in acct.items()}
    # the closes at ts are a block of the close order, its zero-duration ones last
    first_at = np.searchsorted(closes["closed_ts"], ts, side="left")
    after_at = np.searchsorted(closes["closed_ts"], ts, side="right")
    known = np.r_[0, np.cumsum(~closes["zero_duration"].astype(bool))]
    closed_before = (first_at + known[after_at] - known[first_at]).astype(np.int64)
    before = np.where(closed_before > 0, closed_before + 1, 0)
    order = np.argsort(closes["trade_id"], kind="stable")
    ids = closes["trade_id"][order]
    pos = np.searchsorted(ids, trade_id)
    own = traded & (pos < ids.size)
    own[own] = ids[pos[own]] == trade_id[own]
    after = np.ones(trade_id.size, np.int64)
    after[own] = order[pos[own]] + 2
    return {
        "previous_winrate": table["winrate"][before],
        "account_health": table["account_health"][before],
        "equity_curve_slope": table["equity_curve_slope"][before],
        "closed_before": closed_before,
        "equity": table["equity"][before],
        "close_winrate": table["winrate"][after],
        "close_account_health": table["account_health"][after],
        "close_equity_curve_slope": table["equity_curve_slope"][after],
        "close_sharpe_signal": table["sharpe_signal"][after],
    }


def _switch_at(switches: Arrays, ts: NDArray[Any]) -> NDArray[np.bool_]:
    """The RL switch in force at each time: the latest switch at or before it (none, NaT: on)."""
    flags = np.r_[True, switches["enable_rl"].astype(bool)]
    return flags[np.searchsorted(switches["ts"], ts, side="right") * ~np.isnat(ts)]


def _state_windows(
    bars: Bars, first_idx: NDArray[np.int64], at: NDArray[np.int64], config: FeatureConfig
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Volatility, pressure and regime code over the ``lookback_bars`` bars ending at ``at``.

    ``at`` -1 (no bar) gives NaN, NaN, -1.
    """
    has = at >= 0
    lo = np.maximum(at[has] - config.lookback_bars + 1, first_idx[has])
    feats = window_features(bars, lo, at[has], config)
    volatility = np.full(at.size, np.nan)
    pressure = np.full(at.size, np.nan)
    regime = np.full(at.size, -1, np.int64)
    volatility[has] = feats.volatility
    pressure[has] = feats.market_pressure
    regime[has] = feats.regime
    return volatility, pressure, regime


def _transitions(
    con: duckdb.DuckDBPyConnection, bars: Bars, start: Any, end: Any, config: FeatureConfig
) -> Transitions:
    """The decision rows with their bars and market features (see ``load_transitions``)."""
    d = _decisions(con, start, end, bars.symbols)
    code = d.pop("symbol_code").astype(np.int64)
    bar_idx = asof_bars(bars.ts, bars.symbol_first, bars.symbol_last, code, d["ts"])
    keep = bar_idx >= 0  # a decision before its symbol's first bar has no state
    if not keep.all():
        d = {k: v[keep] for k, v in d.items()}
        code, bar_idx = code[keep], bar_idx[keep]
    new_point = np.ones(bar_idx.size, dtype=bool)
    new_point[1:] = (d["ts"][1:] != d["ts"][:-1]) | (code[1:] != code[:-1])
    exit_idx = asof_bars(bars.ts, bars.symbol_first, bars.symbol_last, code, d["closed_ts"])
    first_idx = bars.symbol_first[code]
    volatility, pressure, regime = _state_windows(bars, first_idx, bar_idx, config)
    close_volatility, close_pressure, close_regime = _state_windows(
        bars, first_idx, exit_idx, config
    )
    held = exit_idx >= 0
    actual = np.full(exit_idx.size, -1, np.int64)
    actual[held] = window_features(bars, bar_idx[held], exit_idx[held], config).regime
    traded = ~np.isnat(d["trade_ts"])  # trades.ts is NOT NULL: NaT only without a trade
    switches = _fetch(con, sql_text("policy_switches"), {})
    ts = d["ts"]

    def per_model(prefix: str, dtype: Any) -> NDArray[Any]:
        return np.stack([d[f"{prefix}_{m}"] for m in MODEL_COLUMNS], axis=1).astype(dtype)

    return Transitions(
        decision_id=np.cumsum(new_point) - 1,
        symbol=bars.symbols[code],
        ts=ts,
        model_direction=per_model("dir", np.int64),
        model_confidence=per_model("conf", np.float64),
        model_regime=per_model("regime", np.int64),
        confidence=d["confidence"],
        bar_idx=bar_idx,
        first_idx=first_idx,
        last_idx=bars.symbol_last[code],
        trade_id=d["trade_id"],
        trade_model=d["trade_model"].astype(np.int64),
        trade_confidence=d["trade_confidence"],
        trade_predicted_regime=d["trade_predicted_regime"].astype(np.int64),
        strategy=d["strategy"].astype(np.int64),
        weight_action=d["weight_action"].astype(np.int64),
        size_multiplier=d["size_multiplier"],
        leverage=d["leverage"],
        portfolio_exposure=d["portfolio_exposure"],
        action_prob=d["action_prob"],
        meta_action_prob=d["meta_action_prob"],
        sizing_action_prob=d["sizing_action_prob"],
        side=d["side"],
        trade_ts=d["trade_ts"],
        closed_ts=d["closed_ts"],
        pnl_pct=d["pnl_pct"],
        max_drawdown_pct=d["max_drawdown_pct"],
        exit_idx=exit_idx,
        volatility=volatility,
        market_pressure=pressure,
        regime=regime,
        close_volatility=close_volatility,
        close_market_pressure=close_pressure,
        close_regime=close_regime,
        actual_regime=actual,
        **_account_columns(con, ts, d["trade_id"], traded, config),
        rl_at_signal=_switch_at(switches, ts),
        rl_at_close=_switch_at(switches, d["closed_ts"]),
    )


def load_transitions(
    con: duckdb.DuckDBPyConnection,
    start: datetime | None = None,
    end: datetime | None = None,
    config: FeatureConfig | None = None,
    bars: Bars | None = None,
) -> Transitions:
    """One row per decision point in ``[start, end)`` with its states, reward parts and switch.

    DuckDB pivots the signals and joins trades and closes (``sql/features_decisions.sql``);
    the bar of each decision and close and the market features over the bars come from
    ``rlv2.market``'s kernels over ``bars`` (``load_bars``, loaded if not given), the
    account before the decision and after the close from ``rlv2.account`` over the
    closes in order, the RL switch from the policy rows. ``Transitions`` says how NULLs
    come back. A decision before its symbol's first bar, or on a symbol without
    candles, has no state and is left out.
    """
    config = config or FeatureConfig()
    return _transitions(con, load_bars(con) if bars is None else bars, start, end, config)


def has_recorded_equity(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the live system recorded its equity: the optional ``account`` table has rows."""
    if not has_account(con):
        return False
    row = con.execute(sql_text("account_recorded_rows")).fetchone()
    return bool(row and row[0])


def recorded_equity_at(
    con: duckdb.DuckDBPyConnection, times: NDArray[Any], config: FeatureConfig
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """The recorded equity in force at each of ``times``, and the highest recorded up to
    then (``sql/features/account_equity_at.sql``, an as-of join), in units where the first
    recorded equity is ``config.initial_equity``; None when the live system recorded none
    (the account model then gives it)."""
    if not has_recorded_equity(con):
        return None
    at = np.asarray(times).astype("datetime64[us]")
    con.register("account_times_arrow", pa.table({"t": at, "i": np.arange(at.size)}))
    try:
        con.execute(sql_text("account_times_load"))
        rows = _fetch(con, sql_text("account_equity_at"), {})
    finally:
        con.unregister("account_times_arrow")
        con.execute(sql_text("account_times_drop"))
    scale = config.initial_equity
    return (
        np.asarray(rows["equity_ratio"], np.float64) * scale,
        np.asarray(rows["peak_ratio"], np.float64) * scale,
    )


def account_start(
    con: duckdb.DuckDBPyConnection, at: datetime | None, config: FeatureConfig | None = None
) -> AccountStart:
    """The logged account at ``at``: equity, peak, latest closes and the positions open.

    Closes known at ``at`` are those before it and those at it of trades entered before
    it, as for a decision's account state. None: a fresh account. Where the live system
    recorded its equity (the ``account`` table), the equity is the recorded one: at ``at``,
    after each known close, and at each open position's entry (its margin).
    """
    config = config or FeatureConfig()
    if at is None:
        return AccountStart.fresh(config.initial_equity)
    closes = _fetch(con, sql_text("account_closes"), {})
    when = np.datetime64(at, "ns")
    known = int(
        ((closes["closed_ts"] < when) | ((closes["closed_ts"] == when) & ~closes["zero_duration"]))
        .astype(bool)
        .sum()
    )
    pnl = closes["pnl_pct"][:known].astype(np.float64)
    recent = slice(max(0, known - config.winrate_window), known)
    opened = _fetch(con, sql_text("account_open_at"), {"at": at})
    entry = opened["entry_ts"].astype("datetime64[ns]")
    recorded = recorded_equity_at(con, np.r_[closes["closed_ts"][:known], entry, when], config)
    if recorded is None:
        equity = account_equity(pnl, config.initial_equity, config.margin_fraction)
        # each open position's margin is a fraction of the equity it opened on: the equity
        # after the closes known at its entry
        before_entry = np.searchsorted(closes["closed_ts"][:known], entry, side="left")
        at_entry = np.r_[config.initial_equity, equity][before_entry]
        now = float(equity[-1]) if known else config.initial_equity
        peak = max(config.initial_equity, float(equity.max()) if known else 0.0, now)
    else:
        # the live system's equity: after each known close, at each open position's
        # entry, and at ``at`` itself (what the account holds when the window starts)
        values, peaks = recorded
        equity, at_entry, now = values[:known], values[known:-1], float(values[-1])
        peak = max(config.initial_equity, now, float(peaks[-1]))
    notional = np.asarray(
        [
            position_notional(s, float(WEIGHT_SCALES[w]), lev, config.margin_fraction * e)
            for s, w, lev, e in zip(
                opened["size_multiplier"],
                opened["weight_action"],
                opened["leverage"],
                at_entry,
                strict=True,
            )
        ],
        dtype=np.float64,
    )
    return AccountStart(
        equity=now,
        peak=peak,
        recent_pnl=pnl[recent],
        recent_equity=equity[recent],
        open_close_ts=opened["closed_ts"].astype("datetime64[ns]"),
        open_notional=notional,
        open_pnl=opened["pnl_pct"].astype(np.float64),
    )


def decision_bounds(con: duckdb.DuckDBPyConnection) -> tuple[Any, Any, int]:
    """First and last decision time and the number of decision points in the history."""
    row = con.execute(sql_text("decision_bounds")).fetchone()
    if row is None or row[0] is None:
        return None, None, 0
    return row[0], row[1], int(row[2])


def holdout_start(
    con: duckdb.DuckDBPyConnection, holdout_fraction: float, end: datetime | None = None
) -> Any:
    """Decision time after which lie the last ``holdout_fraction`` of decisions before ``end``."""
    params = {"holdout_fraction": holdout_fraction, "end": end or LATEST}
    row = con.execute(sql_text("decision_split"), params).fetchone()
    return None if row is None else row[0]


@dataclass(frozen=True)
class HistoryWindow:
    """The history of one time window ``[start, end)``, as arrays."""

    start: datetime | None
    end: datetime | None
    transitions: Transitions
    """One row per decision point (and executed trade) of the window."""
    bars: Bars
    """Every bar of every symbol (paths may run past ``end``; the replay cuts them)."""


def load_window(
    con: duckdb.DuckDBPyConnection,
    start: datetime | None = None,
    end: datetime | None = None,
    config: FeatureConfig | None = None,
) -> HistoryWindow:
    """Load the bars and the transitions of one window ``[start, end)``."""
    config = config or FeatureConfig()
    bars = load_bars(con)
    return HistoryWindow(start, end, load_transitions(con, start, end, config, bars), bars)
