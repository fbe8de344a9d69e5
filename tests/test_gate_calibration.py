"""The promotion gate on planted histories whose answer is known (issue 13, point 2).

At CI size, what ``python -m bench --stages 8`` measures at full size (README, the
promotion gate): no-edge histories (every model a coin flip, its errors persisting 10,
20 or 33 of a symbol's decisions by turns) give exact nulls the default gate must refuse
near its nominal rate, and the learner's candidates on planted histories must be
promoted. The i.i.d. gate on the same nulls shows the test can fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlv2 import history, pipeline, store
from rlv2.demo import build_planted_database
from rlv2.domain import Agent
from rlv2.evaluation import Bootstrap, compare_policies
from rlv2.measure import no_edge_pairs
from rlv2.planted import REGIME_EDGE, Behaviour, PlantedConfig

pytestmark = pytest.mark.slow

NULL_HISTORIES = 30
RUN_LENGTHS = (10.0, 20.0, 33.0)


def windows(path: Path) -> tuple[pipeline.WindowData, pipeline.WindowData]:
    """The training window and the gate's holdout (the last 20 % of the decisions)."""
    with store.connect(path, read_only=True) as con:
        first, _, _ = history.decision_bounds(con)
        cut = history.holdout_start(con, pipeline.TrainConfig().holdout_fraction)
        return pipeline.load_window(con, first, cut), pipeline.load_window(con, cut, None)


def test_no_edge_candidates_are_refused_near_the_nominal_rate(tmp_path: Path):
    config = pipeline.TrainConfig()
    promoted = {Bootstrap.NEWEY_WEST_SYMBOLS: 0, Bootstrap.IID: 0}
    replicates = 0
    for i in range(NULL_HISTORIES):
        path = tmp_path / f"null-{i}.duckdb"
        planted = PlantedConfig(
            seed=7_000 + i, no_edge=True, error_run_length=RUN_LENGTHS[i % len(RUN_LENGTHS)]
        )
        build_planted_database(path, planted)
        _, holdout = windows(path)
        groups = holdout.decision_symbols()
        for _, candidate, champion in no_edge_pairs(holdout, config, np.random.default_rng(i)):
            replicates += 1
            for method in promoted:
                decision = compare_policies(
                    candidate,
                    champion,
                    metric="meta_reward",
                    n_boot=500,
                    bootstrap=method,
                    groups=groups,
                )
                promoted[method] += decision.promote
    assert replicates == 4 * NULL_HISTORIES
    # measured 3 of 120 (the nominal rate of a 95 % interval read one-sided is 2.5 %)
    assert promoted[Bootstrap.NEWEY_WEST_SYMBOLS] / replicates <= 0.05, promoted
    # the original gate on the same replicates: 16 of 120
    assert promoted[Bootstrap.IID] / replicates >= 0.10, promoted


PLANTED = {
    **{f"default-{s}": PlantedConfig(seed=s) for s in (0, 1)},
    **{f"regime-{s}": PlantedConfig(seed=s, regime_good_model=REGIME_EDGE) for s in (0, 1)},
    **{f"persistent-{s}": PlantedConfig(seed=s, error_run_length=10) for s in (0, 1)},
    **{f"skewed-{s}": PlantedConfig(seed=s, behaviour=Behaviour.SKEWED) for s in (0, 1)},
}


def test_planted_candidates_are_promoted_by_the_default_gate(tmp_path: Path):
    config = pipeline.TrainConfig()
    refused = {}
    for name, planted in PLANTED.items():
        path = tmp_path / f"{name}.duckdb"
        build_planted_database(path, planted)
        train, holdout = windows(path)
        q = pipeline.train_agent(Agent.META_STRATEGY, train, config).q
        decision, _, _ = pipeline.promotion_gate(
            Agent.META_STRATEGY, holdout, config, q, None, None, "logged"
        )
        assert decision.bootstrap == "newey-west-symbols" and decision.effective_n > 0
        if not decision.promote:
            refused[name] = decision.reason
    # measured: all 8 promoted (the previous default refused regime-0, its interval
    # [-0.020, ...] over the plain mean, which the S&P 500's 95 trades decide)
    assert not refused, refused
