"""States and rewards computed in DuckDB agree with the Python core, with no look-ahead."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from rlv2 import history, market, pipeline, rewards, states, store
from rlv2.account import account_after_closes
from rlv2.domain import Model, Regime
from rlv2.outcomes import account_equity
from rlv2.replay.config import traded_mask


@pytest.fixture(scope="module")
def transitions(demo_db):
    with store.connect(demo_db, read_only=True) as con:
        tr = history.load_transitions(con)
        bars = history.load_bars(con)
    return tr, bars


def test_every_decision_point_is_loaded(transitions, demo_con):
    tr, _ = transitions
    n_points = demo_con.execute("SELECT count(DISTINCT (symbol, ts)) FROM signals").fetchone()[0]
    assert len(tr) == n_points
    assert np.array_equal(tr.decision_id, np.arange(n_points))
    n_trades = demo_con.execute("SELECT count(*) FROM trades").fetchone()[0]
    assert int((tr.trade_id >= 0).sum()) == n_trades


def test_market_features_equal_python_formulas_on_real_bars(transitions):
    tr, bars = transitions
    close = bars.close
    for i in range(len(tr.decision_id)):
        hi, first = int(tr.bar_idx[i]), int(tr.first_idx[i])
        window = close[max(hi - 19, first) : hi + 1]
        assert tr.volatility[i] == pytest.approx(states.volatility(window), rel=1e-9, abs=1e-15)
        assert tr.market_pressure[i] == pytest.approx(
            states.market_pressure(window[-5:]), rel=1e-9, abs=1e-12
        )
        assert tr.regime[i] == states.label_regime(window)
        exit_idx = int(tr.exit_idx[i])
        if exit_idx >= 0:
            held = close[hi : exit_idx + 1]
            assert tr.actual_regime[i] == states.label_regime(held)


def test_all_four_regimes_occur(transitions):
    tr, _ = transitions
    assert set(tr.regime) == set(Regime)


def test_account_features_equal_python_formulas(demo_con):
    closes = demo_con.execute(store.sql_text("account_closes")).fetchnumpy()
    pnl = closes["pnl_pct"]
    acct = account_after_closes(pnl, 100.0, 0.1, 20)
    equity = account_equity(pnl)
    np.testing.assert_array_equal(acct["equity"], equity)
    for k in range(0, len(pnl), 37):
        tail = pnl[max(0, k - 19) : k + 1]
        assert acct["winrate"][k] == pytest.approx(states.trailing_winrate(pnl[: k + 1]))
        assert acct["sharpe_signal"][k] == pytest.approx(
            rewards.sharpe_signal(tail / 100.0), abs=1e-12
        )
        assert acct["equity_curve_slope"][k] == pytest.approx(
            states.equity_curve_slope(equity[max(0, k - 19) : k + 1]), rel=1e-9, abs=1e-15
        )
        assert acct["account_health"][k] == pytest.approx(
            states.account_health(np.r_[100.0, equity[: k + 1]])
        )


def known_closes(closes, ts):
    """How many closes a decision at ``ts`` knows: before it, or at it if entered earlier."""
    at = closes["closed_ts"] == ts
    return int((closes["closed_ts"] < ts).sum() + (at & ~closes["zero_duration"]).sum())


def test_decision_account_state_counts_the_closes_known_at_it(transitions, demo_con):
    tr, _ = transitions
    closes = demo_con.execute(store.sql_text("account_closes")).fetchnumpy()
    acct = account_after_closes(closes["pnl_pct"], 100.0, 0.1, 20)
    for i in range(0, len(tr.ts), 53):
        k = known_closes(closes, tr.ts[i])
        assert tr.closed_before[i] == k
        if k == 0:
            assert (tr.previous_winrate[i], tr.equity[i]) == (0.5, 100.0)
        else:
            assert tr.equity[i] == acct["equity"][k - 1]
            assert tr.previous_winrate[i] == acct["winrate"][k - 1]
        if tr.exit_idx[i] >= 0:
            own = int(np.flatnonzero(closes["trade_id"] == tr.trade_id[i])[0])
            assert tr.close_sharpe_signal[i] == acct["sharpe_signal"][own]
        else:
            assert np.isnan(tr.close_winrate[i])


def trade_code(con, trade_id):
    """The code load_transitions gives the trade of this text id: its place in id order."""
    return con.execute(
        "SELECT count(*) FROM trades WHERE trade_id::VARCHAR < $id", {"id": str(trade_id)}
    ).fetchone()[0]


def test_a_trade_entered_and_closed_at_its_signal_is_not_known_at_that_instant(demo_db, tmp_path):
    # One demo trade made zero-duration: entered and closed at its own signal's instant.
    # Its own decision, and any other decision at that instant, must not count its close;
    # the next decision does. A trade entered earlier and closed at a decision's instant
    # stays known to it (the demo has such ties).
    copy = tmp_path / "zero.duckdb"
    shutil.copy(demo_db, copy)
    with store.connect(copy) as con:
        trade_id, signal_ts = con.execute(
            "SELECT t.trade_id, s.ts FROM trades t JOIN signals s USING (signal_id) "
            "ORDER BY t.trade_id LIMIT 1 OFFSET 500"
        ).fetchone()
        con.execute(
            "UPDATE trades SET ts = $ts WHERE trade_id = $id", {"ts": signal_ts, "id": trade_id}
        )
        con.execute(
            "UPDATE positions SET closed_ts = $ts WHERE trade_id = $id",
            {"ts": signal_ts, "id": trade_id},
        )
        closes = con.execute(store.sql_text("account_closes")).fetchnumpy()
        tr = history.load_transitions(con)
        code = trade_code(con, trade_id)
    assert closes["zero_duration"].sum() == 1
    own = np.flatnonzero(tr.trade_id == code)[0]
    at_or_before = int((closes["closed_ts"] <= tr.ts[own]).sum())
    assert tr.closed_before[own] == at_or_before - 1  # all but its own close
    later = np.flatnonzero(tr.ts > tr.ts[own])[0]
    assert tr.closed_before[later] == known_closes(closes, tr.ts[later])
    assert tr.closed_before[later] >= at_or_before
    for i in range(0, len(tr.ts), 7):
        assert tr.closed_before[i] == known_closes(closes, tr.ts[i])
    tied = [i for i in range(len(tr.ts)) if i != own and (closes["closed_ts"] == tr.ts[i]).any()]
    assert tied  # decisions at the instant of another trade's close: that close is known
    for i in tied[:50]:
        assert tr.closed_before[i] == int((closes["closed_ts"] <= tr.ts[i]).sum()) - int(
            ((closes["closed_ts"] == tr.ts[i]) & closes["zero_duration"]).sum()
        )


def test_no_look_ahead_changing_later_bars_changes_no_earlier_state(demo_db, tmp_path):
    copy = tmp_path / "perturbed.duckdb"
    shutil.copy(demo_db, copy)
    with store.connect(copy, read_only=True) as con:
        before = history.load_transitions(con)
    cut = before.ts[len(before.ts) // 2]
    with store.connect(copy) as con:
        con.execute(
            "UPDATE candles SET close = close * 1.37, high = high * 1.37, low = low * 1.37, "
            "open = open * 1.37 WHERE ts > ?",
            [cut],
        )
        after = history.load_transitions(con)
    early = before.ts <= cut
    assert early.sum() > 100
    for column in ("volatility", "market_pressure", "regime", "confidence", "bar_idx"):
        assert np.array_equal(getattr(before, column)[early], getattr(after, column)[early]), column
    late = ~early
    assert not np.allclose(before.market_pressure[late], after.market_pressure[late])


def test_window_features_match_requested_order(demo_con):
    bars = history.load_bars(demo_con)
    lo = np.array([30, 0, 10, 30])
    hi = np.array([49, 4, 29, 49])
    out = market.window_features(bars, lo, hi)
    for i in range(4):
        window = bars.close[lo[i] : hi[i] + 1]
        assert out.volatility[i] == pytest.approx(states.volatility(window), rel=1e-9)
        assert out.regime[i] == states.label_regime(window)


def test_decisions_without_a_trade_have_no_exit(transitions):
    tr, _ = transitions
    untraded = tr.trade_id < 0
    assert untraded.any()
    assert (tr.exit_idx[untraded] == -1).all()  # NULL, not the symbol's last bar
    assert np.isnat(tr.closed_ts[untraded]).all()
    assert (tr.side[untraded] == 0).all()  # not -1: that is a short
    assert set(np.unique(tr.side[~untraded])) == {-1, 1}
    traded = ~untraded
    assert (tr.exit_idx[traded] > tr.bar_idx[traded]).all()


def test_a_decision_without_a_known_bar_is_left_out(demo_db, tmp_path):
    copy = tmp_path / "extra.duckdb"
    shutil.copy(demo_db, copy)
    with store.connect(copy) as con:
        before = history.load_transitions(con)
        first_ts, symbol = con.execute(
            "SELECT min(ts), arg_min(symbol, ts) FROM candles"
        ).fetchone()
        con.execute(
            "INSERT INTO signals VALUES "
            "('extra-1', $early, $symbol, 'XGB', 1, 0.9, 'TREND'), "
            "('extra-2', $late, 'NOBARS', 'XGB', 1, 0.9, 'TREND')",
            {
                "early": first_ts - np.timedelta64(1, "D"),
                "symbol": symbol,
                "late": before.ts[-1],
            },
        )
        after = history.load_transitions(con)
    assert len(after.ts) == len(before.ts)
    assert np.array_equal(after.decision_id, before.decision_id)
    assert np.array_equal(after.bar_idx, before.bar_idx)


def test_trade_ids_of_any_text_are_trades_like_any_other(demo_db, tmp_path):
    """The contract allows any text as a trade id; '-1' must not read as 'no trade'.

    Each trade's code is its id's place in the ids' text order, whatever the text.
    """
    renumbered = tmp_path / "negative_ids.duckdb"
    with store.connect(renumbered) as con:
        store.apply_schema(con)
        con.execute(f"ATTACH '{demo_db}' AS src (READ_ONLY)")
        for table, change in (
            ("candles", ""),
            ("signals", ""),
            ("policy", ""),
            ("trades", " REPLACE ('-' || trade_id AS trade_id)"),
            ("positions", " REPLACE ('-' || trade_id AS trade_id)"),
        ):
            con.execute(f"INSERT INTO {table} SELECT *{change} FROM src.{table}")
        con.execute("DETACH src")
        assert con.execute("SELECT count(*) FROM trades WHERE trade_id = '-1'").fetchone() == (1,)
        negative = history.load_transitions(con)
        negative_ids = np.array(
            [r[0] for r in con.execute("SELECT trade_id FROM trades ORDER BY trade_id").fetchall()]
        )
    with store.connect(demo_db, read_only=True) as con:
        positive = history.load_transitions(con)
        positive_ids = np.array(
            [r[0] for r in con.execute("SELECT trade_id FROM trades ORDER BY trade_id").fetchall()]
        )
    assert np.array_equal(traded_mask(negative), traded_mask(positive))
    traded = ~np.isnat(positive.trade_ts)
    assert (negative.trade_id[traded] >= 0).all()  # a code, never the -1 of no trade
    assert ["-" + i for i in positive_ids[positive.trade_id[traded]]] == list(
        negative_ids[negative.trade_id[traded]]
    )
    closed = traded & ~np.isnat(positive.closed_ts)
    # the account after each close is there (ties in closed_ts now order the other way,
    # so its values may differ from the positive ids')
    assert np.isfinite(negative.close_winrate[closed]).all()
    assert np.isnan(negative.close_winrate[~closed]).all()
    np.testing.assert_array_equal(negative.closed_before, positive.closed_before)
    np.testing.assert_allclose(negative.equity, positive.equity, rtol=1e-12)


def test_decisions_a_model_gave_no_signal_on_are_kept_out_of_the_simulation(demo_db, tmp_path):
    """A missing model signal is valid data: training runs, the simulation counts it out."""
    gaps = tmp_path / "gaps.duckdb"
    shutil.copy(demo_db, gaps)
    with store.connect(gaps) as con:
        # the three other models' signals of the first five trades' decisions
        con.execute(
            "DELETE FROM signals WHERE signal_id IN (SELECT o.signal_id FROM "
            "(SELECT * FROM trades ORDER BY trade_id LIMIT 5) AS t "
            "JOIN signals AS s ON s.signal_id = t.signal_id "
            "JOIN signals AS o ON o.symbol = s.symbol AND o.ts = s.ts AND o.model <> s.model)"
        )
        window = pipeline.load_window(con)
        first_five = 4  # the first five ids' codes are 0 to 4
    with store.connect(demo_db, read_only=True) as con:
        full = pipeline.load_window(con)
    tr = window.transitions
    gap_rows = np.flatnonzero(np.isnan(tr.model_confidence[:, [Model.XGB, Model.PATCHTST]]).any(1))
    assert 0 < len(gap_rows) and (tr.trade_id[gap_rows] <= first_five).all()
    assert window.n_incomplete == 5
    for m in range(tr.model_confidence.shape[1]):
        missing = np.isnan(tr.model_confidence[:, m])
        assert (tr.model_direction[missing, m] == 0).all()  # no signal: 0, not the short -1
        assert set(np.unique(tr.model_direction[~missing, m])) == {-1, 1}
    assert window.n_trades == full.n_trades - 5
    assert not np.isin(gap_rows, window.inputs.rows).any()
    assert len(tr.ts) == len(full.transitions.ts)  # the logged mode still sees them
    config = pipeline.TrainConfig(epochs=1)
    for agent in ("meta_strategy", "position_sizing"):
        trained = pipeline.train_agent(agent, window, config)
        assert np.isfinite(trained.q).all()
    _, logged = pipeline.evaluate(window, config, None, None)
    assert np.isfinite(logged["mean_pnl_pct"])


def test_the_rl_switch_is_on_before_the_first_policy_row_in_both_readings():
    """The contract: RL is on before the first switch; the demo writer reads it the same way."""
    from rlv2.demo_data import _rl_on

    switches = np.asarray(["2024-01-02T00", "2024-01-03T00"], dtype="datetime64[ns]")
    policy = pd.DataFrame({"ts": switches, "enable_rl": [False, True]})
    at = np.asarray(
        ["2024-01-01T00", "2024-01-02T00", "2024-01-02T12", "2024-01-03T00", "2024-01-04T00"],
        dtype="datetime64[ns]",
    )
    expected = [True, False, False, True, True]
    assert (
        history._switch_at(
            {"ts": switches, "enable_rl": policy["enable_rl"].to_numpy()}, at
        ).tolist()
        == expected
    )
    assert _rl_on(at.astype(np.int64), policy).tolist() == expected
    no_rows = {"ts": switches[:0], "enable_rl": np.zeros(0, bool)}
    assert history._switch_at(no_rows, at).all()


def test_a_database_made_before_the_per_agent_propensities_still_loads_and_ingests(
    demo_db, tmp_path, schema_of_first_release
):
    """Read-only readers see the missing columns as NaN and the BIGINT ids as text; the
    next ingest adds the columns and converts the ids."""
    from rlv2.ingest import IngestRequest, ingest

    old = tmp_path / "old.duckdb"
    with store.connect(old) as con:
        con.execute(schema_of_first_release)
        con.execute(f"ATTACH '{demo_db}' AS src (READ_ONLY)")
        for table in ("candles", "signals", "trades", "positions", "policy"):
            added = " EXCLUDE (meta_action_prob, sizing_action_prob)" if table == "trades" else ""
            con.execute(f"INSERT INTO {table} BY NAME SELECT *{added} FROM src.{table}")
        con.execute("DETACH src")
    with store.connect(old, read_only=True) as con:
        before = history.load_transitions(con)
    with store.connect(demo_db, read_only=True) as con:
        demo = history.load_transitions(con)
    assert np.isnan(before.meta_action_prob).all() and np.isnan(before.sizing_action_prob).all()
    for name, column in demo.columns().items():
        np.testing.assert_array_equal(before.columns()[name], column, err_msg=name)
    with store.connect(demo_db, read_only=True) as con:
        symbol, last = con.execute("SELECT symbol, max(ts) FROM signals GROUP BY 1").fetchone()
    ts = last + pd.Timedelta(hours=1)  # a decision point of its own
    signals, trades = tmp_path / "signals.csv", tmp_path / "trades.csv"
    signals.write_text(
        "signal_id,ts,symbol,model,direction,confidence,predicted_regime\n"
        f"900000001,{ts},{symbol},XGB,1,0.6,TREND\n"
    )
    trades.write_text(
        "trade_id,signal_id,ts,symbol,side,entry_price,size_multiplier,leverage,"
        "portfolio_exposure,strategy,weight_action,action_prob,meta_action_prob,"
        "sizing_action_prob\n"
        f"900000001,900000001,{ts},{symbol},1,100,1.0,2,0.2,TREND,WEIGHT_UP,0.01,0.1,0.1\n"
    )
    with store.connect(old) as con:
        assert ingest(con, IngestRequest(source=str(signals), table="signals")).rows_loaded == 1
        report = ingest(con, IngestRequest(source=str(trades), table="trades"))
    assert (report.rows_loaded, report.ignored_columns) == (1, ()), report.problems
    with store.connect(old, read_only=True) as con:
        after = history.load_transitions(con)
        assert con.execute(store.sql_text("schema_ids_numeric")).fetchone() == (0,)
        new = after.trade_id == trade_code(con, 900000001)
    assert after.meta_action_prob[new].tolist() == after.sizing_action_prob[new].tolist() == [0.1]
    assert np.isnan(after.meta_action_prob[~new]).all()
