"""Stage 7: the planted-signal suite at bench size: both learners on many planted histories.

The tests run six histories (``tests/test_planted_suite.py``); this stage runs every
variant over more seeds and reports, per learner, the captured share (mean, worst), how
often the greedy action follows the planted good model, whether a state-dependent edge
beats the best fixed action, and the time one training takes. The README's learner
table comes from here. Targets (issue 12, for the default learner): mean captured share
>= 0.90, worst >= 0.75, greedy follows the good model in >= 95 % of holdout trades (all
the histories' holdout trades together; the worst single history is reported beside it).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench.harness import BenchConfig, Check, Row, Stage, StageResult, progress, time_call
from rlv2 import history, pipeline, store
from rlv2.demo import build_planted_database
from rlv2.domain import Agent
from rlv2.measure import LearnerScore, best_fixed_reward, score_learner
from rlv2.planted import REGIME_EDGE, Behaviour, PlantedConfig

TITLE = "Planted-signal suite (what the learners capture)"
SEEDS = {"small": (0, 1), "full": (0, 1, 2, 3, 4)}
LEARNERS = ("full-information", "q-learning")
VARIANTS = {
    "default": {},
    "regime": {"regime_good_model": REGIME_EDGE},
    "persistent": {"error_run_length": 10.0},
    "skewed": {"behaviour": Behaviour.SKEWED},
}
"""Planted configurations beside the seed (``rlv2.planted.PlantedConfig`` fields)."""


def _windows(path: Path) -> tuple[pipeline.WindowData, pipeline.WindowData]:
    with store.connect(path, read_only=True) as con:
        first, _, _ = history.decision_bounds(con)
        cut = history.holdout_start(con, 0.2)
        return pipeline.load_window(con, first, cut), pipeline.load_window(con, cut, None)


def run(config: BenchConfig) -> StageResult:
    """Score both learners on every variant x seed; time one training of each."""
    result = StageResult(7, TITLE)
    scores: dict[str, list[tuple[str, LearnerScore]]] = {learner: [] for learner in LEARNERS}
    timed: dict[str, Row] = {}
    with tempfile.TemporaryDirectory(prefix="rlv2-planted-") as tmp:
        for variant, fields in VARIANTS.items():
            for seed in SEEDS[config.sizes]:
                name = f"{variant}-{seed}"
                progress(f"stage 7: planted history {name}")
                planted = PlantedConfig(seed=seed, **fields)  # type: ignore[arg-type]
                path = Path(tmp) / f"{name}.duckdb"
                build_planted_database(path, planted)
                train, holdout = _windows(path)
                best = best_fixed_reward(holdout, pipeline.TrainConfig())
                for learner in LEARNERS:
                    train_config = pipeline.TrainConfig(learner=learner)
                    scores[learner].append(
                        (
                            name,
                            score_learner(
                                train, holdout, train_config, planted.good_models(), best
                            ),
                        )
                    )
                    if learner not in timed:
                        timing = time_call(
                            lambda c=train_config, w=train: pipeline.train_agent(
                                Agent.META_STRATEGY, w, c
                            ),
                            repeat=config.repeats(3),
                            allocation=False,
                        )
                        n = train.n_trades
                        timed[learner] = Row(7, f"meta, {name}", learner, n, n, timing)
    result.rows.extend(timed.values())
    default = pipeline.TrainConfig().learner
    for learner, scored in scores.items():
        shares = np.asarray([s.captured_share for _, s in scored])
        follows = np.asarray([s.follows_good for _, s in scored])
        planted = sum(s.planted_trades for _, s in scored)
        pooled = sum(s.followed_trades for _, s in scored) / planted
        regime = [s for name, s in scored if name.startswith("regime")]
        binding = learner == default
        case = f"{learner} ({len(scored)} histories)"
        result.checks += [
            Check(7, case, "captured share, mean", f"{shares.mean():.2f}", ">= 0.90",
                  bool(shares.mean() >= 0.90), binding),
            Check(7, case, "captured share, worst", f"{shares.min():.2f}", ">= 0.75",
                  bool(shares.min() >= 0.75), binding),
            # the criterion is over holdout decisions: pooled over the histories; the
            # worst single history is reported beside it (a rare regime can sit below)
            Check(7, case, "follows the good model, all holdout trades",
                  f"{pooled:.1%} of {planted}", ">= 95 %", bool(pooled >= 0.95), binding),
            Check(7, case, "follows the good model, worst history", f"{follows.min():.1%}",
                  ">= 95 %", bool(follows.min() >= 0.95), False),
            Check(7, case, "state-dependent edge beats the best fixed action",
                  f"{sum(s.beats_best_fixed for s in regime)} of {len(regime)}", "all",
                  all(s.beats_best_fixed for s in regime), binding),
        ]  # fmt: skip
        result.notes += [
            f"{learner} on {name}: captured share {s.captured_share:.2f}, follows the good "
            f"model {s.follows_good:.1%} (candidate {s.candidate:.3f}, behaviour "
            f"{s.behaviour:.3f}, best fixed {s.best_fixed:.3f})"
            for name, s in scored
        ]
    return result


STAGE = Stage(7, TITLE, run)
