"""Stage 5: ingestion of a candles CSV (``rlv2.ingest.ingest``) against DuckDB's ``read_csv``.

Both load the same generated CSV (one symbol, no symbol column: ``IngestRequest(...,
symbol=...)``) into a fresh DuckDB file; the baseline is DuckDB's own ``CREATE TABLE t AS
SELECT * FROM read_csv(...)``, which parses and stores but checks nothing. At the largest
size one more, untimed ingest runs with every SQL file it runs timed, to show which step
bounds the ingest.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.harness import (
    BenchConfig,
    Row,
    Stage,
    StageResult,
    format_bytes,
    format_count,
    format_seconds,
    progress,
    ratio_check,
    time_call,
)
from rlv2 import ingest, store

TITLE = "Ingestion of a candles CSV"
SIZES = {"small": (3_000, 30_000, 300_000), "full": (100_000, 1_000_000, 10_000_000)}
"""CSV rows; the issue's target is 10M rows."""
TARGET_ROWS = 10_000_000
TARGET_VS_READ_CSV = 0.5
DEFAULT_REPEAT = 3
SYMBOL = "BENCHUSD"
CSV_SEED = 20_240_603

INGEST_IMPL = "rlv2 ingest()"
READ_CSV_IMPL = "baseline: DuckDB read_csv CTAS"
BARE_IMPL = "(info) bare INSERT into candles, its CHECKs only"


def write_candles_csv(path: Path, n_rows: int, seed: int = CSV_SEED) -> None:
    """A CSV of ``n_rows`` minute bars of one symbol (ts, open, high, low, close, volume)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, n_rows)))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0.0, 1e-4, n_rows)) * close
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2000-01-01", periods=n_rows, freq="min"),
            "open": open_,
            "high": np.maximum(open_, close) + wick,
            "low": np.minimum(open_, close) - wick,
            "close": close,
            "volume": np.round(rng.random(n_rows) * 1e3, 3),
        }
    )
    with store.connect(":memory:") as con:
        con.register("bench_csv", frame)
        con.execute(f"COPY bench_csv TO '{path}' (HEADER, DELIMITER ',')")


def _fresh(path: Path) -> None:
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)


def _ingest(db: Path, csv: Path) -> ingest.IngestReport:
    with store.connect(db) as con:
        return ingest.ingest(
            con, ingest.IngestRequest(source=str(csv), table="candles", symbol=SYMBOL)
        )


def _read_csv(db: Path, csv: Path) -> None:
    with store.connect(db) as con:
        con.execute("CREATE TABLE t AS SELECT * FROM read_csv($path)", {"path": str(csv)})


def _bare_insert(db: Path, csv: Path) -> None:
    """read_csv straight into the contract's candles table: its CHECKs, nothing else."""
    with store.connect(db) as con:
        store.apply_schema(con)
        con.execute(
            "INSERT INTO candles SELECT $symbol, ts, open, high, low, close, volume "
            "FROM read_csv($path)",
            {"path": str(csv), "symbol": SYMBOL},
        )


@contextmanager
def _step_timer(steps: dict[str, float]) -> Iterator[None]:
    """Time every ``store.execute*`` call by the SQL file it runs (patched for the block)."""
    originals = store.execute, store.execute_formatted

    def timing(run: Any) -> Any:
        def timed(con: Any, name: str, params: Any = None, **fields: str) -> Any:
            t0 = time.perf_counter()
            try:
                return run(con, name, params, **fields)
            finally:
                steps[name] = steps.get(name, 0.0) + time.perf_counter() - t0

        return timed

    store.execute, store.execute_formatted = map(timing, originals)
    try:
        yield
    finally:
        store.execute, store.execute_formatted = originals


def _profile(db: Path, csv: Path) -> list[str]:
    """Notes: the ingest's counts, its SQL steps by time, and what runs outside them."""
    steps: dict[str, float] = {}
    _fresh(db)
    t0 = time.perf_counter()
    with _step_timer(steps):
        report = _ingest(db, csv)
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    with csv.open("rb") as handle:
        hashlib.file_digest(handle, "sha256")
    sha256 = time.perf_counter() - t0
    ranked = sorted(steps.items(), key=lambda kv: -kv[1])
    parts = ", ".join(
        f"{name} {format_seconds(s)} ({s / total:.0%})" for name, s in ranked if s >= 0.01 * total
    )
    rest = total - sum(steps.values())
    return [
        f"Profile of one more ingest of {csv.name} ({format_seconds(total)}; "
        f"{'one streaming pass' if report.streamed else 'staged'}; loaded "
        f"{report.rows_loaded:,}, quarantined {report.rows_quarantined:,}), by sql/ file: "
        f"{parts}; outside them: {format_seconds(rest)} ({rest / total:.0%}), mostly the "
        f"commit and the wait for the file's sha256, which takes {format_seconds(sha256)} "
        "of one core (timed apart; the ingest hashes on a thread while DuckDB works on "
        "both cores)."
    ]


def _measure(result: StageResult, workdir: Path, n_rows: int, repeat: int) -> dict[str, Row]:
    progress(f"stage 5: CSV of {format_count(n_rows)} rows")
    csv = workdir / f"candles_{n_rows}.csv"
    write_candles_csv(csv, n_rows)
    db = workdir / "target.duckdb"
    case = f"{format_count(n_rows)} rows CSV ({csv.stat().st_size / 2**20:,.0f} MiB)"
    rows = {}
    for impl, load in (
        (INGEST_IMPL, _ingest),
        (READ_CSV_IMPL, _read_csv),
        (BARE_IMPL, _bare_insert),
    ):
        timing = time_call(lambda load=load: load(db, csv), repeat=repeat, setup=lambda: _fresh(db))
        rows[impl] = Row(5, case, impl, n_rows, n_rows, timing)
    result.rows += rows.values()
    return rows


def _memory_note(ingest_row: Row, read_csv_row: Row) -> str:
    """What the ingest's peak memory per row means at the target size."""
    allocated = ingest_row.timing.allocated
    if allocated is None:
        return "Peak memory of the ingest: not measured on this platform."
    per_row = allocated / ingest_row.n_events
    return (
        f"Memory: one ingest of {format_count(ingest_row.n_events)} rows peaks at "
        f"{format_bytes(allocated)} above its start ({per_row:,.0f} bytes per row; read_csv: "
        f"{format_bytes(read_csv_row.timing.allocated)})"
        + (
            f"; at {format_count(TARGET_ROWS)} rows that is "
            f"~{format_bytes(int(per_row * TARGET_ROWS))}"
            if ingest_row.n_events != TARGET_ROWS
            else ""
        )
        + ". A clean file streams "
        "from the CSV into candles without a staged copy; a file with a problem is staged "
        "(VARCHAR and typed TEMP tables, held in memory unless DuckDB spills)."
    )


def run(config: BenchConfig) -> StageResult:
    """Run stage 5 at the configured sizes."""
    result = StageResult(5, TITLE)
    repeat = config.repeats(DEFAULT_REPEAT)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        rows: dict[str, Row] = {}
        for n in SIZES[config.sizes]:
            rows = _measure(result, workdir, n, repeat)
        largest = max(SIZES[config.sizes])
        case = rows[INGEST_IMPL].case
        result.checks.append(
            ratio_check(
                5,
                case,
                "rlv2 ingest / DuckDB read_csv",
                rows[INGEST_IMPL],
                rows[READ_CSV_IMPL],
                TARGET_VS_READ_CSV,
            )
        )
        result.checks.append(
            ratio_check(
                5,
                case,
                "bare INSERT into candles / DuckDB read_csv: the floor",
                rows[BARE_IMPL],
                rows[READ_CSV_IMPL],
                TARGET_VS_READ_CSV,
                binding=False,
            )
        )
        result.checks.append(
            ratio_check(
                5,
                case,
                "rlv2 ingest / bare INSERT into candles",
                rows[INGEST_IMPL],
                rows[BARE_IMPL],
                TARGET_VS_READ_CSV,
                binding=False,
            )
        )
        result.notes.append(_memory_note(rows[INGEST_IMPL], rows[READ_CSV_IMPL]))
        progress("stage 5: profiling the ingest's SQL steps")
        result.notes += _profile(workdir / "target.duckdb", workdir / f"candles_{largest}.csv")
    result.notes += [
        f"Target size {format_count(TARGET_ROWS)} rows; measured up to {format_count(largest)}.",
        "The '(info)' row loads the same CSV with read_csv straight into the contract's "
        "candles table (the schema's CHECKs and NOT NULLs; it has no key index), with no "
        "parsing rules of its own, key checks, quarantine or log: the floor of any load "
        "into that table, whose ratio to read_csv bounds the target.",
        "Each timed load writes into a fresh DuckDB file (deleted untimed before each "
        "repeat). The CSV is clean, so rlv2's ingest takes its one-pass road: read_csv "
        "parses the prices and volume as DOUBLE, symbol and ts go through the staged "
        "road's parsers, the rows go into candles (whose CHECKs refuse a broken rule), then "
        "it proves the keys "
        "distinct from the appended rows' order and the stored rows' ts range, hashes the "
        "file, logs and commits; any problem would roll that back and stage the file. "
        "read_csv sniffs the types and stores the rows, unchecked.",
        "Throughput is rows per second (ns/update = ns per row).",
    ]
    return result


STAGE = Stage(5, TITLE, run)
