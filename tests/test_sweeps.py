"""The search spaces and Optuna studies of rlv2.sweeps, driven by a stand-in evaluation."""

from __future__ import annotations

import itertools

import optuna
import pytest

from rlv2 import sweeps
from rlv2.pipeline import TrainConfig
from rlv2.qlearning import stream_seed
from rlv2.rewards import MetaRewardWeights, SizingRewardWeights
from rlv2.sweeps import SweepConfig

BASE = TrainConfig()


def score_of(proposal: sweeps.Proposal) -> float:
    """A stand-in for training and validation: any deterministic function of the values."""
    p = proposal.params
    return -abs(float(p["alpha"]) - 0.05) - abs(float(p["gamma"]) - 0.95)


def evaluate(batch: list[sweeps.Proposal]) -> list[float]:
    return [score_of(p) for p in batch]


def run(sweep: SweepConfig, agent: str = "meta_strategy", seed: int = 0, evaluator=evaluate):
    space = sweeps.search_space(sweep, BASE)
    study = sweeps.open_study(sweep, space, agent, seed)
    return study, sweeps.run_study(study, space, sweep.method, sweep.trials, seed, evaluator)


def stored(tmp_path, **changes) -> SweepConfig:
    """A sweep over a study named ``s`` in a SQLite file (one ε unless ``changes`` say)."""
    changes = {"epsilon": (0.1,), **changes}
    return SweepConfig(study="s", storage=f"sqlite:///{tmp_path}/optuna.db", **changes)


def test_search_space_lists_values_and_takes_the_rest_from_the_base():
    space = sweeps.search_space(SweepConfig(alpha=(0.1, 0.01, 0.1)), BASE)
    assert list(space) == list(sweeps.DIMENSIONS)
    assert space["alpha"] == [0.1, 0.01]  # in the order given, each value once
    assert space["epsilon_decay"] == [BASE.replay.epsilon_decay]
    assert space["meta_weights"] == ["0.5,0.2,0.15"]
    assert space["sizing_weights"] == ["0.4,0.1"]


def test_train_config_applies_values_seed_and_the_epsilon_floor():
    params = {
        "alpha": 0.2,
        "gamma": 0.9,
        "epsilon": 0.05,
        "epsilon_decay": 0.99,
        "epsilon_min": 0.1,
        "meta_weights": "0.3,0.2,0.1",
        "sizing_weights": "0.4,0.25",
    }
    config = sweeps.train_config(BASE, params, seed=7)
    assert (config.replay.alpha, config.replay.gamma, config.replay.seed) == (0.2, 0.9, 7)
    assert config.replay.epsilon_min == 0.05  # a floor above the initial ε is lowered to it
    assert config.replay.meta_weights == MetaRewardWeights(0.3, 0.2, 0.1)
    assert config.replay.sizing_weights == SizingRewardWeights(0.4, 0.25)
    assert config.epochs == BASE.epochs and config.features == BASE.features


def test_a_grid_tries_each_point_once_with_its_product_index_seed():
    sweep = SweepConfig(alpha=(0.01, 0.1), gamma=(0.9, 0.99), epsilon=(0.1,))
    study, results = run(sweep, seed=3)
    assert isinstance(study.sampler, optuna.samplers.GridSampler)
    space = sweeps.search_space(sweep, BASE)
    points = list(itertools.product(*space.values()))
    assert sorted(p.config_index for p, _ in results) == [0, 1, 2, 3]
    for proposal, score in results:
        assert tuple(proposal.params.values()) == points[proposal.config_index]
        assert proposal.seed == stream_seed(3, proposal.config_index)
        assert score == score_of(proposal)
    trial = study.trials[0]
    assert trial.params["meta_weights"] == "0.5,0.2,0.15"  # values, not indices
    assert trial.params["alpha"] in (0.01, 0.1)


def test_grid_proposals_are_one_batch_and_tpe_goes_one_by_one():
    batches: list[int] = []

    def counting(batch):
        batches.append(len(batch))
        return evaluate(batch)

    run(SweepConfig(alpha=(0.01, 0.1), gamma=(0.9, 0.99)), evaluator=counting)
    assert batches == [8]
    batches.clear()
    run(SweepConfig(method="random", trials=5), evaluator=counting)
    assert batches == [5]
    batches.clear()
    run(SweepConfig(method="tpe", trials=3), evaluator=counting)
    assert batches == [1, 1, 1]


@pytest.mark.parametrize("method", ["random", "tpe"])
def test_a_resumed_study_proposes_new_configurations(tmp_path, method):
    sweep = stored(tmp_path, method=method, trials=4)
    _, first = run(sweep)
    study, second = run(sweep)
    assert [p.trial for p, _ in first] == [0, 1, 2, 3]
    assert [p.trial for p, _ in second] == [4, 5, 6, 7]
    params = [tuple(t.params.items()) for t in study.trials]
    assert len(set(params[4:]) & set(params[:4])) == 0
    assert [t.state for t in study.trials].count(optuna.trial.TrialState.COMPLETE) == 8
    for trial in study.trials:
        assert trial.params["sizing_weights"] == "0.4,0.1"
        assert 0.01 <= trial.params["alpha"] <= 0.2
        assert trial.user_attrs["seed"] == stream_seed(0, trial.number)


def test_random_and_tpe_draw_between_the_listed_extremes(tmp_path):
    for method in ("random", "tpe"):
        _, results = run(SweepConfig(method=method, trials=6, alpha=(0.01, 0.2), gamma=(0.9,)))
        alphas = [float(p.params["alpha"]) for p, _ in results]
        assert all(0.01 <= a <= 0.2 for a in alphas)
        assert len(set(alphas)) == 6  # continuous: not only the listed values
        assert {p.params["gamma"] for p, _ in results} == {0.9}


def test_a_finished_grid_study_has_nothing_left(tmp_path):
    sweep = stored(tmp_path, alpha=(0.01, 0.1), gamma=(0.9,))
    _, first = run(sweep)
    study, second = run(sweep)
    assert len(first) == 2 and second == []
    assert len(study.trials) == 2


def test_an_interrupted_grid_resumes_with_the_points_it_did_not_finish(tmp_path):
    sweep = stored(tmp_path, alpha=(0.01, 0.05, 0.1), gamma=(0.9,))

    def crash(batch):
        raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        run(sweep, evaluator=crash)
    study, results = run(sweep)
    assert sorted(p.config_index for p, _ in results) == [0, 1, 2]
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL"] * 3 + ["COMPLETE"] * 3
    _, again = run(sweep)
    assert again == []


def test_a_stored_grid_refuses_other_values(tmp_path):
    run(stored(tmp_path, alpha=(0.01, 0.1)))
    with pytest.raises(ValueError, match="grid over other values"):
        run(stored(tmp_path, alpha=(0.01, 0.1, 0.3)))


def test_weight_vectors_are_categorical_values():
    weights = (MetaRewardWeights(0.5, 0.2, 0.15), MetaRewardWeights(0.3, 0.1, 0.1))
    search = SweepConfig(alpha=(0.01,), gamma=(0.9,), epsilon=(0.1,), meta_weights=weights)
    study, results = run(search)
    assert sorted(t.params["meta_weights"] for t in study.trials) == [
        "0.3,0.1,0.1",
        "0.5,0.2,0.15",
    ]
    keys = {sweeps.group_key(sweeps.train_config(BASE, p.params, p.seed)) for p, _ in results}
    assert keys == {(w, SizingRewardWeights()) for w in weights}


def test_sweep_config_refuses_a_bad_method_or_budget():
    with pytest.raises(ValueError, match="method='bayes'"):
        SweepConfig(method="bayes")
    with pytest.raises(ValueError, match="trials=0"):
        SweepConfig(trials=0)
    with pytest.raises(ValueError, match="validation_fraction"):
        SweepConfig(validation_fraction=1.0)
