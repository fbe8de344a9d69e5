"""The agents and the episode tracker, driven one event at a time as in SPEC A5."""

import numpy as np
import pytest

from rlv2.actions import meta_space, sizing_space
from rlv2.agents import EpisodeTracker, MetaStrategyAgent, PositionSizingAgent
from rlv2.domain import Model, Strategy, WeightAction

META_FEATURES = {
    "regime": "TREND",
    "volatility": 0.02,
    "market_pressure": 0.1,
    "confidence": 0.8,
    "previous_winrate": 0.5,
    "account_health": 1.0,
}
SIZING_FEATURES = {
    "signal_confidence": 0.8,
    "portfolio_exposure": 0.3,
    "recent_winrate": 0.5,
    "volatility": 0.02,
    "equity_curve_slope": 0.0,
}


def make_system(**hp):
    meta = MetaStrategyAgent(seed=11, **hp)
    sizing = PositionSizingAgent(seed=12, **hp)
    tracker = EpisodeTracker({"meta_strategy": meta, "position_sizing": sizing}, gamma=0.9)
    return meta, sizing, tracker


def test_event_flow_hand_computed():
    meta, sizing, tracker = make_system(alpha=0.5, gamma=0.9)
    s0 = meta.state_index(META_FEATURES)
    s1 = meta.state_index({**META_FEATURES, "regime": "RANGE"})
    # signal.generated -> trade.executed -> position.closed, for one position
    meta.set_current_state(META_FEATURES, key="t1")
    assert 0 <= meta.select_action(key="t1") < 48
    tracker.start_episode("t1")
    meta.set_executed_action(5, key="t1")
    sizing.set_current_state(SIZING_FEATURES, key="t1")
    sizing.set_executed_action(sizing_space.encode(1.0, 3), key="t1")
    td = meta.update(2.0, s1, key="t1")  # Q zeros: target 2 + 0.9*0, Q <- 0.5*2 = 1.0
    assert td == pytest.approx(2.0) and meta.q[s0, 5] == pytest.approx(1.0)
    sizing.update(1.5, SIZING_FEATURES, key="t1")
    tracker.add_step("t1", meta_strategy=2.0, position_sizing=1.5)
    stats = tracker.end_episode("t1")
    meta.end_episode()
    sizing.end_episode()
    assert stats.discounted_returns == {"meta_strategy": 2.0, "position_sizing": 1.5}
    assert meta.epsilon == pytest.approx(0.1 * 0.995)
    # second position bootstraps into s0: target -1 + 0.9 * max Q[s0] = -0.1; Q <- -0.05
    meta.set_current_state(s1, key="t2")
    meta.set_executed_action(3, key="t2")
    meta.update(-1.0, s0, key="t2")
    assert meta.q[s1, 3] == pytest.approx(-0.05)
    assert meta.get_stats()["n_updates"] == 2
    assert meta.get_stats()["mean_reward"] == pytest.approx(0.5)


def test_terminal_update_does_not_bootstrap():
    meta, _, _ = make_system(alpha=1.0, gamma=0.9)
    meta.q[10, :] = 4.0
    meta.set_current_state(3)
    meta.set_executed_action(0)
    meta.update(1.0, 10, terminal=True)
    assert meta.q[3, 0] == pytest.approx(1.0)
    meta.set_current_state(3)
    meta.set_executed_action(1)
    meta.update(1.0, 10)
    assert meta.q[3, 1] == pytest.approx(1.0 + 0.9 * 4.0)


def test_overlapping_positions_keep_their_own_decisions():
    meta, _, _ = make_system(alpha=1.0, gamma=0.0)
    meta.set_current_state(1, key="a")
    meta.set_executed_action(2, key="a")
    meta.set_current_state(7, key="b")
    meta.set_executed_action(4, key="b")
    meta.update(3.0, 0, key="b")
    meta.update(5.0, 0, key="a")
    assert meta.q[1, 2] == 5.0 and meta.q[7, 4] == 3.0
    with pytest.raises(KeyError, match="no current state"):
        meta.update(1.0, 0, key="a")  # already closed


def test_tracker_discounted_return_over_steps():
    _, _, tracker = make_system()
    tracker.start_episode("e")
    for r in (1.0, 2.0, 3.0):
        tracker.add_step("e", meta_strategy=r)
    stats = tracker.end_episode("e")  # 1 + 0.9*2 + 0.81*3 = 5.23
    assert stats.discounted_returns["meta_strategy"] == pytest.approx(5.23)
    assert stats.n_steps == 3
    summary = tracker.get_episode_stats()
    assert summary["n_episodes"] == 1 and summary["meta_strategy_mean_reward"] == 6.0
    with pytest.raises(ValueError, match="reward"):
        tracker.start_episode("f")
        tracker.add_step("f", meta_strategy=float("nan"))


def test_q_table_save_load_round_trip(tmp_path):
    meta, sizing, tracker = make_system(alpha=0.3)
    rng = np.random.default_rng(0)
    meta.q[...] = rng.normal(size=meta.q.shape)
    sizing.q[...] = rng.normal(size=sizing.q.shape)
    meta.end_episode()
    path = tracker.save(tmp_path / "qtables.npz")
    meta2, sizing2, tracker2 = make_system()
    tracker2.load(path)
    np.testing.assert_array_equal(meta2.q, meta.q)
    np.testing.assert_array_equal(sizing2.q, sizing.q)
    assert meta2.epsilon == meta.epsilon
    for s in range(0, 972, 97):
        assert meta2.greedy_action(s) == meta.greedy_action(s)


def test_decode_and_errors():
    meta, sizing, _ = make_system()
    code = meta_space.encode(Strategy.RANGE, Model.LGBM, WeightAction.WEIGHT_DOWN)
    assert meta.decode(code).model is Model.LGBM
    assert sizing.decode(55).leverage == 7
    with pytest.raises(ValueError, match="out of range"):
        meta.set_current_state(972)
    meta.set_current_state(0)
    with pytest.raises(ValueError, match="no action"):
        meta.update(1.0, 0)
    with pytest.raises(ValueError, match="out of range"):
        sizing.set_current_state(0) or sizing.set_executed_action(56)
