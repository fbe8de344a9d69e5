"""The live system's recorded equity (the optional ``account`` table, issue 13 §1): ingested
with quarantine like every table, read by an as-of join, used instead of the account model
for the account features and the holdout's starting account; without it nothing changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from rlv2 import cli, history, pipeline, store
from rlv2.ingest import IngestRequest, ingest
from rlv2.outcomes import WEIGHT_SCALES, position_notional
from rlv2.states import FeatureConfig

DAY = "2024-01-01"

# One symbol, hourly bars; three traded decisions at 01:00, 05:00 and 09:00 closing at
# 03:00, 07:00 and 11:00; the live system recorded its equity (in dollars) at 00:00, 02:00
# (its peak, between closes), 03:00, 07:00 and 10:00.
RECORDED = [("00:00", 1000.0), ("02:00", 1200.0), ("03:00", 1100.0), ("07:00", 880.0)]
RECORDED += [("10:00", 990.0)]
TRADES = [("1", 1, 3, 10.0), ("2", 5, 7, -20.0), ("3", 9, 11, 5.0)]
"""(id, entry hour, close hour, pnl_pct)."""


def _write(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text(header + "\n" + "".join(line + "\n" for line in lines))
    return path


def tiny_history(folder: Path, *, recorded: bool = True) -> Path:
    """The tiny history above, every table through ``rlv2.ingest``."""
    folder.mkdir(exist_ok=True)
    db = folder / "tiny.duckdb"
    candles = [f"BTC,{DAY} {h:02d}:00:00,100,101,99,100,1" for h in range(24)]
    signals = [
        f"S{i}{model},{DAY} {entry:02d}:00:00,BTC,{model},1,0.6,TREND"
        for i, entry, _, _ in TRADES
        for model in ("XGB", "LGBM", "NHITS", "PATCHTST")
    ]
    trades = [
        f"T{i},S{i}XGB,{DAY} {entry:02d}:00:00,BTC,1,100,1.0,2,0.2,TREND,WEIGHT_HOLD"
        for i, entry, _, _ in TRADES
    ]
    positions = [f"T{i},{DAY} {close:02d}:00:00,100,{pnl},1" for i, _, close, pnl in TRADES]
    sources = {
        "candles": _write(folder / "c.csv", "symbol,ts,open,high,low,close,volume", candles),
        "signals": _write(
            folder / "s.csv",
            "signal_id,ts,symbol,model,direction,confidence,predicted_regime",
            signals,
        ),
        "trades": _write(
            folder / "t.csv",
            "trade_id,signal_id,ts,symbol,side,entry_price,size_multiplier,leverage,"
            "portfolio_exposure,strategy,weight_action",
            trades,
        ),
        "positions": _write(
            folder / "p.csv", "trade_id,closed_ts,exit_price,pnl_pct,max_drawdown_pct", positions
        ),
    }
    if recorded:
        rows = [f"{DAY} {hm}:00,{equity}" for hm, equity in RECORDED]
        sources["account"] = _write(folder / "a.csv", "ts,equity", rows)
    with store.connect(db) as con:
        for table, source in sources.items():
            report = ingest(con, IngestRequest(source=str(source), table=table))
            assert report.rows_quarantined == 0, report.problems
    return db


def test_the_account_features_read_the_recorded_equity(tmp_path):
    db = tiny_history(tmp_path)
    with store.connect(db, read_only=True) as con:
        tr = history.load_transitions(con)
    # in units of the first recorded equity (1000 = 100): after the close at 03:00 the
    # equity is 1100 (110), at 07:00 880 (88), at 11:00 that of 10:00, 990 (99); the peak
    # recorded by then is 1200 (120) each time, so health is 110/120, 88/120, 99/120
    assert list(tr.ts) == [np.datetime64(f"{DAY}T{h:02d}:00", "ns") for h in (1, 5, 9)]
    assert tr.closed_before.tolist() == [0, 1, 2]
    assert tr.equity.tolist() == pytest.approx([100.0, 110.0, 88.0])
    assert tr.account_health.tolist() == pytest.approx([1.0, 110 / 120, 88 / 120])
    # the slope of the equity after the closes known, over its mean: none, one, then
    # (88 - 110) / 1 over 99
    assert tr.equity_curve_slope.tolist() == pytest.approx([0.0, 0.0, -22 / 99])
    assert tr.close_account_health.tolist() == pytest.approx([110 / 120, 88 / 120, 99 / 120])
    assert tr.close_equity_curve_slope.tolist() == pytest.approx(
        [0.0, -22 / 99, np.polyfit([0, 1, 2], [110, 88, 99], 1)[0] / 99]
    )
    # the win rate is the trades' own, recorded equity or not
    assert tr.close_winrate.tolist() == pytest.approx([1.0, 0.5, 2 / 3])
    # the account model reads something else on the same trades: 100 · 1.01 after +10 %
    with store.connect(tiny_history(tmp_path / "model", recorded=False), read_only=True) as con:
        model = history.load_transitions(con)
    assert model.equity.tolist() == pytest.approx([100.0, 101.0, 101.0 * 0.98])
    assert model.account_health.tolist() == pytest.approx([1.0, 1.0, 0.98])


def test_the_holdout_starts_from_the_recorded_equity(tmp_path):
    db = tiny_history(tmp_path)
    at = np.datetime64(f"{DAY}T06:00", "us").item()
    with store.connect(db, read_only=True) as con:
        start = history.account_start(con, at)
        window = pipeline.load_window(con, at)
    # at 06:00: the equity recorded at 03:00 (110), the peak 1200 recorded at 02:00 (120);
    # trade 2, entered at 05:00 (equity then 110) and closing at 07:00, is open
    assert (start.equity, start.peak) == pytest.approx((110.0, 120.0))
    assert start.recent_pnl.tolist() == [10.0]
    assert start.recent_equity.tolist() == pytest.approx([110.0])
    margin = FeatureConfig().margin_fraction * 110.0
    assert start.open_notional.tolist() == pytest.approx(
        [position_notional(1.0, float(WEIGHT_SCALES[2]), 2, margin)]
    )
    assert window.recorded_equity and window.inputs.start.equity == pytest.approx(110.0)


def test_without_recorded_equity_nothing_changes(demo_db, tmp_path):
    """An empty account table (the demo's) and none at all (a database made before it)
    both read as the model; the demo's figures are pinned by test_reproducibility."""
    copy = tmp_path / "copy.duckdb"
    shutil.copy(demo_db, copy)
    with store.connect(copy) as con:
        con.execute("DROP TABLE account")
        assert not store.has_account(con) and not history.has_recorded_equity(con)
    with store.connect(demo_db, read_only=True) as con:
        assert store.has_account(con) and not history.has_recorded_equity(con)
        demo = history.load_transitions(con)
        cut = history.holdout_start(con, 0.2)
        demo_start = history.account_start(con, cut)
    with store.connect(copy, read_only=True) as con:
        same = history.load_transitions(con)
        same_start = history.account_start(con, cut)
    for name, column in demo.columns().items():
        np.testing.assert_array_equal(same.columns()[name], column, err_msg=name)
    for name in ("equity", "peak"):
        assert getattr(same_start, name) == getattr(demo_start, name)
    np.testing.assert_array_equal(same_start.open_notional, demo_start.open_notional)
    assert store.fingerprint(copy) == store.fingerprint(demo_db)


def test_bad_account_rows_are_quarantined_with_their_reason(tmp_path, capsys):
    source = _write(
        tmp_path / "account.csv",
        "ts,equity",
        [
            f"{DAY} 00:00,1000",
            f"{DAY} 01:00,0",
            f"{DAY} 02:00,-5",
            f"{DAY} 03:00,inf",
            f"{DAY} 04:00,abc",
            f"{DAY} 05:00,",
            "yesterday,1000",
            "1969-12-31 23:00,1000",
            f"{DAY} 06:00,1100",
            f"{DAY} 06:00,1200",
            f"{DAY} 00:00,1000",
        ],
    )
    db = tmp_path / "h.duckdb"
    assert cli.main(["ingest", "--db", str(db), "--table", "account", str(source)]) == 0
    out = capsys.readouterr().out
    assert "read 11 = loaded 1 + duplicates 1 + quarantined 9" in out
    with store.connect(db, read_only=True) as con:
        reasons = con.execute(
            "SELECT source_row, column_name, reason FROM quarantine ORDER BY source_row"
        ).fetchall()
        assert con.execute("SELECT * FROM account").fetchall()[0][1] == 1000.0
    assert reasons[:5] == [
        (2, "equity", "equity must be finite and > 0, got 0.0"),
        (3, "equity", "equity must be finite and > 0, got -5.0"),
        (4, "equity", "equity must be finite and > 0, got inf"),
        (5, "equity", "cannot parse 'abc' as a number"),
        (6, "equity", "missing value"),
    ]
    assert reasons[5][:2] == (7, "ts") and "cannot parse 'yesterday'" in reasons[5][2]
    assert reasons[6][:2] == (8, "ts") and "outside the sane range" in reasons[6][2]
    assert reasons[7:] == [
        (9, "ts", "rows 9, 10 give this key different values"),
        (10, "ts", "rows 9, 10 give this key different values"),
    ]


def test_a_history_with_recorded_equity_trains_end_to_end(tmp_path, mlflow_sqlite, prefect_harness):
    """``rlv2 train`` on a planted history whose live system recorded its equity: it
    trains, gates and logs that the equity was the recorded one."""
    from rlv2.demo import build_planted_database
    from rlv2.planted import PlantedConfig

    db = tmp_path / "planted.duckdb"
    build_planted_database(db, PlantedConfig(max_decisions_per_symbol=400))
    with store.connect(db) as con:
        # equity the model does not make: 25,000 dollars drifting down by 1 % a week
        con.execute(
            "COPY (SELECT closed_ts AS ts, 25000 * pow(0.99, "
            "date_diff('day', min(closed_ts) OVER (), closed_ts) / 7) AS equity "
            "FROM positions) TO ? (HEADER)",
            [str(tmp_path / "account.csv")],
        )
    args = ["ingest", "--db", str(db), "--table", "account", str(tmp_path / "account.csv")]
    assert cli.main(args) == 0
    with store.connect(db, read_only=True) as con:
        recorded = history.load_transitions(con)
    assert recorded.account_health.min() < 0.9  # the drift shows in the state
    # in this process, on the session's Prefect API (a subprocess starts its own server)
    code = cli.main(["train", "--db", str(db), "--epochs", "2", "--tracking-uri", mlflow_sqlite])
    assert code in (cli.EXIT_OK, cli.EXIT_REFUSED)
    runs = MlflowClient().search_runs(
        [e.experiment_id for e in MlflowClient().search_experiments()],
        "params.account_equity = 'recorded'",
    )
    assert len(runs) == 1
    assert len(MlflowClient().search_model_versions("")) == 2
