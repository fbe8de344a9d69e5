"""Baseline "naive": Q-learning the way a per-event pure-Python trading bot does it.

A dict Q-table keyed by state strings, each state a dict keyed by action names; the
greedy action by Python's ``max`` over that dict, a tie broken by a draw among the tied
names; one event at a time in plain Python.
It draws from the same splitmix64 stream as rlv2 (here in Python integers) in the same
ε-greedy sequence, and does the same floating-point operations in the same order, so
its Q-table equals rlv2's bit for bit and the benchmark checks that it does.

Its events arrive as a bot receives them: keys already built, the rewards of the
actions as a dict. Building them is data preparation, never timed. The same events feed
``DictAccumulator``, the full-information learner's sums kept in dicts (stage 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bench.workloads import Case, Events, Hyper

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class SplitMix64:
    """rlv2's generator (``rlv2.rng.next_u64``) in plain Python integers."""

    def __init__(self, seed: int) -> None:
        self.state = seed

    def next_u64(self) -> int:
        """Advance the state and return 64 random bits."""
        self.state = (self.state + _GOLDEN) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def uniform(self) -> float:
        """A float uniform on [0, 1) from the top 53 bits."""
        return (self.next_u64() >> 11) * 2.0**-53

    def randint(self, n: int) -> int:
        """An integer uniform on [0, n)."""
        return self.next_u64() % n


@dataclass(frozen=True)
class BotEvent:
    """One event as the bot sees it."""

    state: str
    rewards: dict[str, float]
    """Reward of each action, by action name."""
    next_state: str
    done: bool


class DictQLearner:
    """A tabular Q-learner over a dict of dicts, one event at a time."""

    def __init__(self, case: Case, hyper: Hyper, seed: int) -> None:
        self.actions = list(case.action_labels)
        self.q = {key: dict.fromkeys(self.actions, 0.0) for key in case.state_keys()}
        self.alpha = hyper.alpha
        self.gamma = hyper.gamma
        self.epsilon = hyper.epsilon
        self.epsilon_decay = hyper.epsilon_decay
        self.epsilon_min = hyper.epsilon_min
        self.rng = SplitMix64(seed)

    def select_action(self, state: str) -> str:
        """ε-greedy: explore with probability ε, else an action of highest Q (ties drawn)."""
        if self.rng.uniform() < self.epsilon:
            return self.actions[self.rng.randint(len(self.actions))]
        values = self.q[state]
        best = max(values.values())
        tied = [action for action, value in values.items() if value == best]
        return tied[self.rng.randint(len(tied))] if len(tied) > 1 else tied[0]

    def update(self, state: str, action: str, reward: float, next_state: str, done: bool) -> None:
        """Move Q(state, action) toward the TD target."""
        target = reward if done else reward + self.gamma * max(self.q[next_state].values())
        old = self.q[state][action]
        self.q[state][action] = old + self.alpha * (target - old)

    def end_episode(self) -> None:
        """Decay ε."""
        self.epsilon = max(self.epsilon * self.epsilon_decay, self.epsilon_min)

    def q_array(self) -> NDArray[np.float64]:
        """The Q-table as an (S, A) array in state-index and action-code order."""
        return np.array([list(row.values()) for row in self.q.values()], dtype=np.float64)


class DictAccumulator:
    """The full-information learner's per-state sums kept the way a bot would: dicts."""

    def __init__(self, case: Case) -> None:
        keys = case.state_keys()
        self.sums = {key: dict.fromkeys(case.action_labels, 0.0) for key in keys}
        self.counts = dict.fromkeys(keys, 0.0)

    def update(self, event: BotEvent) -> None:
        """Add every action's reward of the event to its state's sums; count the event."""
        row = self.sums[event.state]
        for action, reward in event.rewards.items():
            row[action] += reward
        self.counts[event.state] += 1.0

    def arrays(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Sums (S, A) and counts (S,) in state-index and action-code order."""
        sums = np.array([list(row.values()) for row in self.sums.values()], dtype=np.float64)
        return sums, np.array(list(self.counts.values()), dtype=np.float64)


def bot_events(case: Case, events: Events) -> list[BotEvent]:
    """The events as the bot receives them (data preparation, not timed)."""
    keys = case.state_keys()
    actions = case.action_labels
    return [
        BotEvent(keys[s], dict(zip(actions, row, strict=True)), keys[s_next], bool(done))
        for s, row, s_next, done in zip(
            events.states.tolist(),
            events.rewards.tolist(),
            events.next_states.tolist(),
            events.dones.tolist(),
            strict=True,
        )
    ]


def run_bot(learner: DictQLearner, stream: list[BotEvent]) -> None:
    """Feed every event to the learner: select, learn, close the episode."""
    for event in stream:
        action = learner.select_action(event.state)
        learner.update(event.state, action, event.rewards[action], event.next_state, event.done)
        if event.done:
            learner.end_episode()


def run_accumulator(accumulator: DictAccumulator, stream: list[BotEvent]) -> None:
    """Feed every event to the accumulator."""
    for event in stream:
        accumulator.update(event)
