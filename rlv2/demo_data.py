"""A demo trade history built from real price bars, in the data contract's four tables.

What is synthetic and what is real:

- **Synthetic**: the forecasts and the decisions. The four "models" (XGB, LGBM, NHITS,
  PATCHTST) are not the trading system's ML models but simple rules on past bars with
  seeded noise and deliberately imperfect regime predictions; the behaviour policy that
  trades their signals is a seeded random policy whose probabilities are known and logged
  (``action_prob``). The RL on/off history is a configured stretch, not a real switch.
- **Real**: the prices, and every outcome computed from them. Entry and exit prices are
  bar closes; a position exits by its strategy's rule on the actual bars after entry
  (``rlv2.outcomes.walk_paths``); ``pnl_pct`` and ``max_drawdown_pct`` follow
  ``rlv2.outcomes.position_pnl``; equity and exposure follow the account model of
  ``rlv2.outcomes``.

Time convention: a decision at bar ``i`` of a symbol is stamped with that bar's ``ts``,
reads bars ``<= i`` only (no look-ahead), and enters at ``close[i]``. A position closes at
its exit bar: ``closed_ts`` is that bar's ``ts``, ``exit_price`` its close. A path that
reaches the symbol's last bar before its rule fires closes there (truncated by the end of
the data, recorded like any other close). No decision is taken on a symbol's last bar, so
``closed_ts > ts`` always.

The behaviour policy (``DemoConfig`` holds its probabilities) draws, at every decision
point and independently of each other: the strategy (the regime label at decision time
w.p. 0.7, else one of the other three), the model (the most confident w.p. 0.6, else one
of the other three), the weight action (HOLD 0.6, UP 0.2, DOWN 0.2), the size multiplier
and the leverage (fixed distributions peaked at moderate values). ``action_prob`` is the
probability of the joint logged action, the product of the five. It trades the decision
unless its symbol already has ``max_open_per_symbol`` open positions; the side is the
chosen model's direction. Trades in the RL-off stretch log no ``action_prob`` (NA).

The four synthetic models, each a signed ``strength`` whose sign is the direction (a
strength of exactly 0 goes long), over the ``LOOKBACK`` bars up to the decision, with
``σ = rlv2.states.volatility`` of the last ``LOOKBACK`` closes (floored at
``rlv2.outcomes.SIGMA_FLOOR``):

- XGB, momentum: ``(close[i] / close[i-10] - 1) / (σ·√10)``.
- LGBM, moving-average crossover: ``(mean of 5 closes / mean of 20 closes - 1) / (2σ)``.
- NHITS, mean reversion: ``-z / 2`` with ``z`` the z-score of ``close[i]`` among the last
  20 closes (0 when they are all equal).
- PATCHTST, channel breakout: where ``close[i]`` lies in the high-low channel of the 20
  bars before ``i``, ``-1`` at its low, ``+1`` at its high, beyond ``±1`` when broken.

``confidence = clip(0.5 + 0.5·tanh(|strength|) + N(0, confidence_noise), 0, 1)``.
``predicted_regime`` is ``rlv2.states.label_regime`` of the last ``LOOKBACK`` closes,
replaced, with the model's ``regime_error_rate``, by one of the other three regimes
uniformly: the models differ in regime skill.

The building blocks that are not about the demo's models or behaviour (``prepare_bars``,
``decision_bars``, ``decision_market``, ``noisy_confidence``, ``predicted_regimes``,
``signals_table``, ``policy_table``, ``book_trades``) are shared with ``rlv2.planted``,
whose histories therefore get their outcomes by the same rules.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from rlv2.domain import (
    LEVERAGES,
    SIZE_MULTIPLIERS,
    WEIGHT_EXPOSURE_SCALE,
    Model,
    Regime,
    Strategy,
    WeightAction,
)
from rlv2.outcomes import (
    INITIAL_EQUITY,
    MARGIN_FRACTION,
    SIGMA_FLOOR,
    equity_after_close,
    position_pnl,
    walk_paths,
)
from rlv2.resources import bundled_dir
from rlv2.states import label_regime, volatility

LOOKBACK = 20
"""Bars up to a decision that the models, the regime label and σ read."""
MOMENTUM_BARS = 10
"""Horizon of XGB's momentum."""
FAST_MA_BARS = 5
"""Fast moving average of LGBM's crossover (the slow one is ``LOOKBACK`` bars)."""

CANDLE_COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume")
"""Columns of the candles a history is built from."""
DATA_DIR = bundled_dir("data")
"""The repository's bundled real price bars."""


@dataclass(frozen=True)
class DemoConfig:
    """How the demo history is generated; probabilities are listed in enum/tuple code order."""

    decision_every: int = 3
    """A decision point every this many bars of each symbol."""
    warmup_bars: int = 20
    """Bars before a symbol's first decision; at least ``LOOKBACK`` (the models' window)."""
    max_open_per_symbol: int = 3
    """A decision on a symbol with this many open positions is skipped (no trade)."""
    strategy_follows_regime: float = 0.7
    """Probability the strategy is the regime label at decision time (else one of the
    other three, uniformly)."""
    model_follows_confidence: float = 0.6
    """Probability the model is the most confident one (ties: lowest code; else one of the
    other three, uniformly)."""
    weight_action_probs: tuple[float, float, float] = (0.2, 0.2, 0.6)
    """Probabilities of WEIGHT_UP, WEIGHT_DOWN, WEIGHT_HOLD."""
    size_probs: tuple[float, ...] = (0.05, 0.10, 0.15, 0.20, 0.20, 0.15, 0.10, 0.05)
    """Probabilities of the size multipliers 0.2, 0.4, ..., 1.8 (``SIZE_MULTIPLIERS``):
    peaked at 0.8-1.0."""
    leverage_probs: tuple[float, ...] = (0.10, 0.20, 0.25, 0.20, 0.12, 0.08, 0.05)
    """Probabilities of leverage 1..7 (``LEVERAGES``): peaked at 3, above 5 in 13 %."""
    regime_error_rate: tuple[float, float, float, float] = (0.15, 0.25, 0.35, 0.45)
    """Per model (XGB, LGBM, NHITS, PATCHTST): probability its predicted regime is wrong."""
    confidence_noise: float = 0.05
    """Standard deviation of the noise added to each model's confidence."""
    rl_off_start: float = 0.45
    """Start of the RL-off stretch, as a fraction of the span first decision -> last bar."""
    rl_off_end: float = 0.55
    """End of the RL-off stretch (RL back on), same fraction."""
    seed: int = 0
    """Seed of the one ``np.random.default_rng`` all draws come from."""

    def __post_init__(self) -> None:
        for name, low in (
            ("decision_every", 1),
            ("warmup_bars", LOOKBACK),
            ("max_open_per_symbol", 1),
        ):
            if getattr(self, name) < low:
                raise ValueError(f"DemoConfig.{name} must be >= {low}, got {getattr(self, name)}")
        for name in ("strategy_follows_regime", "model_follows_confidence", "confidence_noise"):
            _check_unit("DemoConfig." + name, getattr(self, name))
        for name, n in (
            ("weight_action_probs", len(WeightAction)),
            ("size_probs", len(SIZE_MULTIPLIERS)),
            ("leverage_probs", len(LEVERAGES)),
        ):
            _check_distribution("DemoConfig." + name, getattr(self, name), n)
        if len(self.regime_error_rate) != len(Model):
            raise ValueError(f"DemoConfig.regime_error_rate needs {len(Model)} rates")
        for rate in self.regime_error_rate:
            _check_unit("DemoConfig.regime_error_rate", rate)
        if not 0.0 <= self.rl_off_start < self.rl_off_end <= 1.0:
            raise ValueError(
                "DemoConfig: need 0 <= rl_off_start < rl_off_end <= 1, got "
                f"{self.rl_off_start}, {self.rl_off_end}"
            )


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _check_distribution(name: str, probs: tuple[float, ...], n: int) -> None:
    if len(probs) != n or any(p < 0.0 for p in probs) or not math.isclose(sum(probs), 1.0):
        raise ValueError(f"{name} must be {n} non-negative probabilities summing to 1: {probs}")


class DemoHistory(NamedTuple):
    """The four contract tables of a demo history (columns as in ``sql/contract/schema.sql``)."""

    signals: pd.DataFrame
    """signal_id, ts, symbol, model, direction, confidence, predicted_regime."""
    trades: pd.DataFrame
    """trade_id, signal_id, ts, symbol, side, entry_price, size_multiplier, leverage,
    portfolio_exposure, strategy, weight_action, action_prob (NA while RL is off)."""
    positions: pd.DataFrame
    """trade_id, closed_ts, exit_price, pnl_pct, max_drawdown_pct."""
    policy: pd.DataFrame
    """ts, enable_rl: on from the first decision, off for the configured stretch, on after."""


class PriceBars(NamedTuple):
    """Candles of all symbols concatenated, sorted by (symbol, ts) (``prepare_bars``)."""

    symbols: list[str]
    symbol_code: NDArray[np.int64]
    ts: NDArray[np.int64]  # ns since the epoch
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    last_idx: NDArray[np.int64]  # per bar: the last bar index of its symbol


class Decisions(NamedTuple):
    """Decision points in time order, with what the models and the regime rule saw.

    ``regime`` and ``sigma`` are the regime label and volatility of the last ``LOOKBACK``
    closes up to the decision bar (``decision_market``).
    """

    bar_idx: NDArray[np.int64]
    regime: NDArray[np.int64]
    sigma: NDArray[np.float64]
    direction: NDArray[np.int64]  # (n, 4): per model
    confidence: NDArray[np.float64]  # (n, 4)
    predicted_regime: NDArray[np.int64]  # (n, 4)


class Actions(NamedTuple):
    """The behaviour policy's draw at every decision point, and its probability."""

    strategy: NDArray[np.int64]
    model: NDArray[np.int64]
    weight_action: NDArray[np.int64]
    size_idx: NDArray[np.int64]
    leverage_idx: NDArray[np.int64]
    prob: NDArray[np.float64]


def prepare_bars(candles: pd.DataFrame) -> PriceBars:
    """Validate the candles and sort them into per-symbol runs; tz-aware ts become naive UTC."""
    missing = [c for c in CANDLE_COLUMNS if c not in candles.columns and c != "volume"]
    if missing:
        raise ValueError(f"candles: missing columns {missing}; expected {list(CANDLE_COLUMNS)}")
    ts = pd.to_datetime(candles["ts"])
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    frame = candles.assign(
        symbol=candles["symbol"].astype(str), ts=ts.astype("datetime64[ns]")
    ).sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
    duplicated = frame.duplicated(["symbol", "ts"])
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise ValueError(f"candles: duplicate bar symbol={row['symbol']!r} ts={row['ts']}")
    prices = {}
    for column in ("open", "high", "low", "close"):
        values = frame[column].to_numpy(dtype=np.float64)
        bad = ~(np.isfinite(values) & (values > 0.0))
        if bad.any():
            at = int(np.argmax(bad))
            raise ValueError(
                f"candles: {column}={float(values[at])!r} at symbol={frame['symbol'].iloc[at]!r} "
                f"ts={frame['ts'].iloc[at]} must be finite and > 0"
            )
        prices[column] = values
    codes, symbols = pd.factorize(frame["symbol"], sort=True)
    symbol_code = codes.astype(np.int64)
    ends = np.flatnonzero(np.r_[symbol_code[1:] != symbol_code[:-1], True])
    return PriceBars(
        symbols=[str(s) for s in symbols],
        symbol_code=symbol_code,
        ts=frame["ts"].to_numpy().astype(np.int64),
        high=prices["high"],
        low=prices["low"],
        close=prices["close"],
        last_idx=ends[symbol_code],
    )


def decision_bars(
    bars: PriceBars, warmup_bars: int, decision_every: int, bars_after: int = 1
) -> NDArray[np.int64]:
    """Bar indices of the decision points, in time order (ties by symbol).

    Every ``decision_every`` bars of each symbol from its bar ``warmup_bars`` on, as long
    as the symbol has ``bars_after`` more bars after the decision (at least one, so that
    a position can close after its entry).
    """
    n = bars.close.shape[0]
    starts = np.flatnonzero(np.r_[True, bars.symbol_code[1:] != bars.symbol_code[:-1]])
    local = np.arange(n) - starts[bars.symbol_code]
    on_grid = (local >= warmup_bars) & ((local - warmup_bars) % decision_every == 0)
    idx = np.flatnonzero(on_grid & (np.arange(n) + bars_after <= bars.last_idx))
    if idx.size == 0:
        raise ValueError(
            f"candles: no decision point; each symbol needs more than warmup_bars + "
            f"{bars_after} = {warmup_bars + bars_after} bars"
        )
    order = np.lexsort((bars.symbol_code[idx], bars.ts[idx]))
    return idx[order]


def _model_strengths(
    bars: PriceBars, idx: NDArray[np.int64], window: NDArray[np.float64], sigma: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Signed strength of each model at each decision, shape (n, 4) in ``Model`` order.

    ``window`` holds the last ``LOOKBACK`` closes up to each decision bar ``idx``.
    """
    last = window[:, -1]
    slow = window.mean(axis=1)
    momentum = (last / bars.close[idx - MOMENTUM_BARS] - 1.0) / (sigma * math.sqrt(MOMENTUM_BARS))
    crossover = (window[:, -FAST_MA_BARS:].mean(axis=1) / slow - 1.0) / (2.0 * sigma)
    spread = window.std(axis=1)
    z = np.divide(last - slow, spread, out=np.zeros_like(spread), where=spread > 0.0)
    prior = idx[:, None] + np.arange(-LOOKBACK, 0)
    top, bottom = bars.high[prior].max(axis=1), bars.low[prior].min(axis=1)
    half = (top - bottom) / 2.0
    channel = np.divide(
        last - (top + bottom) / 2.0, half, out=np.zeros_like(half), where=half > 0.0
    )
    strengths = {
        Model.XGB: momentum,
        Model.LGBM: crossover,
        Model.NHITS: -z / 2.0,
        Model.PATCHTST: channel,
    }
    return np.column_stack([strengths[m] for m in Model])


def _other_uniform(
    rng: np.random.Generator, chosen: NDArray[np.int64], n: int
) -> NDArray[np.int64]:
    """One of the ``n`` codes other than ``chosen``, uniformly."""
    return (chosen + rng.integers(1, n, size=chosen.shape)) % n


def decision_market(
    bars: PriceBars, idx: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """The last ``LOOKBACK`` closes up to each decision bar, their volatility and regime.

    The regime is ``rlv2.states.label_regime`` of that window: SPEC C's decision-time
    regime, as the pipeline's feature SQL computes it with the default windows.
    """
    window = bars.close[idx[:, None] + np.arange(-LOOKBACK + 1, 1)]
    sigma = np.asarray(volatility(window), dtype=np.float64)
    regime = np.asarray(label_regime(window), dtype=np.int64)
    return window, sigma, regime


def noisy_confidence(
    rng: np.random.Generator, strength: NDArray[np.float64], noise: float
) -> NDArray[np.float64]:
    """``clip(0.5 + 0.5·tanh(|strength|) + N(0, noise), 0, 1)`` per signal."""
    jitter = rng.normal(0.0, noise, size=strength.shape)
    return np.clip(0.5 + 0.5 * np.tanh(np.abs(strength)) + jitter, 0.0, 1.0)


def predicted_regimes(
    rng: np.random.Generator, regime: NDArray[np.int64], error_rate: tuple[float, ...]
) -> NDArray[np.int64]:
    """Each model's predicted regime: ``regime``, or with its error rate another one uniformly.

    Returns shape (n, 4), models in ``Model`` order; ``error_rate`` holds one rate per model.
    """
    shape = (regime.shape[0], len(Model))
    wrong = rng.random(shape) < np.asarray(error_rate)
    actual = np.repeat(regime[:, None], len(Model), axis=1)
    return np.where(wrong, _other_uniform(rng, actual, len(Regime)), actual).astype(np.int64)


def _forecast(
    bars: PriceBars, idx: NDArray[np.int64], config: DemoConfig, rng: np.random.Generator
) -> Decisions:
    """The four models' signals at each decision point, from bars up to it only."""
    window, sigma, regime = decision_market(bars, idx)
    strength = _model_strengths(bars, idx, window, np.maximum(sigma, SIGMA_FLOOR))
    return Decisions(
        bar_idx=idx,
        regime=regime,
        sigma=sigma,
        direction=np.where(strength >= 0.0, 1, -1).astype(np.int64),
        confidence=noisy_confidence(rng, strength, config.confidence_noise),
        predicted_regime=predicted_regimes(rng, regime, config.regime_error_rate),
    )


def _follow_or_other(
    rng: np.random.Generator, preferred: NDArray[np.int64], p_follow: float, n: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """``preferred`` with probability ``p_follow``, else another of ``n`` codes uniformly."""
    follow = rng.random(preferred.shape) < p_follow
    chosen = np.where(follow, preferred, _other_uniform(rng, preferred, n))
    return chosen, np.where(chosen == preferred, p_follow, (1.0 - p_follow) / (n - 1))


def _behave(decisions: Decisions, config: DemoConfig, rng: np.random.Generator) -> Actions:
    """Draw the behaviour policy's action at every decision point.

    Meta and sizing parts are drawn independently, so the probability of the joint
    action is the product: P(strategy) · P(model) · P(weight) · P(size) · P(leverage).
    """
    n = decisions.bar_idx.shape[0]
    strategy, p_strategy = _follow_or_other(
        rng, decisions.regime, config.strategy_follows_regime, len(Strategy)
    )
    best = np.argmax(decisions.confidence, axis=1).astype(np.int64)
    model, p_model = _follow_or_other(rng, best, config.model_follows_confidence, len(Model))
    draws = {}
    for name, probs in (
        ("weight", config.weight_action_probs),
        ("size", config.size_probs),
        ("leverage", config.leverage_probs),
    ):
        p = np.asarray(probs)
        draws[name] = (rng.choice(p.size, size=n, p=p).astype(np.int64), p)
    prob = p_strategy * p_model
    for code, p in draws.values():
        prob = prob * p[code]
    return Actions(
        strategy=strategy,
        model=model,
        weight_action=draws["weight"][0],
        size_idx=draws["size"][0],
        leverage_idx=draws["leverage"][0],
        prob=prob,
    )


def _book_positions(
    bars: PriceBars,
    decisions: Decisions,
    closed_at: NDArray[np.int64],
    pnl_pct: NDArray[np.float64],
    size: NDArray[np.float64],
    leverage: NDArray[np.int64],
    weight_scale: NDArray[np.float64],
    max_open: int | None,
    offered: NDArray[np.bool_],
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Which decisions trade, and the portfolio exposure at each entry.

    A decision trades if the behaviour ``offered`` to, its symbol has fewer than
    ``max_open`` open positions (None: no cap), and the account has equity left.
    A position counts as closed for a later entry when its ``closed_ts`` is at or
    before the entry's ``ts`` (closes come first at equal times, as in the replay and
    the account features). The demo's trading system keeps its books as rlv2's account
    model does (``rlv2.outcomes``): a position puts up ``MARGIN_FRACTION`` of the equity
    it opens on, each close compounds the equity, and exposure sums every open
    position's (all symbols) and the new one's notional × leverage over the equity now.
    """
    n = decisions.bar_idx.shape[0]
    ts = bars.ts[decisions.bar_idx]
    symbol = bars.symbol_code[decisions.bar_idx]
    taken = np.zeros(n, dtype=np.bool_)
    exposure = np.zeros(n, dtype=np.float64)
    open_count = np.zeros(len(bars.symbols), dtype=np.int64)
    closing: list[tuple[int, int]] = []
    open_now: set[int] = set()
    equity = INITIAL_EQUITY  # compounded close by close, as rlv2.outcomes.account_equity
    notional = np.zeros(n, dtype=np.float64)
    n_closed = 0
    for d in range(n):
        while closing and closing[0][0] <= ts[d]:
            _, k = heapq.heappop(closing)
            open_now.discard(k)
            open_count[symbol[k]] -= 1
            equity = equity_after_close(equity, float(pnl_pct[k]), MARGIN_FRACTION)
            n_closed += 1
        if not offered[d] or (max_open is not None and open_count[symbol[d]] >= max_open):
            continue
        notional[d] = size[d] * weight_scale[d] * MARGIN_FRACTION * equity * leverage[d]
        members = np.fromiter((*open_now, d), dtype=np.int64)
        exposure[d] = (notional[members] / equity).sum()
        taken[d] = True
        heapq.heappush(closing, (int(closed_at[d]), d))
        open_now.add(d)
        open_count[symbol[d]] += 1
    return taken, exposure


def policy_table(first_ts: int, last_ts: int, rl_off: tuple[float, float] | None) -> pd.DataFrame:
    """RL on at ``first_ts`` (ns); with ``rl_off``, off and back on at those fractions of
    the span ``first_ts -> last_ts``."""
    span = last_ts - first_ts
    switch = [(first_ts, True)]
    if rl_off is not None:
        switch += [
            (first_ts + int(rl_off[0] * span), False),
            (first_ts + int(rl_off[1] * span), True),
        ]
    policy = pd.DataFrame(
        {
            "ts": pd.to_datetime([t for t, _ in switch]).floor("s"),
            "enable_rl": [on for _, on in switch],
        }
    )
    return policy.drop_duplicates("ts", keep="last", ignore_index=True)


def _rl_on(ts: NDArray[np.int64], policy: pd.DataFrame) -> NDArray[np.bool_]:
    """The ``enable_rl`` flag in force at each ``ts`` (ns), as the contract reads the switch.

    The latest switch at or before ``ts``; before the first switch RL is on
    (``sql/contract/schema.sql``), as ``rlv2.history`` reads it.
    """
    switches = policy["ts"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    at = np.searchsorted(switches, ts, side="right") - 1
    flags = policy["enable_rl"].to_numpy(dtype=np.bool_)
    return np.where(at >= 0, flags[np.maximum(at, 0)], True)


def _names(names: list[str], codes: NDArray[np.int64]) -> NDArray[np.object_]:
    """The name of each code."""
    return np.asarray(names, dtype=object)[codes]


def signals_table(bars: PriceBars, decisions: Decisions) -> pd.DataFrame:
    """The signals table: one row per decision point and model, ids from 1 in that order."""
    n_models = len(Model)
    n = decisions.bar_idx.shape[0]
    rows = np.repeat(decisions.bar_idx, n_models)
    return pd.DataFrame(
        {
            "signal_id": np.arange(1, n * n_models + 1, dtype=np.int64),
            "ts": pd.to_datetime(bars.ts[rows]),
            "symbol": _names(bars.symbols, bars.symbol_code[rows]),
            "model": np.tile([m.name for m in Model], n),
            "direction": decisions.direction.ravel().astype(np.int32),
            "confidence": decisions.confidence.ravel(),
            "predicted_regime": _names(
                [r.name for r in Regime], decisions.predicted_regime.ravel()
            ),
        }
    )


def book_trades(
    bars: PriceBars,
    decisions: Decisions,
    actions: Actions,
    signals: pd.DataFrame,
    policy: pd.DataFrame,
    max_open: int | None,
    offered: NDArray[np.bool_],
) -> tuple[pd.DataFrame, pd.DataFrame, NDArray[np.int64]]:
    """The trades and positions tables of the decisions that trade, and their indices.

    Each traded decision follows its chosen model's direction and exits by its strategy's
    rule on the real bars (``rlv2.outcomes.walk_paths``), with pnl and drawdown by
    ``rlv2.outcomes.position_pnl``: the replay's own outcome rules. Which decisions trade
    is ``_book_positions``'s rule; ``action_prob`` is NA where RL is off in ``policy``.
    """
    rows = np.arange(decisions.bar_idx.shape[0])
    side = decisions.direction[rows, actions.model]
    size = np.asarray(SIZE_MULTIPLIERS)[actions.size_idx]
    leverage = np.asarray(LEVERAGES, dtype=np.int64)[actions.leverage_idx]
    weight_scale = np.asarray([WEIGHT_EXPOSURE_SCALE[w] for w in WeightAction])[
        actions.weight_action
    ]
    path = walk_paths(
        bars.close,
        bars.high,
        bars.low,
        decisions.bar_idx,
        bars.last_idx[decisions.bar_idx],
        side,
        decisions.sigma,
        actions.strategy,
    )
    pnl_pct, drawdown_pct, _ = position_pnl(path.ret, path.mae, size, leverage, weight_scale)
    taken, exposure = _book_positions(
        bars,
        decisions,
        bars.ts[path.exit_idx],
        pnl_pct,
        size,
        leverage,
        weight_scale,
        max_open,
        offered,
    )
    t = np.flatnonzero(taken)
    entry, exit_ = decisions.bar_idx[t], path.exit_idx[t]
    trade_id = np.arange(1, t.size + 1, dtype=np.int64)
    action_prob = pd.array(actions.prob[t], dtype="Float64")
    action_prob[~_rl_on(bars.ts[entry], policy)] = pd.NA
    trades = pd.DataFrame(
        {
            "trade_id": trade_id,
            "signal_id": signals["signal_id"].to_numpy()[t * len(Model) + actions.model[t]],
            "ts": pd.to_datetime(bars.ts[entry]),
            "symbol": _names(bars.symbols, bars.symbol_code[entry]),
            "side": side[t].astype(np.int32),
            "entry_price": bars.close[entry],
            "size_multiplier": size[t],
            "leverage": leverage[t].astype(np.int32),
            "portfolio_exposure": exposure[t],
            "strategy": _names([s.name for s in Strategy], actions.strategy[t]),
            "weight_action": _names([w.name for w in WeightAction], actions.weight_action[t]),
            "action_prob": action_prob,
        }
    )
    positions = pd.DataFrame(
        {
            "trade_id": trade_id,
            "closed_ts": pd.to_datetime(bars.ts[exit_]),
            "exit_price": bars.close[exit_],
            "pnl_pct": pnl_pct[t],
            "max_drawdown_pct": drawdown_pct[t],
        }
    )
    return trades, positions, t.astype(np.int64)


def build_history(candles: pd.DataFrame, config: DemoConfig = DemoConfig()) -> DemoHistory:  # noqa: B008
    """Build the demo history of ``candles`` (columns symbol, ts, open, high, low, close,
    volume; any number of symbols, any row order); deterministic for ``config.seed``.

    Decision points every ``decision_every`` bars after ``warmup_bars`` on each symbol give
    four signal rows each (one per model); the behaviour policy trades a decision unless
    its symbol has ``max_open_per_symbol`` open positions (or the account's equity is
    gone), and every trade gets exactly one position, closed on the real bars. Trades
    during the RL-off stretch have ``action_prob`` NA: the system logs a propensity only
    while the RL policy acts.
    """
    bars = prepare_bars(candles)
    signal_rng, policy_rng = np.random.default_rng(config.seed).spawn(2)
    idx = decision_bars(bars, config.warmup_bars, config.decision_every)
    decisions = _forecast(bars, idx, config, signal_rng)
    actions = _behave(decisions, config, policy_rng)

    signals = signals_table(bars, decisions)
    policy = policy_table(
        int(bars.ts[decisions.bar_idx[0]]),
        int(bars.ts.max()),
        (config.rl_off_start, config.rl_off_end),
    )
    trades, positions, _ = book_trades(
        bars,
        decisions,
        actions,
        signals,
        policy,
        config.max_open_per_symbol,
        np.ones(decisions.bar_idx.shape[0], dtype=np.bool_),
    )
    return DemoHistory(signals=signals, trades=trades, positions=positions, policy=policy)


def load_bundled_candles(data_dir: Path = DATA_DIR) -> pd.DataFrame:
    """Read the bundled real bars (EUR/USD hourly as EURUSD, S&P 500 daily as SPX) as candles.

    A fallback for tests and the demo; ``rlv2 ingest`` is the real ingestion path. The
    files are read as published: EUR/USD's timestamp is its unnamed first column, the
    S&P 500's ``Date`` is m/d/yyyy, and its ``Adj Close`` is dropped.
    """
    eurusd_path, spx_path = data_dir / "eurusd_1h.csv", data_dir / "sp500_1d.csv"
    for path in (eurusd_path, spx_path):
        if not path.is_file():
            raise FileNotFoundError(f"bundled price bars not found: {path}")
    eurusd = pd.read_csv(eurusd_path, index_col=0)
    spx = pd.read_csv(spx_path)
    candles = pd.concat(
        [
            _as_candles("EURUSD", pd.to_datetime(eurusd.index, format="%Y-%m-%d %H:%M:%S"), eurusd),
            _as_candles("SPX", pd.to_datetime(spx["Date"], format="%m/%d/%Y"), spx),
        ],
        ignore_index=True,
    )
    return candles.sort_values(by=["symbol", "ts"]).reset_index(drop=True)


def _as_candles(symbol: str, ts: pd.DatetimeIndex | pd.Series, bars: pd.DataFrame) -> pd.DataFrame:
    """One symbol's published Open/High/Low/Close/Volume columns in the candles shape."""
    columns = {
        name: bars[name.capitalize()].to_numpy(dtype=np.float64) for name in CANDLE_COLUMNS[2:]
    }
    return pd.DataFrame({"symbol": symbol, "ts": np.asarray(ts, dtype="datetime64[ns]"), **columns})
