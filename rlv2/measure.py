"""How much of a planted edge a learner captures: the figures the planted-signal suite reports.

On a history whose right answer is known (``rlv2.planted``), train the meta-strategy
agent on the training window and simulate on the holdout, the sizing agent playing the
logged behaviour, on the gate's metric (the meta agent's own SPEC A1 reward):

- **captured share** = (candidate − behaviour) / (best fixed action − behaviour): 1 means
  the learned policy is as good as the best single action played everywhere, above 1
  that it does better (a state-dependent edge);
- **follows the good model**: the share of the holdout's simulated trades on which the
  greedy action's model is the one planted as right in that decision's regime.

And what the promotion gate must refuse: pairs of policies on a no-edge history whose
differences have mean zero exactly (``no_edge_pairs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rlv2.actions import meta_space
from rlv2.domain import Agent
from rlv2.pipeline import TrainConfig, WindowData, evaluate, train_agent
from rlv2.replay import SimulationResult

MODEL_PAIRS = ((0, 1), (2, 3))
"""XGB/LGBM and NHITS/PATCHTST: the two pairs of models ``no_edge_pairs`` swaps."""


@dataclass(frozen=True)
class LearnerScore:
    """One learner on one planted history: the suite's figures."""

    learner: str
    candidate: float
    """Mean meta reward per holdout trade of the trained greedy policy."""
    behaviour: float
    """The same of the logged behaviour policy."""
    best_fixed: float
    """The same of the best single meta action played in every state."""
    captured_share: float
    """(candidate − behaviour) / (best fixed − behaviour)."""
    follows_good: float
    """Share of holdout trades whose greedy model is the planted good one (NaN: none)."""
    planted_trades: int = 0
    """Holdout trades in a regime with a planted good model (``follows_good``'s base)."""
    followed_trades: int = 0
    """Of those, the trades whose greedy model is the planted good one."""

    @property
    def beats_best_fixed(self) -> bool:
        """Whether the learned policy earns more than every fixed action."""
        return self.candidate > self.best_fixed


def fixed_action_table(n_states: int, action: int) -> NDArray[np.float64]:
    """A meta Q-table whose greedy action is ``action`` in every state."""
    q = np.zeros((n_states, meta_space.n))
    q[:, action] = 1.0
    return q


def greedy_table(actions: NDArray[np.int64]) -> NDArray[np.float64]:
    """A meta Q-table whose greedy action in state s is ``actions[s]``."""
    q = np.zeros((actions.size, meta_space.n))
    q[np.arange(actions.size), actions] = 1.0
    return q


def no_edge_pairs(
    holdout: WindowData, config: TrainConfig, rng: np.random.Generator
) -> list[tuple[str, SimulationResult, SimulationResult]]:
    """Four exact nulls of a no-edge holdout for the gate: (kind, candidate run, champion).

    Per pair of ``MODEL_PAIRS`` (which side is the candidate drawn at random): ``one
    model``, a meta action (strategy, model, weight drawn) in every state against the same
    strategy and weight with the pair's other model; ``by state``, a random table (per
    state a strategy, a weight and one model of the pair) against the same table with
    the pair's models swapped. With every model a coin flip the models are exchangeable,
    so each paired difference has mean zero exactly; the two pairs share no model.
    """
    n_states = config.replay.meta_space.n_states
    codes = np.arange(meta_space.n)
    strategy, model, weight = meta_space.decode_arrays(codes)
    action = np.zeros((4, 4, 3), dtype=np.int64)
    action[strategy, model, weight] = codes

    def run(actions: NDArray[np.int64]) -> SimulationResult:
        return evaluate(holdout, config, greedy_table(actions), None)[0]

    pairs = []
    for pair in MODEL_PAIRS:
        ours, theirs = pair if rng.random() < 0.5 else pair[::-1]
        s, w = int(rng.integers(4)), int(rng.integers(3))
        one = np.full(n_states, action[s, ours, w]), np.full(n_states, action[s, theirs, w])
        pairs.append(("one model", run(one[0]), run(one[1])))
        s_by, w_by = rng.integers(4, size=n_states), rng.integers(3, size=n_states)
        pick = rng.integers(2, size=n_states)
        models = np.asarray(pair)
        pairs.append(
            (
                "by state",
                run(action[s_by, models[pick], w_by]),
                run(action[s_by, models[1 - pick], w_by]),
            )
        )
    return pairs


def best_fixed_reward(holdout: WindowData, config: TrainConfig) -> float:
    """The highest holdout mean meta reward of any single meta action played everywhere."""
    n_states = config.replay.meta_space.n_states
    return max(
        evaluate(holdout, config, fixed_action_table(n_states, a), None)[1]["meta_mean_reward"]
        for a in range(meta_space.n)
    )


def score_learner(
    train: WindowData,
    holdout: WindowData,
    config: TrainConfig,
    good_models: NDArray[np.int64],
    best_fixed: float | None = None,
) -> LearnerScore:
    """Train the meta agent with ``config``'s learner and score it on the holdout.

    ``good_models`` is the planted good model's code per regime (-1: none);
    ``best_fixed`` saves recomputing the best fixed action for a second learner.
    """
    trained = train_agent(Agent.META_STRATEGY, train, config)
    result, candidate = evaluate(holdout, config, trained.q, None)
    _, behaviour = evaluate(holdout, config, None, None)
    best = best_fixed_reward(holdout, config) if best_fixed is None else best_fixed
    base = behaviour["meta_mean_reward"]
    _, models, _ = meta_space.decode_arrays(result.meta_action)
    good = good_models[holdout.inputs.regime[result.decision]]
    planted = good >= 0
    return LearnerScore(
        learner=config.learner,
        candidate=candidate["meta_mean_reward"],
        behaviour=base,
        best_fixed=best,
        captured_share=(candidate["meta_mean_reward"] - base) / (best - base),
        follows_good=float(np.mean(models[planted] == good[planted])) if planted.any() else np.nan,
        planted_trades=int(planted.sum()),
        followed_trades=int(np.sum(models[planted] == good[planted])),
    )
