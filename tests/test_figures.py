"""Every figure drawn from a real small run on the demo history, checked as a person would:
a valid PNG of a readable size, not blank, with a title and a legend or colour bar."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from rlv2 import evidence, figures, history, pipeline, store
from rlv2.domain import Agent
from rlv2.evaluation import bootstrap_means, compare_policies, paired_differences
from rlv2.pipeline import TrainConfig
from rlv2.states import META_STATE_SPACE, SIZING_STATE_SPACE

pytestmark = pytest.mark.slow

MIN_PIXELS = (700, 350)
"""Smallest width and height of a readable chart, in pixels."""


@pytest.fixture(scope="module")
def run(demo_db: Path):
    """A real small run: both agents trained two ways on the demo's training window; the
    full-information tables play production, the q-learning ones the candidate."""
    config = TrainConfig(epochs=2, learner="q-learning")
    with store.connect(demo_db, read_only=True) as con:
        first, last, _ = history.decision_bounds(con)
        split = pipeline.walk_forward_split(
            first, last, history.holdout_start(con, config.holdout_fraction)
        )
        train = pipeline.load_window(con, split.train_start, split.holdout_start, config.features)
        holdout = pipeline.load_window(con, split.holdout_start, split.holdout_end, config.features)
    trained = {a: pipeline.train_agent(a, train, config) for a in Agent}
    full = TrainConfig(learner="full-information")
    production = {str(a): pipeline.train_agent(a, train, full).q for a in Agent}
    return config, train, holdout, trained, production


@pytest.fixture(scope="module")
def drawn(run) -> dict[str, Figure]:
    """Every figure of the run: the training run's, a gate's, a sweep's."""
    config, train, holdout, trained, production = run
    out = evidence.training_figures(trained, train, holdout, config, production)
    agent = Agent.POSITION_SIZING
    runs = evidence.gate_runs(
        agent, holdout, config, trained[agent].q, production[agent], production["meta_strategy"]
    )
    decision, _, _ = pipeline.promotion_gate(
        agent,
        holdout,
        config,
        trained[agent].q,
        production[agent],
        production["meta_strategy"],
        "production v1",
    )
    out["gate"] = figures.gate(evidence.gate_evidence(agent, runs, config, decision.as_dict()))
    out["sweep_scores"] = figures.sweep_scores(
        agent,
        {"alpha": [0.01, 0.1, 0.01, 0.1], "gamma": [0.9, 0.9, 0.99, 0.99]},
        [0.12, 0.31, 0.05, 0.2],
        1,
        "validation score: mean sizing reward per trade",
    )
    out["sweep_learning"] = figures.sweep_learning(
        agent,
        {"alpha=0.01": trained[agent].epochs, "alpha=0.1": trained[Agent.META_STRATEGY].epochs},
        "alpha=0.1",
    )
    return out


EXPECTED = {
    "learning",
    "policy_meta_strategy",
    "policy_position_sizing",
    "q_values_meta_strategy",
    "q_values_position_sizing",
    "holdout_equity",
    "changes_meta_strategy",
    "changes_position_sizing",
    "gate",
    "sweep_scores",
    "sweep_learning",
}


def png_of(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_every_figure_is_drawn(drawn):
    assert set(drawn) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_figure_is_a_readable_non_blank_png(drawn, name):
    png = png_of(drawn[name])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png))
    image.verify()  # a valid PNG, not truncated
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    height, width = pixels.shape
    assert width >= MIN_PIXELS[0] and height >= MIN_PIXELS[1], (name, pixels.shape)
    assert pixels.std() > 20.0, name  # not a blank page
    inked = np.mean(pixels < 200)  # darker than the light grid and fills
    assert 0.01 < inked < 0.9, (name, inked)
    colours = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    assert len(np.unique(colours[:: max(len(colours) // 50_000, 1)], axis=0)) > 20, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_figure_says_what_it_shows(drawn, name):
    figure = drawn[name]
    suptitle = figure.get_suptitle()
    assert len(suptitle) > 20, name
    axes = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
    assert any(ax.get_xlabel() for ax in axes) and any(
        ax.get_ylabel() or ax.get_yticklabels() for ax in axes
    )
    has_key = figure.legends or any(ax.get_legend() for ax in figure.axes)
    has_key = has_key or any(ax.get_label() == "<colorbar>" for ax in figure.axes)
    assert has_key, f"{name}: no legend or colour bar"


def test_state_grid_lays_out_every_state_once():
    for space, (rows, cols) in (
        (META_STATE_SPACE, figures.META_GRID),
        (SIZING_STATE_SPACE, figures.SIZING_GRID),
    ):
        grid = figures._state_grid(space, rows, cols)
        assert sorted(grid.ravel().tolist()) == list(range(space.n_states))
        # within a panel, the innermost features vary: regime down, volatility across
        first, below, right = (space.decode(int(s)) for s in (grid[0, 0], grid[1, 0], grid[0, 1]))
        assert below[rows[-1]] == first[rows[-1]] + 1 and right[cols[-1]] == first[cols[-1]] + 1


def test_equity_curve_starts_at_the_logged_account_and_steps_at_each_close(run):
    config, _, holdout, trained, _ = run
    result, _ = pipeline.evaluate(holdout, config, trained[Agent.META_STRATEGY].q, None)
    curve = evidence.equity_curve("candidate", result, holdout)
    assert curve.equity[0] == holdout.inputs.start.equity
    np.testing.assert_array_equal(curve.equity[1:], result.equity)
    assert np.all(np.diff(curve.ts.astype(np.int64)) >= 0)  # in close order, in time
    assert curve.ts[0] == np.datetime64(holdout.start, "ns")
    for hold in evidence.buy_and_hold(holdout):
        assert hold.equity[0] == pytest.approx(holdout.inputs.start.equity)
        assert hold.ts[-1] < np.datetime64(holdout.end, "ns")


def test_the_gate_chart_shows_the_gates_own_differences_and_bootstrap(run):
    config, _, holdout, trained, production = run
    agent = Agent.META_STRATEGY
    candidate, champion = evidence.gate_runs(
        agent, holdout, config, trained[agent].q, production[agent], None
    )
    decision = compare_policies(
        candidate,
        champion,
        metric="meta_reward",
        n_boot=500,
        seed=3,
        champion_name="p",
        bootstrap="stationary",
    )
    diff = paired_differences(candidate, champion, "meta_reward")
    assert diff.size == decision.n
    assert float(diff.mean()) == pytest.approx(decision.difference)
    means = bootstrap_means(diff, 500, 3, "stationary")  # a resampling gate's own draws
    q_low, q_high = np.percentile(means, [2.5, 97.5])
    mean = float(diff.mean())  # the basic interval: the error's skew on the right side
    assert (2 * mean - q_high, 2 * mean - q_low) == pytest.approx(
        (decision.ci_low, decision.ci_high)
    )


def test_policy_changes_counts_only_states_whose_greedy_action_moved():
    q = np.zeros((SIZING_STATE_SPACE.n_states, 56))
    q[:, 0] = 1.0
    moved = q.copy()
    moved[[3, 7], 5] = 2.0
    visits = np.zeros(SIZING_STATE_SPACE.n_states, np.int64)
    visits[[3, 7, 9]] = [4, 1, 10]
    figure = figures.policy_changes("position_sizing", moved, q, SIZING_STATE_SPACE, visits)
    assert "changed in 2 holdout states, 5 of 15 holdout decisions (33%)" in figure.get_suptitle()
