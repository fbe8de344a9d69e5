"""Shared domain vocabulary: regimes, strategies, models, weight actions (SPEC A2, A3)."""

from enum import IntEnum


class Regime(IntEnum):
    """Market regime; also the meta agent's strategy family (SPEC A2, A3)."""

    TREND = 0
    RANGE = 1
    BREAKOUT = 2
    MEAN_REVERSION = 3


Strategy = Regime
"""The four strategies are named after the regime each is built for (SPEC A3)."""


class Model(IntEnum):
    """Forecasting model whose signal the meta agent chooses to follow (SPEC A3)."""

    XGB = 0
    LGBM = 1
    NHITS = 2
    PATCHTST = 3


class WeightAction(IntEnum):
    """Weight adjustment the meta agent applies to the chosen strategy (SPEC A3)."""

    WEIGHT_UP = 0
    WEIGHT_DOWN = 1
    WEIGHT_HOLD = 2


SIZE_MULTIPLIERS: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 1.8)
"""Position-size multipliers of the sizing agent, in code order (SPEC A3)."""

LEVERAGES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
"""Leverage levels of the sizing agent, in code order (SPEC A3)."""

WEIGHT_EXPOSURE_SCALE: dict[WeightAction, float] = {
    WeightAction.WEIGHT_UP: 1.25,
    WeightAction.WEIGHT_HOLD: 1.0,
    WeightAction.WEIGHT_DOWN: 0.75,
}
"""Exposure scale of each weight action in the simulated replay (SPEC C default)."""
