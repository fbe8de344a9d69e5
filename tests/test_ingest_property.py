"""The copies of each contract table's rules agree with each other, row by row.

Each rule on a row is stated three times (``sql/contract/README.md``): as the constraints
of ``schema.sql``; in the table's ``ingest_checked_*.sql``, the one pass that gives a row
breaking no rule its verdict; and in ``ingest_unparsed.sql`` with the table's
``ingest_rules_*.sql``, which name every problem for the quarantine. On rows drawn from
values good and bad (out of range, not finite, unreadable, blank; a parent row missing,
taken, or later than the row), each copy runs on its own, and each must agree on every
row with a plain Python reading of the contract (the ``*_faults`` functions below):

* ``ingest_checked`` passes a row exactly when it has no fault;
* ``ingest_unparsed`` and ``ingest_rules`` name exactly its faults, by column and kind;
* the table takes the typed row exactly when it has no fault the schema states (the
  schema reads an unreadable value of a nullable column as NULL, and states the symbol
  and time rules between a row and its parent only in comments: ``LEFT_TO_INGESTION``);
* both paths type every value alike (the rows to load are inserted from the first).

An ingest of the same rows as a CSV then loads exactly the rows without a fault and
quarantines the others, naming their faulty columns. A candles file whose rows all pass
loads in one streaming pass (``ingest_streamed_candles.sql``, whose rules are the
table's CHECKs and NOT NULLs); any other file takes the staged road.

Each table's rows are drawn from pools of values meant to pass and values meant to
break a rule. One file per table changes every value of every pool alone, so that each
rule is seen to decide by itself in every copy; hypothesis then draws files that mix
them, for the rules' interplay.
"""

from __future__ import annotations

import math
import re
import tempfile
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlv2 import store
from rlv2.domain import LEVERAGES, SIZE_MULTIPLIERS, Model, Regime, WeightAction
from rlv2.ingest import (
    CONTRACT_TABLES,
    IngestRequest,
    ingest,
    name_out_of_range,
    unjudge_out_of_range,
)

Row = dict[str, str]
"""One source row: contract column -> its text in the source."""
Fault = tuple[str, str]
"""(column, kind): kind is 'missing', 'unreadable' (either: ingest_unparsed), 'rule', or
'bound' (a value outside the ingest's sane ranges, ``IngestRequest``: not the contract's)."""
SANE = IngestRequest(source="", table="candles")
"""The default sane ranges: times in [earliest, latest), prices below max_price."""

MAX_ROWS = 20
"""Rows of a generated file."""
PARENTS = 150
"""Parent rows of each kind: one for each row of the longest file, generated or not."""
EXAMPLES = settings(
    max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

# --- The parent rows stored in every database -----------------------------------------

SYMBOLS = ("BTCUSDT", "ETHUSDT")
STORED_AT = datetime(2023, 1, 1)
NEW_AT = datetime(2024, 1, 1)


@dataclass(frozen=True)
class StoredSignal:
    symbol: str
    ts: datetime
    model: str


STORED_SIGNALS = {
    first + k: StoredSignal(SYMBOLS[k % 2], STORED_AT + timedelta(hours=k), model)
    for first, model in ((10_000, "XGB"), (20_000, "LGBM"))
    for k in range(PARENTS)
}
"""signal_id -> stored signal: 10_000 + k followed by no trade, 20_000 + k by 70_000 + k."""
FOLLOWERS = {20_000 + k: 70_000 + k for k in range(PARENTS)}
"""signal_id -> the stored trade that followed it."""
STORED_TRADES = {
    trade_id: STORED_SIGNALS[signal_id].ts + timedelta(minutes=30)
    for signal_id, trade_id in FOLLOWERS.items()
}
"""trade_id -> its entry time; none of them is closed."""
STORED_POINTS = {(s.symbol, s.ts, s.model): signal_id for signal_id, s in STORED_SIGNALS.items()}
"""(symbol, ts, model) -> the stored signal at that decision point."""
# Ids are text (schema.sql): the stored rows' ids are these numbers' text, and a source's
# id names a stored row only when it is that text exactly ('+10000' is another id).
SIGNAL_OF_ID = {str(k): v for k, v in STORED_SIGNALS.items()}
FOLLOWER_OF_ID = {str(k): str(v) for k, v in FOLLOWERS.items()}
OPENED_OF_ID = {str(k): v for k, v in STORED_TRADES.items()}


@contextmanager
def _contract_db() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory database with the contract and the parent rows above."""
    with store.connect(":memory:") as con:
        store.apply_schema(con)
        signals = {
            "signal_id": list(SIGNAL_OF_ID),
            "ts": [s.ts for s in STORED_SIGNALS.values()],
            "symbol": [s.symbol for s in STORED_SIGNALS.values()],
            "model": [s.model for s in STORED_SIGNALS.values()],
        }
        con.execute(
            "INSERT INTO signals SELECT unnest($signal_id), unnest($ts), unnest($symbol), "
            "unnest($model), 1, 0.5, 'TREND'",
            signals,
        )
        trades = {
            "trade_id": list(FOLLOWER_OF_ID.values()),
            "signal_id": list(FOLLOWER_OF_ID),
            "ts": [STORED_TRADES[t] for t in FOLLOWERS.values()],
            "symbol": [STORED_SIGNALS[s].symbol for s in FOLLOWERS],
        }
        con.execute(
            "INSERT INTO trades SELECT unnest($trade_id), unnest($signal_id), unnest($ts), "
            "unnest($symbol), 1, 100, 1.0, 1, 0.1, 'TREND', 'WEIGHT_UP', NULL, NULL, NULL",
            trades,
        )
        yield con


# --- The contract in plain Python ------------------------------------------------------


def _identifier(text: str) -> str:
    """An id: any non-empty text, without the blanks around it (``_read`` strips them)."""
    return text


def _integer(text: str) -> int:
    """An integral spelling ('7', '+7', '7.0') of a BIGINT; '2.5' is not an integer."""
    if not re.fullmatch(r"[+-]?[0-9]+(\.0*)?", text):
        raise ValueError(text)
    value = int(text.split(".")[0])
    if not -(2**63) <= value < 2**63:
        raise ValueError(text)
    return value


def _timestamp(text: str) -> datetime:
    """ISO 8601, an offset converted to UTC, a value without one read as UTC."""
    value = datetime.fromisoformat(text)
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _label(enum: Any) -> Callable[[str], str]:
    """A value of ``enum`` by its name, in any case."""

    def parse(text: str) -> str:
        if text.upper() not in enum.__members__:
            raise ValueError(text)
        return text.upper()

    return parse


_FLAGS = {"true": True, "t": True, "1": True, "yes": True, "y": True}
_FLAGS |= {"false": False, "f": False, "0": False, "no": False, "n": False}


def _flag(text: str) -> bool:
    """A boolean, spelt as DuckDB reads one ('on' and 'off' it does not)."""
    if text.lower() not in _FLAGS:
        raise ValueError(text)
    return _FLAGS[text.lower()]


def _read(row: Row, faults: set[Fault], column: str, parse: Any, nullable: bool = False) -> Any:
    """The value of ``column``; None and a fault when blank (unless nullable) or unreadable."""
    text = row[column].strip()
    if not text:
        if not nullable:
            faults.add((column, "missing"))
        return None
    try:
        return parse(text)
    except ValueError:
        faults.add((column, "unreadable"))
        return None


_SYMBOL_FORMS = ("has blanks around it", "contains a control character")
"""How the reason of a symbol's own rule ends: its fault kind is 'form', which the schema
states, unlike the rule between a trade's symbol and its signal's."""


def _symbol(row: Row, faults: set[Fault]) -> Any:
    """The symbol as written (not stripped); a 'form' fault with blanks around it or a
    control character, a missing one when blank throughout."""
    text = row["symbol"]
    if not text.strip():
        faults.add(("symbol", "missing"))
        return None
    if text != text.strip() or any(unicodedata.category(c) == "Cc" for c in text):
        faults.add(("symbol", "form"))
    return text


def _rule(faults: set[Fault], column: str, value: Any, holds: Callable[[Any], bool]) -> None:
    """A fault on ``column`` if its value was read and breaks the rule."""
    if value is not None and not holds(value):
        faults.add((column, "rule"))


def _bound(faults: set[Fault], column: str, value: Any) -> None:
    """A 'bound' fault on a time or price column whose finite value leaves its sane range."""
    if isinstance(value, datetime):
        if not SANE.earliest <= value < SANE.latest:
            faults.add((column, "bound"))
    elif value is not None and math.isfinite(value) and value >= SANE.max_price:
        faults.add((column, "bound"))


def _is_price(value: float) -> bool:
    """A price: finite and > 0."""
    return math.isfinite(value) and value > 0


def _is_sign(value: int) -> bool:
    """A direction or side: -1 or +1."""
    return value in (-1, 1)


def candles_faults(row: Row) -> set[Fault]:
    """Prices finite and > 0, volume finite and >= 0 or blank, high and low bound the bar."""
    faults: set[Fault] = set()
    _symbol(row, faults)
    _bound(faults, "ts", _read(row, faults, "ts", _timestamp))
    prices = [_read(row, faults, column, float) for column in ("open", "high", "low", "close")]
    volume = _read(row, faults, "volume", float, nullable=True)
    for column, price in zip(("open", "high", "low", "close"), prices, strict=True):
        _rule(faults, column, price, _is_price)
        _bound(faults, column, price)
    _rule(faults, "volume", volume, lambda v: math.isfinite(v) and v >= 0)
    if all(price is not None and math.isfinite(price) for price in prices):
        open_, high, low, close = prices
        if high < low:
            faults.add(("high", "rule"))
        else:
            if high < max(open_, close):
                faults.add(("high", "rule"))
            if low > min(open_, close):
                faults.add(("low", "rule"))
    return faults


def signals_faults(row: Row) -> set[Fault]:
    """direction +-1, confidence in [0, 1], one signal per model at a decision point."""
    faults: set[Fault] = set()
    signal_id = _read(row, faults, "signal_id", _identifier)
    ts = _read(row, faults, "ts", _timestamp)
    _bound(faults, "ts", ts)
    symbol = _symbol(row, faults)
    model = _read(row, faults, "model", _label(Model))
    direction = _read(row, faults, "direction", _integer)
    confidence = _read(row, faults, "confidence", float)
    _read(row, faults, "predicted_regime", _label(Regime))
    _rule(faults, "direction", direction, _is_sign)
    _rule(faults, "confidence", confidence, lambda v: math.isfinite(v) and 0 <= v <= 1)
    taken = STORED_POINTS.get((symbol, ts, model))
    if taken is not None and signal_id is not None and str(taken) != signal_id:
        faults.add(("model", "rule"))  # one forecast per model at a decision point
    return faults


def trades_faults(row: Row) -> set[Fault]:
    """The sizing action's values, and a stored signal of the same symbol, not later, unfollowed."""
    faults: set[Fault] = set()
    trade_id = _read(row, faults, "trade_id", _identifier)
    signal_id = _read(row, faults, "signal_id", _identifier)
    ts = _read(row, faults, "ts", _timestamp)
    _bound(faults, "ts", ts)
    symbol = _symbol(row, faults)
    _rule(faults, "side", _read(row, faults, "side", _integer), _is_sign)
    entry_price = _read(row, faults, "entry_price", float)
    _rule(faults, "entry_price", entry_price, _is_price)
    _bound(faults, "entry_price", entry_price)
    size = _read(row, faults, "size_multiplier", float)
    _rule(faults, "size_multiplier", size, lambda v: v in SIZE_MULTIPLIERS)
    _rule(faults, "leverage", _read(row, faults, "leverage", _integer), lambda v: v in LEVERAGES)
    exposure = _read(row, faults, "portfolio_exposure", float)
    _rule(faults, "portfolio_exposure", exposure, lambda v: math.isfinite(v) and v >= 0)
    _read(row, faults, "strategy", _label(Regime))
    _read(row, faults, "weight_action", _label(WeightAction))
    for column in ("action_prob", "meta_action_prob", "sizing_action_prob"):
        prob = _read(row, faults, column, float, nullable=True)
        _rule(faults, column, prob, lambda v: math.isfinite(v) and 0 < v <= 1)
    if signal_id is None:
        return faults
    signal = SIGNAL_OF_ID.get(signal_id)
    if signal is None:
        faults.add(("signal_id", "rule"))  # ingest signals first
        return faults
    _rule(faults, "symbol", symbol, lambda v: v == signal.symbol)
    _rule(faults, "ts", ts, lambda v: v >= signal.ts)
    follower = FOLLOWER_OF_ID.get(signal_id)
    if follower is not None and trade_id is not None and follower != trade_id:
        faults.add(("signal_id", "rule"))  # one trade per signal
    return faults


def positions_faults(row: Row) -> set[Fault]:
    """Prices and percents of margin in range, and a stored trade opened before the close."""
    faults: set[Fault] = set()
    trade_id = _read(row, faults, "trade_id", _identifier)
    closed_ts = _read(row, faults, "closed_ts", _timestamp)
    _bound(faults, "closed_ts", closed_ts)
    exit_price = _read(row, faults, "exit_price", float)
    _rule(faults, "exit_price", exit_price, _is_price)
    _bound(faults, "exit_price", exit_price)
    pnl_pct = _read(row, faults, "pnl_pct", float)
    _rule(faults, "pnl_pct", pnl_pct, lambda v: math.isfinite(v) and v >= -100)
    drawdown = _read(row, faults, "max_drawdown_pct", float)
    _rule(faults, "max_drawdown_pct", drawdown, lambda v: math.isfinite(v) and 0 <= v <= 100)
    if trade_id is None:
        return faults
    opened = OPENED_OF_ID.get(trade_id)
    if opened is None:
        faults.add(("trade_id", "rule"))  # ingest trades first
    else:
        _rule(faults, "closed_ts", closed_ts, lambda v: v >= opened)
    return faults


def policy_faults(row: Row) -> set[Fault]:
    """A time and a flag: no rule beyond the types."""
    faults: set[Fault] = set()
    _bound(faults, "ts", _read(row, faults, "ts", _timestamp))
    _read(row, faults, "enable_rl", _flag)
    return faults


def account_faults(row: Row) -> set[Fault]:
    """A time and an equity finite and > 0."""
    faults: set[Fault] = set()
    _bound(faults, "ts", _read(row, faults, "ts", _timestamp))
    _rule(faults, "equity", _read(row, faults, "equity", float), _is_price)
    return faults


LEFT_TO_INGESTION: Mapping[str, set[Fault]] = {
    "candles": {("volume", "unreadable")},
    "signals": set(),
    "trades": {
        ("action_prob", "unreadable"),
        ("meta_action_prob", "unreadable"),
        ("sizing_action_prob", "unreadable"),
        ("symbol", "rule"),
        ("ts", "rule"),
    },
    "positions": {("closed_ts", "rule")},
    "policy": set(),
    "account": set(),
}
"""The faults the schema cannot see: it reads an unreadable value of a nullable column as
NULL, and states the rules between a row's symbol or time and its parent's in comments.
Nor does it know the ingest's sane ranges (the 'bound' faults, added below)."""
for _table, _bounded in {
    "candles": ("ts", "open", "high", "low", "close"),
    "signals": ("ts",),
    "trades": ("ts", "entry_price"),
    "positions": ("closed_ts", "exit_price"),
    "policy": ("ts",),
    "account": ("ts",),
}.items():
    LEFT_TO_INGESTION[_table].update((column, "bound") for column in _bounded)

# --- Generated rows ------------------------------------------------------------------

Pools = Mapping[str, tuple[Sequence[str], Sequence[str]]]
"""Per choice of a row (a column's text, or how the row relates to its parent): values
meant to pass, and values meant to break a rule. The oracle, not this split, judges."""


def _rows(pools: Pools, render: Callable[[int, dict[str, str]], Row]) -> st.SearchStrategy:
    """Lists of rows, in each of which up to ``most`` choices take a bad value.

    ``most`` is drawn per list: 0 gives a clean file (a candles CSV then streams), 1 rows
    that break at most one rule beside clean ones, 3 rows that break several. Row i is
    rendered from its choices with keys of its own (no key repeats in a file).
    """

    @st.composite
    def rows(draw: st.DrawFn) -> list[Row]:
        most = draw(st.sampled_from([0, 1, 3]))
        drawn = []
        for i in range(draw(st.integers(1, MAX_ROWS))):
            n_bad = draw(st.integers(0, min(most, len(pools))))
            bad = draw(st.sets(st.sampled_from(list(pools)), min_size=n_bad, max_size=n_bad))
            choices = {name: draw(st.sampled_from(pools[name][name in bad])) for name in pools}
            drawn.append(render(i, choices))
        return drawn

    return rows()


STAMP = (
    ["plain"] * 3 + ["iso", "utc", "plus2", "minus5", "padded"],
    ["nonsense", "month13", "blank", "year2190", "year1969"],
)


def _stamp(instant: datetime, form: str) -> str:
    """``instant`` (UTC) as a source may write it, or a text that is no time."""
    forms = {
        "plain": instant.isoformat(" "),
        "iso": instant.isoformat(),
        "utc": instant.isoformat() + "Z",
        "plus2": (instant + timedelta(hours=2)).isoformat(" ") + "+02:00",
        "minus5": (instant - timedelta(hours=5)).isoformat(" ") + "-05",
        "padded": f"  {instant.isoformat(' ')} ",
        "nonsense": "not a time",
        "month13": instant.strftime("%Y-13-%d %H:%M:%S"),
        "blank": "",
        "year2190": instant.replace(year=2190).isoformat(" "),
        "year1969": instant.replace(year=1969).isoformat(" "),
    }
    return forms[form]


ID = (
    ["{}"] * 3 + [" {} ", "x{}", "{}.5", "+{}", "{}.0", "0b7c5e2a-9d1f-4c3e-8a6b-{:012d}"],
    ["", "  "],
)
"""How a source may write an identifier (a format of the number), or not. Any text is an
id, so the forms other than the number's own text name no stored row: a trade whose
signal_id is '+10000' follows no stored signal."""
SYMBOL = (
    ["BTCUSDT", "ETHUSDT"],
    ["", "  ", " BTCUSDT ", "ETHUSDT\t", "\x07BTCUSDT", "BTC\x1fUSDT"],
)
SIGN = (["1", "-1", "+1", "-1.0", " 1 "], ["0", "2", "-2", "300", "0.5", "up", "", "9" * 20])
PRICE = (["42000", "1e-3", " 7.5 ", "+1E4"], ["0", "-1", "NaN", "inf", "-inf", "abc", "", "1e308"])
MODEL = (["XGB", "lgbm", " NHITS ", "PatchTST"], ["GPT", ""])
REGIME = (["TREND", "range", " Breakout ", "MEAN_REVERSION"], ["SIDEWAYS", ""])
PROPENSITY = (["0.9", "1", "1e-9", "", " 0.25 "], ["0", "-0.5", "1.5", "NaN", "inf", "p"])
"""A behaviour policy's probability of the action taken (joint or per agent), or blank."""
WHEN = (["after", "same"], ["before"])
"""A row's time relative to its parent's: after it, at the same instant; or before it."""

CANDLES: Pools = {
    "symbol": SYMBOL,
    "ts": STAMP,
    # Any good open, close, high and low make a bar; a bad one is out of the bar's order
    # (high below open, close or low; low above them), not positive, not finite or not
    # a number.
    "open": (["100", "1e2", " 100 ", "+100", "99.5"], ["115", "85", "0", "NaN", "abc", ""]),
    "high": (["110", "1.1e2", " 110", "100"], ["99", "85", "-3", "inf", "abc", "", "1e12"]),
    "low": (["90", "9e1", " 90 ", "99.5"], ["101", "120", "0", "-inf", "NaN", ""]),
    "close": (["100", "99.5", "1e2"], ["115", "85", "-3", "inf", "abc", ""]),
    "volume": (["1000", "0", "-0", "", " 5 ", "1e3"], ["-1", "NaN", "inf", "abc"]),
}


def _candles_row(i: int, c: dict[str, str]) -> Row:
    ts = _stamp(NEW_AT + timedelta(minutes=i), c["ts"])
    prices = {column: c[column] for column in ("open", "high", "low", "close", "volume")}
    return {"symbol": c["symbol"], "ts": ts} | prices


SIGNALS: Pools = {
    "signal_id": ID,
    "point": (["new"], ["taken"]),
    "symbol": SYMBOL,
    "ts": STAMP,
    "model": MODEL,
    "direction": SIGN,
    "confidence": (
        ["0.5", "0", "1", "1e-1", "-0", " 0.7 "],
        ["-0.1", "1.01", "NaN", "inf", "?", ""],
    ),
    "predicted_regime": REGIME,
}


def _signals_row(i: int, c: dict[str, str]) -> Row:
    if c["point"] == "taken":  # the decision point of stored signal 10_000 + i, another id
        stored = STORED_SIGNALS[10_000 + i]
        symbol, ts, model = stored.symbol, stored.ts.isoformat(" "), stored.model
    else:
        symbol, ts, model = c["symbol"], _stamp(NEW_AT + timedelta(minutes=i), c["ts"]), c["model"]
    return {
        "signal_id": c["signal_id"].format(1_000 + i),
        "ts": ts,
        "symbol": symbol,
        "model": model,
        "direction": c["direction"],
        "confidence": c["confidence"],
        "predicted_regime": c["predicted_regime"],
    }


TRADES: Pools = {
    "trade_id": ID,
    "signal": (["open"], ["followed", "missing"]),
    "signal_id": ID,
    "symbol": (["same"], ["padded", "control", "other", "blank"]),
    "when": WHEN,
    "ts": STAMP,
    "side": SIGN,
    "entry_price": PRICE,
    "size_multiplier": (
        [*map(str, SIZE_MULTIPLIERS), "1", "1.60", " 0.2 "],
        ["0.5", "2", "0", "NaN", "x", ""],
    ),
    "leverage": (["1", "3", "7", "+7", "7.0"], ["0", "8", "-1", "300", "2.5", ""]),
    "portfolio_exposure": (["0.3", "0", "-0", "1e3"], ["-0.1", "NaN", "inf", "abc", ""]),
    "strategy": REGIME,
    "weight_action": (["WEIGHT_UP", "weight_down", " WEIGHT_HOLD "], ["WEIGHT_MAX", ""]),
    "action_prob": PROPENSITY,
    "meta_action_prob": PROPENSITY,
    "sizing_action_prob": PROPENSITY,
}


_TRADE_LINKS = ("trade_id", "signal", "signal_id", "symbol", "when", "ts")
"""The choices of a trade that _trades_row renders; the others are its columns' texts."""


def _trades_row(i: int, c: dict[str, str]) -> Row:
    signal_id = {"open": 10_000 + i, "followed": 20_000 + i, "missing": 900_000 + i}[c["signal"]]
    signal = STORED_SIGNALS.get(signal_id, STORED_SIGNALS[10_000 + i])
    symbol = {
        "same": signal.symbol,
        "padded": f" {signal.symbol} ",
        "control": f"{signal.symbol}\x07",
        "other": SYMBOLS[(i + 1) % 2],
        "blank": "",
    }[c["symbol"]]
    shift = {"after": timedelta(minutes=1), "same": timedelta(0), "before": -timedelta(minutes=1)}
    return {
        "trade_id": c["trade_id"].format(50_000 + i),
        "signal_id": c["signal_id"].format(signal_id),
        "ts": _stamp(signal.ts + shift[c["when"]], c["ts"]),
        "symbol": symbol,
    } | {column: c[column] for column in list(TRADES) if column not in _TRADE_LINKS}


POSITIONS: Pools = {
    "trade_id": ID,
    "trade": (["open"], ["missing"]),
    "when": WHEN,
    "closed_ts": STAMP,
    "exit_price": PRICE,
    "pnl_pct": (["2.5", "-100", "-99.9", "0", "-0", "1e6"], ["-100.01", "NaN", "-inf", "x", ""]),
    "max_drawdown_pct": (["1.5", "0", "100", "-0"], ["100.5", "-1", "NaN", "inf", "x", ""]),
}


def _positions_row(i: int, c: dict[str, str]) -> Row:
    trade_id = {"open": 70_000 + i, "missing": 990_000 + i}[c["trade"]]
    opened = STORED_TRADES.get(trade_id, STORED_TRADES[70_000 + i])
    shift = {"after": timedelta(hours=1), "same": timedelta(0), "before": -timedelta(minutes=1)}
    return {
        "trade_id": c["trade_id"].format(trade_id),
        "closed_ts": _stamp(opened + shift[c["when"]], c["closed_ts"]),
    } | {column: c[column] for column in ("exit_price", "pnl_pct", "max_drawdown_pct")}


POLICY: Pools = {
    "ts": STAMP,
    "enable_rl": (["true", "false", "T", "f", "1", "0", " yes ", "N"], ["on", "2", "maybe", ""]),
}


def _policy_row(i: int, c: dict[str, str]) -> Row:
    return {"ts": _stamp(NEW_AT + timedelta(minutes=i), c["ts"]), "enable_rl": c["enable_rl"]}


ACCOUNT: Pools = {
    "ts": STAMP,
    "equity": (["1000", "25000.5", " 1e4 ", "1e-3"], ["0", "-0", "-5", "NaN", "inf", "x", ""]),
}


def _account_row(i: int, c: dict[str, str]) -> Row:
    return {"ts": _stamp(NEW_AT + timedelta(minutes=i), c["ts"]), "equity": c["equity"]}


@dataclass(frozen=True)
class Case:
    """A contract table: how its rows are drawn, their faults, and the column that keys it."""

    pools: Pools
    render: Callable[[int, dict[str, str]], Row]
    faults: Callable[[Row], set[Fault]]
    key: str
    parse_key: Callable[[str], Any]
    stored_keys: frozenset[Any] = frozenset()

    def rows(self) -> st.SearchStrategy[list[Row]]:
        """Generated files (see :func:`_rows`)."""
        return _rows(self.pools, self.render)

    def one_change_each(self) -> list[Row]:
        """A clean row, then one row for every other value of every choice, alone."""
        clean = {name: good[0] for name, (good, _) in self.pools.items()}
        changes = [
            clean | {name: value}
            for name, (good, bad) in self.pools.items()
            for value in [*good[1:], *bad]
        ]
        return [self.render(i, choices) for i, choices in enumerate([clean, *changes])]


CASES: dict[str, Case] = {
    "candles": Case(CANDLES, _candles_row, candles_faults, "ts", _timestamp),
    "signals": Case(
        SIGNALS, _signals_row, signals_faults, "signal_id", _identifier, frozenset(SIGNAL_OF_ID)
    ),
    "trades": Case(
        TRADES, _trades_row, trades_faults, "trade_id", _identifier, frozenset(OPENED_OF_ID)
    ),
    "positions": Case(POSITIONS, _positions_row, positions_faults, "trade_id", _identifier),
    "policy": Case(POLICY, _policy_row, policy_faults, "ts", _timestamp),
    "account": Case(ACCOUNT, _account_row, account_faults, "ts", _timestamp),
}


def test_every_contract_table_is_covered():
    assert set(CASES) == set(CONTRACT_TABLES)


# --- Each copy on its own ------------------------------------------------------------


@dataclass
class Judgements:
    """What each copy of the rules says of each source row (1-based)."""

    checked: dict[int, bool] = field(default_factory=dict)
    """ingest_checked gave the row a verdict: it breaks no rule."""
    named: dict[int, set[Fault]] = field(default_factory=lambda: defaultdict(set))
    """The problems ingest_unparsed and ingest_rules name."""
    schema: dict[int, bool] = field(default_factory=dict)
    """The contract table takes the row as ingest_typed types it."""
    checked_values: list[str] = field(default_factory=list)
    typed_values: list[str] = field(default_factory=list)


def _judge(con: duckdb.DuckDBPyConnection, table: str, rows: list[Row]) -> Judgements:
    """Run each copy of ``table``'s rules on every row, as ``ingest_mapped`` would give it."""
    columns = [
        name for name, _ in store.execute(con, "contract_columns", {"table": table}).fetchall()
    ]
    assert list(rows[0]) == columns
    quoted = ", ".join(f'"{column}"' for column in columns)
    judged = Judgements()
    store.execute(con, "ingest_setup")
    con.execute(
        "CREATE TEMP TABLE generated (source_row BIGINT, "
        + ", ".join(f'"{column}" VARCHAR' for column in columns)
        + ")"
    )
    con.executemany(
        f"INSERT INTO generated VALUES (?, {', '.join('?' * len(columns))})",
        [(i + 1, *row.values()) for i, row in enumerate(rows)],
    )
    con.execute("CREATE TEMP VIEW ingest_mapped AS SELECT * FROM generated")
    store.execute(con, f"ingest_checked_{table}", {"ts_format": None})
    sane = replace(SANE, table=table)
    unjudge_out_of_range(con, sane)
    for source_row, verdict in con.execute(
        "SELECT source_row, verdict FROM ingest_checked"
    ).fetchall():
        judged.checked[source_row] = verdict is not None
    judged.checked_values = _typed(con, "ingest_checked", quoted)
    # The rules path judges every row here, not only those ingest_checked left.
    con.execute("UPDATE ingest_checked SET verdict = NULL")
    store.execute(con, "ingest_suspects")
    store.execute(con, f"ingest_typed_{table}", {"ts_format": None})
    store.execute(con, "ingest_unparsed", {"table": table, "ts_format": None})
    store.execute(con, f"ingest_rules_{table}")
    name_out_of_range(con, sane)
    for source_row, column, reason in con.execute(
        "SELECT source_row, column_name, reason FROM ingest_unparsed"
    ).fetchall():
        judged.named[source_row].add(
            (column, "missing" if reason == "missing value" else "unreadable")
        )
    for source_row, column, reason in con.execute(
        "SELECT source_row, column_name, reason FROM ingest_rule_hits"
    ).fetchall():
        kind = (
            "bound"
            if "outside the sane range" in reason
            else "form"
            if reason.startswith("symbol ") and reason.endswith(_SYMBOL_FORMS)
            else "rule"
        )
        judged.named[source_row].add((column, kind))
    judged.typed_values = _typed(con, "ingest_typed", quoted)
    for source_row in range(1, len(rows) + 1):
        con.begin()
        try:
            con.execute(
                f"INSERT INTO {table} BY NAME SELECT {quoted} FROM ingest_typed "
                "WHERE source_row = ?",
                [source_row],
            )
            judged.schema[source_row] = True
        except duckdb.Error:
            judged.schema[source_row] = False
        finally:
            con.rollback()
    store.execute(con, "ingest_cleanup")
    con.execute("DROP TABLE generated")
    return judged


def _typed(con: duckdb.DuckDBPyConnection, relation: str, quoted: str) -> list[str]:
    """Each row's typed values, as text that tells NaN, -0.0 and NULL apart."""
    rows = con.execute(f"SELECT source_row, {quoted} FROM {relation} ORDER BY source_row")
    return [repr(row) for row in rows.fetchall()]


def _assert_the_copies_agree(con: duckdb.DuckDBPyConnection, table: str, rows: list[Row]):
    """Every copy of ``table``'s rules judges every row as the contract in Python does."""
    judged = _judge(con, table, rows)
    disagreements = []
    for source_row, row in enumerate(rows, start=1):
        faults = CASES[table].faults(row)
        named = judged.named[source_row]
        if named != faults:
            disagreements.append(f"{row}: rules name {sorted(named)}, contract {sorted(faults)}")
        if judged.checked[source_row] != (not faults):
            disagreements.append(f"{row}: checked passes it: {judged.checked[source_row]}")
        schema_sees = not faults <= LEFT_TO_INGESTION[table]
        if judged.schema[source_row] == schema_sees:
            disagreements.append(f"{row}: the table takes it: {judged.schema[source_row]}")
    assert not disagreements, "\n".join(disagreements)
    assert judged.checked_values == judged.typed_values


def _assert_an_ingest_loads_the_clean_rows(table: str, rows: list[Row]) -> None:
    """An ingest of ``rows`` as a CSV loads the rows without a fault, quarantines the others."""
    case = CASES[table]
    with tempfile.TemporaryDirectory() as tmp, _contract_db() as con:
        source = Path(tmp) / f"{table}.csv"
        lines = [",".join(rows[0]), *(",".join(row.values()) for row in rows)]
        source.write_text("\n".join(lines) + "\n")
        report = ingest(con, IngestRequest(source=str(source), table=table))
        keys = con.execute(f'SELECT "{case.key}" FROM {table}').fetchall()
        quarantined = con.execute(
            "SELECT source_row, column_name, reason FROM quarantine WHERE ingest_id = ?",
            [report.ingest_id],
        ).fetchall()
    faults = [case.faults(row) for row in rows]
    clean = [row for row, found in zip(rows, faults, strict=True) if not found]
    assert {key for (key,) in keys} - case.stored_keys == {
        case.parse_key(row[case.key].strip()) for row in clean
    }
    assert report.rows_read == len(rows)
    assert report.rows_loaded == len(clean)
    assert report.rows_duplicate == 0
    assert report.rows_quarantined == len(rows) - len(clean)
    assert report.streamed == (table == "candles" and len(clean) == len(rows))
    assert {(source_row, column) for source_row, column, _ in quarantined} == {
        (source_row, column)
        for source_row, found in enumerate(faults, start=1)
        for column, _ in found
    }
    assert all(reason for *_, reason in quarantined)


@pytest.fixture(scope="module")
def contract() -> Iterator[duckdb.DuckDBPyConnection]:
    """One database for every example: judging rows leaves it as it was."""
    with _contract_db() as con:
        yield con


@pytest.mark.parametrize("table", CONTRACT_TABLES)
def test_every_value_alone_is_judged_alike_by_every_copy(contract, table):
    rows = CASES[table].one_change_each()
    _assert_the_copies_agree(contract, table, rows)
    _assert_an_ingest_loads_the_clean_rows(table, rows)


@pytest.mark.parametrize("table", CONTRACT_TABLES)
@EXAMPLES
@given(data=st.data())
def test_the_copies_of_the_rules_agree_on_every_row(contract, table, data):
    _assert_the_copies_agree(contract, table, data.draw(CASES[table].rows(), label="rows"))


@pytest.mark.parametrize("table", CONTRACT_TABLES)
@EXAMPLES
@given(data=st.data())
def test_an_ingest_loads_exactly_the_rows_the_contract_accepts(table, data):
    _assert_an_ingest_loads_the_clean_rows(table, data.draw(CASES[table].rows(), label="rows"))
