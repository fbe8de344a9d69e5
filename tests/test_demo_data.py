"""Demo history from the bundled real bars: contract, hand-walked outcomes, no look-ahead."""

import csv
import math
import time
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest

from rlv2.demo_data import DemoConfig, build_history, load_bundled_candles
from rlv2.domain import (
    LEVERAGES,
    SIZE_MULTIPLIERS,
    WEIGHT_EXPOSURE_SCALE,
    Model,
    Regime,
    Strategy,
    WeightAction,
)
from rlv2.outcomes import DEFAULT_EXIT_RULES, SIGMA_FLOOR
from rlv2.states import label_regime

DATA = Path(__file__).resolve().parent.parent / "data"
CONFIG = DemoConfig()

COLUMNS = {
    "signals": [
        "signal_id",
        "ts",
        "symbol",
        "model",
        "direction",
        "confidence",
        "predicted_regime",
    ],
    "trades": [
        "trade_id",
        "signal_id",
        "ts",
        "symbol",
        "side",
        "entry_price",
        "size_multiplier",
        "leverage",
        "portfolio_exposure",
        "strategy",
        "weight_action",
        "action_prob",
    ],
    "positions": ["trade_id", "closed_ts", "exit_price", "pnl_pct", "max_drawdown_pct"],
    "policy": ["ts", "enable_rl"],
}


class Bar(NamedTuple):
    ts: datetime
    high: float
    low: float
    close: float


def read_raw_bars() -> dict[str, list[Bar]]:
    """The bundled CSVs read with the csv module, independently of rlv2 and pandas."""
    bars: dict[str, list[Bar]] = {"EURUSD": [], "SPX": []}
    with open(DATA / "eurusd_1h.csv", newline="") as f:
        for row in csv.DictReader(f):
            ts = datetime.strptime(row[""], "%Y-%m-%d %H:%M:%S")
            bars["EURUSD"].append(
                Bar(ts, float(row["High"]), float(row["Low"]), float(row["Close"]))
            )
    with open(DATA / "sp500_1d.csv", newline="") as f:
        for row in csv.DictReader(f):
            ts = datetime.strptime(row["Date"], "%m/%d/%Y")
            bars["SPX"].append(Bar(ts, float(row["High"]), float(row["Low"]), float(row["Close"])))
    return {symbol: sorted(rows) for symbol, rows in bars.items()}


@pytest.fixture(scope="module")
def raw() -> dict[str, list[Bar]]:
    return read_raw_bars()


@pytest.fixture(scope="module")
def bar_index(raw) -> dict[tuple[str, datetime], int]:
    return {(symbol, bar.ts): i for symbol, rows in raw.items() for i, bar in enumerate(rows)}


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return load_bundled_candles()


@pytest.fixture(scope="module")
def history(candles):
    return build_history(candles, CONFIG)


@pytest.fixture(scope="module")
def book(history) -> pd.DataFrame:
    """Trades joined with their position and their signal's model."""
    models = history.signals[["signal_id", "model"]]
    return history.trades.merge(history.positions, on="trade_id").merge(models, on="signal_id")


def test_bundled_candles_are_the_raw_bars(candles, raw):
    assert list(candles.columns) == ["symbol", "ts", "open", "high", "low", "close", "volume"]
    for symbol, rows in raw.items():
        got = candles[candles["symbol"] == symbol]
        assert len(got) == len(rows)
        assert [t.to_pydatetime() for t in got["ts"]] == [b.ts for b in rows]
        assert got["close"].tolist() == [b.close for b in rows]
    assert candles["ts"].iloc[0] == pd.Timestamp("2017-04-19 09:00:00")  # EURUSD sorts first
    assert candles[candles["symbol"] == "SPX"]["ts"].iloc[0] == pd.Timestamp("1999-01-04")


def test_tables_have_the_contract_columns(history):
    for name, columns in COLUMNS.items():
        assert list(getattr(history, name).columns) == columns, name
    for frame, column in [
        (history.signals, "ts"),
        (history.trades, "ts"),
        (history.positions, "closed_ts"),
        (history.policy, "ts"),
    ]:
        assert pd.api.types.is_datetime64_dtype(frame[column])


def test_rows_are_consistent(history, raw, bar_index):
    signals, trades, positions = history.signals, history.trades, history.positions
    assert signals["signal_id"].is_unique and trades["trade_id"].is_unique
    per_point = signals.groupby(["symbol", "ts"])["model"].agg(lambda m: sorted(m))
    assert (per_point.map(tuple) == tuple(sorted(m.name for m in Model))).all()
    assert len(signals) == 4 * len(per_point)

    assert trades["signal_id"].is_unique
    joined = trades.merge(signals, on="signal_id", suffixes=("", "_signal"), validate="1:1")
    assert len(joined) == len(trades)
    assert (joined["symbol"] == joined["symbol_signal"]).all()
    assert (joined["ts"] == joined["ts_signal"]).all()
    assert (joined["side"] == joined["direction"]).all()  # side = the chosen model's direction

    assert positions["trade_id"].is_unique
    assert sorted(positions["trade_id"]) == sorted(trades["trade_id"])
    book = trades.merge(positions, on="trade_id")
    assert (book["closed_ts"] > book["ts"]).all()
    for row in book.itertuples():
        entry = bar_index[(row.symbol, row.ts.to_pydatetime())]
        exit_ = bar_index[(row.symbol, row.closed_ts.to_pydatetime())]
        assert row.entry_price == raw[row.symbol][entry].close
        assert row.exit_price == raw[row.symbol][exit_].close


def walk_by_hand(bars: list[Bar], i: int, side: int, strategy: str) -> tuple[int, float, float]:
    """Exit bar, directional return and adverse excursion of a position, bar by bar."""
    closes = [b.close for b in bars[i - 19 : i + 1]]
    returns = [(closes[k] - closes[k - 1]) / closes[k - 1] for k in range(1, len(closes))]
    mean = sum(returns) / len(returns)
    sigma = max(math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns)), SIGMA_FLOOR)
    rule = DEFAULT_EXIT_RULES[Strategy[strategy]]
    entry = bars[i].close
    worst, ret, j = 0.0, 0.0, i
    while j < min(i + rule.max_bars, len(bars) - 1):
        j += 1
        adverse = (entry - bars[j].low) / entry if side > 0 else (bars[j].high - entry) / entry
        worst = max(worst, adverse)
        ret = side * (bars[j].close - entry) / entry
        if ret >= rule.take_profit * sigma or ret <= -rule.stop_loss * sigma:
            break
    return j, ret, worst


def test_pnl_and_drawdown_recomputed_by_hand_from_the_raw_bars(book, raw, bar_index):
    truncated = liquidated = 0
    for row in book.itertuples():
        bars = raw[row.symbol]
        i = bar_index[(row.symbol, row.ts.to_pydatetime())]
        j, ret, worst = walk_by_hand(bars, i, row.side, row.strategy)
        assert bars[j].ts == row.closed_ts.to_pydatetime()
        # percent of the margin put up; size x weight x leverage is the effective leverage
        weight = WEIGHT_EXPOSURE_SCALE[WeightAction[row.weight_action]]
        effective = row.size_multiplier * weight * row.leverage
        if effective * worst >= 1.0:  # the adverse move wiped the margin
            pnl, liquidated = -100.0, liquidated + 1
        else:
            pnl = 100.0 * effective * ret
        assert row.pnl_pct == pytest.approx(pnl, rel=1e-9, abs=1e-12)
        assert row.max_drawdown_pct == pytest.approx(
            100.0 * min(effective * worst, 1.0), rel=1e-9, abs=1e-12
        )
        truncated += j == len(bars) - 1
    assert truncated >= 1  # a path reaching the symbol's last bar closes there
    assert liquidated >= 1  # the S&P 500 in 2008-09 liquidates some high-leverage positions


def test_portfolio_exposure_recomputed_by_hand(book):
    rows = list(book.sort_values("trade_id").itertuples())

    def equity_at(ts):  # 100, compounded by 1 + 10 % x pnl / 100 at every close so far
        return 100.0 * math.prod(1.0 + 0.1 * r.pnl_pct / 100.0 for r in rows if r.closed_ts <= ts)

    for row in rows[::50]:
        open_ = [r for r in rows if r.trade_id <= row.trade_id and r.closed_ts > row.ts]
        notional = sum(  # each margin is 10 % of the equity its position opened on
            r.size_multiplier
            * WEIGHT_EXPOSURE_SCALE[WeightAction[r.weight_action]]
            * 0.1
            * equity_at(r.ts)
            * r.leverage
            for r in open_
        )
        assert row.portfolio_exposure == pytest.approx(notional / equity_at(row.ts), rel=1e-9)


def test_open_positions_per_symbol_stay_bounded(book):
    for _, trades in book.groupby("symbol"):
        ts = trades["ts"].to_numpy()
        closed = trades["closed_ts"].to_numpy()
        # positions open at each entry, the new one included
        open_at_entry = ((ts[None, :] <= ts[:, None]) & (closed[None, :] > ts[:, None])).sum(1)
        assert open_at_entry.max() == CONFIG.max_open_per_symbol


def test_values_satisfy_the_contract(history, book):
    signals, trades = history.signals, history.trades
    assert set(signals["model"]) == {m.name for m in Model}
    assert set(signals["predicted_regime"]) <= {r.name for r in Regime}
    assert set(signals["direction"]) == {-1, 1} and set(trades["side"]) == {-1, 1}
    assert signals["confidence"].between(0.0, 1.0).all()
    assert set(trades["size_multiplier"]) <= set(SIZE_MULTIPLIERS)
    assert set(trades["leverage"]) <= set(LEVERAGES)
    assert set(trades["strategy"]) <= {s.name for s in Strategy}
    assert set(trades["weight_action"]) == {w.name for w in WeightAction}
    exposure = trades["portfolio_exposure"].to_numpy()
    assert np.isfinite(exposure).all() and (exposure > 0.0).all()
    logged = trades["action_prob"].dropna().to_numpy(dtype=float)
    assert len(logged) > 0 and ((logged > 0.0) & (logged <= 1.0)).all()
    assert book["max_drawdown_pct"].between(0.0, 100.0).all()
    assert (book["pnl_pct"] >= -100.0).all()  # a loss stops at the whole margin


def test_action_prob_is_the_behaviour_policys_probability(history, book, candles):
    signals = history.signals
    close = {s: g.set_index("ts")["close"] for s, g in candles.groupby("symbol")}
    weight_p = dict(zip(WeightAction, CONFIG.weight_action_probs, strict=True))
    for row in book.dropna(subset=["action_prob"]).iloc[::40].itertuples():
        closes = close[row.symbol].loc[: row.ts].to_numpy()[-20:]
        p_strategy = 0.7 if Strategy[row.strategy] == label_regime(closes) else 0.1
        point = signals[(signals["symbol"] == row.symbol) & (signals["ts"] == row.ts)]
        best = point.loc[point["confidence"].idxmax(), "model"]
        p_model = 0.6 if row.model == best else 0.4 / 3
        p_size = CONFIG.size_probs[SIZE_MULTIPLIERS.index(row.size_multiplier)]
        p_leverage = CONFIG.leverage_probs[row.leverage - 1]
        expected = p_strategy * p_model * weight_p[WeightAction[row.weight_action]]
        assert row.action_prob == pytest.approx(expected * p_size * p_leverage, rel=1e-12)


def test_rl_off_stretch(history, book):
    policy = history.policy
    assert policy["enable_rl"].tolist() == [True, False, True]
    assert policy["ts"].is_monotonic_increasing
    assert policy["ts"].iloc[0] == history.signals["ts"].min()
    off = (book["ts"] >= policy["ts"].iloc[1]) & (book["ts"] < policy["ts"].iloc[2])
    assert off.any() and (~off).any()
    assert book.loc[off, "action_prob"].isna().all()  # no propensity logged while RL is off
    assert book.loc[~off, "action_prob"].notna().all()


def test_signals_do_not_look_ahead(candles, history):
    cut = history.signals["ts"].iloc[len(history.signals) // 2]
    later = candles["ts"] > cut
    rng = np.random.default_rng(7)
    shock = np.where(later, rng.uniform(0.8, 1.25, len(candles)), 1.0)
    perturbed = candles.assign(**{c: candles[c] * shock for c in ("open", "high", "low", "close")})
    again = build_history(perturbed, CONFIG).signals
    before = history.signals["ts"] <= cut
    pd.testing.assert_frame_equal(again[before], history.signals[before])
    assert not again[~before].equals(history.signals[~before])


def test_deterministic_per_seed_and_row_order(candles, history):
    shuffled = candles.sample(frac=1.0, random_state=3)
    same = build_history(shuffled, CONFIG)
    for name in COLUMNS:
        pd.testing.assert_frame_equal(getattr(same, name), getattr(history, name))
    other = build_history(candles, DemoConfig(seed=1))
    assert not other.signals["confidence"].equals(history.signals["confidence"])
    assert not other.trades[["strategy", "leverage"]].equals(
        history.trades[["strategy", "leverage"]]
    )


def test_ten_thousand_decisions_in_well_under_a_few_seconds(candles):
    start = time.perf_counter()
    dense = build_history(candles, DemoConfig(decision_every=1))
    elapsed = time.perf_counter() - start
    assert len(dense.signals) // 4 > 9_900
    assert elapsed < 3.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"warmup_bars": 5}, "warmup_bars"),
        ({"size_probs": (0.5, 0.5)}, "size_probs"),
        ({"strategy_follows_regime": 1.5}, "strategy_follows_regime"),
        ({"rl_off_start": 0.6, "rl_off_end": 0.5}, "rl_off_start"),
    ],
)
def test_bad_config_names_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        DemoConfig(**change)


def test_bad_candles_name_the_culprit(candles):
    with pytest.raises(ValueError, match="missing columns"):
        build_history(candles.drop(columns="high"))
    bad = candles.copy()
    bad.loc[5, "close"] = 0.0
    with pytest.raises(ValueError, match="close=0.0 at symbol='EURUSD'"):
        build_history(bad)
    with pytest.raises(ValueError, match="duplicate bar"):
        build_history(pd.concat([candles, candles.iloc[:1]]))
    with pytest.raises(ValueError, match="no decision point"):
        build_history(candles.iloc[:21])
