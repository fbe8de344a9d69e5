"""Shared domain vocabulary (SPEC A2, A3, C) and the one table of the two agents.

Everything that names an agent, a regime, a model, a replay mode or a policy is an
enum here; every per-agent fact (state space, action space, registered model name,
seed offset, reward metric) is a row of :data:`AGENT_SPECS`, and every other module
asks that table instead of comparing names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, TypeVar


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


class Agent(StrEnum):
    """The two agents of SPEC A; the value is the name used in the CLI, MLflow and logs."""

    META_STRATEGY = "meta_strategy"
    POSITION_SIZING = "position_sizing"


class ReplayMode(StrEnum):
    """How a replay trains: on the logged actions, or exploring with counterfactual rewards."""

    LOGGED = "logged"
    """Off-policy Q-learning on the actions the system took."""
    EXPLORE = "explore"
    """ε-greedy over every action, each action's reward from the price path (SPEC C)."""


class Policy(StrEnum):
    """How an agent picks its action in a simulated replay."""

    EGREEDY = "egreedy"
    """ε-greedy on its Q-table, learning (training)."""
    GREEDY = "greedy"
    """The argmax of its Q-table (evaluating a Q-table)."""
    LOGGED = "logged"
    """The behaviour policy's own logged action (evaluating the behaviour)."""


class Learner(StrEnum):
    """How an agent's Q-table is learned from the replay (SPEC A4, C "Learners")."""

    Q_LEARNING = "q-learning"
    """SPEC A4 as written: ε-greedy, one action updated per event, α, γ, the ε schedule."""
    FULL_INFORMATION = "full-information"
    """Every action of the visited state from its counterfactual reward, shrunk toward
    coarser states (``rlv2.full_information``); needs the exploring mode."""


class EpisodeGrouping(StrEnum):
    """What one episode is (SPEC C): ε decays and statistics close at each episode end."""

    POSITION = "position"
    """One position lifecycle (SPEC A5, the default)."""
    DAY = "day"
    """All positions closed on one calendar day."""
    TRADES = "trades"
    """Every N closed positions (written ``trades:N``)."""


_E = TypeVar("_E", bound=StrEnum)


def parse_enum(enum: type[_E], value: str, what: str) -> _E:
    """``enum(value)``, or a ValueError naming ``what`` and the allowed values."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ValueError(f"{what}={value!r}: expected one of {allowed}") from None


def parse_episode(episode: str) -> tuple[EpisodeGrouping, int]:
    """Split an episode window (``position``, ``day`` or ``trades:N``) into grouping and N."""
    name, sep, size = episode.partition(":")
    if name == EpisodeGrouping.TRADES and sep and size.isdigit() and int(size) >= 1:
        return EpisodeGrouping.TRADES, int(size)
    if name in (EpisodeGrouping.POSITION, EpisodeGrouping.DAY) and not sep:
        return EpisodeGrouping(name), 1
    raise ValueError(f"episode={episode!r}: expected 'position', 'day' or 'trades:N' with N >= 1")


@dataclass(frozen=True)
class AgentSpec:
    """Everything that differs between the two agents, in one row."""

    agent: Agent
    state_space: StateSpace
    """The SPEC A2 state space with the default bins (a run may configure others)."""
    action_space: MetaActionSpace | SizingActionSpace
    """The SPEC A3 action space."""
    model_name: str
    """Name of the agent's registered model in MLflow."""
    seed_offset: int
    """Added to a run's seed for this agent's random stream."""
    reward_metric: str
    """Its own SPEC A1 reward, per trade, in a simulation's records (the gate's metric)."""
    mean_reward_metric: str
    """Its own reward's mean in a simulation's metrics (``rlv2.evaluation.policy_metrics``)."""
    backoff_levels: tuple[tuple[str, ...], ...]
    """Coarser states the full-information learner shrinks toward, coarsest first."""

    @property
    def n_actions(self) -> int:
        """Size of the action space."""
        return self.action_space.n


if TYPE_CHECKING:
    from rlv2.actions import MetaActionSpace, SizingActionSpace
    from rlv2.states import StateSpace

# The spaces are built from the enums above, so their modules import this one; importing
# them only now (rlv2/__init__ imports this module first) keeps that cycle harmless.
from rlv2.actions import meta_space, sizing_space  # noqa: E402
from rlv2.states import META_STATE_SPACE, SIZING_STATE_SPACE  # noqa: E402

AGENT_SPECS: dict[Agent, AgentSpec] = {
    Agent.META_STRATEGY: AgentSpec(
        Agent.META_STRATEGY,
        META_STATE_SPACE,
        meta_space,
        model_name="rlv2-meta-strategy",
        seed_offset=0,
        reward_metric="meta_reward",
        mean_reward_metric="meta_mean_reward",
        backoff_levels=(("regime",),),
    ),
    Agent.POSITION_SIZING: AgentSpec(
        Agent.POSITION_SIZING,
        SIZING_STATE_SPACE,
        sizing_space,
        model_name="rlv2-position-sizing",
        seed_offset=1,
        reward_metric="sizing_reward",
        mean_reward_metric="sizing_mean_reward",
        backoff_levels=(("portfolio_exposure",),),
    ),
}
"""The agents' table (SPEC A2, A3): every per-agent fact lives here."""


def agent_spec(agent: str) -> AgentSpec:
    """The table row of an agent given by enum or name; a ValueError names the choices."""
    return AGENT_SPECS[parse_enum(Agent, agent, "agent")]
