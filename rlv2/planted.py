"""Planted-signal histories: the contract's tables on real bars, with a known right answer.

A trained policy can only be judged against an edge we know is there. This module
writes histories like the demo's (``rlv2.demo_data``: real bars, real outcomes, synthetic
forecasts and behaviour) but plants the forecasts' skill:

- **Truth.** At a decision on bar ``i`` the *true direction* is the sign of the forward
  return ``close[i + horizon] / close[i] - 1`` (``horizon`` = 10 bars by default; a flat
  horizon counts as up, as the demo's zero-strength signal goes long). A decision needs
  ``horizon`` bars after it.
- **Skill.** Each model's signal is the true direction when it is *correct*, the
  opposite otherwise. Model ``m`` at a decision in regime ``r`` is correct with
  probability ``PlantedConfig.accuracy_table()[r, m]``: by default NHITS 0.8, XGB (action
  code 0) 0.25, LGBM and PATCHTST 0.5 in every regime; with ``regime_good_model``, one
  good model per regime at ``accuracy`` and every other model at ``baseline_accuracy``;
  with ``no_edge``, 0.5 everywhere. The regime is SPEC C's decision-time regime:
  ``rlv2.states.label_regime`` of the last 20 closes up to the decision bar, what the
  pipeline's compiled rule computes for the meta state.
- **Persistence.** Correctness comes from a latent uniform ``u`` per model and symbol:
  ``correct = u < accuracy``. Along a symbol's decisions ``u`` is redrawn with probability
  ``1 / error_run_length`` and kept otherwise (``persistent_uniforms``), so each decision
  is correct with exactly its accuracy, and for a constant accuracy ``a`` correctness is
  the two-state Markov chain with stationary probability ``a`` that leaves "correct" with
  probability ``(1 - a) / L`` and "wrong" with ``a / L`` (``L = error_run_length``): its
  correct and wrong streaks last ``L / (1 - a)`` and ``L / a`` decisions on average,
  ``L`` times those of independent draws; ``L = 1`` is independent.
- **What is not skill.** Confidences are ``rlv2.demo_data.noisy_confidence`` of a
  standard normal draw, independent of correctness and alike for all models; each
  model's predicted regime is the decision-time regime, replaced with one shared
  ``regime_error_rate`` by another (``rlv2.demo_data.predicted_regimes``). So no model
  earns more regime-alignment reward or confidence than another: the direction is the
  only planted edge.
- **Behaviour.** A fixed, state-independent policy per agent: ``uniform`` over the 48
  meta actions and over the allowed sizing actions (sizes in ``size_multipliers``,
  leverage in ``leverage_min..leverage_max``), or ``skewed``: fixed preferences drawn
  once from a Dirichlet distribution (``skew_concentration``). Meta and sizing actions
  are drawn independently: ``action_prob`` (the joint action's probability, given that
  the decision trades) is the product of the two agents' probabilities, which the
  trades table also carries as the contract's per-agent propensities
  ``meta_action_prob`` and ``sizing_action_prob`` (exact: the behaviour's own). Each
  decision is offered for trading with probability ``trade_fraction`` (default all); an
  offered decision trades unless the account's equity is gone
  (``rlv2.demo_data.book_trades``; no cap on open positions).
- **Outcomes** are the demo's, by the replay's own rules (``rlv2.outcomes``): entry at the
  decision bar's close, exit by the chosen strategy's rule on the real bars that follow,
  pnl and drawdown from them, so simulating the logged actions reproduces the logged pnl.
- **RL switch.** One ``policy`` row at the first decision, ``enable_rl`` true; ``rl_off``
  adds an off stretch as the demo's (no propensities logged in it).

``truth`` lists, per decision point, what was planted: regime, forward return, true
direction, the good model, and each model's correctness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from rlv2.actions import N_META_ACTIONS, N_SIZING_ACTIONS, meta_space
from rlv2.demo_data import (
    LOOKBACK,
    Actions,
    Decisions,
    PriceBars,
    book_trades,
    decision_bars,
    decision_market,
    noisy_confidence,
    policy_table,
    predicted_regimes,
    prepare_bars,
    signals_table,
)
from rlv2.domain import LEVERAGES, SIZE_MULTIPLIERS, Model, Regime
from rlv2.records import MODEL_COLUMNS, names_of


class Behaviour(StrEnum):
    """The behaviour policy that trades a planted history."""

    UNIFORM = "uniform"
    """Every meta action and every allowed sizing action equally likely."""
    SKEWED = "skewed"
    """A fixed preference per agent, drawn once from a Dirichlet distribution."""


REGIME_EDGE: tuple[Model, Model, Model, Model] = (
    Model.LGBM,
    Model.NHITS,
    Model.PATCHTST,
    Model.LGBM,
)
"""An example state-dependent edge for ``regime_good_model``: the good model of TREND,
RANGE, BREAKOUT and MEAN_REVERSION, in that order. On the bundled bars RANGE and
MEAN_REVERSION hold about 65 % and 22 % of the decisions; giving them different good
models is what makes following each regime's model beat every fixed action clearly
(with NHITS good in both, always following NHITS is nearly as good)."""


def _model(name: str, value: Any) -> Model:
    """A model given as ``Model``, its code or its name (any case)."""
    if isinstance(value, Model):
        return value
    try:
        if isinstance(value, int | np.integer):
            return Model(int(value))
        return Model[str(value).upper()]
    except (KeyError, ValueError):
        allowed = ", ".join(m.name for m in Model)
        raise ValueError(f"{name}={value!r}: expected one of {allowed}") from None


def _check_accuracy(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class PlantedConfig:
    """How a planted-signal history is generated (module docstring: what each part means).

    Models may be given by name (``"NHITS"``) and ``behaviour`` as a string; they are
    normalised to the enums.
    """

    seed: int = 0
    """Seed of the one ``np.random.default_rng`` all draws come from (spawned streams:
    forecasts, correctness, behaviour preference, behaviour draws)."""
    horizon: int = 10
    """Bars of the forward return whose sign the models forecast."""
    good_model: Model = Model.NHITS
    """The model right ``accuracy`` of the time (without ``model_accuracy`` or
    ``regime_good_model``)."""
    accuracy: float = 0.8
    """Probability the good model (per regime with ``regime_good_model``) is right."""
    bad_model: Model | None = Model.XGB
    """The model right ``bad_accuracy`` of the time (None: none); XGB is action code 0."""
    bad_accuracy: float = 0.25
    """Probability the bad model is right."""
    baseline_accuracy: float = 0.5
    """Probability every other model is right (0.5: a coin flip)."""
    model_accuracy: tuple[float, float, float, float] | None = None
    """Each model's accuracy in ``Model`` order (XGB, LGBM, NHITS, PATCHTST), in every
    regime; replaces ``good_model``, ``accuracy``, ``bad_model``, ``bad_accuracy``,
    ``baseline_accuracy``."""
    regime_good_model: tuple[Model, Model, Model, Model] | None = None
    """A state-dependent edge: the good model of each regime in ``Regime`` order (TREND,
    RANGE, BREAKOUT, MEAN_REVERSION; e.g. ``REGIME_EDGE``). In regime r that model is right
    ``accuracy`` of the time and every other model ``baseline_accuracy`` (``good_model``
    and ``bad_model`` are not used)."""
    no_edge: bool = False
    """Every model a coin flip (accuracy 0.5 everywhere; persistence still applies): for
    measuring false promotions."""
    error_run_length: float = 1.0
    """Persistence of each model's correctness along a symbol's decisions: the mean
    number of decisions its latent draw is kept (1: independent decisions; streaks are
    this many times as long as independent ones)."""
    behaviour: Behaviour = Behaviour.UNIFORM
    """``uniform`` or ``skewed`` (a fixed Dirichlet-drawn preference over each agent's
    actions)."""
    skew_concentration: float = 1.0
    """Dirichlet concentration of the skewed preference: smaller is more skewed."""
    leverage_min: int = 1
    """Lowest leverage the behaviour draws (SPEC A3: 1..7)."""
    leverage_max: int = 3
    """Highest leverage the behaviour draws (up to 7). The default keeps the account
    model solvent: a uniform behaviour up to 7x on ~3,300 overlapping trades took equity
    below zero in 2 of 10 seeds, and after that nothing trades."""
    size_multipliers: tuple[float, ...] = SIZE_MULTIPLIERS
    """Size multipliers the behaviour draws (a subset of SPEC A3's eight)."""
    trade_fraction: float = 1.0
    """Probability the behaviour trades a decision point (else it only has signals)."""
    symbols: tuple[str, ...] | None = None
    """Symbols that get decision points (None: every symbol of the candles)."""
    decision_every: int = 3
    """A decision point every this many bars of each symbol."""
    warmup_bars: int = LOOKBACK
    """Bars before a symbol's first decision; at least the 20 bars of the regime window."""
    max_decisions_per_symbol: int | None = None
    """Keep only each symbol's first this many decision points (None: all)."""
    regime_error_rate: float = 0.25
    """Probability a model's predicted regime is wrong; the same for every model."""
    confidence_noise: float = 0.05
    """Standard deviation of the noise added to each signal's confidence."""
    rl_off: tuple[float, float] | None = None
    """An RL-off stretch (start, end) as fractions of the span first decision -> last bar
    (None: RL on throughout, one policy row)."""

    def __post_init__(self) -> None:
        self._normalise()
        if self.seed < 0:
            raise ValueError(f"PlantedConfig.seed must be >= 0, got {self.seed}")
        for name, low in (
            ("horizon", 1),
            ("decision_every", 1),
            ("warmup_bars", LOOKBACK),
            ("max_decisions_per_symbol", 1),
        ):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ValueError(f"PlantedConfig.{name} must be >= {low}, got {value}")
        for name in ("accuracy", "bad_accuracy", "baseline_accuracy", "regime_error_rate"):
            _check_accuracy(f"PlantedConfig.{name}", getattr(self, name))
        self._check_edge()
        self._check_behaviour()
        if not math.isfinite(self.confidence_noise) or self.confidence_noise < 0.0:
            raise ValueError(
                f"PlantedConfig.confidence_noise must be >= 0, got {self.confidence_noise}"
            )
        if self.symbols is not None and not self.symbols:
            raise ValueError("PlantedConfig.symbols must name at least one symbol (or be None)")
        if self.rl_off is not None and not 0.0 <= self.rl_off[0] < self.rl_off[1] <= 1.0:
            raise ValueError(
                "PlantedConfig.rl_off must be (start, end) with 0 <= start < end <= 1, "
                f"got {self.rl_off}"
            )

    def _normalise(self) -> None:
        """Turn model names and the behaviour's name into their enums."""
        object.__setattr__(self, "good_model", _model("PlantedConfig.good_model", self.good_model))
        if self.bad_model is not None:
            object.__setattr__(self, "bad_model", _model("PlantedConfig.bad_model", self.bad_model))
        if self.regime_good_model is not None:
            if len(self.regime_good_model) != len(Regime):
                raise ValueError(
                    f"PlantedConfig.regime_good_model needs {len(Regime)} models (one per "
                    f"regime, {', '.join(r.name for r in Regime)}), got {self.regime_good_model}"
                )
            models = tuple(
                _model("PlantedConfig.regime_good_model", m) for m in self.regime_good_model
            )
            object.__setattr__(self, "regime_good_model", models)
        try:
            object.__setattr__(self, "behaviour", Behaviour(self.behaviour))
        except ValueError:
            allowed = ", ".join(b.value for b in Behaviour)
            raise ValueError(
                f"PlantedConfig.behaviour={self.behaviour!r}: expected one of {allowed}"
            ) from None
        if isinstance(self.symbols, str):  # one symbol, not its letters
            object.__setattr__(self, "symbols", (self.symbols,))
        elif self.symbols is not None:
            object.__setattr__(self, "symbols", tuple(str(s) for s in self.symbols))

    def _check_edge(self) -> None:
        if self.bad_model is not None and self.bad_model == self.good_model:
            raise ValueError(
                f"PlantedConfig.bad_model must differ from good_model, both {self.good_model.name}"
            )
        if self.model_accuracy is not None:
            if len(self.model_accuracy) != len(Model):
                raise ValueError(
                    f"PlantedConfig.model_accuracy needs {len(Model)} accuracies (XGB, LGBM, "
                    f"NHITS, PATCHTST), got {self.model_accuracy}"
                )
            for value in self.model_accuracy:
                _check_accuracy("PlantedConfig.model_accuracy", value)
            if self.regime_good_model is not None:
                raise ValueError(
                    "PlantedConfig.model_accuracy and regime_good_model exclude each other"
                )
        if not math.isfinite(self.error_run_length) or self.error_run_length < 1.0:
            raise ValueError(
                f"PlantedConfig.error_run_length must be >= 1, got {self.error_run_length}"
            )

    def _check_behaviour(self) -> None:
        if not math.isfinite(self.skew_concentration) or self.skew_concentration <= 0.0:
            raise ValueError(
                f"PlantedConfig.skew_concentration must be > 0, got {self.skew_concentration}"
            )
        if not LEVERAGES[0] <= self.leverage_min <= self.leverage_max <= LEVERAGES[-1]:
            raise ValueError(
                f"PlantedConfig.leverage_min/leverage_max must satisfy {LEVERAGES[0]} <= "
                f"leverage_min <= leverage_max <= {LEVERAGES[-1]}, got "
                f"{self.leverage_min}, {self.leverage_max}"
            )
        sizes = self.size_multipliers
        if not sizes or len(set(sizes)) != len(sizes) or not set(sizes) <= set(SIZE_MULTIPLIERS):
            raise ValueError(
                f"PlantedConfig.size_multipliers must be distinct values of {SIZE_MULTIPLIERS}, "
                f"got {sizes}"
            )
        if not 0.0 < self.trade_fraction <= 1.0:
            raise ValueError(
                f"PlantedConfig.trade_fraction must be in (0, 1], got {self.trade_fraction}"
            )

    def accuracy_table(self) -> NDArray[np.float64]:
        """Probability each model is right in each regime, shape (4 regimes, 4 models)."""
        table = np.full((len(Regime), len(Model)), self.baseline_accuracy)
        if self.no_edge:
            table[:] = 0.5
        elif self.model_accuracy is not None:
            table[:] = np.asarray(self.model_accuracy, dtype=np.float64)
        elif self.regime_good_model is not None:
            table[np.arange(len(Regime)), [int(m) for m in self.regime_good_model]] = self.accuracy
        else:
            table[:, int(self.good_model)] = self.accuracy
            if self.bad_model is not None:
                table[:, int(self.bad_model)] = self.bad_accuracy
        return table

    def good_models(self) -> NDArray[np.int64]:
        """The good model's code in each regime (the single most accurate one; -1: none)."""
        table = self.accuracy_table()
        best = table.max(axis=1, keepdims=True)
        unique = (table == best).sum(axis=1) == 1
        return np.where(unique, table.argmax(axis=1), -1).astype(np.int64)

    def sizing_actions(self) -> NDArray[np.bool_]:
        """Which of the 56 sizing actions the behaviour may take (size × leverage allowed)."""
        sizes = np.isin(np.asarray(SIZE_MULTIPLIERS), np.asarray(self.size_multipliers))
        levers = np.asarray(LEVERAGES)
        allowed = (levers >= self.leverage_min) & (levers <= self.leverage_max)
        return (sizes[:, None] & allowed[None, :]).ravel()


class PlantedHistory(NamedTuple):
    """A planted-signal history: the contract's tables, what was planted, the behaviour."""

    signals: pd.DataFrame
    """signal_id, ts, symbol, model, direction, confidence, predicted_regime."""
    trades: pd.DataFrame
    """The contract's trade columns, then ``meta_action_prob`` and ``sizing_action_prob``
    (the per-agent propensities; NA where ``action_prob`` is)."""
    positions: pd.DataFrame
    """trade_id, closed_ts, exit_price, pnl_pct, max_drawdown_pct."""
    policy: pd.DataFrame
    """ts, enable_rl."""
    truth: pd.DataFrame
    """Per decision point in time order: symbol, ts, regime, forward_return,
    true_direction, good_model (None: no single good model), correct_<model> for each
    model, traded."""
    meta_probs: NDArray[np.float64]
    """The behaviour's probability of each of the 48 meta actions (by code)."""
    sizing_probs: NDArray[np.float64]
    """The behaviour's probability of each of the 56 sizing actions (by code)."""


def persistent_uniforms(
    rng: np.random.Generator, group: NDArray[np.int64], n_columns: int, run_length: float
) -> NDArray[np.float64]:
    """Uniform draws on [0, 1) that persist along each group's rows, shape (n, n_columns).

    Per column and group (rows in their given order), the first row draws a uniform and
    each later row redraws with probability ``1 / run_length``, else keeps the previous
    value: every value is uniform, and a value lasts ``run_length`` rows on average.
    """
    n = group.shape[0]
    order = np.argsort(group, kind="stable")
    starts = np.r_[True, group[order][1:] != group[order][:-1]]
    redraw = rng.random((n, n_columns)) < 1.0 / run_length
    redraw[starts] = True
    fresh = rng.random((n, n_columns))
    source = np.maximum.accumulate(np.where(redraw, np.arange(n)[:, None], 0), axis=0)
    out = np.empty((n, n_columns))
    out[order] = np.take_along_axis(fresh, source, axis=0)
    return out


def _decision_points(bars: PriceBars, config: PlantedConfig) -> NDArray[np.int64]:
    """Decision bars in time order: the grid, on the chosen symbols, at most N per symbol."""
    idx = decision_bars(bars, config.warmup_bars, config.decision_every, config.horizon)
    if config.symbols is not None:
        unknown = sorted(set(config.symbols) - set(bars.symbols))
        if unknown:
            raise ValueError(
                f"PlantedConfig.symbols: no candles for {unknown}; the candles have {bars.symbols}"
            )
        codes = [bars.symbols.index(s) for s in config.symbols]
        idx = idx[np.isin(bars.symbol_code[idx], codes)]
    if config.max_decisions_per_symbol is not None:
        symbol = bars.symbol_code[idx]
        order = np.argsort(symbol, kind="stable")
        rank = np.empty(idx.shape[0], dtype=np.int64)
        starts = np.searchsorted(symbol[order], symbol[order])
        rank[order] = np.arange(idx.shape[0]) - starts
        idx = idx[rank < config.max_decisions_per_symbol]
    return idx


def behaviour_probs(
    config: PlantedConfig, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The behaviour's fixed probability of each meta (48) and each sizing (56) action."""
    allowed = config.sizing_actions()
    sizing = np.zeros(N_SIZING_ACTIONS)
    if config.behaviour is Behaviour.UNIFORM:
        meta = np.full(N_META_ACTIONS, 1.0 / N_META_ACTIONS)
        sizing[allowed] = 1.0 / allowed.sum()
    else:
        meta = rng.dirichlet(np.full(N_META_ACTIONS, config.skew_concentration))
        sizing[allowed] = rng.dirichlet(np.full(int(allowed.sum()), config.skew_concentration))
    return meta, sizing


def _truth_table(
    bars: PriceBars,
    decisions: Decisions,
    forward: NDArray[np.float64],
    true_direction: NDArray[np.int64],
    correct: NDArray[np.bool_],
    good_model: NDArray[np.int64],
    taken: NDArray[np.int64],
) -> pd.DataFrame:
    """What was planted at each decision point (``PlantedHistory.truth``)."""
    idx = decisions.bar_idx
    traded = np.zeros(idx.shape[0], dtype=np.bool_)
    traded[taken] = True
    truth = pd.DataFrame(
        {
            "symbol": np.asarray(bars.symbols, dtype=object)[bars.symbol_code[idx]],
            "ts": pd.to_datetime(bars.ts[idx]),
            "regime": names_of(Regime, decisions.regime),
            "forward_return": forward,
            "true_direction": true_direction.astype(np.int32),
            "good_model": names_of(Model, good_model),
        }
    )
    for m, column in enumerate(MODEL_COLUMNS):
        truth[f"correct_{column}"] = correct[:, m]
    truth["traded"] = traded
    return truth


def build_planted_history(
    candles: pd.DataFrame,
    config: PlantedConfig = PlantedConfig(),  # noqa: B008
) -> PlantedHistory:
    """Build a planted-signal history of ``candles`` (the demo's candle columns, any row
    order); deterministic for ``config.seed``. See the module docstring."""
    bars = prepare_bars(candles)
    idx = _decision_points(bars, config)
    if idx.size == 0:
        raise ValueError("candles: no decision point on the symbols PlantedConfig.symbols names")
    forecast_rng, correct_rng, preference_rng, behaviour_rng = np.random.default_rng(
        config.seed
    ).spawn(4)
    n = idx.shape[0]

    _, sigma, regime = decision_market(bars, idx)
    forward = bars.close[idx + config.horizon] / bars.close[idx] - 1.0
    true_direction = np.where(forward >= 0.0, 1, -1).astype(np.int64)
    latent = persistent_uniforms(
        correct_rng, bars.symbol_code[idx], len(Model), config.error_run_length
    )
    correct = latent < config.accuracy_table()[regime]
    strength = forecast_rng.standard_normal((n, len(Model)))
    decisions = Decisions(
        bar_idx=idx,
        regime=regime,
        sigma=sigma,
        direction=np.where(correct, true_direction[:, None], -true_direction[:, None]),
        confidence=noisy_confidence(forecast_rng, strength, config.confidence_noise),
        predicted_regime=predicted_regimes(
            forecast_rng, regime, (config.regime_error_rate,) * len(Model)
        ),
    )

    meta_probs, sizing_probs = behaviour_probs(config, preference_rng)
    meta_code = behaviour_rng.choice(N_META_ACTIONS, size=n, p=meta_probs).astype(np.int64)
    sizing_code = behaviour_rng.choice(N_SIZING_ACTIONS, size=n, p=sizing_probs).astype(np.int64)
    offered = behaviour_rng.random(n) < config.trade_fraction
    strategy, model, weight_action = meta_space.decode_arrays(meta_code)
    size_idx, leverage_idx = np.divmod(sizing_code, len(LEVERAGES))
    actions = Actions(
        strategy=strategy,
        model=model,
        weight_action=weight_action,
        size_idx=size_idx,
        leverage_idx=leverage_idx,
        prob=meta_probs[meta_code] * sizing_probs[sizing_code],
    )

    signals = signals_table(bars, decisions)
    policy = policy_table(int(bars.ts[idx[0]]), int(bars.ts.max()), config.rl_off)
    trades, positions, taken = book_trades(bars, decisions, actions, signals, policy, None, offered)
    logged = trades["action_prob"].notna().to_numpy()
    for column, probs in (
        ("meta_action_prob", meta_probs[meta_code[taken]]),
        ("sizing_action_prob", sizing_probs[sizing_code[taken]]),
    ):
        values = pd.array(probs, dtype="Float64")
        values[~logged] = pd.NA
        trades[column] = values
    good_model = config.good_models()[regime]
    truth = _truth_table(bars, decisions, forward, true_direction, correct, good_model, taken)
    return PlantedHistory(signals, trades, positions, policy, truth, meta_probs, sizing_probs)
