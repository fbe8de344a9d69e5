"""rlv2.store and the data contract of sql/contract/schema.sql, on real DuckDB files."""

import datetime as dt
import itertools

import duckdb
import pytest

from rlv2 import store
from rlv2.domain import LEVERAGES, SIZE_MULTIPLIERS, Model, Regime, WeightAction

SIGNAL = "INSERT INTO signals VALUES (1, '2024-01-01 00:00', 'BTCUSDT', 'XGB', 1, 0.7, 'TREND')"
TRADE = (
    "INSERT INTO trades VALUES (1, 1, '2024-01-01 00:01', 'BTCUSDT', 1, 42000, 1.0, 3, 0.3, "
    "'TREND', 'WEIGHT_UP', 0.9, 0.3, 0.3)"
)


@pytest.fixture
def con(tmp_path):
    with store.connect(tmp_path / "contract.duckdb") as connection:
        store.apply_schema(connection)
        yield connection


def test_sql_text_reads_a_query_file_by_name():
    assert "CREATE TABLE IF NOT EXISTS candles" in store.sql_text("schema")


def test_sql_text_finds_a_query_in_any_folder_of_sql():
    assert store.sql_path("schema") == store.SQL_DIR / "contract" / "schema.sql"
    assert store.sql_path("ingest_checked_trades").parent.parent == store.SQL_DIR / "ingest"
    assert "INSERT INTO" in store.sql_text("ingest_log_insert")


def test_sql_text_names_the_missing_file():
    with pytest.raises(FileNotFoundError, match=r"no SQL file no_such_query\.sql in .*sql"):
        store.sql_text("no_such_query")
    with pytest.raises(ValueError, match="bad SQL file name"):
        store.sql_text("../pyproject")
    with pytest.raises(ValueError, match="bad SQL file name"):
        store.sql_text("contract/schema")


def test_every_query_file_has_a_name_of_its_own(tmp_path):
    assert store.sql_catalogue(store.SQL_DIR)  # the repository's own folders pass
    (tmp_path / "contract").mkdir()
    (tmp_path / "ingest").mkdir()
    (tmp_path / "contract" / "schema.sql").write_text("SELECT 1;")
    (tmp_path / "ingest" / "schema.sql").write_text("SELECT 2;")
    with pytest.raises(ValueError, match=r"two SQL files are named schema: .*contract.*ingest"):
        store.sql_catalogue(tmp_path)


def test_a_query_file_name_must_be_runnable(tmp_path):
    (tmp_path / "Bars-All.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"bad SQL file name .*Bars-All\.sql"):
        store.sql_catalogue(tmp_path)


def test_apply_schema_upgrades_a_database_made_before_the_per_agent_propensities(
    tmp_path, schema_before_per_agent_propensities
):
    path = tmp_path / "old.duckdb"
    with store.connect(path) as old:
        old.execute(schema_before_per_agent_propensities)
        old.execute(SIGNAL)
        old.execute(TRADE.replace(", 0.3, 0.3)", ")"))  # the old contract's twelve columns
    with store.connect(path) as con:
        store.apply_schema(con)
        store.apply_schema(con)  # idempotent on an upgraded database too
        columns = store.execute(con, "contract_columns", {"table": "trades"}).fetchnumpy()
        assert columns["column_name"].tolist()[-3:] == [
            "action_prob",
            "meta_action_prob",
            "sizing_action_prob",
        ]
        assert con.execute(
            "SELECT action_prob, meta_action_prob, sizing_action_prob FROM trades"
        ).fetchall() == [(0.9, None, None)]
        con.execute(SIGNAL.replace("VALUES (1,", "VALUES (2,").replace("XGB", "LGBM"))
        con.execute(TRADE.replace("VALUES (1, 1,", "VALUES (2, 2,"))  # today's rows fit
        assert con.execute("SELECT count(*) FROM trades").fetchone() == (2,)


def test_apply_schema_gives_a_database_of_bigint_ids_text_ids_and_keeps_its_rows(
    tmp_path, schema_of_first_release
):
    path = tmp_path / "first.duckdb"
    with store.connect(path) as old:
        old.execute(schema_of_first_release)
        old.execute(SIGNAL)
        old.execute(SIGNAL.replace("VALUES (1,", "VALUES (10,").replace("XGB", "LGBM"))
        old.execute(TRADE.replace(", 0.3, 0.3)", ")"))
        old.execute(TRADE.replace("VALUES (1, 1,", "VALUES (-7, 10,").replace(", 0.3, 0.3)", ")"))
        old.execute("INSERT INTO positions VALUES (-7, '2024-01-01 01:00', 42100, 1.5, 0.2)")
        assert old.execute(store.sql_text("schema_ids_numeric")).fetchone() == (4,)
    with store.connect(path) as con:
        store.apply_schema(con)
        store.apply_schema(con)  # idempotent once converted
        assert con.execute(store.sql_text("schema_ids_numeric")).fetchone() == (0,)
        assert con.execute(
            "SELECT trade_id, signal_id, meta_action_prob FROM trades ORDER BY trade_id"
        ).fetchall() == [("-7", "10", None), ("1", "1", None)]
        assert con.execute("SELECT trade_id FROM positions").fetchall() == [("-7",)]
        # the keys and references hold as in a new database
        with pytest.raises(duckdb.ConstraintException):
            con.execute("INSERT INTO positions VALUES ('nope', '2024-01-01', 1, 0, 0)")
        with pytest.raises(duckdb.ConstraintException):
            con.execute(SIGNAL.replace("VALUES (1,", "VALUES ('1',").replace("XGB", "NHITS"))
        con.execute(SIGNAL.replace("VALUES (1,", "VALUES ('0b7c-uuid',").replace("XGB", "NHITS"))


def test_apply_schema_converts_ids_inside_the_callers_transaction_and_rolls_back_with_it(
    tmp_path, schema_of_first_release
):
    path = tmp_path / "first.duckdb"
    with store.connect(path) as old:
        old.execute(schema_of_first_release)
        old.execute(SIGNAL)
    with store.connect(path) as con:
        con.begin()
        store.apply_schema(con, in_transaction=True)
        assert con.execute("SELECT signal_id FROM signals").fetchall() == [("1",)]
        con.rollback()
        assert con.execute(store.sql_text("schema_ids_numeric")).fetchone() == (4,)
        assert con.execute("SELECT signal_id FROM signals").fetchall() == [(1,)]


def test_apply_schema_is_idempotent(con):
    store.apply_schema(con)
    tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {
        "candles",
        "signals",
        "trades",
        "positions",
        "policy",
        "account",
        "ingest_log",
        "ingest_lock",
        "quarantine",
    }


def test_connections_read_timestamps_in_utc(con):
    (value,) = con.execute("SELECT '2024-01-01 12:00:00+02:00'::TIMESTAMPTZ::TIMESTAMP").fetchone()
    assert value == dt.datetime(2024, 1, 1, 10, 0)


@pytest.mark.parametrize(
    ("enum_type", "domain_enum"),
    [("regime_enum", Regime), ("model_enum", Model), ("weight_action_enum", WeightAction)],
)
def test_enum_types_list_the_domain_values_in_code_order(con, enum_type, domain_enum):
    (values,) = con.execute(f"SELECT enum_range(NULL::{enum_type})").fetchone()
    assert values == [member.name for member in sorted(domain_enum)]


def test_every_sizing_action_of_the_domain_is_accepted(con):
    con.execute(SIGNAL)
    for size, leverage in itertools.product(SIZE_MULTIPLIERS, LEVERAGES):
        con.execute(
            "INSERT INTO trades VALUES (1, 1, '2024-01-01 00:01', 'BTCUSDT', 1, 42000, ?, ?, "
            "0.3, 'TREND', 'WEIGHT_UP', NULL, NULL, NULL)",
            [size, leverage],
        )
        con.execute("DELETE FROM trades")


BAD_INSERTS = {
    "NaN price": "INSERT INTO candles VALUES ('X', '2024-01-01', 'NaN', 2, 1, 1.5, 1)",
    "infinite price": "INSERT INTO candles VALUES ('X', '2024-01-01', 1, 'inf', 1, 1.5, 1)",
    "zero price": "INSERT INTO candles VALUES ('X', '2024-01-01', 0, 2, 1, 1.5, 1)",
    "high below low": "INSERT INTO candles VALUES ('X', '2024-01-01', 1.5, 1, 2, 1.5, 1)",
    "close above high": "INSERT INTO candles VALUES ('X', '2024-01-01', 1.5, 2, 1, 2.5, 1)",
    "negative volume": "INSERT INTO candles VALUES ('X', '2024-01-01', 1.5, 2, 1, 1.5, -1)",
    "padded symbol": "INSERT INTO candles VALUES (' X', '2024-01-01', 1.5, 2, 1, 1.5, 1)",
    "direction 0": "INSERT INTO signals VALUES (2, '2024-01-01', 'X', 'XGB', 0, 0.5, 'TREND')",
    "confidence 1.5": "INSERT INTO signals VALUES (2, '2024-01-01', 'X', 'XGB', 1, 1.5, 'TREND')",
    "unknown model": "INSERT INTO signals VALUES (2, '2024-01-01', 'X', 'RF', 1, 0.5, 'TREND')",
    "unknown regime": "INSERT INTO signals VALUES (2, '2024-01-01', 'X', 'XGB', 1, 0.5, 'UP')",
    "second forecast of a model": (
        "INSERT INTO signals VALUES (2, '2024-01-01 00:00', 'BTCUSDT', 'XGB', -1, 0.5, 'TREND')"
    ),
    "size 0.5": TRADE.replace("42000, 1.0, 3", "42000, 0.5, 3"),
    "leverage 8": TRADE.replace("42000, 1.0, 3", "42000, 1.0, 8"),
    "leverage 0": TRADE.replace("42000, 1.0, 3", "42000, 1.0, 0"),
    "side 0": TRADE.replace("'BTCUSDT', 1,", "'BTCUSDT', 0,"),
    "negative exposure": TRADE.replace("3, 0.3,", "3, -0.3,"),
    "action_prob 0": TRADE.replace("0.9, 0.3, 0.3)", "0, 0.3, 0.3)"),
    "action_prob 1.2": TRADE.replace("0.9, 0.3, 0.3)", "1.2, 0.3, 0.3)"),
    "meta_action_prob 0": TRADE.replace("0.9, 0.3, 0.3)", "0.9, 0, 0.3)"),
    "meta_action_prob NaN": TRADE.replace("0.9, 0.3, 0.3)", "0.9, 'NaN', 0.3)"),
    "sizing_action_prob 1.5": TRADE.replace("0.9, 0.3, 0.3)", "0.9, 0.3, 1.5)"),
    "sizing_action_prob -0.1": TRADE.replace("0.9, 0.3, 0.3)", "0.9, 0.3, -0.1)"),
    "unknown weight action": TRADE.replace("'WEIGHT_UP'", "'WEIGHT_MAX'"),
    "trade without its signal": TRADE.replace("VALUES (1, 1,", "VALUES (1, 99,"),
    "position without its trade": "INSERT INTO positions VALUES (99, '2024-01-02', 42000, 1, 1)",
    "negative drawdown": "INSERT INTO positions VALUES (1, '2024-01-02', 42000, 1, -1)",
    "loss beyond the margin": "INSERT INTO positions VALUES (1, '2024-01-02', 42000, -101, 100)",
    "missing flag": "INSERT INTO policy VALUES ('2024-01-01', NULL)",
}


@pytest.mark.parametrize("statement", BAD_INSERTS.values(), ids=BAD_INSERTS.keys())
def test_contract_rejects_a_bad_row(con, statement):
    con.execute(SIGNAL)
    con.execute(TRADE)
    with pytest.raises(duckdb.Error):
        con.execute(statement)


def test_fingerprint_follows_the_contents_not_the_bookkeeping(tmp_path):
    db_path = tmp_path / "fp.duckdb"
    with store.connect(db_path) as con:
        store.apply_schema(con)
    empty = store.fingerprint(db_path)
    assert empty == store.fingerprint(db_path)
    with store.connect(db_path) as con:
        con.execute(SIGNAL)
    with_signal = store.fingerprint(db_path)
    assert with_signal != empty
    with store.connect(db_path) as con:
        con.execute(
            "INSERT INTO ingest_log VALUES (1, 'x.csv', 'csv', 'signals', ?, '{}', 0, 0, 0, 0, "
            "'2024-01-01', '2024-01-01')",
            ["0" * 64],
        )
    assert store.fingerprint(db_path) == with_signal


# --- hardened connections ---------------------------------------------------------------


def test_a_read_only_connection_reaches_nothing_but_its_file(tmp_path):
    db = tmp_path / "h.duckdb"
    with store.connect(db) as con:
        store.apply_schema(con)
    (tmp_path / "x.csv").write_text("a\n1\n")
    with store.connect(db, read_only=True) as con:
        settings = con.execute(
            "SELECT current_setting('enable_external_access'), "
            "current_setting('autoinstall_known_extensions'), "
            "current_setting('autoload_known_extensions'), "
            "current_setting('lock_configuration'), current_setting('TimeZone')"
        ).fetchone()
        assert settings == (False, False, False, True, "UTC")
        for statement in (
            f"SELECT * FROM read_csv('{tmp_path / 'x.csv'}')",
            "SELECT * FROM 'https://example.com/x.parquet'",
            f"ATTACH '{tmp_path / 'other.duckdb'}'",
            "INSTALL httpfs",
            "LOAD httpfs",
            "SET enable_external_access = true",
            "SET autoload_known_extensions = true",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(statement)


def test_a_writable_connection_reads_files_but_never_fetches_extensions(tmp_path):
    (tmp_path / "x.csv").write_text("a\n1\n")
    with store.connect(tmp_path / "h.duckdb") as con:
        assert con.execute(f"SELECT a FROM read_csv('{tmp_path / 'x.csv'}')").fetchall() == [(1,)]
        with pytest.raises(duckdb.Error):
            con.execute("SELECT * FROM 'https://example.com/x.parquet'")  # httpfs not loaded
        with pytest.raises(duckdb.Error):
            con.execute("SET autoinstall_known_extensions = true")


def test_concurrent_connections_of_one_process_share_the_locked_settings(tmp_path):
    db = tmp_path / "h.duckdb"
    with store.connect(db) as con:
        store.apply_schema(con)
    with store.connect(db, read_only=True) as first, store.connect(db, read_only=True) as second:
        for con in (first, second):
            assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)


@pytest.mark.parametrize(
    "db", ["md:shared", "motherduck:x", "s3://bucket/h.duckdb", "https://h/x.duckdb", ""]
)
def test_a_database_must_be_a_local_file(db):
    with pytest.raises(ValueError, match="must be a local file path"):
        store.local_db_path(db)
    with pytest.raises(ValueError, match="must be a local file path"):
        store.connect(db)


def test_a_log_made_before_the_account_table_is_rebuilt_with_its_rows(
    tmp_path, schema_of_first_release
):
    """Its CHECK listed five target tables; DuckDB alters no CHECK, so the log and the
    quarantine are rebuilt, every row kept, and an ingest into account then commits."""
    path = tmp_path / "first.duckdb"
    with store.connect(path) as old:
        old.execute(schema_of_first_release)
        old.execute(
            "INSERT INTO ingest_log VALUES (nextval('ingest_id_seq'), 'p.csv', 'csv', "
            "'policy', repeat('a', 64), '{}', 1, 0, 0, 1, '2024-01-01', '2024-01-01')"
        )
        old.execute(
            "INSERT INTO quarantine VALUES (1, 'p.csv', 1, 'policy', 'ts', 'missing value', "
            "'{}', '2024-01-01')"
        )
    with store.connect(path) as con:
        assert con.execute(store.sql_text("schema_log_old")).fetchone() == (1,)
        store.apply_schema(con)
        assert con.execute(store.sql_text("schema_log_old")).fetchone() == (0,)
        assert con.execute("SELECT ingest_id, target_table FROM ingest_log").fetchall() == [
            (1, "policy")
        ]
        assert con.execute("SELECT reason FROM quarantine").fetchall() == [("missing value",)]
        con.execute(
            "INSERT INTO ingest_log VALUES (nextval('ingest_id_seq'), 'a.csv', 'csv', "
            "'account', repeat('a', 64), '{}', 0, 0, 0, 0, '2024-01-01', '2024-01-01')"
        )
        with pytest.raises(duckdb.ConstraintException):  # the references hold again
            con.execute(
                "INSERT INTO quarantine VALUES (99, 'x', 1, 'account', NULL, 'r', '{}', now())"
            )
