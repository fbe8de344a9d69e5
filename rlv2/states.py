"""SPEC A2 and C: the agents' state features, the regime rule, and the discrete state spaces.

Feature functions compute over the series they are given, exactly as in SPEC A2; the
caller chooses the window. A series too short for its formula gives a documented
neutral value, never NaN; NaN or infinite input raises ``ValueError``.
Each feature function takes a 1-D series (returns a float) or a 2-D batch of series of
equal length along the last axis (returns one value per row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlv2.domain import Agent, Regime
from rlv2.outcomes import INITIAL_EQUITY, MARGIN_FRACTION
from rlv2.rewards import FloatOrArray, finite_array

WINRATE_WINDOW = 20
"""Closed trades in the trailing win rate (SPEC A2)."""
VOLATILITY_WINDOW = 20
"""Bars the pipeline hands to ``volatility`` by default (SPEC C)."""
PRESSURE_WINDOW = 5
"""Bars the pipeline hands to ``market_pressure`` by default (SPEC C)."""
NEUTRAL_WINRATE = 0.5
"""Win rate when there are no trades yet (SPEC C)."""


def _series(name: str, values: ArrayLike) -> NDArray[np.float64]:
    arr = finite_array(name, values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D (a batch of series), got {arr.ndim}-D")
    return arr


def _positive_prices(name: str, prices: ArrayLike) -> NDArray[np.float64]:
    p = _series(name, prices)
    if np.any(p <= 0.0):
        raise ValueError(f"{name} must be positive, got a value <= 0")
    return p


def _out(arr: NDArray[np.float64] | np.floating[Any] | float) -> FloatOrArray:
    a = np.asarray(arr, dtype=np.float64)
    return float(a) if a.ndim == 0 else a


def trailing_winrate(pnls: ArrayLike, window: int = WINRATE_WINDOW) -> FloatOrArray:
    """Share of winning trades (``pnl_pct > 0``) among the last ``window`` closed trades.

    No trades gives the neutral 0.5.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    p = _series("pnls", pnls)
    if p.shape[-1] == 0:
        return _out(np.full(p.shape[:-1], NEUTRAL_WINRATE))
    last = p[..., -window:]
    return _out((last > 0.0).mean(axis=-1))


def returns_of(prices: ArrayLike) -> NDArray[np.float64]:
    """Simple returns ``diff(prices) / prices[:-1]`` of a price series (SPEC A2)."""
    p = _positive_prices("prices", prices)
    return np.diff(p, axis=-1) / p[..., :-1]


def volatility(prices: ArrayLike) -> FloatOrArray:
    """Population std of simple returns of ``prices`` (SPEC A2); under 2 prices gives 0."""
    p = _positive_prices("prices", prices)
    if p.shape[-1] < 2:
        return _out(np.zeros(p.shape[:-1]))
    return _out(returns_of(p).std(axis=-1))


def equity_curve_slope(equity: ArrayLike) -> FloatOrArray:
    """Least-squares slope of equity against its index, over ``mean(equity)`` (SPEC A2).

    ``(n*Σxy - Σx*Σy) / (n*Σx² - (Σx)²) / mean(equity)`` with ``x = 0..n-1``. Under 2
    points, or a mean equity of 0, gives 0.
    """
    y = _series("equity", equity)
    n = y.shape[-1]
    if n < 2:
        return _out(np.zeros(y.shape[:-1]))
    x = np.arange(n, dtype=np.float64)
    sx, sxx = x.sum(), (x * x).sum()
    sy = y.sum(axis=-1)
    sxy = (y * x).sum(axis=-1)
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    mean = sy / n
    safe = np.where(mean != 0.0, mean, 1.0)
    return _out(np.where(mean != 0.0, slope / safe, 0.0))


def market_pressure(prices: ArrayLike) -> FloatOrArray:
    """Buy/sell pressure ``tanh(20 * (p[-1] - p[-5]) / p[-5])`` in [-1, 1] (SPEC A2).

    Under 5 prices gives 0.
    """
    p = _positive_prices("prices", prices)
    if p.shape[-1] < 5:
        return _out(np.zeros(p.shape[:-1]))
    change = (p[..., -1] - p[..., -5]) / p[..., -5]
    return _out(np.tanh(change * 20.0))


def account_health(equity: ArrayLike) -> FloatOrArray:
    """Drawdown-based account health: current equity over its running peak, in [0, 1].

    1.0 at a new equity high, 0.8 in a 20 % drawdown. No history gives 1.0. Equity
    must be positive (it is the account's value, not its cumulative pnl).
    """
    e = _series("equity", equity)
    if e.shape[-1] == 0:
        return _out(np.ones(e.shape[:-1]))
    if np.any(e <= 0.0):
        raise ValueError("equity must be positive (account value), got a value <= 0")
    return _out(e[..., -1] / e.max(axis=-1))


@dataclass(frozen=True)
class RegimeRule:
    """Thresholds of the regime rule (SPEC C); see ``label_regime``."""

    breakout_k: float = 2.0
    """A new extreme whose last return exceeds this many times the typical earlier move."""
    trend_efficiency: float = 0.5
    """Kaufman efficiency ratio at or above which the window is a TREND."""
    reversion_z: float = 1.5
    """|last price − mean| / std of prices at or above which it is MEAN_REVERSION."""


@dataclass(frozen=True)
class FeatureConfig:
    """Windows and rules of the feature SQL (SPEC A2, C); every field is configurable."""

    lookback_bars: int = VOLATILITY_WINDOW
    """Bars in a state window: volatility and the regime label (SPEC C)."""
    pressure_bars: int = PRESSURE_WINDOW
    """Bars for market pressure, ``p[-1]`` against ``p[-pressure_bars]`` (SPEC C)."""
    winrate_window: int = WINRATE_WINDOW
    """Closed trades in the trailing win rate, Sharpe signal and equity slope (SPEC A2)."""
    regime_rule: RegimeRule = field(default_factory=RegimeRule)
    """Thresholds of the regime rule (``rlv2.states.label_regime``)."""
    initial_equity: float = INITIAL_EQUITY
    """Equity before the first trade."""
    margin_fraction: float = MARGIN_FRACTION
    """Margin each position puts up, as a fraction of the equity; each close compounds the
    equity by ``1 + margin_fraction · pnl_pct / 100``, which keeps it positive."""

    def __post_init__(self) -> None:
        if self.pressure_bars > self.lookback_bars:
            raise ValueError(
                f"pressure_bars={self.pressure_bars} must not exceed "
                f"lookback_bars={self.lookback_bars}"
            )
        for name in ("lookback_bars", "pressure_bars", "winrate_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0.0 < self.margin_fraction <= 1.0:
            raise ValueError(f"margin_fraction={self.margin_fraction} must be in (0, 1]")
        if not self.initial_equity > 0.0:
            raise ValueError(f"initial_equity={self.initial_equity} must be > 0")


def efficiency_ratio(prices: ArrayLike) -> FloatOrArray:
    """Kaufman efficiency ratio ``|p[-1] - p[0]| / Σ|Δp|`` in [0, 1]; flat or short gives 0."""
    p = _positive_prices("prices", prices)
    if p.shape[-1] < 2:
        return _out(np.zeros(p.shape[:-1]))
    path = np.abs(np.diff(p, axis=-1)).sum(axis=-1)
    net = np.abs(p[..., -1] - p[..., 0])
    safe = np.where(path > 0.0, path, 1.0)
    return _out(np.where(path > 0.0, net / safe, 0.0))


def label_regime(prices: ArrayLike, rule: RegimeRule | None = None) -> Regime | NDArray[np.int64]:
    """Label a price window TREND / RANGE / BREAKOUT / MEAN_REVERSION (SPEC A2, C).

    The rule, in order of precedence, over the window ``p`` (at least 3 prices,
    else RANGE), with returns ``r = diff(p) / p[:-1]``:

    1. BREAKOUT: the last price is a new extreme of the window (above ``max(p[:-1])``
       or below ``min(p[:-1])``) and ``|r[-1]| > breakout_k * rms(r[:-1])``, where
       ``rms = sqrt(mean(r²))`` is the typical size of the earlier moves (a steady trend
       makes new highs too, but with moves of its usual size).
    2. TREND: efficiency ratio ``|p[-1] - p[0]| / Σ|Δp| >= trend_efficiency``.
    3. MEAN_REVERSION: ``|p[-1] - mean(p)| >= reversion_z * std(p)`` with ``std(p) > 0``:
       stretched from its mean without a trend, so expected to revert.
    4. RANGE otherwise.

    For the state, the pipeline passes only bars known at decision time; for the
    reward's "actual regime" it passes the bars of the holding period. A 1-D window
    gives a ``Regime``; a 2-D batch gives an int array of regime codes.
    """
    rule = rule or RegimeRule()
    p = _positive_prices("prices", prices)
    batch = p if p.ndim == 2 else p.reshape(1, -1)
    n = batch.shape[-1]
    codes = np.full(batch.shape[0], Regime.RANGE.value, dtype=np.int64)
    if n >= 3:
        r = np.diff(batch, axis=-1) / batch[:, :-1]
        prior_rms = np.sqrt((r[:, :-1] ** 2).mean(axis=-1))
        new_extreme = (batch[:, -1] > batch[:, :-1].max(axis=-1)) | (
            batch[:, -1] < batch[:, :-1].min(axis=-1)
        )
        breakout = new_extreme & (np.abs(r[:, -1]) > rule.breakout_k * prior_rms)
        trend = np.asarray(efficiency_ratio(batch)) >= rule.trend_efficiency
        std_p = batch.std(axis=-1)
        stretched = (std_p > 0.0) & (
            np.abs(batch[:, -1] - batch.mean(axis=-1)) >= rule.reversion_z * std_p
        )
        codes = np.select(
            [breakout, trend, stretched],
            [Regime.BREAKOUT.value, Regime.TREND.value, Regime.MEAN_REVERSION.value],
            Regime.RANGE.value,
        ).astype(np.int64)
    if p.ndim == 1:
        return Regime(int(codes[0]))
    return codes


@dataclass(frozen=True)
class Feature:
    """One dimension of a state space: a continuous feature binned by edges, or a category.

    Bins of a continuous feature are half-open ``[edges[i-1], edges[i])``: bin ``i`` holds
    the values with exactly ``i`` edges at or below them. A categorical feature takes
    integer codes ``0..n_categories-1``.
    """

    name: str
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.edges) == bool(self.categories):
            raise ValueError(f"feature {self.name!r}: give either edges or categories")
        if self.edges and any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"feature {self.name!r}: edges must increase, got {self.edges}")

    @property
    def n_bins(self) -> int:
        """Number of bins (or categories) of this feature."""
        return len(self.categories) if self.categories else len(self.edges) + 1

    def bin(self, values: ArrayLike) -> NDArray[np.int64]:
        """Return the bin index of each value."""
        if self.categories:
            raw = np.asarray(values, dtype=object)
            if raw.size and isinstance(raw.ravel()[0], str):
                lookup = {c: i for i, c in enumerate(self.categories)}
                unknown = [x for x in raw.ravel() if x not in lookup]
                if unknown:
                    raise ValueError(f"{self.name}: unknown category {unknown[0]!r}")
                return np.asarray([lookup[x] for x in raw.ravel()], np.int64).reshape(raw.shape)
        v = finite_array(self.name, values)
        if self.categories:
            codes = v.astype(np.int64)
            if np.any((codes != v) | (codes < 0) | (codes >= self.n_bins)):
                raise ValueError(
                    f"{self.name}: category codes must be integers in [0, {self.n_bins})"
                )
            return codes
        return np.searchsorted(np.asarray(self.edges), v, side="right").astype(np.int64)

    def label(self, b: int) -> str:
        """Human-readable label of bin ``b``."""
        if self.categories:
            return f"{self.name}={self.categories[b]}"
        lo = self.edges[b - 1] if b > 0 else None
        hi = self.edges[b] if b < len(self.edges) else None
        if lo is None:
            return f"{self.name}<{hi:g}"
        if hi is None:
            return f"{self.name}>={lo:g}"
        return f"{lo:g}<={self.name}<{hi:g}"


class StateSpaceArrays(NamedTuple):
    """A state space as flat arrays, for ``encode_state`` in compiled code."""

    edges: NDArray[np.float64]
    """(features, max edges) bin edges, padded with +inf."""
    n_edges: NDArray[np.int64]
    categorical: NDArray[np.bool_]
    radix: NDArray[np.int64]


@numba.njit(cache=True, nogil=True)
def encode_state(
    values: NDArray[np.float64],
    edges: NDArray[np.float64],
    n_edges: NDArray[np.int64],
    categorical: NDArray[np.bool_],
    radix: NDArray[np.int64],
) -> int:
    """``StateSpace.encode`` of one state vector (features in digit order), compiled."""
    index = 0
    for f in range(values.shape[0]):
        if categorical[f]:
            b = int(values[f])
        else:
            b = 0
            for e in range(n_edges[f]):
                if edges[f, e] <= values[f]:
                    b += 1
        index += b * radix[f]
    return index


@dataclass(frozen=True)
class StateSpace:
    """A discrete state space: the mixed-radix code of its features' bins (SPEC C).

    The first feature is the most significant digit:
    ``index = Σ_i bin_i * Π_{j>i} n_bins_j``.
    """

    name: str
    features: tuple[Feature, ...]
    _radix: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sizes = [f.n_bins for f in self.features]
        radix = [int(np.prod(sizes[i + 1 :])) for i in range(len(sizes))]
        object.__setattr__(self, "_radix", tuple(radix))

    @property
    def n_states(self) -> int:
        """Number of discrete states."""
        return int(np.prod([f.n_bins for f in self.features]))

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the raw features, in digit order."""
        return tuple(f.name for f in self.features)

    def bins(self, features: Mapping[str, ArrayLike]) -> dict[str, NDArray[np.int64]]:
        """Bin each raw feature; raise naming any missing feature."""
        missing = [f.name for f in self.features if f.name not in features]
        if missing:
            raise ValueError(f"{self.name} state: missing features {missing}")
        return {f.name: f.bin(features[f.name]) for f in self.features}

    def encode(self, features: Mapping[str, ArrayLike]) -> int | NDArray[np.int64]:
        """Map raw feature values (scalars or equal-length arrays) to state indices."""
        return self.encode_bins(self.bins(features))

    def encode_bins(self, bins: Mapping[str, ArrayLike]) -> int | NDArray[np.int64]:
        """Map per-feature bin indices to state indices."""
        index: NDArray[np.int64] | int = 0
        for f, radix in zip(self.features, self._radix, strict=True):
            b = np.asarray(bins[f.name], dtype=np.int64)
            if np.any((b < 0) | (b >= f.n_bins)):
                raise ValueError(f"{f.name}: bin out of range [0, {f.n_bins})")
            index = index + b * radix
        arr = np.asarray(index, dtype=np.int64)
        return int(arr) if arr.ndim == 0 else arr

    def decode(self, index: ArrayLike) -> dict[str, Any]:
        """Map state indices back to per-feature bin indices."""
        idx = np.asarray(index, dtype=np.int64)
        if np.any((idx < 0) | (idx >= self.n_states)):
            raise ValueError(f"{self.name} state index out of range [0, {self.n_states})")
        out: dict[str, Any] = {}
        for f, radix in zip(self.features, self._radix, strict=True):
            b = (idx // radix) % f.n_bins
            out[f.name] = int(b) if b.ndim == 0 else b
        return out

    @cached_property
    def kernel_arrays(self) -> StateSpaceArrays:
        """The space as flat arrays for ``encode_state`` in compiled code (same bins)."""
        width = max([len(f.edges) for f in self.features] + [1])
        edges = np.full((len(self.features), width), np.inf)
        n_edges = np.zeros(len(self.features), np.int64)
        categorical = np.zeros(len(self.features), bool)
        for i, f in enumerate(self.features):
            edges[i, : len(f.edges)] = f.edges
            n_edges[i] = len(f.edges)
            categorical[i] = bool(f.categories)
        return StateSpaceArrays(edges, n_edges, categorical, np.asarray(self._radix, np.int64))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (name, features with edges or categories)."""
        return {
            "name": self.name,
            "features": [
                {"name": f.name, "edges": list(f.edges), "categories": list(f.categories)}
                for f in self.features
            ],
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> StateSpace:
        """Rebuild a state space from ``to_dict``'s output."""
        features = tuple(
            Feature(f["name"], edges=tuple(f["edges"]), categories=tuple(f["categories"]))
            for f in spec["features"]
        )
        return cls(str(spec["name"]), features)

    def label(self, index: int) -> str:
        """Readable description of one state, e.g. ``regime=TREND, volatility<0.01, ...``."""
        bins = self.decode(index)
        return ", ".join(f.label(int(bins[f.name])) for f in self.features)


REGIME_FEATURE = Feature("regime", categories=tuple(r.name for r in Regime))

DEFAULT_META_EDGES: dict[str, tuple[float, ...]] = {
    "volatility": (0.01, 0.03),
    "market_pressure": (-0.33, 0.33),
    "confidence": (0.5, 0.7),
    "previous_winrate": (0.4, 0.6),
    "account_health": (0.8, 0.95),
}
"""Default bin edges of the meta-strategy state (3 bins each; 4 × 3⁵ = 972 states).

volatility at SPEC A1's optimal band; pressure sell / neutral / buy; confidence
low / mid / high; win rate losing / even / winning; health: drawdown deeper than
20 %, 5-20 %, under 5 %.
"""

DEFAULT_SIZING_EDGES: dict[str, tuple[float, ...]] = {
    "signal_confidence": (0.5, 0.7),
    "portfolio_exposure": (0.5, 1.0),
    "recent_winrate": (0.4, 0.6),
    "volatility": (0.01, 0.03),
    "equity_curve_slope": (-0.0005, 0.0005),
}
"""Default bin edges of the position-sizing state (3 bins each; 3⁵ = 243 states).

Exposure at SPEC A1's 0.5 penalty threshold and at 1× equity; the equity slope is per
trade, relative to mean equity (falling / flat / rising).
"""


FEATURE_RANGES: dict[str, tuple[float, float]] = {
    "volatility": (0.0, float("inf")),
    "market_pressure": (-1.0, 1.0),
    "confidence": (0.0, 1.0),
    "previous_winrate": (0.0, 1.0),
    "account_health": (0.0, 1.0),
    "signal_confidence": (0.0, 1.0),
    "portfolio_exposure": (0.0, float("inf")),
    "recent_winrate": (0.0, 1.0),
    "equity_curve_slope": (float("-inf"), float("inf")),
}
"""The closed range every raw continuous feature can take (SPEC A2, C), bounds included.

Volatility is a standard deviation, exposure a notional over equity (both >= 0);
pressure is a tanh; confidence (the contract's ``CHECK``), win rates and account health
(equity over its peak) are fractions; the equity slope may be any finite number. A
value outside its range was not computed by SPEC A2's formulas.
"""


def meta_state_features(
    regime: Any,
    volatility: Any,
    market_pressure: Any,
    confidence: Any,
    previous_winrate: Any,
    account_health: Any,
) -> dict[str, Any]:
    """The meta-strategy state's raw features (SPEC A2), scalars or arrays, by name."""
    return {
        "regime": regime,
        "volatility": volatility,
        "market_pressure": market_pressure,
        "confidence": confidence,
        "previous_winrate": previous_winrate,
        "account_health": account_health,
    }


def sizing_state_features(
    signal_confidence: Any,
    portfolio_exposure: Any,
    recent_winrate: Any,
    volatility: Any,
    equity_curve_slope: Any,
) -> dict[str, Any]:
    """The position-sizing state's raw features (SPEC A2), scalars or arrays, by name."""
    return {
        "signal_confidence": signal_confidence,
        "portfolio_exposure": portfolio_exposure,
        "recent_winrate": recent_winrate,
        "volatility": volatility,
        "equity_curve_slope": equity_curve_slope,
    }


@numba.njit(cache=True, nogil=True)
def meta_state_vector(
    out: NDArray[np.float64],
    regime: float,
    volatility: float,
    market_pressure: float,
    confidence: float,
    previous_winrate: float,
    account_health: float,
) -> NDArray[np.float64]:
    """``meta_state_features`` as a vector in digit order, for compiled code; fills ``out``."""
    out[0] = regime
    out[1] = volatility
    out[2] = market_pressure
    out[3] = confidence
    out[4] = previous_winrate
    out[5] = account_health
    return out


@numba.njit(cache=True, nogil=True)
def sizing_state_vector(
    out: NDArray[np.float64],
    signal_confidence: float,
    portfolio_exposure: float,
    recent_winrate: float,
    volatility: float,
    equity_curve_slope: float,
) -> NDArray[np.float64]:
    """``sizing_state_features`` as a vector in digit order, for compiled code; fills ``out``."""
    out[0] = signal_confidence
    out[1] = portfolio_exposure
    out[2] = recent_winrate
    out[3] = volatility
    out[4] = equity_curve_slope
    return out


def meta_state_space(edges: Mapping[str, Sequence[float]] | None = None) -> StateSpace:
    """The meta-strategy state space (SPEC A2): regime × five binned features."""
    merged = {**DEFAULT_META_EDGES, **{k: tuple(v) for k, v in (edges or {}).items()}}
    unknown = set(merged) - set(DEFAULT_META_EDGES)
    if unknown:
        raise ValueError(f"meta state: unknown features {sorted(unknown)}")
    feats = [Feature(name, edges=tuple(merged[name])) for name in DEFAULT_META_EDGES]
    return StateSpace(Agent.META_STRATEGY, (REGIME_FEATURE, *feats))


def sizing_state_space(edges: Mapping[str, Sequence[float]] | None = None) -> StateSpace:
    """The position-sizing state space (SPEC A2): five binned features."""
    merged = {**DEFAULT_SIZING_EDGES, **{k: tuple(v) for k, v in (edges or {}).items()}}
    unknown = set(merged) - set(DEFAULT_SIZING_EDGES)
    if unknown:
        raise ValueError(f"sizing state: unknown features {sorted(unknown)}")
    feats = [Feature(name, edges=tuple(merged[name])) for name in DEFAULT_SIZING_EDGES]
    return StateSpace(Agent.POSITION_SIZING, tuple(feats))


META_STATE_SPACE = meta_state_space()
"""The meta-strategy state space with the default edges (972 states)."""
SIZING_STATE_SPACE = sizing_state_space()
"""The position-sizing state space with the default edges (243 states)."""
