"""Ingest's fast path and its detailed triage agree with the contract, row by row.

The fast path (``sql/ingest_checked_candles.sql``) states the candles rules as booleans;
rows it does not pass go through the detailed rules that write the quarantine. On
random files mixing good and bad values, a row must be loaded exactly when a plain
Python reading of the contract (``sql/schema.sql``) accepts it, and quarantined with a
reason otherwise. A file whose rows all pass loads in one streaming pass
(``sql/ingest_streamed_candles.sql``), which states the rules a third time, as the
table's CHECKs and NOT NULLs; any other file must fall back to the staged road.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlv2 import store
from rlv2.ingest import IngestRequest, ingest

GOOD = ["95", "99.5", "100", "1e2", "105", "110"]
BAD = ["0", "-3", "NaN", "inf", "abc", ""]
"""Cell values for a price or the volume: in range, or out of range, not finite, not a
number, empty. Good values are drawn five times as often, so that most rows pass every
check but one and the order rules (high >= low, open, close; low <= open, close) decide."""
NUMBERS = GOOD * 5 + BAD

row_strategy = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(["BTCUSDT"] * 9 + [""]),
        "good_ts": st.sampled_from([True] * 9 + [False]),
        "open": st.sampled_from(NUMBERS),
        "high": st.sampled_from(NUMBERS),
        "low": st.sampled_from(NUMBERS),
        "close": st.sampled_from(NUMBERS),
        "volume": st.sampled_from(NUMBERS),
    }
)


def _number(text: str) -> float | None:
    try:
        return float(text) if text != "" else None
    except ValueError:
        return math.nan  # not a number: never acceptable


def _valid(row: dict[str, object]) -> bool:
    """The candles contract in plain Python."""
    if row["symbol"] == "" or not row["good_ts"]:
        return False
    prices = [_number(str(row[c])) for c in ("open", "high", "low", "close")]
    if any(p is None or not math.isfinite(p) or p <= 0 for p in prices):
        return False
    volume = _number(str(row["volume"]))
    if volume is not None and (not math.isfinite(volume) or volume < 0):
        return False
    open_, high, low, close = prices
    assert open_ is not None and high is not None and low is not None and close is not None
    return high >= low and high >= open_ and high >= close and low <= open_ and low <= close


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(row_strategy, min_size=1, max_size=25))
def test_a_row_loads_exactly_when_the_contract_accepts_it(rows):
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "candles.csv"
        lines = ["symbol,ts,open,high,low,close,volume"]
        for i, row in enumerate(rows):
            ts = f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00" if row["good_ts"] else "not a time"
            cells = [row["symbol"], ts, row["open"], row["high"], row["low"], row["close"]]
            lines.append(",".join([*map(str, cells), str(row["volume"])]))
        source.write_text("\n".join(lines) + "\n")
        with store.connect(Path(tmp) / "p.duckdb") as con:
            report = ingest(con, IngestRequest(source=str(source), table="candles"))
            loaded = {
                int(r[0].split(":")[0]) * 60 + int(r[0].split(":")[1])
                for r in con.execute("SELECT strftime(ts, '%H:%M') FROM candles").fetchall()
            }
            quarantined = con.execute(
                "SELECT source_row, reason FROM quarantine WHERE ingest_id = ?",
                [report.ingest_id],
            ).fetchall()
    expected = {i for i, row in enumerate(rows) if _valid(row)}
    assert loaded == expected
    assert report.rows_loaded == len(expected)
    assert report.rows_quarantined == len(rows) - len(expected)
    assert report.rows_read == len(rows)
    assert report.streamed == (len(expected) == len(rows))  # one pass exactly when all clean
    assert {r for r, _ in quarantined} == {i + 1 for i in range(len(rows)) if i not in expected}
    assert all(reason for _, reason in quarantined)
