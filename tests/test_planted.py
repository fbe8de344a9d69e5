"""Planted-signal histories: the contract, the planted skill measured from the bars, the
behaviour's propensities, outcomes the replay reproduces, and an edge that is real."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from rlv2 import history, pipeline, replay, store
from rlv2.actions import meta_space, sizing_space
from rlv2.demo import build_planted_database
from rlv2.demo_data import load_bundled_candles
from rlv2.domain import SIZE_MULTIPLIERS, Model, Regime, Strategy, WeightAction
from rlv2.planted import (
    REGIME_EDGE,
    Behaviour,
    PlantedConfig,
    PlantedHistory,
    build_planted_history,
    persistent_uniforms,
)
from rlv2.replay import ReplayConfig, make_agents
from rlv2.states import label_regime

DEFAULT = PlantedConfig()
DENSE = PlantedConfig(decision_every=1)
"""A decision on every bar: about 10,000 decision points, for the frequency tests."""
CONTRACT_TRADE_COLUMNS = [
    "trade_id",
    "signal_id",
    "ts",
    "symbol",
    "side",
    "entry_price",
    "size_multiplier",
    "leverage",
    "portfolio_exposure",
    "strategy",
    "weight_action",
    "action_prob",
    "meta_action_prob",
    "sizing_action_prob",
]


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return load_bundled_candles()


@pytest.fixture(scope="module")
def planted_db(tmp_path_factory: pytest.TempPathFactory):
    """The default planted history ingested into a fresh DuckDB file."""
    path = tmp_path_factory.mktemp("planted") / "planted.duckdb"
    return path, build_planted_database(path, DEFAULT)


@pytest.fixture(scope="module")
def window(planted_db):
    with store.connect(planted_db[0], read_only=True) as con:
        return pipeline.load_window(con)


@pytest.fixture(scope="module")
def holdout(planted_db):
    with store.connect(planted_db[0], read_only=True) as con:
        return pipeline.load_window(con, history.holdout_start(con, 0.2), None)


@pytest.fixture(scope="module")
def dense(candles) -> PlantedHistory:
    return build_planted_history(candles, DENSE)


def decision_truth(hist: PlantedHistory, candles: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Per signal, from the raw bars alone: the forward return's sign, the decision-time
    regime (the last 20 closes), and whether the signal got the sign right."""
    frames = []
    for symbol, bars in candles.sort_values(["symbol", "ts"]).groupby("symbol"):
        close = bars["close"].to_numpy()
        forward = np.full(close.size, np.nan)
        forward[:-horizon] = close[horizon:] / close[:-horizon] - 1.0
        regime = np.full(close.size, -1)
        regime[19:] = label_regime(sliding_window_view(close, 20))
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "ts": bars["ts"].to_numpy(),
                    "fwd": forward,
                    "bar_regime": regime,
                }
            )
        )
    signals = hist.signals.merge(pd.concat(frames), on=["symbol", "ts"], validate="m:1")
    assert len(signals) == len(hist.signals) and signals["fwd"].notna().all()
    assert (signals["bar_regime"] >= 0).all()
    signals["correct"] = signals["direction"] == np.where(signals["fwd"] >= 0.0, 1, -1)
    return signals.sort_values(["symbol", "ts", "model"], ignore_index=True)


def accuracy_by(signals: pd.DataFrame, *keys: str) -> pd.Series:
    return signals.groupby(list(keys))["correct"].agg(["mean", "size"])


def streaks(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lengths of the runs of True and of False in one sequence."""
    bounds = np.r_[0, np.flatnonzero(np.diff(flags.astype(np.int8))) + 1, flags.size]
    lengths = np.diff(bounds)
    first = flags[bounds[:-1]]
    return lengths[first], lengths[~first]


def mean_streaks(signals: pd.DataFrame, model: str) -> tuple[float, float]:
    """Mean correct and mean wrong streak of a model, along each symbol's decisions."""
    right, wrong = [], []
    for _, rows in signals[signals["model"] == model].groupby("symbol"):
        r, w = streaks(rows.sort_values("ts")["correct"].to_numpy())
        right.append(r)
        wrong.append(w)
    return float(np.concatenate(right).mean()), float(np.concatenate(wrong).mean())


def meta_codes(hist: PlantedHistory) -> np.ndarray:
    trades = hist.trades.merge(hist.signals[["signal_id", "model"]], on="signal_id")
    return np.asarray(
        meta_space.encode(
            trades["strategy"].map(lambda s: Strategy[s].value).to_numpy(),
            trades["model"].map(lambda m: Model[m].value).to_numpy(),
            trades["weight_action"].map(lambda w: WeightAction[w].value).to_numpy(),
        )
    )


def sizing_codes(hist: PlantedHistory) -> np.ndarray:
    trades = hist.trades
    return np.asarray(sizing_space.encode(trades["size_multiplier"], trades["leverage"]))


def assert_frequencies(codes: np.ndarray, probs: np.ndarray) -> None:
    """Each action's share of the draws within 5 standard errors of its probability."""
    n = codes.size
    share = np.bincount(codes, minlength=probs.size) / n
    tolerance = 5.0 * np.sqrt(probs * (1.0 - probs) / n) + 1.0 / n
    assert np.all(np.abs(share - probs) <= tolerance), np.abs(share - probs).max()


def test_tables_satisfy_the_contract(planted_db):
    _, (reports, hist) = planted_db
    by_table = {r.target_table: r for r in reports if r.target_table != "candles"}
    for table in ("signals", "trades", "positions", "policy"):
        report = by_table[table]
        assert report.rows_quarantined == 0 and report.rows_duplicate == 0, report.problems
        assert report.rows_loaded == report.rows_read == len(getattr(hist, table))
    assert by_table["trades"].ignored_columns == ()  # the per-agent propensities load
    assert list(hist.trades.columns) == CONTRACT_TRADE_COLUMNS
    assert hist.policy["enable_rl"].tolist() == [True]
    assert hist.policy["ts"].iloc[0] == hist.signals["ts"].min()
    assert hist.truth["traded"].all()  # every decision traded, the account never went bust
    assert len(hist.truth) == len(hist.signals) // 4 == len(hist.trades) > 3000


def test_ingesting_again_loads_nothing_twice(tmp_path):
    config = PlantedConfig(max_decisions_per_symbol=50)
    first = build_planted_database(tmp_path / "p.duckdb", config)
    again = build_planted_database(tmp_path / "p.duckdb", config)  # candles already there
    assert [r.target_table for r in first.reports][:2] == ["candles", "candles"]
    assert [r.target_table for r in again.reports] == ["signals", "trades", "positions", "policy"]
    for before, after in zip(first.reports[2:], again.reports, strict=True):
        assert after.rows_loaded == 0 and after.rows_duplicate == before.rows_read > 0
    pd.testing.assert_frame_equal(again.history.trades, first.history.trades)


def test_decision_time_regime_is_the_pipelines(planted_db, window):
    truth = planted_db[1].history.truth
    tr = window.transitions
    pipeline_regime = pd.DataFrame({"symbol": tr.symbol, "ts": tr.ts, "code": tr.regime})
    joined = truth.merge(pipeline_regime, on=["symbol", "ts"], validate="1:1")
    assert len(joined) == len(truth)
    assert (joined["regime"].map(lambda r: Regime[r].value) == joined["code"]).all()


def test_each_model_is_right_as_often_as_planted(planted_db, candles):
    hist = planted_db[1].history
    signals = decision_truth(hist, candles, DEFAULT.horizon)
    accuracy = accuracy_by(signals, "model")["mean"]
    expected = {"XGB": 0.25, "LGBM": 0.5, "NHITS": 0.8, "PATCHTST": 0.5}
    for model, target in expected.items():
        assert accuracy[model] == pytest.approx(target, abs=0.04), model
    assert accuracy.idxmin() == Model(0).name  # the model at action code 0 is the bad one
    assert accuracy.idxmax() == "NHITS"
    # the truth table records the same correctness and the good model
    wide = signals.pivot_table(index=["symbol", "ts"], columns="model", values="correct")
    truth = hist.truth.set_index(["symbol", "ts"]).loc[wide.index]
    for m in Model:
        assert (truth[f"correct_{m.name.lower()}"] == wide[m.name].astype(bool)).all()
    assert set(hist.truth["good_model"]) == {"NHITS"}


def test_a_good_model_per_regime(candles):
    config = PlantedConfig(decision_every=1, regime_good_model=REGIME_EDGE)
    hist = build_planted_history(candles, config)
    signals = decision_truth(hist, candles, config.horizon)
    planted = signals.merge(hist.truth[["symbol", "ts", "regime"]], on=["symbol", "ts"])
    assert (planted["bar_regime"].map(lambda r: Regime(r).name) == planted["regime"]).all()
    table = accuracy_by(signals, "bar_regime", "model")
    for regime in Regime:
        for model in Model:
            got, n = table.loc[(regime.value, model.name)]
            target = 0.8 if REGIME_EDGE[regime] is model else 0.5
            assert n >= 400
            tolerance = max(0.04, 4.0 * np.sqrt(target * (1 - target) / n))
            assert got == pytest.approx(target, abs=tolerance), (regime.name, model.name, n)
    good = hist.truth["good_model"].to_numpy()
    regimes = hist.truth["regime"].map(lambda r: Regime[r])
    assert (good == [REGIME_EDGE[r].name for r in regimes]).all()


@pytest.mark.parametrize("run_length", [1.0, 4.0])
def test_errors_persist_for_the_configured_run_length(candles, run_length):
    config = PlantedConfig(decision_every=1, error_run_length=run_length)
    signals = decision_truth(build_planted_history(candles, config), candles, config.horizon)
    accuracy = accuracy_by(signals, "model")["mean"]
    for model, target in (("XGB", 0.25), ("NHITS", 0.8), ("LGBM", 0.5)):
        right, wrong = mean_streaks(signals, model)
        # streaks last run_length times as long as independent draws' 1/(1-a) and 1/a
        assert right * (1.0 - target) == pytest.approx(run_length, rel=0.15), model
        assert wrong * target == pytest.approx(run_length, rel=0.15), model
        assert accuracy[model] == pytest.approx(target, abs=0.04), model


def test_persistent_uniforms_are_uniform_and_last_run_length_rows():
    rng = np.random.default_rng(0)
    group = np.repeat([0, 1], 20_000)
    u = persistent_uniforms(rng, group, 2, 5.0)
    assert u.mean() == pytest.approx(0.5, abs=0.02)
    assert np.quantile(u, 0.25) == pytest.approx(0.25, abs=0.02)
    kept = (u[1:] == u[:-1])[group[1:] == group[:-1]]
    assert kept.mean() == pytest.approx(1.0 - 1.0 / 5.0, abs=0.01)
    assert (u[20_000] != u[19_999]).all()  # each group starts with fresh draws
    independent = persistent_uniforms(rng, group, 2, 1.0)
    assert not (independent[1:] == independent[:-1]).any()


def test_uniform_behaviour_and_its_propensities(dense):
    trades = dense.trades
    assert np.allclose(dense.meta_probs, 1 / 48)
    allowed = (dense.sizing_probs > 0).reshape(len(SIZE_MULTIPLIERS), 7)
    assert allowed[:, :3].all() and not allowed[:, 3:].any()  # leverage 1..3 by default
    assert np.allclose(dense.sizing_probs[dense.sizing_probs > 0], 1 / 24)
    meta, sizing = meta_codes(dense), sizing_codes(dense)
    assert_frequencies(meta, dense.meta_probs)
    assert_frequencies(sizing, dense.sizing_probs)
    product = trades["meta_action_prob"] * trades["sizing_action_prob"]
    assert (trades["action_prob"] == product).all()
    assert (trades["meta_action_prob"].to_numpy() == dense.meta_probs[meta]).all()
    assert (trades["sizing_action_prob"].to_numpy() == dense.sizing_probs[sizing]).all()


def test_skewed_behaviour_within_the_leverage_and_size_range(candles):
    sizes = (0.4, 0.8, 1.3)
    config = PlantedConfig(
        decision_every=1,
        behaviour=Behaviour.SKEWED,
        leverage_min=2,
        leverage_max=5,
        size_multipliers=sizes,
        skew_concentration=0.5,
    )
    hist = build_planted_history(candles, config)
    trades = hist.trades
    assert hist.truth["traded"].all()
    assert set(trades["leverage"]) == {2, 3, 4, 5}
    assert set(trades["size_multiplier"]) == set(sizes)
    assert hist.meta_probs.sum() == pytest.approx(1.0)
    assert hist.sizing_probs.sum() == pytest.approx(1.0)
    assert hist.meta_probs.max() > 5 * hist.meta_probs.min()  # far from uniform
    assert np.count_nonzero(hist.sizing_probs) == len(sizes) * 4
    meta, sizing = meta_codes(hist), sizing_codes(hist)
    assert_frequencies(meta, hist.meta_probs)
    assert_frequencies(sizing, hist.sizing_probs)
    product = trades["meta_action_prob"] * trades["sizing_action_prob"]
    assert (trades["action_prob"] == product).all()
    assert (trades["meta_action_prob"].to_numpy() == hist.meta_probs[meta]).all()
    assert (trades["sizing_action_prob"].to_numpy() == hist.sizing_probs[sizing]).all()
    # the preference is fixed per seed, whatever the number of decisions
    fewer = build_planted_history(candles, replace(config, decision_every=5))
    assert (fewer.meta_probs == hist.meta_probs).all()


def test_no_edge_makes_every_model_a_coin_flip(candles):
    config = PlantedConfig(decision_every=1, no_edge=True, error_run_length=3.0)
    hist = build_planted_history(candles, config)
    signals = decision_truth(hist, candles, config.horizon)
    for model, accuracy in accuracy_by(signals, "model")["mean"].items():
        assert accuracy == pytest.approx(0.5, abs=0.04), model
    right, wrong = mean_streaks(signals, "NHITS")
    assert right * 0.5 == pytest.approx(3.0, rel=0.15)  # persistence still applies
    assert hist.truth["good_model"].isna().all()


def test_a_share_of_decisions_traded(candles):
    hist = build_planted_history(candles, PlantedConfig(trade_fraction=0.5))
    assert hist.truth["traded"].mean() == pytest.approx(0.5, abs=0.03)
    assert len(hist.signals) == 4 * len(hist.truth)  # untraded decisions keep their signals
    traded = hist.trades.merge(hist.signals, on="signal_id")[["symbol_y", "ts_y"]]
    marked = hist.truth.loc[hist.truth["traded"], ["symbol", "ts"]]
    assert (traded.to_numpy() == marked.to_numpy()).all()


def test_an_rl_off_stretch_logs_no_propensities(candles):
    hist = build_planted_history(candles, PlantedConfig(rl_off=(0.4, 0.6)))
    assert hist.policy["enable_rl"].tolist() == [True, False, True]
    trades = hist.trades
    off = (trades["ts"] >= hist.policy["ts"].iloc[1]) & (trades["ts"] < hist.policy["ts"].iloc[2])
    assert off.any()
    for column in ("action_prob", "meta_action_prob", "sizing_action_prob"):
        assert trades.loc[off, column].isna().all() and trades.loc[~off, column].notna().all()


def test_symbols_and_decisions_per_symbol(candles):
    hist = build_planted_history(
        candles, PlantedConfig(symbols=("SPX",), max_decisions_per_symbol=200)
    )
    assert set(hist.signals["symbol"]) == {"SPX"} and len(hist.truth) == 200
    assert hist.truth["ts"].is_monotonic_increasing
    with pytest.raises(ValueError, match="PlantedConfig.symbols.*BTCUSDT"):
        build_planted_history(candles, PlantedConfig(symbols=("BTCUSDT",)))


def test_deterministic_per_seed(candles, planted_db):
    hist = planted_db[1].history
    again = build_planted_history(candles, DEFAULT)
    for name in ("signals", "trades", "positions", "policy", "truth"):
        pd.testing.assert_frame_equal(getattr(again, name), getattr(hist, name))
    other = build_planted_history(candles, PlantedConfig(seed=1))
    assert not other.signals["direction"].equals(hist.signals["direction"])
    assert not other.trades[["strategy", "leverage"]].equals(hist.trades[["strategy", "leverage"]])
    assert (other.truth["forward_return"] == hist.truth["forward_return"]).all()  # same bars


def test_simulating_the_logged_actions_reproduces_the_logged_pnl(window):
    assert window.n_trades == len(window.transitions) and window.n_incomplete == 0
    config = ReplayConfig()
    logged_pnl = window.transitions.pnl_pct[window.inputs.rows]
    logged_dd = window.transitions.max_drawdown_pct[window.inputs.rows]
    meta, sizing, _ = make_agents(config)
    simulated = replay.simulate(window.inputs, meta, sizing, config, policy="logged", learn=False)
    compiled = replay.evaluate_policies(window.inputs, config, None, None)
    for result in (simulated, compiled):
        assert len(result.pnl_pct) == len(logged_pnl)
        np.testing.assert_allclose(result.pnl_pct, logged_pnl[result.decision], atol=1e-9)
        np.testing.assert_allclose(result.max_drawdown_pct, logged_dd[result.decision], atol=1e-9)


def follow(model: Model, strategy: Strategy, n_states: int) -> np.ndarray:
    """A meta Q-table whose greedy action in every state is (strategy, model, HOLD)."""
    q = np.zeros((n_states, meta_space.n))
    q[:, meta_space.encode(strategy, model, WeightAction.WEIGHT_HOLD)] = 1.0
    return q


def test_following_the_good_model_beats_the_behaviour_on_the_holdout(holdout):
    config = pipeline.TrainConfig()
    n_states = config.replay.meta_space.n_states
    _, behaviour = pipeline.evaluate(holdout, config, None, None)
    assert holdout.n_trades > 600
    for strategy in Strategy:
        _, good = pipeline.evaluate(holdout, config, follow(Model.NHITS, strategy, n_states), None)
        _, bad = pipeline.evaluate(holdout, config, follow(Model.XGB, strategy, n_states), None)
        assert good["meta_mean_reward"] > behaviour["meta_mean_reward"] + 0.2, strategy
        assert bad["meta_mean_reward"] < behaviour["meta_mean_reward"], strategy


def test_following_each_regimes_model_beats_every_fixed_action(tmp_path):
    path = tmp_path / "regime.duckdb"
    build_planted_database(path, PlantedConfig(regime_good_model=REGIME_EDGE))
    with store.connect(path, read_only=True) as con:
        holdout = pipeline.load_window(con, history.holdout_start(con, 0.2), None)
    config = pipeline.TrainConfig()
    space = config.replay.meta_space
    fixed = []
    for action in range(meta_space.n):
        q = np.zeros((space.n_states, meta_space.n))
        q[:, action] = 1.0
        fixed.append(pipeline.evaluate(holdout, config, q, None)[1]["meta_mean_reward"])
    state_regime = np.asarray(space.decode(np.arange(space.n_states))["regime"])
    good = [REGIME_EDGE[r] for r in state_regime]
    q = np.zeros((space.n_states, meta_space.n))
    q[
        np.arange(space.n_states), meta_space.encode(Strategy.RANGE, good, WeightAction.WEIGHT_UP)
    ] = 1
    _, regime_policy = pipeline.evaluate(holdout, config, q, None)
    assert regime_policy["meta_mean_reward"] > max(fixed) + 0.1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"accuracy": 1.2}, "PlantedConfig.accuracy"),
        ({"bad_accuracy": -0.1}, "PlantedConfig.bad_accuracy"),
        ({"good_model": "GPT"}, "PlantedConfig.good_model"),
        ({"bad_model": Model.NHITS}, "PlantedConfig.bad_model"),
        ({"model_accuracy": (0.5, 0.5)}, "PlantedConfig.model_accuracy"),
        ({"regime_good_model": (Model.XGB,)}, "PlantedConfig.regime_good_model"),
        ({"error_run_length": 0.5}, "PlantedConfig.error_run_length"),
        ({"behaviour": "greedy"}, "PlantedConfig.behaviour"),
        ({"skew_concentration": 0.0}, "PlantedConfig.skew_concentration"),
        ({"leverage_min": 4, "leverage_max": 2}, "PlantedConfig.leverage_min"),
        ({"leverage_max": 8}, "PlantedConfig.leverage_min/leverage_max"),
        ({"size_multipliers": (0.5,)}, "PlantedConfig.size_multipliers"),
        ({"trade_fraction": 0.0}, "PlantedConfig.trade_fraction"),
        ({"horizon": 0}, "PlantedConfig.horizon"),
        ({"warmup_bars": 5}, "PlantedConfig.warmup_bars"),
        ({"symbols": ()}, "PlantedConfig.symbols"),
        ({"rl_off": (0.6, 0.5)}, "PlantedConfig.rl_off"),
    ],
)
def test_bad_config_names_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        PlantedConfig(**change)


def test_config_takes_model_names_and_per_model_accuracies():
    config = PlantedConfig(good_model="lgbm", bad_model=None, behaviour="skewed")  # type: ignore[arg-type]
    assert config.good_model is Model.LGBM and config.behaviour is Behaviour.SKEWED
    assert PlantedConfig(symbols="SPX").symbols == ("SPX",)  # type: ignore[arg-type]
    assert PlantedConfig(good_model=np.int64(1)).good_model is Model.LGBM  # type: ignore[arg-type]
    assert config.accuracy_table()[:, Model.LGBM].tolist() == [0.8] * 4
    assert (config.good_models() == Model.LGBM).all()
    custom = PlantedConfig(model_accuracy=(0.6, 0.6, 0.4, 0.5))
    assert (custom.good_models() == -1).all()  # a tie: no single good model
    assert PlantedConfig(no_edge=True).accuracy_table().tolist() == [[0.5] * 4] * 4
