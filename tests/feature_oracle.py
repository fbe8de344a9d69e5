"""The feature oracle: every column of ``rlv2.history.load_transitions``, computed naively.

A per-event reimplementation written from SPEC A2 and C and the data contract
(``sql/contract/schema.sql``) that shares nothing with rlv2's feature SQL or its compiled kernels.
It reads the tables with plain SELECTs into Python lists, joins them in dicts, walks the
decision points in time order applying the closes to its account as they come, and
computes each column with loops over Python lists, as a per-event trading bot would.

``tests/test_feature_oracle.py`` holds ``load_transitions`` equal to it on every row;
``bench/stage3_features.py`` times it as stage 3's naive baseline. Only the windows and
thresholds (``FeatureConfig``) and the models' code order come from rlv2.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from rlv2.domain import Model, Regime, WeightAction
from rlv2.records import Transitions, names_of
from rlv2.states import FeatureConfig

Kind = Literal["float", "int", "label", "time", "flag"]

MODEL_NAMES = tuple(m.name for m in sorted(Model))
"""The models as the signals name them, in code order (the order of the per-model columns)."""

COLUMNS_BY_KIND: dict[Kind, tuple[str, ...]] = {
    "float": (
        *(f"conf_{m.lower()}" for m in MODEL_NAMES),
        "confidence",
        "trade_confidence",
        "size_multiplier",
        "portfolio_exposure",
        "action_prob",
        "meta_action_prob",
        "sizing_action_prob",
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
        *(f"dir_{m.lower()}" for m in MODEL_NAMES),
        "trade_id",
        "leverage",
        "side",
        "closed_before",
        "decision_id",
        "bar_idx",
        "first_idx",
        "last_idx",
        "exit_idx",
    ),
    "label": (
        "symbol",
        *(f"regime_{m.lower()}" for m in MODEL_NAMES),
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
"""Every column of ``load_transitions``, by how it is compared (see ``mismatches``)."""
COLUMNS: dict[str, Kind] = {name: kind for kind, names in COLUMNS_BY_KIND.items() for name in names}
"""The kind of each column; the one list of the columns the oracle computes."""
INDEX_COLUMNS = ("decision_id", "bar_idx", "first_idx", "last_idx", "exit_idx")
"""Bookkeeping rather than features: the row's decision point and its bars' indices into
the bar arrays of ``rlv2.history.load_bars`` (every candle in (symbol, ts) order)."""

FLOAT_RTOL = 1e-9
FLOAT_ATOL = 1e-12
"""Absolute slack for values that are 0 in one and ~1e-17 in the other (slopes)."""
_DTYPE_OF_KIND: dict[Kind, Any] = {
    "float": np.float64,
    "int": np.int64,
    "label": object,
    "time": "datetime64[us]",
    "flag": np.bool_,
}

Signal = tuple[str, datetime, str, str, int, float, str]
"""A signals row: signal_id, ts, symbol, model, direction, confidence, predicted_regime."""
Trade = tuple[
    str, str, datetime, int, float, int, float, str, str, float | None, float | None, float | None
]
"""A trades row (ids are text): trade_id, signal_id, ts, side, size_multiplier, leverage,
portfolio_exposure, strategy, weight_action, action_prob, meta_action_prob,
sizing_action_prob."""
Close = tuple[str, datetime, float, float]
"""A positions row: trade_id, closed_ts, pnl_pct, max_drawdown_pct."""
AccountAfterClose = tuple[float, float, float, float]
"""Win rate, account health, equity-curve slope and Sharpe signal right after a close."""

_PIVOT_COLUMNS = {
    m: (f"dir_{m.lower()}", f"conf_{m.lower()}", f"regime_{m.lower()}") for m in MODEL_NAMES
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
    "meta_action_prob": math.nan,
    "sizing_action_prob": math.nan,
    "side": 0,
    "trade_ts": None,
}
"""The trade columns of a point without a trade, by load_transitions' NULL conventions
(None is NaT; a side is +1 or -1, so none is 0)."""
_NO_CLOSE: dict[str, Any] = {
    "closed_ts": None,
    "pnl_pct": math.nan,
    "max_drawdown_pct": math.nan,
    "close_volatility": math.nan,
    "close_market_pressure": math.nan,
    "close_regime": None,
    "actual_regime": None,
    "exit_idx": -1,
    "rl_at_close": True,
}
"""The close columns of a row without a close; the switch at no time reads as on."""
_CLOSE_ACCOUNT = (
    "close_winrate",
    "close_account_health",
    "close_equity_curve_slope",
    "close_sharpe_signal",
)
_NO_CLOSE_ACCOUNT: AccountAfterClose = (math.nan, math.nan, math.nan, math.nan)


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OracleInputs:
    """The history as the oracle sees it, read with plain SELECTs into Python lists and dicts."""

    bar_ts: dict[str, list[datetime]]
    """Each symbol's bar times, ascending; the symbols in (symbol) order."""
    bar_close: dict[str, list[float]]
    bar_first: dict[str, int]
    """Index of each symbol's first bar among all candles in (symbol, ts) order."""
    signals: list[Signal]
    """The signals of the decision points, by (ts, symbol, model)."""
    trade_of_signal: dict[str, Trade]
    position_of_trade: dict[str, Close]
    closes: list[Close]
    """Every position in close order (closed_ts, zero-duration last, then trade_id)."""
    instant_trades: frozenset[str]
    """The trades entered and closed at one instant."""
    switch_ts: list[datetime]
    """Times the RL switch was set, ascending; ``switch_on`` holds the flags."""
    switch_on: list[bool]


def read_tables(
    con: Any, start: datetime | None = None, end: datetime | None = None
) -> OracleInputs:
    """Read the history with plain SELECTs, as a bot would: no pivots, joins only to order.

    Every candle, the signals of the decision points in ``[start, end)`` (None: no bound),
    every trade (by signal id), every position (by trade id, and in close order) and the
    RL switch.
    """
    bar_ts: dict[str, list[datetime]] = {}
    bar_close: dict[str, list[float]] = {}
    bar_first: dict[str, int] = {}
    candles = con.execute("SELECT symbol, ts, close FROM candles ORDER BY symbol, ts").fetchall()
    for i, (symbol, ts, close) in enumerate(candles):
        bar_first.setdefault(symbol, i)
        bar_ts.setdefault(symbol, []).append(ts)
        bar_close.setdefault(symbol, []).append(close)
    signals = con.execute(
        "SELECT signal_id::VARCHAR, ts, symbol, model, direction, confidence, predicted_regime "
        "FROM signals WHERE ($start IS NULL OR ts >= $start) AND ($end IS NULL OR ts < $end) "
        "ORDER BY ts, symbol, model",
        {"start": start, "end": end},
    ).fetchall()
    trades = con.execute(
        "SELECT trade_id::VARCHAR, signal_id::VARCHAR, ts, side, size_multiplier, leverage, "
        "portfolio_exposure, strategy, weight_action, action_prob, meta_action_prob, "
        "sizing_action_prob FROM trades"
    ).fetchall()
    # a trade entered and closed at one instant is not known at that instant (SPEC C, no
    # look-ahead): its close comes last among that instant's closes, and the ledger holds
    # it back until a later decision
    rows = con.execute(
        "SELECT p.trade_id::VARCHAR, p.closed_ts, p.pnl_pct, p.max_drawdown_pct, "
        "p.closed_ts = t.ts FROM positions p JOIN trades t USING (trade_id) "
        "ORDER BY p.closed_ts, 5, p.trade_id::VARCHAR"
    ).fetchall()
    closes: list[Close] = [(row[0], row[1], row[2], row[3]) for row in rows]
    switches = con.execute("SELECT ts, enable_rl FROM policy ORDER BY ts").fetchall()
    return OracleInputs(
        bar_ts=bar_ts,
        bar_close=bar_close,
        bar_first=bar_first,
        signals=signals,
        trade_of_signal={trade[1]: trade for trade in trades},
        position_of_trade={close[0]: close for close in closes},
        closes=closes,
        instant_trades=frozenset(row[0] for row in rows if row[4]),
        switch_ts=[ts for ts, _ in switches],
        switch_on=[on for _, on in switches],
    )


# --- market state (SPEC A2, C) ------------------------------------------------------------


def _added(values: Iterable[float]) -> float:
    """Floats added one by one, left to right, as the formulas are written (Python 3.12+'s
    ``sum`` compensates its rounding and so no longer adds the way the pipeline does)."""
    total = 0.0
    for v in values:
        total += v
    return total


def _pop_std(values: list[float]) -> float:
    """Population standard deviation (``ddof=0``, SPEC C); 0 for an empty list."""
    if not values:
        return 0.0
    mean = _added(values) / len(values)
    return math.sqrt(_added((v - mean) ** 2 for v in values) / len(values))


def _returns(window: list[float]) -> list[float]:
    """Simple returns ``diff(p) / p[:-1]`` of a price window (SPEC A2)."""
    return [(window[i] - window[i - 1]) / window[i - 1] for i in range(1, len(window))]


def _regime(window: list[float], returns: list[float], config: FeatureConfig) -> str:
    """The regime rule of SPEC C as ``rlv2.states.label_regime`` documents it, by loops."""
    rule = config.regime_rule
    if len(window) < 3:
        return "RANGE"
    last, prior = window[-1], window[:-1]
    prior_returns = returns[:-1]
    prior_rms = math.sqrt(_added(r * r for r in prior_returns) / len(prior_returns))
    if (last > max(prior) or last < min(prior)) and abs(returns[-1]) > rule.breakout_k * prior_rms:
        return "BREAKOUT"
    path = _added(abs(window[i] - window[i - 1]) for i in range(1, len(window)))
    efficiency = abs(last - window[0]) / path if path > 0 else 0.0
    if efficiency >= rule.trend_efficiency:
        return "TREND"
    std = _pop_std(window)
    if std > 0 and abs(last - _added(window) / len(window)) >= rule.reversion_z * std:
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


# --- account state (SPEC A1, A2, C) -------------------------------------------------------


def _slope(equities: list[float]) -> float:
    """Least-squares slope of equity over its index, over mean equity (SPEC A2); 0 under 2."""
    n = len(equities)
    if n < 2:
        return 0.0
    sx, sxx = sum(range(n)), sum(i * i for i in range(n))
    sy, sxy = _added(equities), _added(y * i for i, y in enumerate(equities))
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
    return math.tanh(_added(returns) / len(returns) / std) if std > 0 else 0.0


class _Ledger:
    """The oracle's account: applies closes in close order and keeps the state after each."""

    def __init__(
        self, closes: list[Close], instant_trades: frozenset[str], config: FeatureConfig
    ) -> None:
        self._closes, self._next, self._config = closes, 0, config
        self._instant = instant_trades
        self._pnls: list[float] = []
        self._equities: list[float] = []
        self._equity, self._peak = config.initial_equity, config.initial_equity
        self.state: dict[str, Any] = {
            "previous_winrate": 0.5,
            "account_health": 1.0,
            "equity_curve_slope": 0.0,
            "equity": config.initial_equity,
            "closed_before": 0,
        }
        """The account a decision sees: after every close applied so far."""
        self.after: dict[str, AccountAfterClose] = {}
        """The account right after each applied close, by trade id."""

    def apply_until(self, ts: datetime) -> None:
        """Apply every close known at ``ts``: before it, or at it if entered earlier."""
        while self._next < len(self._closes):
            trade_id, closed_ts, _, _ = self._closes[self._next]
            if closed_ts > ts or (closed_ts == ts and trade_id in self._instant):
                break
            self._apply(self._closes[self._next])

    def apply_until_closed(self, trade_ids: set[str]) -> None:
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
        # the account compounds: the margin is a fraction of the equity (rlv2.outcomes)
        equity = self._equity * (1.0 + config.margin_fraction * pnl / 100.0)
        self._equity = equity
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


# --- rows ---------------------------------------------------------------------------------


def _rl_at(inputs: OracleInputs, ts: datetime | None) -> bool:
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
    trade_id, _, ts, side, size, leverage, exposure, strategy, weight, *probs = trade
    prob, meta_prob, sizing_prob = (math.nan if p is None else p for p in probs)
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
        "action_prob": prob,
        "meta_action_prob": meta_prob,
        "sizing_action_prob": sizing_prob,
        "side": side,
        "trade_ts": ts,
    }


def _close_columns(
    inputs: OracleInputs, symbol: str, bar: int, close: Close | None, config: FeatureConfig
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
        "exit_idx": inputs.bar_first[symbol] + exit_bar,
        "rl_at_close": _rl_at(inputs, closed_ts),
    }


def _decision_rows(
    inputs: OracleInputs,
    signals: list[Signal],
    decision_id: int,
    bar: int,
    account: dict[str, Any],
    config: FeatureConfig,
) -> list[dict[str, Any]]:
    """The rows of one decision point at ``bar``: one per trade executed on it, by trade id."""
    ts, symbol = signals[0][1], signals[0][2]
    volatility, pressure, regime = _market_state(inputs.bar_close[symbol], bar, config)
    first = inputs.bar_first[symbol]
    decision = {
        "decision_id": decision_id,
        "symbol": symbol,
        "ts": ts,
        **_pivot(signals),
        "bar_idx": first + bar,
        "first_idx": first,
        "last_idx": first + len(inputs.bar_ts[symbol]) - 1,
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


def oracle_transitions(inputs: OracleInputs, config: FeatureConfig) -> dict[str, list[Any]]:
    """Every column of ``load_transitions``, per event in plain Python.

    Walks the decision points in time order. Before each it applies the closes known at
    its time to the account; it logs one row per trade executed on the point (one
    without a trade if none): the point's signals per model, the trade and its close,
    the market state at the decision and at the close, the holding period's regime, the
    account and the RL switch. A point before its symbol's first bar (or on a symbol
    without candles) has no state and no row. Once every logged trade has closed, each
    row with a close gets the account right after it.
    """
    ledger = _Ledger(inputs.closes, inputs.instant_trades, config)
    rows: list[dict[str, Any]] = []
    n_points = 0
    for (ts, symbol), point in groupby(inputs.signals, key=itemgetter(1, 2)):
        ledger.apply_until(ts)
        bar = bisect.bisect_right(inputs.bar_ts.get(symbol, []), ts) - 1
        if bar < 0:
            continue
        rows += _decision_rows(inputs, list(point), n_points, bar, ledger.state, config)
        n_points += 1
    ledger.apply_until_closed({row["trade_id"] for row in rows if row["closed_ts"] is not None})
    for row in rows:
        # by the close, not the trade id: any id, -1 included, can be a trade's
        closed = row["closed_ts"] is not None
        account = ledger.after[row["trade_id"]] if closed else _NO_CLOSE_ACCOUNT
        row.update(zip(_CLOSE_ACCOUNT, account, strict=True))
    # ids are text; load_transitions gives each trade its code, the position of its id in
    # the sorted ids of every stored trade (Python's str order is UTF-8's byte order)
    code = {
        trade_id: i
        for i, trade_id in enumerate(sorted(t[0] for t in inputs.trade_of_signal.values()))
    }
    for row in rows:
        if row["trade_ts"] is not None:
            row["trade_id"] = code[row["trade_id"]]
    return {name: [row[name] for row in rows] for name in COLUMNS}


# --- comparison ---------------------------------------------------------------------------


def _shown(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, for messages."""
    return value.item() if isinstance(value, np.generic) else value


def differing_rows(kind: Kind, ours: NDArray[Any], theirs: NDArray[Any]) -> NDArray[np.bool_]:
    """Where two columns of one kind differ: floats beyond ``FLOAT_RTOL`` / ``FLOAT_ATOL``
    (NaN equal to NaN), times exactly (NaT equal to NaT), the rest exactly."""
    if kind == "float":
        return ~np.isclose(ours, theirs, rtol=FLOAT_RTOL, atol=FLOAT_ATOL, equal_nan=True)
    if kind == "time":
        return (ours != theirs) & ~(np.isnat(ours) & np.isnat(theirs))
    return np.asarray(ours != theirs, dtype=np.bool_)


_NAMED_CODES = {
    **{f"regime_{m.lower()}": Regime for m in MODEL_NAMES},
    "trade_model": Model,
    "trade_predicted_regime": Regime,
    "strategy": Regime,
    "weight_action": WeightAction,
    "regime": Regime,
    "close_regime": Regime,
    "actual_regime": Regime,
}
"""The code columns of ``Transitions``, which the oracle computes as names."""


def named_columns(transitions: Transitions) -> dict[str, NDArray[Any]]:
    """``Transitions`` in the oracle's form: flat columns, enum codes as their names."""
    out = transitions.columns()
    for name, enum in _NAMED_CODES.items():
        out[name] = names_of(enum, out[name])
    return out


def mismatches(oracle: Mapping[str, list[Any]], loaded: Transitions) -> list[str]:
    """How ``load_transitions``' columns differ from the oracle's (empty: identical).

    Every column of ``COLUMNS`` over all rows, each problem naming the column, how many
    rows differ and the first of them; a column on one side only and a differing row
    count are problems too.
    """
    transitions = named_columns(loaded)
    problems = [
        f"{name}: returned by load_transitions, not computed by the oracle"
        for name in transitions
        if name not in COLUMNS
    ]
    n_ours, n_theirs = len(oracle["ts"]), len(transitions["ts"])
    n = min(n_ours, n_theirs)
    if n_ours != n_theirs:
        problems.append(
            f"rows: {n_ours:,} from the oracle, {n_theirs:,} from rlv2 (first {n:,} compared)"
        )
    for name, kind in COLUMNS.items():
        if name not in transitions:
            problems.append(f"{name}: computed by the oracle, not returned by load_transitions")
            continue
        dtype = _DTYPE_OF_KIND[kind]
        ours = np.asarray(oracle[name][:n], dtype)
        theirs = np.asarray(transitions[name][:n], dtype)
        bad = differing_rows(kind, ours, theirs)
        if bad.any():
            at = int(np.argmax(bad))
            where = f"{oracle['symbol'][at]} at {oracle['ts'][at]}, " + (
                "no trade" if oracle["trade_ts"][at] is None else f"trade {oracle['trade_id'][at]}"
            )
            problems.append(
                f"{name}: {int(bad.sum()):,} of {n:,} rows differ (first at row {at}, {where}: "
                f"oracle {_shown(ours[at])!r}, rlv2 {_shown(theirs[at])!r})"
            )
    return problems
