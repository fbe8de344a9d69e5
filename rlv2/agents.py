"""SPEC A4-A5: the two agents and the episode tracker, usable one event at a time.

A live consumer (and the replay, which drives the same code) uses them as in SPEC A5:

1. ``signal.generated``: ``meta.set_current_state(features, key)``,
   ``meta.select_action(key)``, ``tracker.start_episode(key)``.
2. ``trade.executed``: ``sizing.set_current_state(features, key)``,
   ``sizing.set_executed_action(code, key)`` (and ``meta.set_executed_action`` if the
   system overrode the meta agent's choice).
3. ``position.closed``: ``meta.update(r_meta, next_features, key)``,
   ``sizing.update(r_sizing, next_features, key)``, ``tracker.add_step(key, ...)``,
   ``tracker.end_episode(key)``, then ``end_episode()`` on both agents (ε decay).

``key`` names one open decision (a signal or trade id): positions overlap, so each
agent keeps one pending (state, action) per key. ``key=None`` is the single-position
case of the original design. By SPEC C's default nothing is terminal: the TD target
bootstraps into the agent's next state, the state at close.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlv2.actions import MetaAction, SizingAction, meta_space, sizing_space
from rlv2.domain import Agent
from rlv2.qlearning import QLearner, discounted_return
from rlv2.states import META_STATE_SPACE, SIZING_STATE_SPACE, StateSpace

StateInput = Mapping[str, Any] | int


@dataclass
class _Pending:
    state: int
    action: int | None = None


class TabularAgent:
    """A Q-learning agent over one discrete state space and one action space."""

    name: str = "agent"

    def __init__(
        self,
        state_space: StateSpace,
        n_actions: int,
        learner: QLearner | None = None,
        **hyperparameters: Any,
    ) -> None:
        self.state_space = state_space
        self.learner = learner or QLearner(state_space.n_states, n_actions, **hyperparameters)
        if self.learner.q.shape != (state_space.n_states, n_actions):
            raise ValueError(
                f"{self.name}: Q-table shape {self.learner.q.shape} does not match "
                f"({state_space.n_states}, {n_actions})"
            )
        self._pending: dict[Hashable, _Pending] = {}
        self._n_updates = 0
        self._reward_sum = 0.0
        self._abs_td_sum = 0.0
        self._action_counts = np.zeros(n_actions, dtype=np.int64)

    @property
    def q(self) -> NDArray[np.float64]:
        """The Q-table, shape (n_states, n_actions)."""
        return self.learner.q

    @property
    def epsilon(self) -> float:
        """The current exploration rate."""
        return self.learner.epsilon

    def state_index(self, state: StateInput) -> int:
        """Encode raw features (a mapping named as in SPEC A2) or pass a state index through."""
        if isinstance(state, Mapping):
            return int(self.state_space.encode(state))
        index = int(state)
        if not 0 <= index < self.state_space.n_states:
            raise ValueError(f"{self.name}: state {index} out of range")
        return index

    def set_current_state(self, state: StateInput, key: Hashable = None) -> int:
        """Record the state of the decision ``key``; return its index."""
        index = self.state_index(state)
        self._pending[key] = _Pending(index)
        return index

    def _pending_for(self, key: Hashable) -> _Pending:
        try:
            return self._pending[key]
        except KeyError:
            raise KeyError(f"{self.name}: no current state for decision {key!r}") from None

    def select_action(self, key: Hashable = None) -> int:
        """Choose an action ε-greedily in the current state of ``key`` and record it."""
        pending = self._pending_for(key)
        pending.action = self.learner.select_action(pending.state)
        return pending.action

    def greedy_action(self, state: StateInput) -> int:
        """The best known action in a state, without exploring (what production serves)."""
        return self.learner.greedy_action(self.state_index(state))

    def set_executed_action(self, action: int, key: Hashable = None) -> None:
        """Record the action actually executed for ``key`` (it may differ from the selected)."""
        pending = self._pending_for(key)
        if not 0 <= int(action) < self.q.shape[1]:
            raise ValueError(f"{self.name}: action {action} out of range [0, {self.q.shape[1]})")
        pending.action = int(action)

    def update(
        self,
        reward: float,
        next_state: StateInput,
        key: Hashable = None,
        terminal: bool = False,
    ) -> float:
        """TD-update the pending (state, action) of ``key`` with its reward; return the TD error.

        The decision is closed afterwards. ``terminal=True`` stops bootstrapping.
        """
        pending = self._pending_for(key)
        if pending.action is None:
            raise ValueError(f"{self.name}: decision {key!r} has no action to update")
        s_next = self.state_index(next_state)
        td = self.learner.update(
            pending.state, pending.action, reward, s_next, done=True, terminal=terminal
        )
        del self._pending[key]
        self._n_updates += 1
        self._reward_sum += float(reward)
        self._abs_td_sum += abs(td)
        self._action_counts[pending.action] += 1
        return td

    def end_episode(self) -> None:
        """Decay ε after an episode (SPEC A4)."""
        self.learner.end_episode()

    def get_stats(self) -> dict[str, Any]:
        """Counters for logging: updates, ε, mean reward, mean |TD error|, coverage."""
        n = self._n_updates
        return {
            "agent": self.name,
            "n_updates": n,
            "epsilon": self.epsilon,
            "mean_reward": self._reward_sum / n if n else 0.0,
            "mean_abs_td_error": self._abs_td_sum / n if n else 0.0,
            "open_decisions": len(self._pending),
            "action_counts": self._action_counts.copy(),
            "visited_share": float(np.count_nonzero(self.q) / self.q.size),
        }


class MetaStrategyAgent(TabularAgent):
    """Picks strategy × model × weight action (48) from the meta-strategy state (SPEC A3)."""

    name = Agent.META_STRATEGY

    def __init__(
        self,
        state_space: StateSpace = META_STATE_SPACE,
        learner: QLearner | None = None,
        **hyperparameters: Any,
    ) -> None:
        super().__init__(state_space, meta_space.n, learner, **hyperparameters)

    def decode(self, action: int) -> MetaAction:
        """The (strategy, model, weight action) of an action code."""
        return meta_space.decode(action)


class PositionSizingAgent(TabularAgent):
    """Picks size multiplier × leverage (56) from the position-sizing state (SPEC A3)."""

    name = Agent.POSITION_SIZING

    def __init__(
        self,
        state_space: StateSpace = SIZING_STATE_SPACE,
        learner: QLearner | None = None,
        **hyperparameters: Any,
    ) -> None:
        super().__init__(state_space, sizing_space.n, learner, **hyperparameters)

    def decode(self, action: int) -> SizingAction:
        """The (size multiplier, leverage) of an action code."""
        return sizing_space.decode(action)


@dataclass(frozen=True)
class EpisodeStats:
    """Statistics of one closed episode."""

    key: Hashable
    n_steps: int
    rewards: dict[str, float]
    """Undiscounted reward sum per agent."""
    discounted_returns: dict[str, float]
    """``G_0 = Σ γ^k r_k`` per agent (SPEC A4)."""


@dataclass
class EpisodeTracker:
    """Manages episode lifecycles, accumulates rewards, owns the agents' Q-tables (SPEC A4)."""

    agents: dict[str, TabularAgent] = field(default_factory=dict[str, TabularAgent])
    gamma: float = 0.99
    _open: dict[Hashable, dict[str, list[float]]] = field(
        default_factory=dict[Hashable, dict[str, list[float]]], repr=False
    )
    _closed: list[EpisodeStats] = field(default_factory=list[EpisodeStats], repr=False)

    def start_episode(self, key: Hashable = None) -> None:
        """Open the episode ``key``; raise if it is already open."""
        if key in self._open:
            raise ValueError(f"episode {key!r} is already open")
        self._open[key] = {}

    def add_step(self, key: Hashable = None, **rewards: float) -> None:
        """Add one step's rewards, by agent name, to the open episode ``key``."""
        if key not in self._open:
            raise KeyError(f"episode {key!r} is not open")
        for agent, reward in rewards.items():
            if not np.isfinite(reward):
                raise ValueError(f"episode {key!r}: reward of {agent} is {reward!r}")
            self._open[key].setdefault(agent, []).append(float(reward))

    def end_episode(self, key: Hashable = None) -> EpisodeStats:
        """Close the episode ``key``: its reward sums and discounted returns per agent."""
        if key not in self._open:
            raise KeyError(f"episode {key!r} is not open")
        steps = self._open.pop(key)
        stats = EpisodeStats(
            key=key,
            n_steps=max((len(r) for r in steps.values()), default=0),
            rewards={a: float(np.sum(r)) for a, r in steps.items()},
            discounted_returns={a: discounted_return(r, self.gamma) for a, r in steps.items()},
        )
        self._closed.append(stats)
        return stats

    @property
    def episodes(self) -> list[EpisodeStats]:
        """Every closed episode, in closing order."""
        return list(self._closed)

    def get_episode_stats(self) -> dict[str, Any]:
        """Summary over closed episodes: count, open count, mean reward and return per agent."""
        out: dict[str, Any] = {"n_episodes": len(self._closed), "open_episodes": len(self._open)}
        names = sorted({a for e in self._closed for a in e.rewards})
        for a in names:
            rewards = [e.rewards[a] for e in self._closed if a in e.rewards]
            returns = [e.discounted_returns[a] for e in self._closed if a in e.discounted_returns]
            out[f"{a}_mean_reward"] = float(np.mean(rewards))
            out[f"{a}_mean_discounted_return"] = float(np.mean(returns))
        for a, agent in self.agents.items():
            out[f"{a}_epsilon"] = agent.epsilon
        return out

    def q_tables(self) -> dict[str, NDArray[np.float64]]:
        """The Q-tables of the tracked agents, by agent name."""
        return {name: agent.q for name, agent in self.agents.items()}

    def save(self, path: str | Path) -> Path:
        """Persist the Q-tables and ε of the tracked agents to one ``.npz`` file."""
        path = Path(path)
        arrays: dict[str, ArrayLike] = {}
        for name, agent in self.agents.items():
            arrays[f"{name}__q"] = agent.q
            arrays[f"{name}__epsilon"] = np.float64(agent.epsilon)
        np.savez(path, **arrays)  # type: ignore[arg-type]
        return path if path.suffix == ".npz" else path.with_suffix(path.suffix + ".npz")

    def load(self, path: str | Path) -> None:
        """Restore Q-tables and ε saved by ``save``; raise naming any mismatch."""
        with np.load(Path(path)) as data:
            for name, agent in self.agents.items():
                key = f"{name}__q"
                if key not in data:
                    raise ValueError(f"{path}: no Q-table for agent {name!r}")
                q = data[key]
                if q.shape != agent.q.shape:
                    raise ValueError(
                        f"{path}: Q-table of {name!r} has shape {q.shape}, "
                        f"agent has {agent.q.shape}"
                    )
                agent.q[...] = q
                agent.learner.epsilon = float(data[f"{name}__epsilon"])
