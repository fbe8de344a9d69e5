"""The edge to DuckDB: opens the database, runs the queries in ``sql/``, returns arrays.

Every query lives in its own file ``NAME.sql`` in a folder of ``sql/`` (``contract/``,
``features/``, ``ingest/``, each with a README giving the order) and is run by its name
alone, so a file can move between folders without its callers knowing; names are unique
across the folders. This module holds no SQL of its own. A connection opened here reads
and writes timestamps in UTC.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import duckdb

from rlv2.resources import bundled_dir

SQL_DIR = bundled_dir("sql")
"""The repository's ``sql/`` folder, wherever the package is installed from."""

_SQL_NAME = re.compile(r"[a-z][a-z0-9_]*")
"""The name of a query file, without its ``.sql`` suffix."""

SqlParams = Mapping[str, Any] | None
"""Named parameters of a query file (``$name`` in the SQL)."""


_NOT_LOCAL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
"""A scheme or service prefix (``s3://``, ``https://``, ``md:``): DuckDB would go remote."""


def local_db_path(db_path: str | PathLike[str]) -> Path:
    """``db_path`` as a local file path, or a ValueError: DuckDB reads ``md:NAME`` as
    MotherDuck and ``s3://``/``http(s)://`` through extensions it would download."""
    text = os.fspath(db_path)
    if not text or text == ":memory:" or _NOT_LOCAL.match(text):
        raise ValueError(
            f"--db {text!r}: the database must be a local file path, not a URL, a service "
            "(md:) or :memory:"
        )
    return Path(text).expanduser()


def connect(
    db_path: str | PathLike[str], read_only: bool = False, external_access: bool | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB database at ``db_path`` (created if missing, unless read-only).

    Hardened: DuckDB never installs or loads an extension by itself, and the settings are
    locked once made (``lock_configuration``). ``external_access`` (default: only for a
    writable connection, which ``rlv2 ingest`` uses to read its source) lets queries read
    files and attach databases; a read-only connection, the one training reads the history
    through, can reach nothing but its own file.
    """
    text = os.fspath(db_path)
    if text != ":memory:":
        local_db_path(text)
    config: dict[str, str | bool | int | float | list[str]] = {
        "enable_external_access": (not read_only) if external_access is None else external_access,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    try:
        con = duckdb.connect(text, read_only=read_only, config=config)
    except duckdb.IOException as error:
        first = str(error).splitlines()[0]
        raise RuntimeError(
            f"cannot open DuckDB file {db_path} with DuckDB {duckdb.__version__}: {first}"
        ) from error
    # Contract timestamps are UTC; without this, casts through TIMESTAMPTZ would use the
    # machine's zone. GLOBAL: the connections of a process to one file share its settings,
    # and once locked a later connection could not set its own.
    try:
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        con.execute("SET lock_configuration = true")
    except duckdb.InvalidInputException:
        pass  # another connection of this process to the same file set and locked them
    (zone,) = con.execute("SELECT current_setting('TimeZone')").fetchone() or ("",)
    if zone != "UTC":
        con.close()
        raise RuntimeError(f"DuckDB file {db_path}: time zone {zone!r} is locked, not UTC")
    return con


def sql_catalogue(root: Path) -> dict[str, Path]:
    """Map the name of every ``*.sql`` file under ``root`` (its stem) to its path.

    Raises ValueError naming the file when a name is not lower_snake_case (no query could
    run it), or both files when two folders hold a file of the same name, as a query is
    run by its name alone.
    """
    catalogue: dict[str, Path] = {}
    for path in sorted(root.rglob("*.sql")):
        if not _SQL_NAME.fullmatch(path.stem):
            raise ValueError(f"bad SQL file name {path}: expected lower_snake_case.sql")
        seen = catalogue.setdefault(path.stem, path)
        if seen != path:
            raise ValueError(
                f"two SQL files are named {path.stem}: {seen} and {path}; names must be "
                f"unique across the folders of {root}"
            )
    return catalogue


@functools.cache
def _catalogue() -> dict[str, Path]:
    """The catalogue of :data:`SQL_DIR`, read once per process."""
    return sql_catalogue(SQL_DIR)


def sql_path(name: str) -> Path:
    """Return the path of the query file ``NAME.sql``, in whichever folder of ``sql/``."""
    if not _SQL_NAME.fullmatch(name):
        raise ValueError(f"bad SQL file name {name!r}: expected lower_snake_case, no suffix")
    try:
        return _catalogue()[name]
    except KeyError:
        raise FileNotFoundError(f"no SQL file {name}.sql in {SQL_DIR} or its folders") from None


def sql_text(name: str) -> str:
    """Return the text of the query file ``NAME.sql``."""
    return sql_path(name).read_text(encoding="utf-8")


def execute(
    con: duckdb.DuckDBPyConnection, name: str, params: SqlParams = None
) -> duckdb.DuckDBPyConnection:
    """Run the query file ``NAME.sql`` with named ``params``; return the cursor."""
    return con.execute(sql_text(name), dict(params) if params else None)


def execute_formatted(
    con: duckdb.DuckDBPyConnection, name: str, params: SqlParams = None, **fields: str
) -> duckdb.DuckDBPyConnection:
    """Run ``NAME.sql`` with its ``{field}`` slots filled (SQL the caller has quoted)."""
    return con.execute(sql_text(name).format(**fields), dict(params) if params else None)


def apply_schema(con: duckdb.DuckDBPyConnection, *, in_transaction: bool = False) -> None:
    """Create the data contract's types and tables (``schema.sql``) where missing, and bring
    a database made by an earlier contract up to it.

    A database whose ``signal_id`` / ``trade_id`` are still BIGINT gets text ids, each id
    its integer's text (``schema_ids_*.sql``); one whose ``ingest_log`` predates the
    ``account`` table gets a log that admits it (``schema_log_*.sql``, rows kept); one
    made before the per-agent propensities gets those columns (``schema_upgrade.sql``).
    A rebuild runs in a transaction of its own, so that a failure changes nothing; pass
    ``in_transaction`` when the caller has one open (DuckDB nests none), and it runs in that one.
    """
    # first: schema.sql does not even run on BIGINT ids (DuckDB binds the REFERENCES of
    # a CREATE TABLE IF NOT EXISTS whose table exists, and refuses BIGINT to VARCHAR)
    if execute(con, "schema_ids_numeric").fetchone() != (0,):
        _rebuild(con, "schema_ids_stash", "schema_ids_restore", in_transaction=in_transaction)
    if execute(con, "schema_log_old").fetchone() != (0,):
        _rebuild(con, "schema_log_stash", "schema_log_restore", in_transaction=in_transaction)
    execute(con, "schema")
    execute(con, "schema_upgrade")


def _rebuild(
    con: duckdb.DuckDBPyConnection, stash: str, restore: str, *, in_transaction: bool
) -> None:
    """Rebuild tables as ``schema.sql`` states them now, keeping their rows: ``stash``
    sets them aside and drops them, ``restore`` puts the rows back."""
    if not in_transaction:
        con.begin()
    try:
        execute(con, stash)
        execute(con, "schema")
        execute(con, restore)
    except BaseException:
        if not in_transaction:
            con.rollback()
        raise
    if not in_transaction:
        con.commit()


def fingerprint(db_path: str | PathLike[str]) -> str:
    """Return a sha256 of the contract tables' contents in the database at ``db_path``.

    The rows of every table are hashed in key order (``contract_digest.sql``); the
    ingest bookkeeping is left out, so re-ingesting the same data keeps the fingerprint.
    Opens the database read-only: call it while no other connection of this process
    holds the file open for writing.
    """
    with connect(db_path, read_only=True) as con:
        rows = execute(con, "contract_digest").fetchall()
        if has_account(con):
            rows += execute(con, "contract_digest_account").fetchall()
    lines = "".join(f"{table} {count} {digest}\n" for table, count, digest in rows)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def has_account(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database has the optional ``account`` table (recorded equity)."""
    row = execute(con, "contract_has_account").fetchone()
    return bool(row and row[0])
