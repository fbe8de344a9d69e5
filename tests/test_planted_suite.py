"""The planted-signal suite: on histories whose right answer is known, the default learner
captures the edge (SPEC C "Learners"; issue 12's acceptance figures, at CI size).

Histories on the bundled real bars (``rlv2.planted``): NHITS right 80 % of the time on
the 10-bar direction, XGB (action code 0) wrong 75 %, two coin flips, a uniform (or
skewed) behaviour; variants with a good model per regime and with errors persisting
over 10 decisions. ``make bench`` runs more seeds (stage 6) for the README's table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlv2 import history, pipeline, store
from rlv2.demo import build_planted_database
from rlv2.measure import LearnerScore, best_fixed_reward, score_learner
from rlv2.planted import REGIME_EDGE, Behaviour, PlantedConfig

pytestmark = pytest.mark.slow

HISTORIES = {
    **{f"default-{s}": PlantedConfig(seed=s) for s in (0, 1)},
    **{f"regime-{s}": PlantedConfig(seed=s, regime_good_model=REGIME_EDGE) for s in (0, 1)},
    "persistent-0": PlantedConfig(seed=0, error_run_length=10),
    "skewed-0": PlantedConfig(seed=0, behaviour=Behaviour.SKEWED),
}


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, LearnerScore]]:
    """Both learners' scores on every history of the suite."""
    folder = tmp_path_factory.mktemp("planted")
    out: dict[str, dict[str, LearnerScore]] = {}
    for name, planted in HISTORIES.items():
        path = Path(folder) / f"{name}.duckdb"
        build_planted_database(path, planted)
        with store.connect(path, read_only=True) as con:
            first, _, _ = history.decision_bounds(con)
            cut = history.holdout_start(con, 0.2)
            train = pipeline.load_window(con, first, cut)
            holdout = pipeline.load_window(con, cut, None)
        best = best_fixed_reward(holdout, pipeline.TrainConfig())
        out[name] = {
            learner: score_learner(
                train, holdout, pipeline.TrainConfig(learner=learner), planted.good_models(), best
            )
            for learner in ("full-information", "q-learning")
        }
    return out


def test_the_default_learner_captures_the_planted_edge(scores):
    default = pipeline.TrainConfig().learner
    shares = [s[default].captured_share for s in scores.values()]
    assert np.mean(shares) >= 0.90, shares
    assert min(shares) >= 0.75, shares


def test_the_greedy_action_follows_the_good_model(scores):
    default = pipeline.TrainConfig().learner
    for name, s in scores.items():
        # With a good model per regime, the rarest regime (BREAKOUT, about 5 % of the
        # holdout's trades and 120 training events) is on some seeds pooled toward the
        # overall good model: 94.9 % there, the shortfall the README's table reports.
        floor = 0.94 if name.startswith("regime") else 0.95
        assert s[default].follows_good >= floor, (name, s[default])
    # the figure: the share of all holdout trades (with a planted good model)
    planted = sum(s[default].planted_trades for s in scores.values())
    followed = sum(s[default].followed_trades for s in scores.values())
    assert planted > 0 and followed / planted >= 0.95, (followed, planted)


def test_a_state_dependent_edge_beats_the_best_fixed_action(scores):
    default = pipeline.TrainConfig().learner
    for name, s in scores.items():
        if name.startswith("regime"):
            assert s[default].beats_best_fixed, (name, s[default])


def test_spec_a4_learner_stays_available_and_is_measured(scores):
    for s in scores.values():
        score = s["q-learning"]
        assert np.isfinite(score.captured_share) and 0.0 <= score.follows_good <= 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_a_history_that_loses_at_leverage_up_to_7_trains_and_gates(tmp_path, seed):
    """The account compounds, so no history can take it below zero (it once crashed)."""
    path = tmp_path / "losing.duckdb"
    build_planted_database(path, PlantedConfig(seed=seed, no_edge=True, leverage_max=7))
    with store.connect(path, read_only=True) as con:
        first, _, _ = history.decision_bounds(con)
        cut = history.holdout_start(con, 0.2)
        train = pipeline.load_window(con, first, cut)
        holdout = pipeline.load_window(con, cut, None)
    assert (train.transitions.equity > 0).all() and holdout.inputs.start.equity > 0
    for learner in ("full-information", "q-learning"):
        config = pipeline.TrainConfig(learner=learner, epochs=2)
        meta = pipeline.train_agent("meta_strategy", train, config)
        sizing = pipeline.train_agent("position_sizing", train, config)
        for agent, q, partner in (
            ("meta_strategy", meta.q, None),
            ("position_sizing", sizing.q, None),
        ):
            decision, cand, champ = pipeline.promotion_gate(
                agent, holdout, config, q, None, partner, "logged"
            )
            assert np.isfinite(decision.difference)
            assert cand["final_equity"] > 0 and champ["final_equity"] > 0
            assert cand["bust"] in (0.0, 1.0)
