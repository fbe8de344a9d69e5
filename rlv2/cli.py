"""The ``rlv2`` command: one subcommand per task of the batch pipeline.

Each subcommand is an ``add_*_command`` function that registers its parser on the
subparsers and sets ``run`` to the function carrying it out; :data:`COMMANDS` lists them.
Exit codes: 0 done, 1 the task failed (the message on stderr names the file, row, column
or parameter at fault), 2 a usage error, 3 the promotion gate refused a candidate
(``promote``, ``train``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from rlv2 import __version__, cli_pipeline, store
from rlv2.config import ConfigError
from rlv2.ingest import (
    CONTRACT_TABLES,
    REPORTED_PROBLEMS,
    SOURCE_FORMATS,
    EmptySource,
    IngestError,
    IngestRefused,
    IngestReport,
    IngestRequest,
    ingest,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_REFUSED = cli_pipeline.EXIT_REFUSED

INGEST_EPILOG = """\
The CSV header is matched to the table's columns ignoring case and separators (Open ->
open, Adj Close -> adj_close); --map names the others; unused source columns are ignored
and listed. Rows that break the data contract go to the table quarantine with their row
number (1-based, the header not counted), column and reason; the valid rows load.
Re-ingesting a source loads nothing twice. Load the tables in the order candles, signals,
trades, positions, policy.

examples:
  rlv2 ingest --table candles data/sp500_1d.csv --symbol SPX --map ts=Date --ts-format '%m/%d/%Y'
  rlv2 ingest --table candles data/eurusd_1h.csv --symbol EURUSD --map ts=column0
  rlv2 ingest --table trades history.parquet
  rlv2 ingest --table signals old.duckdb --source-table forecasts
  rlv2 ingest --table trades --source 'postgres:host=127.0.0.1 dbname=live' --source-table trades
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports usage errors by exception, not by exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print the usage and the error, then stop with :data:`EXIT_USAGE`."""
        self.print_usage(sys.stderr)
        raise _UsageError(f"{self.prog}: error: {message}")


class _UsageError(Exception):
    """A command line that does not parse."""


def _utc_time(text: str) -> datetime:
    """Parse a sane-range bound: ISO 8601, an offset converted to UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time, got {text!r}") from None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _column_mapping(text: str) -> tuple[str, str]:
    """Parse one ``--map TARGET=SOURCE``."""
    target, sep, source = text.partition("=")
    if not sep or not target.strip() or not source:
        raise argparse.ArgumentTypeError(f"expected TARGET=SOURCE, got {text!r}")
    return target.strip(), source


def add_ingest_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlv2 ingest``."""
    parser = subparsers.add_parser(
        "ingest",
        help="load a CSV, Parquet, DuckDB or PostgreSQL source into a contract table",
        description="Load one source into one table of the data contract (sql/schema.sql), "
        "in one transaction: valid rows are inserted, rows that break the contract are "
        "quarantined, and the counts are printed (read = loaded + duplicates + quarantined).",
        epilog=INGEST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source",
        nargs="?",
        metavar="SOURCE",
        help="a .csv/.tsv/.txt, .parquet or .duckdb file, or postgres:DSN (a libpq "
        "'key=value ...' string or a postgresql:// URI); same as --source",
    )
    parser.add_argument(
        "--source",
        dest="source_option",
        metavar="SOURCE",
        help="the source, as an option instead of the positional argument",
    )
    _add_db_option(parser)
    parser.add_argument(
        "--table",
        required=True,
        choices=CONTRACT_TABLES,
        help="the contract table to load",
    )
    parser.add_argument(
        "--format",
        dest="source_format",
        choices=SOURCE_FORMATS,
        help="how to read SOURCE (default: from the postgres: prefix or the file suffix)",
    )
    parser.add_argument(
        "--source-table",
        metavar="NAME",
        help="the table (or schema.table) to read from a DuckDB or PostgreSQL source "
        "(default: the --table name)",
    )
    parser.add_argument(
        "--map",
        dest="column_map",
        action="append",
        type=_column_mapping,
        default=[],
        metavar="TARGET=SOURCE",
        help="read contract column TARGET from source column SOURCE (repeatable), "
        "e.g. --map ts=Date; an unnamed CSV column is column0, column1, ... by position",
    )
    parser.add_argument(
        "--symbol",
        help="the symbol of every row, for a source without a symbol column",
    )
    parser.add_argument(
        "--ts-format",
        metavar="FORMAT",
        help="strptime format of the timestamp columns, e.g. '%%m/%%d/%%Y' "
        "(default: ISO 8601; a value with an offset is converted to UTC, one without is UTC)",
    )
    parser.add_argument(
        "--no-header",
        dest="header",
        action="store_false",
        help="the CSV has no header line: its columns are column0, column1, ...",
    )
    parser.add_argument(
        "--glob",
        action="store_true",
        help="SOURCE is a pattern (bars/*.csv): load every file it matches (default: the "
        "path is taken literally, even with *, ?, [ or { in it)",
    )
    defaults = IngestRequest(source="", table="candles")
    parser.add_argument(
        "--earliest",
        type=_utc_time,
        default=defaults.earliest,
        metavar="TIME",
        help="quarantine rows whose time is before TIME (default: %(default)s)",
    )
    parser.add_argument(
        "--latest",
        type=_utc_time,
        default=defaults.latest,
        metavar="TIME",
        help="quarantine rows whose time is TIME or later (default: %(default)s)",
    )
    parser.add_argument(
        "--max-price",
        type=float,
        default=defaults.max_price,
        metavar="PRICE",
        help="quarantine prices of PRICE or more (default: %(default)g)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse the whole source if any row breaks the contract: nothing is loaded "
        "and nothing recorded (the problems are printed; without --strict the valid rows "
        "load and the others are kept in the quarantine table)",
    )
    parser.set_defaults(run=run_ingest)


def run_ingest(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 ingest``: load the source, print the counts."""
    if (args.source is None) == (args.source_option is None):
        raise _UsageError("rlv2 ingest: error: give SOURCE either as argument or as --source")
    try:
        request = IngestRequest(
            source=args.source if args.source is not None else args.source_option,
            table=args.table,
            source_format=args.source_format,
            source_table=args.source_table,
            column_map=dict(args.column_map),
            symbol=args.symbol,
            ts_format=args.ts_format,
            header=args.header,
            earliest=args.earliest,
            latest=args.latest,
            max_price=args.max_price,
            glob=args.glob,
            strict=args.strict,
        )
    except IngestError as error:
        raise _UsageError(f"rlv2 ingest: error: {error}") from None
    db_path = store.local_db_path(args.db)
    created = not db_path.exists()
    try:
        with store.connect(db_path) as con:
            report = ingest(con, request)
    except EmptySource as empty:
        if created:
            _remove_database(db_path)
        # a source with no rows is no failure (as a header-only CSV), but say so
        print(f"rlv2 ingest: {empty}", file=sys.stderr)
        return EXIT_OK
    except IngestRefused as refused:
        if created:
            _remove_database(db_path)
        _print_problems(refused.report, recorded=False)
        print(f"rlv2 ingest: error: {refused}", file=sys.stderr)
        return EXIT_FAILURE
    except (IngestError, duckdb.Error) as error:
        if created:
            _remove_database(db_path)
        print(f"rlv2 ingest: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    _print_report(report, db_path)
    if not report.rows_read:
        print(
            f"rlv2 ingest: {report.source} is empty: no data rows, nothing loaded",
            file=sys.stderr,
        )
    if report.rows_read and report.rows_quarantined == report.rows_read:
        # committed (the quarantine keeps every reason), but a load that loaded nothing
        # is a failure to whoever runs it in a script
        print(
            f"rlv2 ingest: error: all {report.rows_read} rows of {report.source} were "
            f"quarantined, none loaded into {report.target_table} (SELECT * FROM quarantine "
            f"WHERE ingest_id = {report.ingest_id})",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_ingest_command,
    *cli_pipeline.COMMANDS,
)
"""The subcommands of ``rlv2``, registered in this order."""


def build_parser() -> argparse.ArgumentParser:
    """Build the ``rlv2`` argument parser with every subcommand of :data:`COMMANDS`."""
    parser = _Parser(
        prog="rlv2",
        description="Batch trainer for the RL v2 tabular Q-learning agents.",
    )
    parser.add_argument("--version", action="version", version=f"rlv2 {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rlv2`` command line; return the exit code."""
    # Prefect's telemetry would try the network, which a batch host often does not have.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.run(args)
    except _UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as error:  # a setting from the command line or a --config file
        print(f"rlv2 {argv_command(argv)}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        # Failures of the pipeline commands whose message names the file or parameter.
        print(f"rlv2 {argv_command(argv)}: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except SystemExit as exit_request:  # --help and --version
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_OK


def argv_command(argv: Sequence[str] | None) -> str:
    """The subcommand named on a command line, for error messages."""
    words = list(sys.argv[1:] if argv is None else argv)
    return next((w for w in words if not w.startswith("-")), "")


def _add_db_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--db``, shared by the subcommands that open the database."""
    parser.add_argument(
        "--db",
        default=os.environ.get("RLV2_DB", "rlv2.duckdb"),
        metavar="PATH",
        help="the DuckDB database file (default: $RLV2_DB, else rlv2.duckdb in the "
        "working directory; created if missing)",
    )


def _remove_database(db_path: Path) -> None:
    """Remove a database file that a failed command created, with its write-ahead log."""
    for path in (db_path, db_path.with_name(db_path.name + ".wal")):
        path.unlink(missing_ok=True)


def _print_report(report: IngestReport, db_path: Path) -> None:
    """Print the counts of an ingest and the first quarantined rows."""
    print(
        f"{report.source} -> {report.target_table} in {db_path} "
        f"(ingest {report.ingest_id}, sha256 {report.content_sha256[:12]})"
    )
    print(
        f"  read {report.rows_read} = loaded {report.rows_loaded}"
        f" + duplicates {report.rows_duplicate} + quarantined {report.rows_quarantined}"
        + (" (clean: loaded in one pass)" if report.streamed else "")
    )
    if report.ignored_columns:
        print(f"  ignored source columns: {', '.join(report.ignored_columns)}")
    if report.null_columns:
        print(f"  absent from the source, left NULL: {', '.join(report.null_columns)}")
    _print_problems(report, recorded=True)


def _print_problems(report: IngestReport, *, recorded: bool) -> None:
    """Print the first quarantined rows (``recorded``: with the query that finds them all)."""
    if report.problems:
        shown = (
            f"the first {REPORTED_PROBLEMS}" if len(report.problems) == REPORTED_PROBLEMS else "all"
        )
        where = (
            f"query: SELECT * FROM quarantine WHERE ingest_id = {report.ingest_id}"
            if recorded
            else "not recorded: --strict"
        )
        print(f"  {'quarantined' if recorded else 'would quarantine'} ({shown}; {where}):")
        for problem in report.problems:
            column = f", column {problem.column_name}" if problem.column_name else ""
            reason = problem.reason.replace("\n", "\\n")
            print(f"    row {problem.source_row}{column}: {reason}")


if __name__ == "__main__":
    raise SystemExit(main())
