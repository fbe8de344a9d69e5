"""The replay of SPEC A5 on the demo history: both modes, both agents, walk-forward."""

from __future__ import annotations

import numpy as np
import pytest

from rlv2 import history, pipeline, replay, store
from rlv2.replay import ReplayConfig, kernel_inputs, make_agents
from rlv2.replay.config import episode_ends


@pytest.fixture(scope="module")
def window(demo_db):
    with store.connect(demo_db, read_only=True) as con:
        return pipeline.load_window(con)


@pytest.fixture(scope="module")
def holdout(demo_db):
    """The last 20 % of the demo's decisions, simulated from the logged account at its start."""
    with store.connect(demo_db, read_only=True) as con:
        return pipeline.load_window(con, history.holdout_start(con, 0.2), None)


CONFIG = ReplayConfig(alpha=0.1, gamma=0.9, seed=3)


def test_logged_kernel_equals_agents_driven_event_by_event(window):
    tr = window.transitions
    meta, sizing, tracker = make_agents(CONFIG)
    lt = replay.train_logged_agents(tr, meta, sizing, tracker, CONFIG)
    q_meta = np.zeros_like(meta.q)
    q_sizing = np.zeros_like(sizing.q)
    replay.train_kernel(
        q_meta, kernel_inputs("meta_strategy", "logged", tr, CONFIG), CONFIG, "meta_strategy"
    )
    replay.train_kernel(
        q_sizing, kernel_inputs("position_sizing", "logged", tr, CONFIG), CONFIG, "position_sizing"
    )
    assert len(lt.rows) > 1000
    assert q_meta.tobytes() == meta.q.tobytes()
    assert q_sizing.tobytes() == sizing.q.tobytes()
    assert tracker.get_episode_stats()["n_episodes"] == len(lt.rows)


def test_events_while_rl_was_off_are_skipped(window, demo_con):
    tr = window.transitions
    lt = replay.logged_transitions(tr, CONFIG)
    off_start, off_end = demo_con.execute(
        "SELECT min(ts) FILTER (WHERE NOT enable_rl), min(ts) FILTER (WHERE enable_rl AND ts > "
        "(SELECT min(ts) FROM policy WHERE NOT enable_rl)) FROM policy"
    ).fetchone()
    signal_ts = tr.ts[lt.rows]
    close_ts = tr.closed_ts[lt.rows]
    off = (np.datetime64(off_start), np.datetime64(off_end))
    assert not np.any((signal_ts >= off[0]) & (signal_ts < off[1]))
    assert not np.any((close_ts >= off[0]) & (close_ts < off[1]))
    traded = int((tr.trade_id >= 0).sum())
    assert 0 < traded - len(lt.rows) < traded  # some trades skipped, most kept


def test_logged_reward_hand_check(window):
    tr = window.transitions
    lt = replay.logged_transitions(tr, CONFIG)
    i = 123
    r = lt.rows[i]
    sharpe = tr.close_sharpe_signal[r]
    conf = tr.trade_confidence[r]
    alignment = (1.0 if tr.trade_predicted_regime[r] == tr.actual_regime[r] else -0.5) * conf
    expected_meta = tr.pnl_pct[r] - 0.5 * tr.max_drawdown_pct[r] + 0.2 * sharpe
    expected_meta += 0.15 * alignment
    assert lt.meta_rewards[i] == pytest.approx(expected_meta)
    lev, exposure, vol = tr.leverage[r], tr.portfolio_exposure[r], tr.volatility[r]
    penalty = min(max(lev - 5, 0) * 0.3 + max(exposure - 0.5, 0) * 2.0, 5.0)
    adjustment = (
        0.5 if 0.01 <= vol <= 0.03 else (-0.2 if vol < 0.01 else -0.5 * (vol - 0.03) / 0.03)
    )
    assert lt.sizing_rewards[i] == pytest.approx(tr.pnl_pct[r] - 0.4 * penalty + 0.1 * adjustment)


def test_simulating_the_logged_actions_reproduces_the_logged_outcomes(window):
    meta, sizing, _ = make_agents(CONFIG)
    result = replay.simulate(window.inputs, meta, sizing, CONFIG, policy="logged", learn=False)
    logged_pnl = window.transitions.pnl_pct[window.inputs.rows]
    np.testing.assert_allclose(result.pnl_pct, logged_pnl[result.decision], rtol=1e-9, atol=1e-9)
    dd = window.transitions.max_drawdown_pct[window.inputs.rows]
    np.testing.assert_allclose(result.max_drawdown_pct, dd[result.decision], atol=1e-9)


def test_counterfactual_reward_of_the_logged_action_is_the_logged_reward(window):
    tr, inputs = window.transitions, window.inputs
    r_meta, r_sizing = replay.counterfactual_rewards(inputs, tr, CONFIG)
    assert r_meta.shape == (len(inputs.rows), 48) and r_sizing.shape == (len(inputs.rows), 56)
    lt = replay.logged_transitions(tr, CONFIG)
    logged_meta = dict(zip(lt.rows.tolist(), lt.meta_rewards, strict=True))
    logged_sizing = dict(zip(lt.rows.tolist(), lt.sizing_rewards, strict=True))
    d = np.arange(len(inputs.rows))
    got_meta = r_meta[d, inputs.logged_meta]
    got_sizing = r_sizing[d, inputs.logged_sizing]
    np.testing.assert_allclose(got_meta, [logged_meta[r] for r in inputs.rows], atol=1e-9)
    np.testing.assert_allclose(got_sizing, [logged_sizing[r] for r in inputs.rows], atol=1e-9)
    assert np.ptp(r_meta, axis=1).mean() > 0.1  # the actions do differ


def test_simulated_training_learns_and_recomputes_the_account(window):
    meta, sizing, tracker = make_agents(CONFIG)
    result = replay.simulate(window.inputs, meta, sizing, CONFIG, tracker=tracker)
    assert len(result.pnl_pct) == len(window.inputs.rows)
    assert meta.get_stats()["n_updates"] == len(result.pnl_pct)
    assert np.count_nonzero(meta.q) > 50 and np.count_nonzero(sizing.q) > 50
    assert meta.epsilon < CONFIG.epsilon
    # the simulated equity follows the simulated pnl, not the logged one
    np.testing.assert_allclose(
        result.equity, 100.0 * np.cumprod(1.0 + 0.1 * result.pnl_pct / 100.0)
    )
    assert len(np.unique(result.sizing_action)) > 20  # it explores its own actions


def test_explore_kernel_trains_both_agents(window):
    for agent, n_actions in (("meta_strategy", 48), ("position_sizing", 56)):
        events = kernel_inputs(agent, "explore", window.transitions, CONFIG, window.inputs)
        assert events.rewards.shape == (len(window.inputs.rows), n_actions)
        q = np.zeros((972 if agent == "meta_strategy" else 243, n_actions))
        stats = replay.train_kernel(q, events, CONFIG, agent)
        assert stats.n_episodes == len(window.inputs.rows)
        assert len(np.unique(stats.actions)) == n_actions


def test_walk_forward_windows_do_not_overlap(demo_con):
    first, last, _ = history.decision_bounds(demo_con)
    cut = history.holdout_start(demo_con, 0.2)
    train = pipeline.load_window(demo_con, first, cut)
    holdout = pipeline.load_window(demo_con, cut, None)
    tr = train.transitions
    assert (tr.ts < np.datetime64(cut)).all()
    assert (tr.closed_ts[train.inputs.rows] < np.datetime64(cut)).all()
    assert (train.inputs.exit_ts < np.datetime64(cut)).all()  # no path reaches the holdout
    assert (holdout.transitions.ts >= np.datetime64(cut)).all()
    n_points = len(tr.ts) + len(holdout.transitions.ts)
    assert abs(len(holdout.transitions.ts) / n_points - 0.2) < 0.01


@pytest.mark.parametrize(
    ("episode", "expected"),
    [
        ("position", [True, True, True, True]),
        ("day", [False, True, False, True]),
        ("trades:3", [False, False, True, False]),
    ],
)
def test_episode_windows(episode, expected):
    ts = np.array(
        ["2024-01-01T10", "2024-01-01T12", "2024-01-02T09", "2024-01-02T10"], dtype="datetime64[s]"
    )
    assert episode_ends(ts, episode).tolist() == expected
    with pytest.raises(ValueError, match="episode"):
        episode_ends(ts, "weekly")


def test_long_learning_curves_are_bucket_means():
    from rlv2.pipeline import AgentTraining
    from rlv2.qlearning import replay as kernel

    rng = np.random.default_rng(0)
    n = 1000
    q = np.zeros((5, 3))
    stats = kernel(
        q,
        rng.integers(0, 5, n),
        rng.normal(size=(n, 3)),
        rng.integers(0, 5, n),
        np.ones(n, bool),
        seed=1,
    )
    training = AgentTraining("meta_strategy", q, [stats, stats], n)
    full = training.curves()
    assert len(full["episode_reward"]) == 2 * n and full["steps"][-1] == 2 * n - 1
    short = training.curves(max_points=100)
    assert len(short["steps"]) == 100 and short["steps"][1] == 20
    assert short["episode_reward"][0] == pytest.approx(full["episode_reward"][:20].mean())


@pytest.mark.parametrize(
    "policies",
    [("logged", "logged"), ("greedy", "greedy"), ("greedy", "logged"), ("logged", "greedy")],
)
@pytest.mark.parametrize("which", ["window", "holdout"])
def test_compiled_evaluation_equals_the_readable_simulation(request, which, policies):
    window = request.getfixturevalue(which)
    meta, sizing, _ = make_agents(CONFIG)
    replay.simulate(window.inputs, meta, sizing, CONFIG)  # learn some Q-tables first
    meta_policy, sizing_policy = policies
    slow = replay.simulate(
        window.inputs,
        meta,
        sizing,
        CONFIG,
        policy=meta_policy,
        sizing_policy=sizing_policy,
        learn=False,
    )
    fast = replay.evaluate_policies(
        window.inputs,
        CONFIG,
        meta.q if meta_policy == "greedy" else None,
        sizing.q if sizing_policy == "greedy" else None,
    )
    for name in (
        "decision",
        "meta_state",
        "meta_action",
        "sizing_state",
        "sizing_action",
        "liquidated",
    ):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), err_msg=name)
    for name in ("pnl_pct", "max_drawdown_pct", "equity", "meta_reward", "sizing_reward"):
        np.testing.assert_allclose(
            getattr(fast, name), getattr(slow, name), rtol=1e-12, atol=1e-12, err_msg=name
        )


def test_compiled_counterfactual_rewards_equal_the_checked_formulas(window):
    """Each matrix entry is SPEC A1 of SPEC C's outcome for that action, computed readably."""
    from rlv2 import outcomes, rewards
    from rlv2.actions import meta_space, sizing_space
    from rlv2.replay.logged import open_exposure_before

    tr, inputs = window.transitions, window.inputs
    r_meta, r_sizing = replay.counterfactual_rewards(inputs, tr, CONFIG)
    for d in range(0, len(inputs.rows), 97):
        row = inputs.rows[d]
        for a in range(0, meta_space.n, 5):
            strategy, model, weight = (int(x) for x in meta_space.decode(a))
            path = strategy * 2 + int(inputs.directions[d, model] > 0)
            pnl, dd, _ = outcomes.position_pnl(
                inputs.ret[d, path],
                inputs.mae[d, path],
                tr.size_multiplier[row],
                tr.leverage[row],
                outcomes.WEIGHT_SCALES[weight],
            )
            alignment = rewards.regime_alignment(
                inputs.predicted[d, model],
                inputs.hold_regime[d, path],
                inputs.confidences[d, model],
            )
            expected = rewards.meta_strategy_reward(
                pnl, dd, tr.close_sharpe_signal[row], alignment, CONFIG.meta_weights
            )
            assert r_meta[d, a] == expected
        strategy, model, weight = (int(x) for x in meta_space.decode(inputs.logged_meta[d]))
        path = strategy * 2 + int(inputs.directions[d, model] > 0)
        scale = outcomes.WEIGHT_SCALES[weight]
        for b in range(0, sizing_space.n, 3):
            size, lev = sizing_space.decode(b)
            pnl, _, _ = outcomes.position_pnl(
                inputs.ret[d, path], inputs.mae[d, path], size, lev, scale
            )
            exposure = (
                open_exposure_before(tr, inputs.rows[d : d + 1])[0]
                + outcomes.position_notional(
                    size, scale, lev, outcomes.MARGIN_FRACTION * tr.equity[row]
                )
                / tr.equity[row]
            )
            expected = rewards.position_sizing_reward(
                pnl,
                rewards.risk_penalty(lev, exposure),
                rewards.volatility_adjustment(inputs.volatility[d]),
                CONFIG.sizing_weights,
            )
            assert r_sizing[d, b] == expected


def test_a_holdout_starts_from_the_logged_account_at_its_start(window, holdout, demo_con):
    start = holdout.inputs.start
    cut = history.holdout_start(demo_con, 0.2)
    tr = window.transitions
    first = int(np.flatnonzero(tr.ts >= np.datetime64(cut))[0])
    # the same account a decision at the cut sees in the history
    assert start.equity == pytest.approx(tr.equity[first], rel=1e-12)
    assert start.equity / start.peak == pytest.approx(tr.account_health[first], rel=1e-12)
    assert len(start.recent_pnl) == 20
    assert len(start.open_notional) > 0  # positions entered before the cut, closed after
    assert (start.open_close_ts > np.datetime64(cut)).all()
    fresh = window.inputs.start
    assert fresh.equity == fresh.peak == 100.0 and len(fresh.open_notional) == 0
    # the simulated logged policy starts from it: its first record's account is not fresh
    logged = replay.evaluate_policies(holdout.inputs, CONFIG, None, None)
    assert logged.equity[0] != 100.0
