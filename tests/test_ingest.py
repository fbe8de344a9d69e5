"""`rlv2 ingest` and rlv2.ingest on real DuckDB files: the real price files of data/, one
fixture per table with one of each kind of bad row, other source formats, idempotence, and
sources that cannot be read at all."""

import csv
import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlv2 import ingest as ingest_module
from rlv2 import store
from rlv2.cli import main
from rlv2.ingest import (
    CONTRACT_TABLES,
    IngestError,
    IngestRequest,
    ingest,
    load_postgres_extension,
    plan_columns,
    redact_dsn,
)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
FIXTURES = Path(__file__).resolve().parent / "data"
SPX_CSV = DATA / "sp500_1d.csv"
EURUSD_CSV = DATA / "eurusd_1h.csv"
SPX_ARGS = [str(SPX_CSV), "--table", "candles", "--symbol", "SPX", "--map", "ts=Date"]
SPX_ARGS += ["--ts-format", "%m/%d/%Y"]
EURUSD_ARGS = [str(EURUSD_CSV), "--table", "candles", "--symbol", "EURUSD", "--map", "ts=column0"]


def csv_rows(path):
    """The header and data rows of a CSV, as Python's csv module reads them."""
    with open(path, newline="") as stream:
        header, *rows = list(csv.reader(stream))
    return header, rows


def table_counts(db_path):
    """Row counts of every table of the database, to show that a failure changed nothing."""
    with store.connect(db_path, read_only=True) as con:
        tables = [
            row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        ]
        return {
            table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables
        }


def fixture_request(table):
    return IngestRequest(source=str(FIXTURES / f"{table}_bad.csv"), table=table)


# --- the real files of data/ ------------------------------------------------------------


def test_both_real_files_load_through_the_cli(tmp_path, capsys):
    db = tmp_path / "real.duckdb"
    _, spx = csv_rows(SPX_CSV)
    _, eurusd = csv_rows(EURUSD_CSV)

    assert main(["ingest", "--db", str(db), *SPX_ARGS]) == 0
    out = capsys.readouterr().out
    assert f"read {len(spx)} = loaded {len(spx)} + duplicates 0 + quarantined 0" in out
    assert "ignored source columns: Adj Close" in out
    assert main(["ingest", "--db", str(db), *EURUSD_ARGS]) == 0
    out = capsys.readouterr().out
    assert f"read {len(eurusd)} = loaded {len(eurusd)} + duplicates 0 + quarantined 0" in out

    with store.connect(db, read_only=True) as con:
        counts = dict(
            con.execute("SELECT symbol, count(*) FROM candles GROUP BY symbol").fetchall()
        )
        first_spx = con.execute(
            "SELECT ts, open, high, low, close, volume FROM candles WHERE symbol = 'SPX' "
            "ORDER BY ts LIMIT 1"
        ).fetchone()
        last_eurusd = con.execute(
            "SELECT ts, open, high, low, close, volume FROM candles WHERE symbol = 'EURUSD' "
            "ORDER BY ts DESC LIMIT 1"
        ).fetchone()
    assert counts == {"SPX": len(spx), "EURUSD": len(eurusd)}
    date, open_, high, low, close, _adj_close, volume = spx[0]
    assert first_spx == (
        dt.datetime.strptime(date, "%m/%d/%Y"),
        *map(float, (open_, high, low, close, volume)),
    )
    stamp, *prices = eurusd[-1]
    assert last_eurusd == (dt.datetime.fromisoformat(stamp), *map(float, prices))


def test_a_real_file_loads_through_the_installed_command(tmp_path):
    script = Path(sys.executable).with_name("rlv2")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rlv2.cli"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "RLV2_DB": str(tmp_path / "env.duckdb")}
    _, eurusd = csv_rows(EURUSD_CSV)

    done = subprocess.run(
        [*command, "ingest", *EURUSD_ARGS], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"read {len(eurusd)} = loaded {len(eurusd)} + duplicates 0" in done.stdout

    missing = tmp_path / "no_such_file.csv"
    failed = subprocess.run(
        [*command, "ingest", str(missing), "--table", "candles", "--symbol", "X"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert failed.returncode == 1
    assert str(missing) in failed.stderr
    assert "Traceback" not in failed.stderr


def test_reingesting_a_file_loads_nothing_twice(tmp_path):
    db = tmp_path / "again.duckdb"
    _, spx = csv_rows(SPX_CSV)
    assert main(["ingest", "--db", str(db), *SPX_ARGS]) == 0
    fingerprint = store.fingerprint(db)

    with store.connect(db) as con:
        report = ingest(
            con,
            IngestRequest(
                source=str(SPX_CSV),
                table="candles",
                symbol="SPX",
                column_map={"ts": "Date"},
                ts_format="%m/%d/%Y",
            ),
        )
        logged = con.execute(
            "SELECT rows_read, rows_loaded, rows_duplicate, rows_quarantined, content_sha256 "
            "FROM ingest_log ORDER BY ingest_id"
        ).fetchall()
    assert (report.rows_read, report.rows_loaded, report.rows_duplicate) == (len(spx), 0, len(spx))
    assert report.rows_quarantined == 0
    assert logged[0][:4] == (len(spx), len(spx), 0, 0)
    assert logged[1][:4] == (len(spx), 0, len(spx), 0)
    assert logged[0][4] == logged[1][4] == report.content_sha256
    assert table_counts(db)["candles"] == len(spx)
    assert store.fingerprint(db) == fingerprint


# --- one fixture per table, one of each kind of bad row -----------------------------------

EXPECTED_PROBLEMS = {
    "candles": {
        (2, "open"): "price must be finite and > 0, got nan",
        (3, "low"): "price must be finite and > 0, got -95.0",
        (4, "high"): "high 90.0 is below low 95.0",
        (5, "ts"): "cannot parse 'not a time' as a timestamp",
        (6, "volume"): "volume must be finite and >= 0, got -3.0",
        (9, "symbol, ts"): "rows 9, 10 give this key different values",
        (10, "symbol, ts"): "rows 9, 10 give this key different values",
        (11, "symbol"): "missing value",
        (12, "high"): "high 104.0 is below open 100.0 or close 105.0",
        (13, "open"): "cannot parse 'abc' as a number",
        (14, None): "malformed CSV record: Expected Number of Columns: 7 Found: 5",
        (16, None): "malformed CSV record: Expected Number of Columns: 7 Found: 8",
        (17, "high"): "price must be finite and > 0, got inf",
    },
    "signals": {
        (3, "model"): "unknown value 'RF' (expected one of XGB, LGBM, NHITS, PATCHTST)",
        (4, "predicted_regime"): "unknown value 'SIDEWAYS' (expected one of TREND, RANGE, BREAKOUT",
        (5, "confidence"): "confidence must be in [0, 1], got 1.5",
        (6, "direction"): "direction must be -1 or +1, got 0",
        (7, "confidence"): "confidence must be in [0, 1], got -0.1",
        (8, "signal_id"): "missing value",
        (9, "model"): "rows 9, 10 give this (symbol, ts, model) different signal_ids",
        (10, "model"): "rows 9, 10 give this (symbol, ts, model) different signal_ids",
        (12, "confidence"): "confidence must be in [0, 1], got nan",
    },
    "trades": {
        (3, "signal_id"): "no signal with signal_id 999 is stored (ingest signals first)",
        (4, "size_multiplier"): "size_multiplier must be one of 0.2, 0.4, 0.6, 0.8, 1.0, 1.3",
        (5, "leverage"): "leverage must be an integer from 1 to 7, got 8",
        (6, "leverage"): "cannot parse '2.5' as an integer",
        (7, "side"): "side must be -1 or +1, got 0",
        (8, "strategy"): "unknown value 'SCALPING'",
        (9, "weight_action"): "unknown value 'WEIGHT_MAX'",
        (10, "action_prob"): "action_prob must be in (0, 1], got 1.2",
        (11, "ts"): "trade at 2024-01-01 09:59:00 precedes its signal at 2024-01-01 10:00:00",
        (12, "symbol"): "symbol ETHUSDT differs from its signal's symbol BTCUSDT",
        (13, "portfolio_exposure"): "portfolio_exposure must be finite and >= 0, got -0.1",
        (15, "entry_price"): "price must be finite and > 0, got 0.0",
    },
    "positions": {
        (3, "trade_id"): "no trade with trade_id 777 is stored (ingest trades first)",
        (4, "closed_ts"): "closed at 2023-12-31 23:00:00 before its trade opened at 2024-01-01",
        (5, "max_drawdown_pct"): "max_drawdown_pct must be in [0, 100]",
        (6, "exit_price"): "price must be finite and > 0, got -5.0",
        (7, "pnl_pct"): "pnl_pct must be finite and >= -100 (percent of margin), got -150.0",
        (8, "pnl_pct"): "pnl_pct must be finite and >= -100 (percent of margin), got inf",
        (9, "closed_ts"): "cannot parse '01/01/2024 05:00' as a timestamp",
    },
    "policy": {
        (3, "enable_rl"): "cannot parse 'maybe' as a boolean",
        (4, "ts"): "missing value",
        (5, "ts"): "rows 5, 6 give this key different values",
        (6, "ts"): "rows 5, 6 give this key different values",
    },
    "account": {
        (2, "equity"): "equity must be finite and > 0, got 0.0",
        (3, "equity"): "cannot parse 'abc' as a number",
        (4, "ts"): "missing value",
        (5, "ts"): "rows 5, 6 give this key different values",
        (6, "ts"): "rows 5, 6 give this key different values",
        (9, "equity"): "equity must be finite and > 0, got -inf",
    },
}
"""Per table: (source_row, column) of each quarantine row -> a part of its reason."""

EXPECTED_DUPLICATES = {
    "candles": [8],
    "signals": [11],
    "trades": [14],
    "positions": [10],
    "account": [7],
}
"""Per table: the source rows that repeat an earlier row of the fixture."""


def load_fixtures_before(con, table):
    """Ingest the fixtures of the tables that ``table`` refers to (signals before trades...)."""
    for earlier in CONTRACT_TABLES[: CONTRACT_TABLES.index(table)]:
        ingest(con, fixture_request(earlier))


@pytest.mark.parametrize("table", CONTRACT_TABLES)
def test_bad_rows_are_quarantined_and_the_good_rows_load(tmp_path, table):
    path = FIXTURES / f"{table}_bad.csv"
    header, rows = csv_rows(path)
    lines = path.read_text().splitlines()
    expected = EXPECTED_PROBLEMS[table]
    bad_rows = {row for row, _ in expected}
    duplicate_rows = EXPECTED_DUPLICATES.get(table, [])
    good_rows = [n for n in range(1, len(rows) + 1) if n not in bad_rows | set(duplicate_rows)]

    with store.connect(tmp_path / f"{table}.duckdb") as con:
        store.apply_schema(con)
        load_fixtures_before(con, table)
        before = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        report = ingest(con, fixture_request(table))
        quarantined = con.execute(
            "SELECT source_row, column_name, reason, raw_record, source_file, target_table "
            "FROM quarantine WHERE ingest_id = ?",
            [report.ingest_id],
        ).fetchall()
        stored = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before

    assert report.rows_read == len(rows)
    assert report.rows_quarantined == len(bad_rows)
    assert report.rows_duplicate == len(duplicate_rows)
    assert report.rows_loaded == stored == len(good_rows)
    assert {(row, column) for row, column, *_ in quarantined} == set(expected)
    for row, column, reason, raw_record, source_file, target_table in quarantined:
        assert expected[(row, column)] in reason
        assert (source_file, target_table) == (str(path), table)
        if column is None:  # a malformed record keeps its text: line source_row + 1
            assert json.loads(raw_record) == {"line": lines[row]}
        else:  # the row as read, under the source's own column names
            assert json.loads(raw_record) == {
                name: value or None for name, value in zip(header, rows[row - 1], strict=True)
            }


def test_a_timestamp_with_an_offset_is_stored_in_utc(tmp_path):
    with store.connect(tmp_path / "utc.duckdb") as con:
        ingest(con, fixture_request("candles"))
        stamps = [row[0] for row in con.execute("SELECT ts FROM candles ORDER BY ts").fetchall()]
    # row 15 of the fixture is 2024-01-01T14:00:00+02:00
    assert dt.datetime(2024, 1, 1, 12, 0) in stamps


def test_zone_names_offsets_and_plain_stamps_mixed_in_one_file_all_read_as_utc(tmp_path):
    # DuckDB's ICU cast keeps a zone name's zone for the values after it in the same vector
    # (sql/ingest/ingest_setup.sql): the plain stamps after the New York one must stay UTC.
    stamps = {
        "2024-01-01 00:00:00 America/New_York": dt.datetime(2024, 1, 1, 5),
        "2024-01-01 01:00:00": dt.datetime(2024, 1, 1, 1),
        "2024-01-01 02:00:00+02:00": dt.datetime(2024, 1, 1, 0),
        "2024-01-01T03:00:00Z": dt.datetime(2024, 1, 1, 3),
        " 2024-01-01 04:00:00 ": dt.datetime(2024, 1, 1, 4),
        "2024-01-01 07:00:00 Europe/Paris": dt.datetime(2024, 1, 1, 6),
        "2024-01-01 08:00:00-05": dt.datetime(2024, 1, 1, 13),
        "2024-01-01 09:00:00 UTC": dt.datetime(2024, 1, 1, 9),
        "2024-01-01": dt.datetime(2024, 1, 1),
        "2024-01-01 10:30:00.25": dt.datetime(2024, 1, 1, 10, 30, 0, 250000),
    }
    source = tmp_path / "zones.csv"
    source.write_text(
        "symbol,ts,open,high,low,close\n"
        + "".join(f'S{i},"{stamp}",1,1,1,1\n' for i, stamp in enumerate(stamps))
    )
    with store.connect(tmp_path / "zones.duckdb") as con:
        report = ingest(con, IngestRequest(source=str(source), table="candles"))
        stored = dict(con.execute("SELECT symbol, ts FROM candles").fetchall())
    assert report.rows_loaded == len(stamps)
    assert stored == {f"S{i}": utc for i, utc in enumerate(stamps.values())}


def test_a_key_stored_with_other_values_is_a_conflict(tmp_path):
    changed = tmp_path / "changed.csv"
    changed.write_text(
        "symbol,ts,open,high,low,close,volume\n"
        "BTCUSDT,2024-01-01 00:00:00,100,110,95,106,12.5\n"
        "BTCUSDT,2024-01-01 06:00:00,100,110,95,105,\n"
    )
    with store.connect(tmp_path / "conflict.duckdb") as con:
        ingest(con, fixture_request("candles"))
        report = ingest(con, IngestRequest(source=str(changed), table="candles"))
        (reason,) = con.execute(
            "SELECT reason FROM quarantine WHERE ingest_id = ? AND source_row = 1",
            [report.ingest_id],
        ).fetchone()
        (close,) = con.execute(
            "SELECT close FROM candles WHERE ts = '2024-01-01 00:00:00'"
        ).fetchone()
    assert (report.rows_loaded, report.rows_duplicate, report.rows_quarantined) == (0, 1, 1)
    assert reason.startswith("key already stored with other values")
    assert close == 105.0


# --- the one-pass road of a clean candles CSV ----------------------------------------------

CANDLE_HEADER = "symbol,ts,open,high,low,close,volume\n"


def candle_lines(symbol, hours, close=105):
    return "".join(f"{symbol},2024-01-01 {h:02d}:00:00,100,110,95,{close},1\n" for h in hours)


def ingest_all(db, sources):
    """Ingest each CSV text into candles; return the reports, the table and the log."""
    reports = []
    with store.connect(db) as con:
        for i, text in enumerate(sources):
            path = db.parent / f"{db.stem}_{i}.csv"
            path.write_text(CANDLE_HEADER + text)
            reports.append(ingest(con, IngestRequest(source=str(path), table="candles")))
        stored = con.execute("SELECT * FROM candles ORDER BY symbol, ts").fetchall()
        quarantined = con.execute(
            "SELECT ingest_id, source_row, column_name, reason FROM quarantine ORDER BY ALL"
        ).fetchall()
    counts = [(r.rows_read, r.rows_loaded, r.rows_duplicate, r.rows_quarantined) for r in reports]
    return [r.streamed for r in reports], counts, stored, quarantined


SPELLINGS = ["1e2", "+100", "100.", " 100 ", "1_00", ".5", "0.1000000000000000055511151231257827"]
"""Numbers read_csv parses as DOUBLE in the one-pass road and ingest_double in the staged one."""

SEQUENCES = {
    # name: (CSV texts ingested one after the other, whether each one streams)
    "time order": ([candle_lines("BTC", range(5))], [True]),
    "unsorted, keys distinct": ([candle_lines("BTC", [3, 1, 4, 0, 2])], [True]),
    "by time then symbol": (
        ["".join(candle_lines(s, [h]) for h in range(3) for s in ("BTC", "ETH"))],
        [True],
    ),
    "later bars onto stored ones": (
        [candle_lines("BTC", range(3)), candle_lines("BTC", range(3, 6))],
        [True, True],
    ),
    "another symbol, same hours": (
        [candle_lines("BTC", range(3)), candle_lines("ETH", range(3))],
        [True, True],
    ),
    "a row repeated": ([candle_lines("BTC", [0, 1, 1, 2])], [False]),
    "a key repeated unsorted, other values": (
        [candle_lines("BTC", [2, 0]) + candle_lines("BTC", [1, 2], close=107)],
        [False],
    ),
    "the same file twice": ([candle_lines("BTC", range(3))] * 2, [True, False]),
    "one stored key among new ones": (
        [candle_lines("BTC", [1]), candle_lines("BTC", range(3))],
        [True, False],
    ),
    "a stored key given other values": (
        [candle_lines("BTC", [1]), candle_lines("BTC", range(3), close=107)],
        [True, False],
    ),
    "number spellings": (
        [
            "".join(
                f'BTC,2024-01-01 {h:02d}:00:00,"{v}","{v}","{v}","{v}","{v}"\n'
                for h, v in enumerate(SPELLINGS)
            )
        ],
        [True],
    ),
    "a blank only the staged road reads (no-break space)": (
        ["BTC,2024-01-01 00:00:00,100,110,95,\u00a0105\u00a0,1\n"],
        [False],
    ),
    "a bad value": ([candle_lines("BTC", range(3)).replace(",1\n", ",x\n", 1)], [False]),
}


@pytest.mark.parametrize("name", SEQUENCES)
def test_a_clean_candles_csv_streams_and_any_other_gets_the_staged_road(
    tmp_path, monkeypatch, name
):
    sources, streams = SEQUENCES[name]
    streamed, *outcome = ingest_all(tmp_path / "one_pass.duckdb", sources)
    assert streamed == streams
    # The staged road alone must give the same counts, rows and quarantine.
    monkeypatch.setattr(ingest_module, "_load_streamed", lambda *args: None)
    staged, *reference = ingest_all(tmp_path / "staged.duckdb", sources)
    assert not any(staged)
    assert outcome == reference


def test_the_one_pass_load_logs_like_the_staged_one(tmp_path):
    source = tmp_path / "clean.csv"
    source.write_text("Date;Close;Open;High;Low;Extra\n01/02/2024;105;100;110;95;x\n")
    request = IngestRequest(source=str(source), table="candles", symbol="SPX", ts_format="%m/%d/%Y")
    with store.connect(tmp_path / "log.duckdb") as con:
        report = ingest(con, replace(request, column_map={"ts": "Date"}))
        logged = con.execute(
            "SELECT content_sha256, rows_read, rows_loaded, options->>'symbol' FROM ingest_log"
        ).fetchone()
        stored = con.execute("SELECT * FROM candles").fetchall()
    assert report.streamed
    assert report.ignored_columns == ("Extra",) and report.null_columns == ("volume",)
    assert logged == (hashlib.sha256(source.read_bytes()).hexdigest(), 1, 1, "SPX")
    assert stored == [("SPX", dt.datetime(2024, 1, 2), 100.0, 110.0, 95.0, 105.0, None)]


def test_a_database_made_with_the_old_key_index_still_ingests(tmp_path):
    # Databases made before candles lost its PRIMARY KEY keep it (apply_schema creates
    # only what is missing); both roads must still give the right counts.
    schema = store.sql_text("schema")
    old = schema.replace(
        "    -- The high and the low bound the bar",
        "    PRIMARY KEY (symbol, ts),\n    -- The high",
    )
    assert old != schema
    with store.connect(tmp_path / "old.duckdb") as con:
        con.execute(old)
        assert ingest_module._has_key_index(con, "candles")
    sources = [
        candle_lines("BTC", range(3)),
        candle_lines("BTC", [2, 3, 3, 4]),
        candle_lines("BTC", [5]) + candle_lines("BTC", [5], close=107),
    ]
    streamed, counts, stored, _ = ingest_all(tmp_path / "old.duckdb", sources)
    assert streamed == [True, False, False]
    assert counts == [(3, 3, 0, 0), (4, 2, 2, 0), (2, 0, 0, 2)]
    _, reference_counts, reference, _ = ingest_all(tmp_path / "new.duckdb", sources)
    assert (counts, stored) == (reference_counts, reference)


def test_two_ingests_into_one_table_at_once_cannot_both_commit(tmp_path):
    # candles has no key index, so two overlapping ingests at once could both append;
    # ingest_lock makes the second fail. `holder` stands for an ingest still running.
    first, later = tmp_path / "first.csv", tmp_path / "later.csv"
    first.write_text(CANDLE_HEADER + candle_lines("BTC", range(3)))
    later.write_text(CANDLE_HEADER + candle_lines("BTC", range(3, 6)))
    with store.connect(tmp_path / "lock.duckdb") as con:
        ingest(con, IngestRequest(source=str(first), table="candles"))
        holder = con.cursor()
        holder.begin()
        store.execute(holder, "ingest_lock", {"table": "candles", "ingest_id": 0})
        with pytest.raises(IngestError, match="another ingest into candles ran at the same"):
            ingest(con, IngestRequest(source=str(later), table="candles"))
        assert con.execute("SELECT count(*) FROM candles").fetchone() == (3,)
        holder.rollback()
        assert ingest(con, IngestRequest(source=str(later), table="candles")).rows_loaded == 3
        # The other order: an ingest commits while the holder runs, before the holder
        # writes its lock row; the holder then cannot.
        holder.begin()
        holder.execute("SELECT count(*) FROM candles").fetchall()
        ingest(con, IngestRequest(source=str(first), table="candles"))
        with pytest.raises(duckdb.TransactionException):
            store.execute(holder, "ingest_lock", {"table": "candles", "ingest_id": 0})


def test_a_second_trade_on_a_stored_signal_is_quarantined(tmp_path):
    second = tmp_path / "second.csv"
    header, rows = csv_rows(FIXTURES / "trades_bad.csv")
    second.write_text(",".join(header) + "\n" + ",".join(["99", *rows[0][1:]]) + "\n")
    with store.connect(tmp_path / "second.duckdb") as con:
        load_fixtures_before(con, "trades")
        ingest(con, fixture_request("trades"))
        report = ingest(con, IngestRequest(source=str(second), table="trades"))
        problems = con.execute(
            "SELECT column_name, reason FROM quarantine WHERE ingest_id = ?", [report.ingest_id]
        ).fetchall()
    assert problems == [("signal_id", "signal 1 is already followed by stored trade 1")]


@pytest.mark.parametrize(
    ("table", "header", "row", "column"),
    [
        (
            "positions",
            "trade_id,closed_ts,exit_price,pnl_pct,max_drawdown_pct",
            "not-a-number,2024-01-01 06:00:00,100,1.5,0.5",
            "trade_id",
        ),
        (
            "trades",
            "trade_id,signal_id,ts,symbol,side,entry_price,size_multiplier,leverage,"
            "portfolio_exposure,strategy,weight_action,action_prob",
            "1,oops,2024-01-01 06:00:00,BTCUSDT,1,100,1.0,2,0.1,TREND,WEIGHT_HOLD,0.5",
            "signal_id",
        ),
    ],
)
def test_an_unparsable_reference_into_an_empty_table_is_quarantined(
    tmp_path, table, header, row, column
):
    # NULL NOT IN (empty set) is true in SQL: the rule must not fire on an unparsed id
    source = tmp_path / f"{table}.csv"
    source.write_text(f"{header}\n{row}\n")
    with store.connect(tmp_path / "empty.duckdb") as con:
        report = ingest(con, IngestRequest(source=str(source), table=table))
        problems = con.execute(
            "SELECT column_name, reason FROM quarantine WHERE ingest_id = ?", [report.ingest_id]
        ).fetchall()
    assert report.rows_quarantined == 1
    assert all(reason for _, reason in problems)
    assert column in {name for name, _ in problems}


def test_text_ids_and_enums_in_any_case_load_in_the_contracts_spelling(tmp_path):
    signals, trades = tmp_path / "signals.csv", tmp_path / "trades.csv"
    signals.write_text(
        "signal_id,ts,symbol,model,direction,confidence,predicted_regime\n"
        "3f2b9c1e-6a4d-4e8f-9b7a-0c1d2e3f4a5b,2024-01-01 00:00,BTCUSDT, lgbm ,1,0.6,Trend\n"
        " 42 ,2024-01-01 00:00,BTCUSDT,PatchTST,-1,0.5,  mean_reversion\n"
    )
    trades.write_text(
        "trade_id,signal_id,ts,symbol,side,entry_price,size_multiplier,leverage,"
        "portfolio_exposure,strategy,weight_action\n"
        "T-0001,3f2b9c1e-6a4d-4e8f-9b7a-0c1d2e3f4a5b,2024-01-01 00:01,BTCUSDT,1,100,1.0,2,"
        "0.1,breakout, weight_up\n"
        "T-0002,42,2024-01-01 00:01,BTCUSDT,-1,100,1.0,2,0.1,RANGE,Weight_Hold\n"
    )
    with store.connect(tmp_path / "h.duckdb") as con:
        for source, table in ((signals, "signals"), (trades, "trades")):
            report = ingest(con, IngestRequest(source=str(source), table=table))
            assert (report.rows_loaded, report.rows_quarantined) == (2, 0), report.problems
        assert con.execute(
            "SELECT signal_id, model::VARCHAR, predicted_regime::VARCHAR FROM signals "
            "ORDER BY signal_id"
        ).fetchall() == [
            ("3f2b9c1e-6a4d-4e8f-9b7a-0c1d2e3f4a5b", "LGBM", "TREND"),
            ("42", "PATCHTST", "MEAN_REVERSION"),
        ]
        assert con.execute(
            "SELECT trade_id, signal_id, strategy::VARCHAR, weight_action::VARCHAR FROM trades "
            "ORDER BY trade_id"
        ).fetchall() == [
            ("T-0001", "3f2b9c1e-6a4d-4e8f-9b7a-0c1d2e3f4a5b", "BREAKOUT", "WEIGHT_UP"),
            ("T-0002", "42", "RANGE", "WEIGHT_HOLD"),
        ]


def _policy_csv(path, *flags, month=1):
    rows = "".join(f"2024-{month:02d}-0{i + 1} 00:00,{f}\n" for i, f in enumerate(flags))
    path.write_text("ts,enable_rl\n" + rows)
    return path


def _table_counts(db):
    with store.connect(db, read_only=True) as con:
        return con.execute(
            "SELECT (SELECT count(*) FROM policy), (SELECT count(*) FROM ingest_log), "
            "(SELECT count(*) FROM quarantine)"
        ).fetchone()


def test_an_ingest_that_quarantines_every_row_exits_non_zero_and_keeps_the_quarantine(
    tmp_path, capsys
):
    db = tmp_path / "h.duckdb"
    source = _policy_csv(tmp_path / "policy.csv", "maybe", "on")
    assert main(["ingest", "--db", str(db), "--table", "policy", str(source)]) == 1
    captured = capsys.readouterr()
    assert "read 2 = loaded 0 + duplicates 0 + quarantined 2" in captured.out
    error = captured.err.strip()
    assert len(error.splitlines()) == 1
    assert "all 2 rows" in error and "none loaded into policy" in error
    assert _table_counts(db) == (0, 1, 2)
    # one valid row is enough to succeed; an empty source loads nothing and is no failure
    mixed = _policy_csv(tmp_path / "mixed.csv", "true", "maybe")
    assert main(["ingest", "--db", str(db), "--table", "policy", str(mixed)]) == 0
    empty = _policy_csv(tmp_path / "empty.csv")
    assert main(["ingest", "--db", str(db), "--table", "policy", str(empty)]) == 0


def test_a_strict_ingest_refuses_a_source_with_any_bad_row_and_changes_nothing(tmp_path, capsys):
    db = tmp_path / "h.duckdb"
    good = _policy_csv(tmp_path / "good.csv", "true", month=2)
    assert main(["ingest", "--db", str(db), "--table", "policy", "--strict", str(good)]) == 0
    capsys.readouterr()
    before = _table_counts(db)
    mixed = _policy_csv(tmp_path / "mixed.csv", "false", "maybe", "true")
    assert main(["ingest", "--db", str(db), "--table", "policy", "--strict", str(mixed)]) == 1
    captured = capsys.readouterr()
    assert "row 2, column enable_rl" in captured.out  # what it found, though not recorded
    assert len(captured.err.strip().splitlines()) == 1
    assert "strict ingest" in captured.err and "1 of 3 rows" in captured.err
    assert _table_counts(db) == before
    # and a strict ingest into a new database leaves no file behind
    fresh = tmp_path / "fresh.duckdb"
    assert main(["ingest", "--db", str(fresh), "--table", "policy", "--strict", str(mixed)]) == 1
    assert not fresh.exists()


# --- other source formats -------------------------------------------------------------------


def eurusd_arrow_table(tz):
    """The real EUR/USD bars as an Arrow table with other names and typed columns."""
    _, rows = csv_rows(EURUSD_CSV)
    stamps = [dt.datetime.fromisoformat(row[0]).replace(tzinfo=dt.UTC) for row in rows]
    if tz is None:
        stamps = [stamp.replace(tzinfo=None) for stamp in stamps]
    columns = {"bar_time": pa.array(stamps, pa.timestamp("us", tz=tz))}
    for index, name in enumerate(["O", "H", "L", "C"], start=1):
        columns[name] = pa.array([float(row[index]) for row in rows], pa.float64())
    columns["Vol"] = pa.array([int(row[5]) for row in rows], pa.int64())
    return pa.table(columns)


def loaded_candles(db_path, symbol):
    with store.connect(db_path, read_only=True) as con:
        return con.execute(
            "SELECT ts, open, high, low, close, volume FROM candles WHERE symbol = ? ORDER BY ts",
            [symbol],
        ).fetchall()


MAP_OHLCV = ["--map", "open=O", "--map", "high=H", "--map", "low=L", "--map", "close=C"]
MAP_OHLCV += ["--map", "volume=Vol"]


@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Berlin"])
def test_a_parquet_file_loads_like_the_csv(tmp_path, tz):
    parquet = tmp_path / "eurusd.parquet"
    table = eurusd_arrow_table(tz)
    pq.write_table(table, parquet)
    db = tmp_path / "parquet.duckdb"
    assert main(["ingest", "--db", str(db), *EURUSD_ARGS]) == 0
    args = [str(parquet), "--table", "candles", "--symbol", "PQ", "--map", "ts=bar_time"]
    assert main(["ingest", "--db", str(db), *args, *MAP_OHLCV]) == 0
    assert loaded_candles(db, "PQ") == loaded_candles(db, "EURUSD")
    assert len(loaded_candles(db, "PQ")) == table.num_rows


def test_a_table_of_another_duckdb_file_loads(tmp_path, capsys):
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE SCHEMA market")
        # Typed columns as DuckDB infers them from the file: Date becomes a DATE.
        con.execute("CREATE TABLE market.spx AS SELECT * FROM read_csv(?)", [str(SPX_CSV)])
    db = tmp_path / "target.duckdb"
    _, spx = csv_rows(SPX_CSV)
    args = [str(other), "--source-table", "market.spx", "--table", "candles", "--symbol", "SPX"]
    assert main(["ingest", "--db", str(db), *args, "--map", "ts=Date"]) == 0
    assert f"read {len(spx)} = loaded {len(spx)}" in capsys.readouterr().out
    assert main(["ingest", "--db", str(db), *SPX_ARGS]) == 0
    assert f"loaded 0 + duplicates {len(spx)}" in capsys.readouterr().out
    with store.connect(db, read_only=True) as con:
        (source,) = con.execute("SELECT source FROM ingest_log WHERE ingest_id = 1").fetchone()
    assert source == f"{other}#market.spx"


# --- sources that cannot be read, usage errors ------------------------------------------------


def unreadable_sources(tmp_path):
    """(description, command-line arguments, text the error must contain)."""
    directory = tmp_path / "a_directory.csv"
    directory.mkdir()
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"this is not parquet\n" * 10)
    not_duckdb = tmp_path / "notes.duckdb"
    not_duckdb.write_text("not a database\n")
    real_duckdb = tmp_path / "real.duckdb"
    with duckdb.connect(str(real_duckdb)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS a")
    prose = DATA / "README.md"
    missing = tmp_path / "missing.csv"
    candles = ["--table", "candles", "--symbol", "X"]
    return [
        ("missing file", [str(missing), *candles], str(missing)),
        ("a directory", [str(directory), *candles], str(directory)),
        ("not Parquet", [str(garbage), *candles], str(garbage)),
        ("not DuckDB", [str(not_duckdb), *candles], str(not_duckdb)),
        ("no such table", [str(real_duckdb), "--source-table", "nope", *candles], "nope"),
        ("prose as CSV", [str(prose), "--format", "csv", *candles], "has no column for"),
        ("unknown format", [str(tmp_path / "x.xlsx"), *candles], "cannot tell its format"),
        ("unknown column", [str(SPX_CSV), *candles, "--map", "ts=Datum"], "no column 'Datum'"),
        ("constant clash", [str(FIXTURES / "candles_bad.csv"), *candles], "a constant symbol"),
    ]


def test_an_unreadable_source_fails_cleanly_and_changes_nothing(tmp_path, capsys):
    db = tmp_path / "kept.duckdb"
    assert main(["ingest", "--db", str(db), *SPX_ARGS]) == 0
    counts = table_counts(db)
    fingerprint = store.fingerprint(db)
    capsys.readouterr()
    for description, args, named in unreadable_sources(tmp_path):
        assert main(["ingest", "--db", str(db), *args]) == 1, description
        err = capsys.readouterr().err
        assert err.startswith("rlv2 ingest: error: "), description
        assert named in err, (description, err)
        assert table_counts(db) == counts, description
    assert store.fingerprint(db) == fingerprint


def test_a_failed_ingest_creates_no_database(tmp_path, capsys):
    db = tmp_path / "new.duckdb"
    assert (
        main(["ingest", "--db", str(db), str(tmp_path / "missing.csv"), "--table", "policy"]) == 1
    )
    assert not db.exists()
    assert main(["ingest", "--db", str(db), str(DATA / "README.md"), "--table", "policy"]) == 1
    assert "cannot tell its format" in capsys.readouterr().err
    assert not db.exists()


def test_the_api_rolls_back_a_failed_ingest(tmp_path):
    with store.connect(tmp_path / "api.duckdb") as con:
        ingest(con, fixture_request("candles"))
        before = con.execute("SELECT count(*) FROM ingest_log").fetchone()
        with pytest.raises(IngestError, match="garbage.parquet"):
            garbage = tmp_path / "garbage.parquet"
            garbage.write_bytes(b"PAR1 not really")
            ingest(con, IngestRequest(source=str(garbage), table="candles", symbol="X"))
        assert con.execute("SELECT count(*) FROM ingest_log").fetchone() == before
        # the connection is usable afterwards, with no temporary tables left behind
        temp = con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()
        assert temp == (0,)


@pytest.mark.parametrize(
    "argv",
    [
        ["ingest", "x.csv", "--table", "nope"],
        ["ingest", "x.csv", "--table", "candles", "--map", "ts"],
        ["ingest", "x.csv", "--source", "y.csv", "--table", "candles"],
        ["ingest", "--table", "candles"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_with_2(argv, capsys):
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_every_ingest_option_has_help(capsys):
    assert main(["ingest", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ["--db", "--table", "--format", "--source", "--source-table", "--map"]:
        assert option in out
    for option in ["--symbol", "--ts-format", "--no-header"]:
        assert option in out


def test_a_csv_with_only_a_header_reads_no_rows(tmp_path, capsys):
    header_only = tmp_path / "policy.csv"
    header_only.write_text("ts,enable_rl\n")
    assert (
        main(["ingest", "--db", str(tmp_path / "e.duckdb"), str(header_only), "--table", "policy"])
        == 0
    )
    assert "read 0 = loaded 0 + duplicates 0 + quarantined 0" in capsys.readouterr().out


def test_a_headerless_csv_names_its_columns_by_position(tmp_path):
    headerless = tmp_path / "policy.csv"
    headerless.write_text("2024-01-01 00:00:00,true\n2024-01-02 00:00:00,false\n")
    with store.connect(tmp_path / "h.duckdb") as con:
        report = ingest(
            con,
            IngestRequest(
                source=str(headerless),
                table="policy",
                header=False,
                column_map={"ts": "column0", "enable_rl": "column1"},
            ),
        )
    assert (report.rows_read, report.rows_loaded) == (2, 2)


# --- column mapping and DSNs ----------------------------------------------------------------


CANDLE_COLUMNS = [(name, name == "volume") for name in ["symbol", "ts", "open", "high", "low"]]
CANDLE_COLUMNS += [("close", False), ("volume", True)]


def test_plan_columns_matches_headers_ignoring_case_and_separators():
    plan = plan_columns(
        ["Date", "OPEN", "High", "Low", "Close", "Adj Close", "Volume"],
        CANDLE_COLUMNS,
        {"ts": "date"},
        {"symbol": "SPX"},
        source="spx.csv",
        table="candles",
    )
    assert plan.sources == {
        "ts": "Date",
        "open": "OPEN",
        "high": "High",
        "low": "Low",
        "close": "Close",
        "volume": "Volume",
    }
    assert plan.constants == {"symbol": "SPX"}
    assert plan.ignored == ("Adj Close",)


def test_plan_columns_leaves_a_missing_nullable_column_null_and_names_a_missing_required_one():
    plan = plan_columns(
        ["symbol", "ts", "open", "high", "low", "close"],
        CANDLE_COLUMNS,
        {},
        {},
        source="s",
        table="c",
    )
    assert plan.nulls == ("volume",)
    with pytest.raises(IngestError, match=r"has no column for c column\(s\) low, close"):
        plan_columns(
            ["symbol", "ts", "open", "high"], CANDLE_COLUMNS, {}, {}, source="s", table="c"
        )
    with pytest.raises(IngestError, match="both match close"):
        plan_columns(
            ["symbol", "ts", "open", "high", "low", "Close", "close "],
            CANDLE_COLUMNS,
            {},
            {},
            source="s",
            table="c",
        )
    with pytest.raises(IngestError, match="'price' is not a column of c"):
        plan_columns(["a"], CANDLE_COLUMNS, {"price": "a"}, {}, source="s", table="c")


def test_redact_dsn_removes_passwords():
    assert redact_dsn("host=db user=rl password=s3cret dbname=live") == (
        "host=db user=rl password=*** dbname=live"
    )
    assert redact_dsn("postgresql://rl:s3cret@db:5432/live") == "postgresql://rl:***@db:5432/live"


# --- PostgreSQL through DuckDB's postgres extension -------------------------------------------


def postgres_bin_dir():
    """The folder of initdb and pg_ctl, or None."""
    for name in ("initdb", "pg_ctl", "postgres"):
        if found := shutil.which(name):
            folder = Path(found).resolve().parent
            if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
                return folder
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    return candidates[-1] if candidates else None


def duckdb_postgres_unavailable():
    """Why DuckDB cannot load its postgres extension here, or None if it can."""
    with duckdb.connect() as con:
        try:
            load_postgres_extension(con)
            return None
        except IngestError as error:
            return str(error)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres_server():
    """A throw-away PostgreSQL cluster on a loopback port; yields the port."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    if shutil.which("psql") is None:
        pytest.skip("no psql to load the test rows")
    # PostgreSQL refuses to run as root: run it as the postgres user then.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="rlv2-pg-"))
    data_dir = home / "data"
    port = free_port()
    if as_user:
        shutil.chown(home, "postgres")
    try:
        subprocess.run(
            [*as_user, str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "rlv2"],
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", options, "-w"]
            + ["-l", str(home / "log"), "start"],
            check=True,
            capture_output=True,
        )
        yield port
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def duckdb_postgres():
    """Skip unless DuckDB can load its postgres extension (a download, unless installed)."""
    if reason := duckdb_postgres_unavailable():
        pytest.skip(reason)


@pytest.mark.server
def test_a_postgres_table_loads_read_only(duckdb_postgres, postgres_server, tmp_path, capsys):
    psql = ["psql", "-h", "127.0.0.1", "-p", str(postgres_server), "-U", "rlv2", "-d", "postgres"]
    subprocess.run(
        [*psql, "-v", "ON_ERROR_STOP=1", "-c", POSTGRES_ROWS], check=True, capture_output=True
    )
    db = tmp_path / "from_pg.duckdb"
    dsn = f"postgres:host=127.0.0.1 port={postgres_server} dbname=postgres user=rlv2 password=pw"
    args = ["--source", dsn, "--source-table", "market.bars", "--table", "candles"]
    assert main(["ingest", "--db", str(db), *args, "--map", "ts=bar_time"]) == 0
    assert "read 4 = loaded 3 + duplicates 0 + quarantined 1" in capsys.readouterr().out
    assert main(["ingest", "--db", str(db), *args, "--map", "ts=bar_time"]) == 0
    assert "read 4 = loaded 0 + duplicates 3 + quarantined 1" in capsys.readouterr().out
    with store.connect(db, read_only=True) as con:
        stamps = con.execute("SELECT ts FROM candles ORDER BY ts").fetchall()
        sources = con.execute("SELECT DISTINCT source FROM ingest_log").fetchall()
        problems = con.execute("SELECT source_row, column_name FROM quarantine").fetchall()
    assert stamps[0] == (dt.datetime(2024, 1, 1, 0, 0),)  # 02:00+02 in UTC
    assert sources == [(f"postgres:{dsn[len('postgres:') :].replace('pw', '***')}#market.bars",)]
    assert set(problems) == {(4, "high")}


POSTGRES_ROWS = """
CREATE SCHEMA market;
CREATE TABLE market.bars (
    symbol text, bar_time timestamptz, open float8, high float8, low float8, close float8,
    volume bigint
);
INSERT INTO market.bars VALUES
    ('BTCUSDT', '2024-01-01 02:00:00+02', 100, 110, 95, 105, 10),
    ('BTCUSDT', '2024-01-01 01:00:00+00', 105, 112, 101, 111, NULL),
    ('BTCUSDT', '2024-01-01 02:00:00+00', 111, 115, 108, 109, 7),
    ('BTCUSDT', '2024-01-01 03:00:00+00', 109, 100, 105, 104, 7);
"""


# --- sane ranges: times and prices a typo put out of this world ---------------------------


def test_a_year_20190_and_a_price_of_1e308_are_quarantined_with_their_reason(tmp_path, capsys):
    source = tmp_path / "bars.csv"
    source.write_text(
        "symbol,ts,open,high,low,close,volume\n"
        "BTC,2020-01-01 00:00:00,100,110,90,100,1\n"
        "BTC,20190-01-01 00:00:00,100,110,90,100,1\n"
        "BTC,1969-12-31 23:59:59,100,110,90,100,1\n"
        "BTC,2020-01-02 00:00:00,100,1e308,90,100,1\n"
    )
    db = tmp_path / "h.duckdb"
    assert main(["ingest", "--db", str(db), str(source), "--table", "candles"]) == 0
    out = capsys.readouterr().out
    assert "read 4 = loaded 1 + duplicates 0 + quarantined 3" in out
    with store.connect(db, read_only=True) as con:
        reasons = con.execute(
            "SELECT source_row, column_name, reason FROM quarantine ORDER BY source_row"
        ).fetchall()
    assert reasons == [
        (
            2,
            "ts",
            "20190-01-01 00:00:00 is outside the sane range "
            "[1970-01-01 00:00:00, 2100-01-01 00:00:00)",
        ),
        (
            3,
            "ts",
            "1969-12-31 23:59:59 is outside the sane range "
            "[1970-01-01 00:00:00, 2100-01-01 00:00:00)",
        ),
        (4, "high", "1e+308 is outside the sane range (0, 1e+09)"),
    ]


def test_the_sane_ranges_are_settings(tmp_path, capsys):
    source = tmp_path / "bars.csv"
    source.write_text(
        "symbol,ts,open,high,low,close,volume\n"
        "BTC,1965-01-01 00:00:00,100,110,90,100,1\n"
        "BTC,2020-01-02 00:00:00,100,2e9,90,100,1\n"
    )
    db = tmp_path / "h.duckdb"
    args = ["ingest", "--db", str(db), str(source), "--table", "candles"]
    assert main([*args, "--earliest", "1960-01-01", "--max-price", "1e10"]) == 0
    assert "read 2 = loaded 2 + duplicates 0 + quarantined 0" in capsys.readouterr().out
    assert main([*args, "--earliest", "2030-01-01", "--latest", "2020-01-01"]) == 2
    assert "earliest 2030-01-01 00:00:00 must be before latest" in capsys.readouterr().err
    with pytest.raises(IngestError, match="max_price=0"):
        IngestRequest(source=str(source), table="candles", max_price=0)


def test_every_table_holds_its_times_to_the_sane_range(tmp_path):
    request = IngestRequest(source="", table="candles")
    for table in CONTRACT_TABLES:
        ranges = ingest_module.sane_ranges(replace(request, table=table))
        assert ranges[0][0] == ingest_module.TIME_COLUMNS[table]
        assert len(ranges) == 1 + (table in ingest_module.PRICE_COLUMNS)


def test_a_source_path_is_taken_literally_unless_glob_is_asked_for(tmp_path, capsys):
    header = "symbol,ts,open,high,low,close,volume\n"
    meant = tmp_path / "bars[2020].csv"
    meant.write_text(header + "BTC,2020-01-01 00:00:00,100,110,90,100,1\n")
    other = tmp_path / "bars2.csv"  # what the pattern bars[2020].csv matches
    other.write_text(header + "ETH,2020-01-01 00:00:00,5,6,4,5,1\n")
    db = tmp_path / "h.duckdb"
    assert main(["ingest", "--db", str(db), str(meant), "--table", "candles"]) == 0
    assert "read 1 = loaded 1" in capsys.readouterr().out
    with store.connect(db, read_only=True) as con:
        assert con.execute("SELECT symbol FROM candles").fetchall() == [("BTC",)]
        source, sha = con.execute("SELECT source, content_sha256 FROM ingest_log").fetchone()
    assert source == str(meant)
    assert sha == hashlib.sha256(meant.read_bytes()).hexdigest()
    pattern = str(tmp_path / "bars*.csv")
    assert main(["ingest", "--db", str(db), pattern, "--table", "candles", "--glob"]) == 0
    assert "read 2 = loaded 1 + duplicates 1" in capsys.readouterr().out
    with store.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM candles").fetchone() == (2,)


BAD_SYMBOLS = {
    " BTC": 'symbol " BTC" has blanks around it',
    "BTC ": 'symbol "BTC " has blanks around it',
    "\x07BTC": 'symbol "\\u0007BTC" contains a control character',
    "BT\nC": 'symbol "BT\\nC" contains a control character',
    "\tBTC": 'symbol "\\tBTC" contains a control character',
}
"""Symbols the contract refuses, and the reason each is quarantined with."""


def _candle_rows(symbols):
    """One valid bar per symbol, an hour apart, as dicts of text."""
    return [
        {
            "symbol": symbol,
            "ts": f"2024-01-01 {hour:02d}:00:00",
            "open": "100",
            "high": "110",
            "low": "95",
            "close": "105",
            "volume": "1",
        }
        for hour, symbol in enumerate(symbols)
    ]


def _quarantined_symbols(db, ingest_id):
    """(source_row, column, reason) of one ingest's quarantine rows."""
    with store.connect(db, read_only=True) as con:
        return con.execute(
            "SELECT source_row, column_name, reason FROM quarantine WHERE ingest_id = ? "
            "ORDER BY source_row",
            [ingest_id],
        ).fetchall()


def test_symbols_with_control_characters_or_blanks_are_quarantined_on_every_road(tmp_path, capsys):
    symbols = ["BTC", *BAD_SYMBOLS]
    expected = [(i + 2, "symbol", reason) for i, reason in enumerate(BAD_SYMBOLS.values())]
    rows = _candle_rows(symbols)
    # a CSV (the streamed road refuses it, the staged road names each)
    source = tmp_path / "bars.csv"
    with open(source, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    db = tmp_path / "csv.duckdb"
    with store.connect(db) as con:
        report = ingest(con, IngestRequest(source=str(source), table="candles"))
    assert (report.rows_loaded, report.rows_quarantined, report.streamed) == (1, 5, False)
    assert _quarantined_symbols(db, report.ingest_id) == expected
    # a Parquet file
    parquet = tmp_path / "bars.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    db = tmp_path / "parquet.duckdb"
    with store.connect(db) as con:
        report = ingest(con, IngestRequest(source=str(parquet), table="candles"))
    assert _quarantined_symbols(db, report.ingest_id) == expected
    # a table of another DuckDB file, into signals and trades
    other = tmp_path / "live.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE bars AS SELECT * FROM read_parquet(?)", [str(parquet)])
        con.execute(
            "CREATE TABLE forecasts AS SELECT 'S' || row_number() OVER () AS signal_id, ts, "
            "symbol, 'XGB' AS model, 1 AS direction, 0.5 AS confidence, "
            "'TREND' AS predicted_regime FROM bars"
        )
    db = tmp_path / "table.duckdb"
    with store.connect(db) as con:
        for table, source_table in [("candles", "bars"), ("signals", "forecasts")]:
            request = IngestRequest(source=str(other), table=table, source_table=source_table)
            report = ingest(con, request)
            assert (report.rows_loaded, report.rows_quarantined) == (1, 5)
    assert _quarantined_symbols(db, report.ingest_id) == expected
    with store.connect(db) as con:  # a trade cannot carry a bad symbol either
        assert con.execute("SELECT symbol FROM signals").fetchall() == [("BTC",)]
        trade = tmp_path / "trades.csv"
        trade.write_text(
            "trade_id,signal_id,ts,symbol,side,entry_price,size_multiplier,leverage,"
            "portfolio_exposure,strategy,weight_action\n"
            "T1,S1,2024-01-01 00:00:00,BTC\x07,1,100,1.0,1,0.1,TREND,WEIGHT_UP\n"
        )
        report = ingest(con, IngestRequest(source=str(trade), table="trades"))
    assert ("symbol", 'symbol "BTC\\u0007" contains a control character') in [
        row[1:] for row in _quarantined_symbols(db, report.ingest_id)
    ]
    # a constant symbol is refused before anything is read (a usage error)
    header_only = tmp_path / "header.csv"
    header_only.write_text("ts,open,high,low,close\n")
    for symbol in [" BTC", "BTC\x07"]:
        args = ["ingest", "--db", str(tmp_path / "c.duckdb"), str(header_only)]
        assert main([*args, "--table", "candles", "--symbol", symbol]) == 2
        assert "--symbol: symbol" in capsys.readouterr().err
    assert not (tmp_path / "c.duckdb").exists()


def test_an_empty_file_is_reported_as_empty_in_one_line_naming_it(tmp_path, capsys):
    db = tmp_path / "h.duckdb"
    zero = tmp_path / "zero.csv"
    zero.write_bytes(b"")
    zero_parquet = tmp_path / "zero.parquet"
    zero_parquet.write_bytes(b"")
    for source in (zero, zero_parquet):
        assert main(["ingest", "--db", str(db), "--table", "candles", str(source)]) == 0
        err = capsys.readouterr().err.strip()
        assert err == f"rlv2 ingest: {source} is empty (0 bytes): nothing loaded, nothing recorded"
        assert not db.exists()  # nothing created, nothing recorded
    header_only = _policy_csv(tmp_path / "header.csv")
    assert main(["ingest", "--db", str(db), "--table", "policy", str(header_only)]) == 0
    captured = capsys.readouterr()
    assert "read 0 = loaded 0 + duplicates 0 + quarantined 0" in captured.out
    assert captured.err.strip() == (
        f"rlv2 ingest: {header_only} is empty: no data rows, nothing loaded"
    )
    assert _table_counts(db) == (0, 1, 0)


def test_a_field_too_large_for_the_reader_is_reported_at_its_real_line(tmp_path, capsys):
    db = tmp_path / "h.duckdb"
    good = _policy_csv(tmp_path / "good.csv", "true")
    assert main(["ingest", "--db", str(db), "--table", "policy", str(good)]) == 0
    before = table_counts(db)
    big = "x" * 3_000_000
    header = "symbol,ts,open,high,low,close,volume\n"
    bars = "".join(f"BTC,2024-01-01 {h:02d}:00:00,100,110,95,105,1\n" for h in range(5))
    plain = tmp_path / "plain.csv"  # the 3 MB field on line 7 (a header, 5 bars, then it)
    plain.write_text(header + bars + f"{big},2024-01-01 06:00:00,100,110,95,105,1\n" + bars)
    # a quoted field with line breaks before it: the big record starts on line 10
    quoted = tmp_path / "quoted.csv"
    quoted.write_text(
        header + '"B\nT\nC",2024-01-02 00:00:00,100,110,95,105,1\n' + bars[:-1] + "\n"
        f'"{big}\n{big}",2024-01-01 06:00:00,100,110,95,105,1\n'
    )
    for source, line in [(plain, 7), (quoted, 10)]:
        assert main(["ingest", "--db", str(db), "--table", "candles", str(source)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert str(source) in err
        assert f"the record on line {line} is longer than 2,000,000 bytes" in err
        assert table_counts(db) == before
