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
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from rlv2 import __version__, cli_pipeline, console, store
from rlv2.cli_pipeline import add_common_options, emit_json
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
        "quarantined, and the counts are printed (read = loaded + duplicates + quarantined). "
        "It writes DuckDB only, so it takes no --tracking-uri.",
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
    add_common_options(
        parser,
        db="the DuckDB database file (default: $RLV2_DB, else rlv2.duckdb in the working "
        "directory; created if missing)",
        tracking=False,
    )
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
    request = _ingest_request(args)
    db_path = store.local_db_path(args.db)
    created = not db_path.exists()
    try:
        with store.connect(db_path) as con:
            report = ingest(con, request)
    except EmptySource as empty:
        if created:
            _remove_database(db_path)
        # a source with no rows is no failure (as a header-only CSV), but say so
        if args.json:
            emit_json({"db": db_path.resolve(), "empty": True, "message": str(empty)})
        print(f"rlv2 ingest: {empty}", file=console.terminal())
        return EXIT_OK
    except IngestRefused as refused:
        if created:
            _remove_database(db_path)
        if args.json:
            emit_json({"db": db_path.resolve(), "refused": True, **vars(refused.report)})
        else:
            _print_problems(refused.report, recorded=False)
        print(f"rlv2 ingest: error: {refused}", file=console.terminal())
        return EXIT_FAILURE
    except (IngestError, duckdb.Error) as error:
        if created:
            _remove_database(db_path)
        print(f"rlv2 ingest: error: {error}", file=console.terminal())
        return EXIT_FAILURE
    return _ingest_outcome(args, report, db_path)


def _ingest_request(args: argparse.Namespace) -> IngestRequest:
    """The ingest the options ask for (a usage error naming what is wrong)."""
    if (args.source is None) == (args.source_option is None):
        raise _UsageError("rlv2 ingest: error: give SOURCE either as argument or as --source")
    try:
        return IngestRequest(
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


def _ingest_outcome(args: argparse.Namespace, report: IngestReport, db_path: Path) -> int:
    """Print a committed ingest's counts; exit 1 if every row read was quarantined."""
    if args.json:
        emit_json({"db": db_path.resolve(), **vars(report)})
    else:
        _print_report(report, db_path)
    if not report.rows_read:
        print(
            f"rlv2 ingest: {report.source} is empty: no data rows, nothing loaded",
            file=console.terminal(),
        )
    if report.rows_read and report.rows_quarantined == report.rows_read:
        # committed (the quarantine keeps every reason), but a load that loaded nothing
        # is a failure to whoever runs it in a script
        print(
            f"rlv2 ingest: error: all {report.rows_read} rows of {report.source} were "
            f"quarantined, none loaded into {report.target_table} (SELECT * FROM quarantine "
            f"WHERE ingest_id = {report.ingest_id})",
            file=console.terminal(),
        )
        return EXIT_FAILURE
    return EXIT_OK


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_ingest_command,
    *cli_pipeline.COMMANDS,
)
"""The subcommands of ``rlv2``, registered in this order."""


EPILOG = """\
environment:
  RLV2_DB              the DuckDB file of --db (default: rlv2.duckdb in the working directory)
  MLFLOW_TRACKING_URI  the MLflow store of --tracking-uri (default:
                       sqlite:///<working directory>/mlflow.db)
  RLV2_LOG_FILE        where Prefect's and MLflow's logs go without -v (default: rlv2.log in
                       the working directory; its path is printed when a command wrote to it)
  PREFECT_API_URL      a Prefect server to run the flows on (default: a temporary one)

Every subcommand takes -v, before or after its name (the libraries' logs and a failure's
traceback on stderr), and --json (its result as one JSON document on stdout). Exit codes:
0 done, 1 failed, 2 usage error, 3 the promotion gate refused a candidate (train, promote).
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the ``rlv2`` argument parser with every subcommand of :data:`COMMANDS`."""
    parser = _Parser(
        prog="rlv2",
        description="Batch trainer for the RL v2 tabular Q-learning agents.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rlv2 {__version__}")
    parser.add_argument(  # the same switch before the subcommand (`rlv2 -v demo`)
        "-v",
        "--verbose",
        dest="verbose_first",
        action="store_true",
        help="as every subcommand's -v",
    )
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
    except _UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exit_request:  # --help and --version
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_OK
    quiet = console.Quiet(args.command, verbose=args.verbose or args.verbose_first)
    with quiet, _tracking_uri(getattr(args, "tracking_uri", None)):
        code = _run(args, quiet)
    if code != EXIT_FAILURE:
        quiet.note_log()
    return code


def _run(args: argparse.Namespace, quiet: console.Quiet) -> int:
    """Run the parsed command; a failure is one line on the terminal (``-v``: with its
    traceback)."""
    command = f"rlv2 {args.command}"
    terminal = quiet.terminal
    try:
        return args.run(args)
    except _UsageError as error:
        print(error, file=terminal)
        return EXIT_USAGE
    except BrokenPipeError:  # `rlv2 status --json | head`: the reader had enough
        _silence_stdout()
        return EXIT_FAILURE
    except ConfigError as error:  # a setting from the command line or a --config file
        _fail(quiet, f"{command}: error: {error}")
        return EXIT_USAGE
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        # Failures of the pipeline commands whose message names the file or parameter.
        _fail(quiet, f"{command}: error: {_first_line(error)}")
        return EXIT_FAILURE
    except Exception as error:  # a failure nobody worded: its traceback goes to the log
        traceback.print_exc(file=terminal if quiet.verbose else quiet.log)
        where = "" if quiet.verbose else f" (traceback in {quiet.log.path}; -v shows it)"
        _fail(quiet, f"{command}: error: {type(error).__name__}: {_first_line(error)}{where}")
        return EXIT_FAILURE


def _fail(quiet: console.Quiet, line: str) -> None:
    """Print a failure's one line (after its traceback with ``-v``)."""
    if quiet.verbose and sys.exc_info()[0] is not None:
        traceback.print_exc(file=quiet.terminal)
    console.clear_progress()
    print(line, file=quiet.terminal)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (a test's capture)
        pass


def _first_line(error: BaseException) -> str:
    """The first line of an error's message (MLflow's carry a server's whole answer)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def _tracking_uri(uri: str | None) -> Iterator[None]:
    """``MLFLOW_TRACKING_URI`` set to ``--tracking-uri`` while the command runs."""
    if uri is None:
        yield
        return
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def _remove_database(db_path: Path) -> None:
    """Remove a database file that a failed command created, with its write-ahead log."""
    for path in (db_path, db_path.with_name(db_path.name + ".wal")):
        path.unlink(missing_ok=True)


def _print_report(report: IngestReport, db_path: Path) -> None:
    """Print the counts of an ingest and the first quarantined rows."""
    console.clear_progress()
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
