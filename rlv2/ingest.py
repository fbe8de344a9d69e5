"""Loads the trading system's history into the data contract (``rlv2 ingest``).

A source is a CSV or Parquet file, a table of another DuckDB file, or a table of a
PostgreSQL database (through DuckDB's postgres extension, read-only). One ingest loads one
source into one contract table (``sql/contract/schema.sql``) in one transaction, running
the files of ``sql/ingest/`` by name (its README lists them in this order):

1. stage: read every column as VARCHAR, number the data rows (``ingest_read_*.sql``,
   ``ingest_source*.sql``); a CSV record that cannot be split into columns is set aside;
2. map: name each contract column's source column (:func:`plan_columns`,
   ``ingest_mapped.sql``);
3. check: type every row in one pass and give the plainly fine rows their verdict, load or
   duplicate (``ingest_checked_*``); the others, usually few, are typed again with their
   problems named, and judged (``ingest_suspects``, ``ingest_typed_*``,
   ``ingest_unparsed``, ``ingest_rules_*``, ``ingest_triage``);
4. load the valid new rows, quarantine the others with source row, column and reason, and
   log the counts: ``read = loaded + duplicate + quarantined``, always.

A candles CSV takes a faster road first: one streaming pass that types, checks and inserts
every row (``ingest_streamed_*``), then looks for repeated or already stored keys. It is
kept only if the source had no problem at all; otherwise the transaction is rolled back and
the staged road above runs, so both give the same tables, counts and log.

Where the table has a key index (signals, trades, positions, policy), a key repeated
within the source is left to it: if the index refuses the load, the transaction is rolled
back and run again with the repeats sent to triage (``ingest_repeats_*``). candles has no
key index (it would make a bulk load several times slower), so its repeats are looked for
up front. Each ingest writes its table's row of ``ingest_lock``, so of two ingests into
one table at once only one can commit. A source that cannot be read at all raises
:class:`IngestError` and changes nothing. Re-ingesting a source loads nothing twice: its
rows count as duplicates.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from rlv2 import store
from rlv2.console import progress

CONTRACT_TABLES: tuple[str, ...] = (
    "candles",
    "signals",
    "trades",
    "positions",
    "policy",
    "account",
)
"""The tables a source can be loaded into, in the order they must be filled (``account``,
the optional recorded equity, stands alone)."""

SOURCE_FORMATS: tuple[str, ...] = ("csv", "parquet", "duckdb", "postgres")
"""The kinds of source :func:`ingest` reads."""

REPORTED_PROBLEMS = 20
"""How many quarantine rows an :class:`IngestReport` carries for display."""

_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".duckdb": "duckdb",
    ".ddb": "duckdb",
    ".db": "duckdb",
}
TIME_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "candles": ("ts",),
    "signals": ("ts",),
    "trades": ("ts",),
    "positions": ("closed_ts",),
    "policy": ("ts",),
    "account": ("ts",),
}
"""Each table's timestamp columns, held to [earliest, latest) (:class:`IngestRequest`)."""
PRICE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "candles": ("open", "high", "low", "close"),
    "trades": ("entry_price",),
    "positions": ("exit_price",),
}
"""Each table's price columns, held below ``max_price`` (:class:`IngestRequest`)."""
_POSTGRES_URI_PREFIXES = ("postgresql://", "postgres://")
_POSTGRES_PREFIXES = ("postgresql:", "postgres:")


class IngestError(Exception):
    """A source that cannot be ingested; the message names the source and the cause."""


class IngestRefused(IngestError):
    """A strict ingest (``IngestRequest.strict``) that found a row to quarantine: rolled
    back, nothing changed, no quarantine rows written; ``report`` says what it found."""

    def __init__(self, report: IngestReport) -> None:
        super().__init__(
            f"strict ingest of {report.source} into {report.target_table} refused: "
            f"{report.rows_quarantined} of {report.rows_read} rows break the contract; "
            "nothing was loaded or recorded (run without --strict to load the valid rows "
            "and record the others in quarantine)"
        )
        self.report = report


class _KeyRepeated(Exception):
    """The key index refused the rows to load: the source repeats a key (rolled back, rerun)."""


@dataclass(frozen=True)
class IngestRequest:
    """What to load, from where, and how to read it."""

    source: str
    """A file path, or ``postgres:DSN`` (a libpq ``key=value`` string or a URI)."""
    table: str
    """The contract table to load: one of :data:`CONTRACT_TABLES`."""
    source_format: str | None = None
    """One of :data:`SOURCE_FORMATS`; None infers it from the prefix or file suffix."""
    source_table: str | None = None
    """Table (or ``schema.table``) of a DuckDB or PostgreSQL source; None: ``table``."""
    column_map: Mapping[str, str] = field(default_factory=dict)
    """Contract column -> source column, for columns whose names differ."""
    symbol: str | None = None
    """The symbol of every row, for a source without a symbol column."""
    ts_format: str | None = None
    """strptime format of the timestamp columns (e.g. ``%m/%d/%Y``); None: ISO 8601."""
    header: bool = True
    """Whether a CSV's first line names its columns (else: column0, column1, ...)."""
    earliest: datetime = datetime(1970, 1, 1)
    """The earliest time (UTC) a row may carry; an earlier one is quarantined."""
    latest: datetime = datetime(2100, 1, 1)
    """Times from this one on (UTC) are quarantined: a year 20190 is a typo, not data."""
    max_price: float = 1e9
    """Prices (candles' open, high, low, close; entry and exit prices) from this bound on
    are quarantined: a contract-valid 1e308 broke training."""
    glob: bool = False
    """Whether a file source is a pattern (``bars/*.csv``) that DuckDB expands; by default
    a path is taken literally, ``bars[2020].csv`` included."""

    def __post_init__(self) -> None:
        if not self.earliest < self.latest:
            raise IngestError(f"earliest {self.earliest} must be before latest {self.latest}")
        if not self.max_price > 0:  # also refuses NaN
            raise IngestError(f"max_price={self.max_price} must be > 0")
        if self.symbol is not None and (problem := symbol_problem(self.symbol)):
            raise IngestError(f"--symbol: {problem}")

    strict: bool = False
    """Whether any row to quarantine refuses the whole source: the ingest then rolls back
    (no rows, no ingest_log or quarantine rows) and raises :class:`IngestRefused`."""


@dataclass(frozen=True)
class Problem:
    """One reason one source row was quarantined."""

    source_row: int
    """1-based data row of the source (a CSV header is not counted)."""
    column_name: str | None
    """The contract column at fault; None when the record had no columns."""
    reason: str
    """What is wrong, with the offending value."""


@dataclass(frozen=True)
class ColumnPlan:
    """Where each contract column's values come from."""

    sources: Mapping[str, str]
    """Contract column -> source column."""
    constants: Mapping[str, str]
    """Contract column -> the value of every row."""
    nulls: tuple[str, ...]
    """Nullable contract columns the source lacks: NULL in every row."""
    ignored: tuple[str, ...]
    """Source columns that feed no contract column."""


@dataclass(frozen=True)
class IngestReport:
    """The outcome of one committed ingest; every row read is counted exactly once."""

    ingest_id: int
    source: str
    """The source as logged (a DSN without its password)."""
    source_format: str
    target_table: str
    content_sha256: str
    rows_read: int
    rows_loaded: int
    rows_duplicate: int
    """Rows identical to a stored row or to an earlier row of the source."""
    rows_quarantined: int
    ignored_columns: tuple[str, ...]
    null_columns: tuple[str, ...]
    problems: tuple[Problem, ...]
    """The first :data:`REPORTED_PROBLEMS` quarantine rows; all are in ``quarantine``."""
    streamed: bool = False
    """Whether the source loaded in one streaming pass (a clean candles CSV)."""

    def __post_init__(self) -> None:
        """Refuse a report whose counts do not add up (a bug, never a data problem)."""
        counted = self.rows_loaded + self.rows_duplicate + self.rows_quarantined
        if self.rows_read != counted:
            raise AssertionError(
                f"ingest of {self.source}: read {self.rows_read} rows but loaded "
                f"{self.rows_loaded} + duplicate {self.rows_duplicate} + quarantined "
                f"{self.rows_quarantined} = {counted}"
            )


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""The characters of Unicode category Cc, as ``\\p{Cc}`` in ``ingest_symbol_problem``."""
_BLANK_AROUND = re.compile(r"^\s|\s$")


def symbol_problem(symbol: str) -> str | None:
    """What is wrong with a symbol, as ``ingest_symbol_problem`` (ingest_setup.sql) says it."""
    if _CONTROL.search(symbol):
        return f"symbol {json.dumps(symbol)} contains a control character"
    if not symbol.strip():
        return "symbol is blank"
    if _BLANK_AROUND.search(symbol):
        return f"symbol {json.dumps(symbol, ensure_ascii=False)} has blanks around it"
    return None


class EmptySource(IngestError):
    """A source file of 0 bytes: nothing to read, nothing loaded or recorded."""


MAX_LINE_SIZE = 2_000_000
"""DuckDB's limit on one CSV record in bytes (its default), given to ``read_csv``."""


def detect_format(source: str, source_format: str | None = None) -> str:
    """Return the format of ``source``: the one given, else from its prefix or suffix."""
    if source_format is not None:
        if source_format not in SOURCE_FORMATS:
            raise IngestError(
                f"unknown source format {source_format!r}: expected one of {SOURCE_FORMATS}"
            )
        return source_format
    if source.startswith(_POSTGRES_PREFIXES):
        return "postgres"
    for suffix in reversed(Path(source).suffixes):
        if suffix.lower() in _SUFFIX_FORMATS:
            return _SUFFIX_FORMATS[suffix.lower()]
    raise IngestError(
        f"{source}: cannot tell its format from the name; give one of {SOURCE_FORMATS}"
    )


def postgres_dsn(source: str) -> str:
    """Return the libpq DSN or URI of a ``postgres:DSN`` source."""
    if source.startswith(_POSTGRES_URI_PREFIXES):
        return source
    for prefix in _POSTGRES_PREFIXES:
        if source.startswith(prefix):
            return source[len(prefix) :]
    return source


def redact_dsn(dsn: str) -> str:
    """Return ``dsn`` with any password replaced by ``***``, fit to be logged."""
    dsn = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn, flags=re.I)
    return re.sub(r"(://[^:/@\s]+:)[^@\s]*@", r"\1***@", dsn)


def plan_columns(
    source_columns: Sequence[str],
    contract_columns: Sequence[tuple[str, bool]],
    column_map: Mapping[str, str],
    constants: Mapping[str, str],
    *,
    source: str,
    table: str,
) -> ColumnPlan:
    """Name the source column (or constant) of each contract column.

    A contract column takes, in this order: the source column ``column_map`` names; the
    constant in ``constants``; the source column whose name matches it ignoring case and
    separators (``Adj Close`` matches ``adj_close``); else NULL where the contract allows.
    ``contract_columns`` are (name, nullable) pairs. Raises :class:`IngestError` naming
    the columns when a required column has no source or a name is ambiguous.
    """
    targets = [name for name, _ in contract_columns]
    for target in [*column_map, *constants]:
        if target not in targets:
            raise IngestError(
                f"{target!r} is not a column of {table} (columns: {', '.join(targets)})"
            )
    by_name: dict[str, list[str]] = {}
    for column in source_columns:
        by_name.setdefault(_normalise(column), []).append(column)
    described = f"{source} (columns: {', '.join(source_columns)})"
    sources = {
        target: _find_source_column(wanted, source_columns, by_name, described)
        for target, wanted in column_map.items()
    }
    for target in targets:
        matches = by_name.get(target, [])
        if target in sources or not matches:
            continue
        if target in constants:
            raise IngestError(
                f"{described} has a column {matches[0]!r} for {target} and a constant "
                f"{target} was given too: drop one"
            )
        if len(matches) > 1:
            raise IngestError(
                f"{described}: columns {' and '.join(map(repr, matches))} both match "
                f"{target}; choose one with --map {target}=SOURCE"
            )
        sources[target] = matches[0]
    missing = [
        name
        for name, nullable in contract_columns
        if name not in sources and name not in constants and not nullable
    ]
    if missing:
        hint = " (or --symbol SYMBOL)" if "symbol" in missing else ""
        raise IngestError(
            f"{described} has no column for {table} column(s) {', '.join(missing)}: "
            f"name the source column with --map TARGET=SOURCE{hint}"
        )
    used = set(sources.values())
    return ColumnPlan(
        sources=sources,
        constants=dict(constants),
        nulls=tuple(
            name for name, _ in contract_columns if name not in sources and name not in constants
        ),
        ignored=tuple(column for column in source_columns if column not in used),
    )


def ingest(con: duckdb.DuckDBPyConnection, request: IngestRequest) -> IngestReport:
    """Load one source into one contract table, in one transaction; return the counts."""
    if request.table not in CONTRACT_TABLES:
        raise IngestError(f"unknown table {request.table!r}: expected one of {CONTRACT_TABLES}")
    source_format = detect_format(request.source, request.source_format)
    source = _describe_source(request, source_format)
    if request.source_table is not None and source_format not in ("duckdb", "postgres"):
        raise IngestError(f"{source}: a source table applies to DuckDB and PostgreSQL sources")
    if source_format == "postgres":
        load_postgres_extension(con, source)
    progress(f"ingest {source} -> {request.table}: reading")
    is_file = source_format in ("csv", "parquet")
    stream = _open_file(request.source) if is_file and not request.glob else None
    if stream is not None and Path(request.source).stat().st_size == 0:
        stream.close()
        raise EmptySource(f"{source} is empty (0 bytes): nothing loaded, nothing recorded")
    started_at = _utc_now()
    # A file's sha256 is computed on a thread while DuckDB reads and loads the file; the
    # file is closed once the thread is done.
    with (
        stream if stream is not None else nullcontext(),
        ThreadPoolExecutor(1) as hasher,
        _literal_path(request.source, literal=is_file and not request.glob) as read_from,
    ):
        file_sha256 = hasher.submit(_sha256_of, stream) if stream is not None else None
        reading = replace(request, source=read_from)
        return _stage_and_load(con, reading, source_format, source, file_sha256, started_at)


_GLOB_CHARACTERS = re.compile(r"[*?\[\]{}]")
"""Characters that make DuckDB read a file path as a pattern of several files."""


@contextmanager
def _literal_path(path: str, literal: bool) -> Iterator[str]:
    """The path DuckDB should read for ``path``: itself, or, for a literal path that DuckDB
    would expand as a pattern (``bars[2020].csv`` matched ``bars2.csv``), a link to it
    with a plain name in a temporary folder."""
    if not literal or not _GLOB_CHARACTERS.search(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="rlv2-ingest-") as folder:
        link = Path(folder) / ("source" + "".join(Path(path).suffixes))
        link.symlink_to(Path(path).resolve())
        yield str(link)


def _stage_and_load(
    con: duckdb.DuckDBPyConnection,
    request: IngestRequest,
    source_format: str,
    source: str,
    file_sha256: Future[str] | None,
    started_at: datetime,
) -> IngestReport:
    """Stage the source, then load it in one transaction (run again if the key index refuses)."""
    if file_sha256 is not None and source_format == "csv" and request.table == "candles":
        streamed = _load_streamed(con, request, source, file_sha256, started_at)
        if streamed is not None:
            return streamed
    # Staging writes temporary tables only, so it runs before the transaction: inside one,
    # DuckDB's rowid (which numbers the rows in source order) would not start at 0.
    try:
        _stage(con, request, source_format, source)
    except BaseException:
        store.execute(con, "ingest_cleanup")
        raise
    progress(f"ingest {source} -> {request.table}: checking the contract and loading")
    con.begin()
    try:
        try:
            report = _ingest_in_transaction(
                con, request, source_format, source, file_sha256, started_at, find_repeats=False
            )
        except _KeyRepeated:
            con.rollback()
            con.begin()
            report = _ingest_in_transaction(
                con, request, source_format, source, file_sha256, started_at, find_repeats=True
            )
        if request.strict and report.rows_quarantined:
            raise IngestRefused(report)  # rolled back below
        con.commit()
    except duckdb.TransactionException as error:
        _rollback(con)
        raise IngestError(
            f"ingest of {source} into {request.table} failed: another ingest into "
            f"{request.table} ran at the same time ({_first_line(error)}); nothing was "
            "changed, run it again"
        ) from error
    except duckdb.Error as error:
        _rollback(con)
        raise IngestError(
            f"ingest of {source} into {request.table} failed: {_first_line(error)}"
        ) from error
    except BaseException:
        _rollback(con)
        raise
    finally:
        store.execute(con, "ingest_cleanup")
    return report


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if any: a failed commit has already ended it."""
    try:
        con.rollback()
    except duckdb.TransactionException:
        pass


def _ingest_in_transaction(
    con: duckdb.DuckDBPyConnection,
    request: IngestRequest,
    source_format: str,
    source: str,
    file_sha256: Future[str] | None,
    started_at: datetime,
    *,
    find_repeats: bool,
) -> IngestReport:
    """Run the steps of :func:`ingest` inside its transaction."""
    store.apply_schema(con, in_transaction=True)
    find_repeats = find_repeats or not _has_key_index(con, request.table)
    plan = _plan_for(con, request, source)
    _map_columns(con, plan)
    table = request.table
    store.execute(con, f"ingest_checked_{table}", {"ts_format": request.ts_format})
    if find_repeats:
        store.execute(con, f"ingest_repeats_{table}")
    unjudge_out_of_range(con, request)
    store.execute(con, "ingest_suspects")
    store.execute(con, f"ingest_typed_{table}", {"ts_format": request.ts_format})
    store.execute(con, "ingest_unparsed", {"table": table, "ts_format": request.ts_format})
    store.execute(con, f"ingest_rules_{table}")
    name_out_of_range(con, request)
    store.execute(con, "ingest_triage")
    store.execute(con, "ingest_verdicts")
    counts = _fetch_one(store.execute(con, "ingest_counts"))
    rows_read, rows_to_load, rows_duplicate, rows_quarantined, two_verdicts, no_verdict = counts
    if two_verdicts or no_verdict:
        raise AssertionError(
            f"ingest of {source}: {two_verdicts} rows got two verdicts, {no_verdict} none"
        )
    try:
        (rows_loaded,) = _fetch_one(
            store.execute_formatted(con, "ingest_insert", table=_quote(table))
        )
    except duckdb.ConstraintException as error:
        if find_repeats:
            raise
        raise _KeyRepeated() from error
    if rows_loaded != rows_to_load:
        raise AssertionError(
            f"ingest of {source}: inserted {rows_loaded} rows of {rows_to_load} to load"
        )
    if file_sha256 is not None:
        content_sha256 = file_sha256.result()
    else:
        (content_sha256,) = _fetch_one(store.execute(con, "ingest_source_digest"))
    logged = (rows_read, rows_loaded, rows_duplicate, rows_quarantined)
    return _log(con, request, source_format, source, content_sha256, started_at, plan, logged)


def sane_ranges(request: IngestRequest) -> list[tuple[tuple[str, ...], object, object, str]]:
    """The request's sane ranges on its table: (columns, low, high, the range as text)."""
    table = request.table
    ranges: list[tuple[tuple[str, ...], object, object, str]] = [
        (
            TIME_COLUMNS[table],
            request.earliest,
            request.latest,
            f"[{request.earliest}, {request.latest})",
        )
    ]
    if table in PRICE_COLUMNS:
        ranges.append(
            (PRICE_COLUMNS[table], float("-inf"), request.max_price, f"(0, {request.max_price:g})")
        )
    return ranges


def unjudge_out_of_range(con: duckdb.DuckDBPyConnection, request: IngestRequest) -> None:
    """Take the verdict of ``ingest_checked`` from rows outside the sane ranges."""
    for columns, low, high, _ in sane_ranges(request):
        store.execute_formatted(
            con,
            "ingest_bounds_unjudge",
            {"low": low, "high": high},
            columns=", ".join(map(_quote, columns)),
        )


def name_out_of_range(con: duckdb.DuckDBPyConnection, request: IngestRequest) -> None:
    """Add a rule hit for every value of ``ingest_typed`` outside the sane ranges."""
    for columns, low, high, text in sane_ranges(request):
        store.execute_formatted(
            con,
            "ingest_rules_bounds",
            {"low": low, "high": high, "range": text},
            columns=", ".join(map(_quote, columns)),
        )


def _log(
    con: duckdb.DuckDBPyConnection,
    request: IngestRequest,
    source_format: str,
    source: str,
    content_sha256: str,
    started_at: datetime,
    plan: ColumnPlan,
    counts: tuple[int, int, int, int],
    *,
    streamed: bool = False,
) -> IngestReport:
    """Log the ingest and quarantine its problems (none when streamed); return its report."""
    rows_read, rows_loaded, rows_duplicate, rows_quarantined = counts
    table = request.table
    (ingest_id,) = _fetch_one(store.execute(con, "ingest_next_id"))
    store.execute(con, "ingest_lock", {"table": table, "ingest_id": ingest_id})
    report = IngestReport(
        ingest_id=ingest_id,
        source=source,
        source_format=source_format,
        target_table=table,
        content_sha256=content_sha256,
        rows_read=rows_read,
        rows_loaded=rows_loaded,
        rows_duplicate=rows_duplicate,
        rows_quarantined=rows_quarantined,
        ignored_columns=plan.ignored,
        null_columns=plan.nulls,
        problems=(),
        streamed=streamed,
    )
    options = {key: value for key, value in asdict(request).items() if key != "source"}
    options["column_map"] = dict(request.column_map)
    options["earliest"], options["latest"] = str(request.earliest), str(request.latest)
    store.execute(
        con,
        "ingest_log_insert",
        {
            "ingest_id": ingest_id,
            "source": source,
            "source_format": source_format,
            "target_table": table,
            "content_sha256": content_sha256,
            "options": json.dumps(options),
            "rows_read": rows_read,
            "rows_loaded": rows_loaded,
            "rows_duplicate": rows_duplicate,
            "rows_quarantined": rows_quarantined,
            "started_at": started_at,
            "finished_at": _utc_now(),
        },
    )
    if streamed:
        return report
    store.execute(
        con,
        "ingest_quarantine_insert",
        {
            "ingest_id": ingest_id,
            "source": source,
            "target_table": table,
            "ingested_at": started_at,
        },
    )
    problems = store.execute(
        con, "ingest_problems", {"ingest_id": ingest_id, "limit": REPORTED_PROBLEMS}
    ).fetchall()
    return replace(report, problems=tuple(Problem(*problem) for problem in problems))


class _NotClean(Exception):
    """A streamed load cannot keep the source (a repeated or stored key, a column used as
    both a number and text): it rolls back, and the staged road judges the source."""


def _load_streamed(
    con: duckdb.DuckDBPyConnection,
    request: IngestRequest,
    source: str,
    file_sha256: Future[str],
    started_at: datetime,
) -> IngestReport | None:
    """Load a candles CSV in one streaming pass if it has no problem; else None, no change.

    Any failure (a bad value, a broken rule, a malformed record, a repeated or stored key,
    an unreadable file) rolls back, and the staged road then finds, names and counts it.
    """
    con.begin()
    try:
        store.execute(con, "ingest_setup")
        store.apply_schema(con, in_transaction=True)
        params = {"path": request.source, "header": request.header}
        header = store.execute(con, "ingest_streamed_header", params).fetchall()
        plan = _plan_from(con, request, source, [row[0] for row in header])
        columns, types = _streamed_columns(plan)
        (after,) = _fetch_one(store.execute(con, "ingest_streamed_rowid"))
        (loaded,) = _fetch_one(
            store.execute_formatted(
                con,
                "ingest_streamed_candles",
                {**params, "ts_format": request.ts_format},
                columns=columns,
                types=types,
            )
        )
        appended, *breaks, first_ts, last_ts, max_price = _fetch_one(
            store.execute(con, "ingest_streamed_check", {"after": after})
        )
        if appended != loaded:
            raise _NotClean(f"found {appended} appended rows of {loaded} inserted")
        if loaded and not (
            request.earliest <= first_ts
            and last_ts < request.latest
            and max_price < request.max_price
        ):
            raise _NotClean("values outside the sane ranges")
        if loaded and min(breaks) > 0:
            (repeated,) = _fetch_one(
                store.execute(con, "ingest_streamed_repeats", {"after": after})
            )
            if repeated:
                raise _NotClean(f"{repeated} keys repeated")
        if loaded and after >= 0:  # after < 0: candles was empty, nothing stored to repeat
            bounds = {"after": after, "first_ts": first_ts, "last_ts": last_ts}
            (stored,) = _fetch_one(store.execute(con, "ingest_streamed_stored", bounds))
            if stored:
                raise _NotClean(f"{stored} keys already stored")
        counts = (loaded, loaded, 0, 0)
        report = _log(
            con,
            request,
            "csv",
            source,
            file_sha256.result(),
            started_at,
            plan,
            counts,
            streamed=True,
        )
        con.commit()
    except (duckdb.Error, IngestError, _NotClean):
        _rollback(con)
        return None
    except BaseException:
        _rollback(con)
        raise
    finally:
        store.execute(con, "ingest_cleanup")
    return report


_STREAMED_DOUBLES = ("open", "high", "low", "close", "volume")
"""The candles columns a streamed load has read_csv parse as DOUBLE."""


def _streamed_columns(plan: ColumnPlan) -> tuple[str, str]:
    """The select list and read_csv ``types`` of ``ingest_streamed_candles.sql``.

    Raises :class:`_NotClean` when a source column feeds both a number and text, which
    the staged road reads.
    """
    doubles = {plan.sources[name] for name in _STREAMED_DOUBLES if name in plan.sources}
    texts = {source for name, source in plan.sources.items() if name not in _STREAMED_DOUBLES}
    if doubles & texts:
        raise _NotClean(f"source columns {sorted(doubles & texts)} feed a number and text")
    types = ", ".join(f"{_sql_literal(source)}: 'DOUBLE'" for source in sorted(doubles))
    return _select_list(plan, doubles=_STREAMED_DOUBLES), "{" + types + "}"


def _has_key_index(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether a contract table has a primary key or unique index that refuses repeats."""
    (indexed,) = _fetch_one(store.execute(con, "ingest_key_index", {"table": table}))
    return bool(indexed)


def _stage(
    con: duckdb.DuckDBPyConnection, request: IngestRequest, source_format: str, source: str
) -> None:
    """Read the source into ``ingest_read``; ``ingest_source`` numbers its rows (all VARCHAR)."""
    store.execute(con, "ingest_setup")
    try:
        if source_format == "csv":
            params = {"path": request.source, "header": request.header}
            store.execute(con, "ingest_read_csv", {**params, "max_line_size": MAX_LINE_SIZE})
            store.execute(con, "ingest_rejected_csv", {"header": request.header})
        elif source_format == "parquet":
            store.execute(con, "ingest_read_parquet", {"path": request.source})
        else:
            _stage_attached(con, request, source_format)
    except duckdb.Error as error:
        too_long = _too_long_record(request, source_format)
        cause = too_long if too_long is not None else _first_line(error)
        raise IngestError(f"cannot read {source} as {source_format}: {cause}") from None
    (rejected,) = _fetch_one(store.execute(con, "ingest_rejected_count"))
    store.execute(con, "ingest_source_renumbered" if rejected else "ingest_source")


def _too_long_record(request: IngestRequest, source_format: str) -> str | None:
    """Name the first CSV record over :data:`MAX_LINE_SIZE` by its line in the file, if any.

    DuckDB's own message numbers the line within its read buffer ("CSV Error on Line: 1"),
    so the file is scanned here, on this error path only. A record runs on over line
    breaks inside double quotes; it is numbered by the line it starts on.
    """
    if source_format != "csv" or request.glob:
        return None
    try:
        with open(request.source, "rb") as lines:
            line_no, start, size, quoted = 0, 0, 0, False
            for line in lines:
                line_no += 1
                if not quoted:
                    start, size = line_no, 0
                size += len(line.rstrip(b"\r\n")) + (1 if quoted else 0)
                quoted ^= line.count(b'"') % 2 == 1
                if size > MAX_LINE_SIZE:
                    return (
                        f"the record on line {start} is longer than {MAX_LINE_SIZE:,} bytes, "
                        "the most a CSV record may hold; nothing was loaded"
                    )
    except OSError:
        return None
    return None


def _stage_attached(
    con: duckdb.DuckDBPyConnection, request: IngestRequest, source_format: str
) -> None:
    """Read a table of an attached DuckDB or PostgreSQL database into ``ingest_read``."""
    if source_format == "duckdb":
        attach, location = "ingest_attach_duckdb", request.source
    else:
        attach, location = "ingest_attach_postgres", postgres_dsn(request.source)
    store.execute_formatted(con, attach, location=_sql_literal(location))
    try:
        store.execute(con, "ingest_read_attached", {"table": request.source_table or request.table})
    finally:
        store.execute(con, "ingest_detach")


def _plan_for(con: duckdb.DuckDBPyConnection, request: IngestRequest, source: str) -> ColumnPlan:
    """Plan the column mapping of the staged source onto the request's table."""
    source_columns = [c for c in con.table("ingest_source").columns if c != "source_row"]
    return _plan_from(con, request, source, source_columns)


def _plan_from(
    con: duckdb.DuckDBPyConnection, request: IngestRequest, source: str, source_columns: list[str]
) -> ColumnPlan:
    """Plan the mapping of ``source_columns`` onto the request's table."""
    contract_columns = store.execute(con, "contract_columns", {"table": request.table}).fetchall()
    constants = {"symbol": request.symbol} if request.symbol is not None else {}
    return plan_columns(
        source_columns,
        contract_columns,
        request.column_map,
        constants,
        source=source,
        table=request.table,
    )


def _map_columns(con: duckdb.DuckDBPyConnection, plan: ColumnPlan) -> None:
    """Create the view ``ingest_mapped``: source_row and the contract's columns, as VARCHAR."""
    store.execute_formatted(con, "ingest_mapped", columns=_select_list(plan))


def _select_list(plan: ColumnPlan, doubles: Sequence[str] = ()) -> str:
    """The contract's columns, each from its source column, constant or NULL: as DOUBLE
    for the columns in ``doubles``, as VARCHAR for the others.

    Built here, since the identifiers come from the source's header: they are quoted, and a
    constant is inlined as a quoted literal (a view takes no parameters).
    """
    columns = []
    for target in [*plan.sources, *plan.constants, *plan.nulls]:
        kind = "DOUBLE" if target in doubles else "VARCHAR"
        if target in plan.sources:
            value = _quote(plan.sources[target])
        elif target in plan.constants:
            value = _sql_literal(plan.constants[target])
        else:
            value = "NULL"
        columns.append(f"{value}::{kind} AS {_quote(target)}")
    return ", ".join(columns)


def bundled_postgres_extension() -> Path | None:
    """The postgres extension file shipped by ``duckdb-extension-postgres-scanner``, if any."""
    try:
        import duckdb_extension_postgres_scanner as package  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = (
        Path(package.__file__).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / "postgres_scanner.duckdb_extension"
    )
    return path if path.is_file() else None


def load_postgres_extension(con: duckdb.DuckDBPyConnection, source: str = "postgres") -> None:
    """Load DuckDB's postgres extension: installed, else the PyPI-shipped file, else INSTALL."""
    try:
        store.execute(con, "ingest_load_postgres")
        return
    except duckdb.Error:
        pass
    shipped = bundled_postgres_extension()
    try:
        if shipped is not None:
            location = "'" + str(shipped).replace("'", "''") + "'"
            con.execute(store.sql_text("ingest_load_postgres_file").format(location=location))
            return
        store.execute(con, "ingest_install_postgres")
        store.execute(con, "ingest_load_postgres")
    except duckdb.Error as error:
        raise IngestError(
            f"cannot read {source}: DuckDB {duckdb.__version__} has no postgres extension "
            f"and could not install it ({_first_line(error)}); install the package "
            f"duckdb-extension-postgres-scanner=={duckdb.__version__}, or run "
            "`INSTALL postgres` in DuckDB once with network access"
        ) from None


def _describe_source(request: IngestRequest, source_format: str) -> str:
    """Name the source for messages and the log: DSNs without passwords, tables after #."""
    if source_format == "postgres":
        dsn = redact_dsn(postgres_dsn(request.source))
        location = dsn if dsn.startswith(_POSTGRES_URI_PREFIXES) else f"postgres:{dsn}"
    else:
        location = request.source
    if source_format in ("duckdb", "postgres"):
        return f"{location}#{request.source_table or request.table}"
    return location


def _open_file(path: str) -> io.BufferedReader:
    """Open a source file for reading; raise :class:`IngestError` if it is unreadable."""
    try:
        return open(path, "rb")
    except OSError as error:
        raise IngestError(f"cannot read {path}: {error.strerror or error}") from None


def _sha256_of(stream: io.BufferedReader) -> str:
    """Return the sha256 of a file's bytes; raise :class:`IngestError` if it is unreadable."""
    try:
        return hashlib.file_digest(stream, "sha256").hexdigest()
    except OSError as error:
        raise IngestError(f"cannot read {stream.name}: {error.strerror or error}") from None


def _find_source_column(
    wanted: str, source_columns: Sequence[str], by_name: Mapping[str, list[str]], described: str
) -> str:
    """Return the source column named ``wanted``: exactly, else ignoring case/separators."""
    if wanted in source_columns:
        return wanted
    matches = by_name.get(_normalise(wanted), [])
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise IngestError(f"{described}: {wanted!r} matches {' and '.join(map(repr, matches))}")
    raise IngestError(f"{described} has no column {wanted!r}")


def _normalise(name: str) -> str:
    """Fold a column name for matching: lower case, runs of non-alphanumerics as ``_``."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().casefold()).strip("_")


def _sql_literal(text: str) -> str:
    """Quote a string as an SQL literal."""
    return "'" + text.replace("'", "''") + "'"


def _quote(identifier: str) -> str:
    """Quote an SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def _fetch_one(cursor: duckdb.DuckDBPyConnection) -> tuple:
    """Return the one row a query yields."""
    row = cursor.fetchone()
    if row is None:
        raise AssertionError("query returned no row")
    return row


def _first_line(error: BaseException) -> str:
    """Return the first line of an error's message (DuckDB appends pages of context).

    Any password in it is masked: a failed ATTACH may quote the DSN.
    """
    message = str(error).strip()
    return redact_dsn(message.splitlines()[0]) if message else type(error).__name__


def _utc_now() -> datetime:
    """Return the current UTC time without a time zone, as the contract stores times."""
    return datetime.now(UTC).replace(tzinfo=None)
