"""What training data stood behind each state of a Q-table, and what an unvisited one answers.

A served policy answers every state, visited in training or not. ``Coverage`` records,
per state, how many training events visited it and which learner made the table, so an
answer can say how much data stood behind it and, for an unvisited state, which fallback
gave its value:

- ``none``: the state was visited; its own events (shrunk toward the coarser levels by
  the full-information learner) gave the value.
- a back-off level such as ``regime`` or ``portfolio_exposure`` (the full-information
  learner, ``AgentSpec.backoff_levels``): the finest coarser level whose group holds
  events; an unvisited state's value is that level's estimate
  (``rlv2.full_information.shrink``).
- ``global``: no group of any level holds events, only the window as a whole.
- ``initial``: nothing learned: SPEC A4's learner leaves an unvisited state's row at its
  initial value (zeros, or the warm-start table), as does any learner without events.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlv2.domain import Learner, parse_enum
from rlv2.full_information import coarse_keys
from rlv2.states import StateSpace

VISITED = "none"
"""Fallback of a visited state: none, its own events answer."""
GLOBAL = "global"
"""Fallback of an unvisited state whose back-off levels hold no events: the whole window."""
INITIAL = "initial"
"""Fallback of an unvisited state whose row was never learned (the table's initial value)."""


@dataclass(frozen=True, eq=False)  # == on the counts array would be ambiguous; compare sha256()
class Coverage:
    """Training events per state of a Q-table and the learner that made it."""

    visits: NDArray[np.int64]
    """Training events in each state (one per state, in state order)."""
    learner: Learner
    """The learner that made the table (``rlv2.domain.Learner``)."""
    backoff_levels: tuple[tuple[str, ...], ...] = ()
    """The coarser levels the full-information learner shrinks toward, coarsest first."""

    @classmethod
    def of_events(
        cls,
        states: ArrayLike,
        n_states: int,
        learner: str,
        backoff_levels: Sequence[Sequence[str]] = (),
    ) -> Coverage:
        """The coverage of a table trained on the events in ``states``."""
        visits = np.bincount(np.asarray(states, np.int64), minlength=n_states).astype(np.int64)
        kind = parse_enum(Learner, str(learner), "learner")
        levels = tuple(tuple(level) for level in backoff_levels)
        return cls(visits, kind, levels if kind is Learner.FULL_INFORMATION else ())

    def check(self, state_space: StateSpace, source: str) -> None:
        """Raise ``ValueError`` naming ``source`` unless the counts fit the state space."""
        if self.visits.dtype != np.int64 or self.visits.shape != (state_space.n_states,):
            raise ValueError(
                f"{source}: visit counts of dtype {self.visits.dtype} and shape "
                f"{self.visits.shape}, expected int64 ({state_space.n_states},); refused"
            )
        if np.any(self.visits < 0):
            raise ValueError(f"{source}: negative visit counts; refused")
        for level in self.backoff_levels:
            coarse_keys(state_space, level)

    def to_config(self) -> dict[str, Any]:
        """The learner and back-off levels as JSON-ready items of a model's config."""
        levels = [list(level) for level in self.backoff_levels]
        return {"learner": str(self.learner), "backoff_levels": levels}

    @classmethod
    def from_config(cls, visits: NDArray[np.int64], config: Mapping[str, Any]) -> Coverage:
        """Rebuild a coverage from its counts and ``to_config``'s items."""
        learner = parse_enum(Learner, str(config.get("learner")), "learner")
        levels = tuple(tuple(str(f) for f in level) for level in config.get("backoff_levels", []))
        return cls(visits, learner, levels)

    def sha256(self) -> str:
        """Digest of the counts, the learner and the levels: what a model's load verifies."""
        arr = np.ascontiguousarray(self.visits, dtype="<i8")
        header = json.dumps({"shape": list(arr.shape), **self.to_config()}, sort_keys=True)
        digest = hashlib.sha256(header.encode())
        digest.update(arr.tobytes())
        return digest.hexdigest()

    def answers(self, state_space: StateSpace) -> tuple[NDArray[np.object_], NDArray[np.int64]]:
        """Per state: the fallback that gives its value and the events behind that value."""
        n = state_space.n_states
        fallback = np.full(n, INITIAL, dtype=object)
        behind = np.zeros(n, np.int64)
        if self.learner is Learner.FULL_INFORMATION and self.visits.sum() > 0:
            fallback[:] = GLOBAL
            behind[:] = self.visits.sum()
            for level in self.backoff_levels:  # coarsest first: a finer level overrides
                key = coarse_keys(state_space, level)
                in_group = np.bincount(key, weights=self.visits).astype(np.int64)[key]
                fallback[in_group > 0] = "+".join(level)
                behind[in_group > 0] = in_group[in_group > 0]
        visited = self.visits > 0
        fallback[visited] = VISITED
        behind[visited] = self.visits[visited]
        return fallback, behind
