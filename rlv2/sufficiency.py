"""Refuse to learn from nothing: what a run must have seen before it registers anything.

A history with signals but no trades, no closes, or everything in an RL-off stretch
trains on zero events and used to register all-zero tables; a holdout of two trades
promoted a table with two non-zero entries. :func:`check_windows` runs before training
(the windows' traded decisions), :func:`check_trained` after it and before anything is
logged or registered (each agent's events and distinct states). Both raise
:class:`NotEnoughEvidence`, a ``ValueError``: a deterministic failure, never retried, and
exit 1 from the ``rlv2`` command with the message. The thresholds are settings of
``TrainConfig`` (``min_holdout_trades``, ``min_visited_states``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rlv2.pipeline import AgentTraining, TrainConfig, WindowData


class NotEnoughEvidence(ValueError):
    """A run whose data cannot support a table worth registering or gating."""


def _span(window: WindowData) -> str:
    def at(t: datetime | None, default: str) -> str:
        return default if t is None else str(t)

    return f"{at(window.start, 'the start')} .. {at(window.end, 'the end')}"


def check_windows(train: WindowData, holdout: WindowData, config: TrainConfig) -> None:
    """Refuse a run whose training window has no traded decision or whose holdout has
    fewer than ``config.min_holdout_trades``."""
    if train.n_trades == 0 and config.mode == "explore":
        incomplete = (
            f" ({train.n_incomplete} more lack a signal from some model)"
            if train.n_incomplete
            else ""
        )
        raise NotEnoughEvidence(
            f"training window {_span(train)}: no traded decision with a close and RL on"
            f"{incomplete}: nothing to learn from; nothing registered"
        )
    if holdout.n_trades < config.min_holdout_trades:
        raise NotEnoughEvidence(
            f"holdout {_span(holdout)}: {holdout.n_trades} traded decisions, fewer than "
            f"min_holdout_trades={config.min_holdout_trades}: the gate cannot judge a "
            "candidate on it (a smaller --holdout-fraction, or more history); nothing "
            "registered"
        )


def check_trained(trained: Iterable[AgentTraining], config: TrainConfig) -> None:
    """Refuse tables trained on no event or on fewer than ``config.min_visited_states``
    distinct states."""
    for result in trained:
        if result.n_events == 0:
            raise NotEnoughEvidence(
                f"{result.agent}: 0 training events: nothing learned; nothing registered"
            )
        if result.n_states_visited < config.min_visited_states:
            raise NotEnoughEvidence(
                f"{result.agent}: {result.n_events} training events in "
                f"{result.n_states_visited} distinct states, fewer than "
                f"min_visited_states={config.min_visited_states}; nothing registered"
            )
