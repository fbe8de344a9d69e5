"""load_transitions equals the naive feature oracle on every column of every row.

The oracle (``tests/feature_oracle.py``) recomputes every column with plain Python from
plain SELECTs. It runs here on a small generated history built to hold the cases the
pipeline treats specially, at the default windows and at short non-default ones, over
the whole history and over a window, and on the demo history.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlv2 import history, store
from rlv2.domain import LEVERAGES, SIZE_MULTIPLIERS, Model, Regime, WeightAction
from rlv2.states import FeatureConfig, RegimeRule
from tests.feature_oracle import mismatches, named_columns, oracle_transitions, read_tables

T0 = datetime(2024, 1, 1)
MINUTE = timedelta(minutes=1)
SEED = 20_251_126
FIRST_SWITCH = T0 + 30 * MINUTE
"""The first row of the RL switch (off): the decisions before it read the switch as on."""

SHORT_WINDOWS = FeatureConfig(
    lookback_bars=7,
    pressure_bars=3,
    winrate_window=3,
    regime_rule=RegimeRule(breakout_k=1.5, trend_efficiency=0.4, reversion_z=1.0),
    initial_equity=60.0,
    margin_fraction=0.04,
)
"""Every field away from its default, so that a window or threshold the pipeline ignores
shows; a 3-trade window also gives flat Sharpe windows (ties in pnl_pct)."""
CONFIGS = {"default": FeatureConfig(), "short_windows": SHORT_WINDOWS}
WINDOWS = {"all": (None, None), "window": (T0 + 60 * MINUTE, T0 + 240 * MINUTE)}


# --- the generated history ----------------------------------------------------------------


def _symbol_candles(
    rng: np.random.Generator,
    symbol: str,
    start: datetime,
    step: timedelta,
    log_returns: np.ndarray,
    keep: np.ndarray,
) -> pd.DataFrame:
    """Bars of one symbol from its log returns; ``keep`` drops bars to leave gaps."""
    close = 100.0 * np.exp(np.cumsum(log_returns))
    open_ = np.r_[close[0], close[:-1]]
    wick = 1.0 + np.abs(rng.normal(0.0, 1e-3, close.size))
    frame = pd.DataFrame(
        {
            "symbol": symbol,
            "ts": [start + i * step for i in range(close.size)],
            "open": open_,
            "high": np.maximum(open_, close) * wick,
            "low": np.minimum(open_, close) / wick,
            "close": close,
            "volume": rng.random(close.size) * 1e3,
        }
    )
    return frame[keep].reset_index(drop=True)


def generated_candles(rng: np.random.Generator) -> pd.DataFrame:
    """Three symbols of bars unlike each other.

    AAA: minute bars with a flat stretch (no returns: zero volatility, no path) that ends
    in a jump. BBB: volatile minute bars starting 40 minutes late, a fifth of them
    missing. CCC: trending 5-minute bars. A fourth symbol, ZZZ, has signals but no bars.
    """
    aaa = rng.normal(0.0, 2e-3, 300)
    aaa[100:130] = 0.0
    aaa[130] = 0.02
    bbb = rng.normal(0.0, 1e-2, 260)
    ccc = rng.normal(3e-3, 2e-3, 80)
    return pd.concat(
        [
            _symbol_candles(rng, "AAA", T0, MINUTE, aaa, np.ones(300, bool)),
            _symbol_candles(rng, "BBB", T0 + 40 * MINUTE, MINUTE, bbb, rng.random(260) > 0.2),
            _symbol_candles(rng, "CCC", T0, 5 * MINUTE, ccc, np.ones(80, bool)),
        ],
        ignore_index=True,
    )


def _decision_times(rng: np.random.Generator) -> dict[str, list[datetime]]:
    """Decision times per symbol: on bar stamps, between bars, before the first and after
    the last bar, and some shared by AAA and CCC."""
    times: dict[str, set[datetime]] = {}
    for symbol in ("AAA", "BBB", "CCC", "ZZZ"):
        minutes = rng.integers(-5, 420, 70)
        seconds = np.where(rng.random(70) < 0.6, 0, rng.integers(1, 60, 70))
        times[symbol] = {
            T0 + int(m) * MINUTE + timedelta(seconds=int(s))
            for m, s in zip(minutes, seconds, strict=True)
        }
    times["CCC"] |= set(sorted(times["AAA"])[::5])
    return {symbol: sorted(ts) for symbol, ts in times.items()}


def generated_signals(rng: np.random.Generator) -> pd.DataFrame:
    """The decision points' signals: usually all four models, sometimes a few of them.

    Signal ids are shuffled so that nothing can lean on them following time.
    """
    rows = []
    for symbol, times in _decision_times(rng).items():
        for ts in times:
            models = (
                list(Model)
                if rng.random() < 0.7
                else rng.permutation(list(Model))[: rng.integers(1, 4)]
            )
            for model in models:
                rows.append(
                    {
                        "ts": ts,
                        "symbol": symbol,
                        "model": Model(model).name,
                        "direction": int(rng.choice([-1, 1])),
                        "confidence": float(
                            rng.choice([0.0, 1.0, rng.random()], p=[0.05, 0.05, 0.9])
                        ),
                        "predicted_regime": Regime(int(rng.integers(len(Regime)))).name,
                    }
                )
    signals = pd.DataFrame(rows)
    signals.insert(0, "signal_id", rng.permutation(len(signals)) + 1000)
    return signals


def generated_trades(rng: np.random.Generator, signals: pd.DataFrame) -> pd.DataFrame:
    """A quarter of the signals traded (some points twice or more), entered at the signal
    or up to ten minutes later; ids are text: integers of any sign, -1 among them (their
    text order is not their numbers'), and UUIDs; some without a propensity (joint or per
    agent)."""
    traded = signals[rng.random(len(signals)) < 0.25].reset_index(drop=True)
    n = len(traded)
    pool = np.setdiff1d(np.arange(-100, 10_000), [-1])
    number = np.r_[-1, rng.choice(pool, n - 1, replace=False)]
    rng.shuffle(number)
    # a third of them UUIDs, made from the number so that the draws stay those of the rest
    trade_id = [
        str(uuid.UUID(int=(int(v) + 101) * 0x9E3779B97F4A7C15 % 2**128)) if v % 3 == 1 else str(v)
        for v in number
    ]
    delay = np.where(rng.random(n) < 0.5, 0, rng.integers(1, 600, n))
    action_prob = pd.array(rng.uniform(0.01, 1.0, n), dtype="Float64")
    action_prob[rng.random(n) < 0.2] = pd.NA
    # the per-agent propensities draw from a stream of their own: the rest of the history
    # stays the one whose special cases test_the_generated_history_holds_the_special_cases
    # lists
    own = np.random.default_rng([SEED, n])
    meta_prob, sizing_prob = (pd.array(own.uniform(0.01, 1.0, n), dtype="Float64") for _ in "ms")
    meta_prob[own.random(n) < 0.2] = pd.NA
    sizing_prob[own.random(n) < 0.2] = pd.NA
    return pd.DataFrame(
        {
            "trade_id": trade_id,
            "signal_id": traded["signal_id"],
            "ts": traded["ts"] + pd.to_timedelta(delay, unit="s"),
            "symbol": traded["symbol"],
            "side": rng.choice([-1, 1], n),
            "entry_price": rng.uniform(50.0, 150.0, n),
            "size_multiplier": rng.choice(SIZE_MULTIPLIERS, n),
            "leverage": rng.choice(LEVERAGES, n),
            "portfolio_exposure": rng.uniform(0.0, 3.0, n),
            "strategy": [Regime(int(c)).name for c in rng.integers(len(Regime), size=n)],
            "weight_action": [
                WeightAction(int(c)).name for c in rng.integers(len(WeightAction), size=n)
            ],
            "action_prob": action_prob,
            "meta_action_prob": meta_prob,
            "sizing_action_prob": sizing_prob,
        }
    )


def generated_positions(
    rng: np.random.Generator, trades: pd.DataFrame, decision_ts: np.ndarray
) -> pd.DataFrame:
    """Closes of most trades: some open, some at the entry instant (zero duration), some at
    a later decision's instant, the rest minutes to hours later (some after the last bar).

    pnl_pct mixes small integers (ties, zeros), whole-margin losses and a spread.
    """
    rows = []
    for trade_id, entry in zip(trades["trade_id"], trades["ts"], strict=True):
        u = rng.random()
        if u < 0.15:
            continue
        if u < 0.3:
            closed = entry
        elif u < 0.55:
            later = decision_ts[decision_ts >= entry][:40]
            closed = pd.Timestamp(rng.choice(later)) if later.size else entry
        else:
            closed = entry + pd.Timedelta(minutes=int(rng.integers(1, 200)))
        pnl = rng.choice(
            [float(rng.integers(-3, 4)), -100.0, float(max(rng.normal(2.0, 15.0), -100.0))],
            p=[0.25, 0.01, 0.74],
        )
        rows.append(
            {
                "trade_id": trade_id,
                "closed_ts": closed,
                "exit_price": rng.uniform(50.0, 150.0),
                "pnl_pct": pnl,
                "max_drawdown_pct": rng.uniform(0.0, 100.0),
            }
        )
    return pd.DataFrame(rows)


def generated_policy(decision_ts: np.ndarray, positions: pd.DataFrame) -> pd.DataFrame:
    """The RL switch: off first (the decisions before any row read it as on), then on at
    a decision's instant, off at a close's instant, on again."""
    at_decision = pd.Timestamp(decision_ts[len(decision_ts) // 3])
    at_close = positions["closed_ts"].sort_values().iloc[len(positions) * 2 // 3]
    switches = [(FIRST_SWITCH, False), (at_decision, True), (at_close, False)]
    switches.append((at_close + 60 * MINUTE, True))
    return pd.DataFrame(switches, columns=["ts", "enable_rl"])


def generated_history(seed: int = SEED) -> dict[str, pd.DataFrame]:
    """The five contract tables of a small history holding every special case."""
    rng = np.random.default_rng(seed)
    candles = generated_candles(rng)
    signals = generated_signals(rng)
    decision_ts = np.sort(signals["ts"].unique())
    trades = generated_trades(rng, signals)
    positions = generated_positions(rng, trades, decision_ts)
    policy = generated_policy(decision_ts, positions)
    return {
        "candles": candles,
        "signals": signals,
        "trades": trades,
        "positions": positions,
        "policy": policy,
    }


@pytest.fixture(scope="module")
def generated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated history in a DuckDB file under the real schema (read it, don't write)."""
    path = tmp_path_factory.mktemp("oracle") / "generated.duckdb"
    with store.connect(path) as con:
        store.apply_schema(con)
        for table, frame in generated_history().items():
            con.register("oracle_frame", frame)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM oracle_frame")
            con.unregister("oracle_frame")
    return path


# --- the tests ----------------------------------------------------------------------------


def _compare(path: Path, config: FeatureConfig, start: datetime | None, end: datetime | None):
    with store.connect(path, read_only=True) as con:
        transitions = history.load_transitions(con, start, end, config)
        oracle = oracle_transitions(read_tables(con, start, end), config)
    return transitions, mismatches(oracle, transitions)


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("config", CONFIGS)
def test_every_column_equals_the_oracle_on_a_generated_history(generated_db, config, window):
    transitions, problems = _compare(generated_db, CONFIGS[config], *WINDOWS[window])
    assert len(transitions) > 100
    assert not problems, "\n".join(problems)


def test_every_column_equals_the_oracle_on_the_demo_history(demo_db):
    transitions, problems = _compare(demo_db, FeatureConfig(), None, None)
    assert len(transitions) > 1000
    assert not problems, "\n".join(problems)


def test_the_generated_history_holds_the_special_cases(generated_db):
    """Each case the generator promises is in the rows the oracle is compared on."""
    with store.connect(generated_db, read_only=True) as con:
        tr = named_columns(history.load_transitions(con))
        n_points = con.execute("SELECT count(DISTINCT (symbol, ts)) FROM signals").fetchone()[0]
        n_zero = con.execute(
            "SELECT count(*) FROM positions JOIN trades USING (trade_id) WHERE closed_ts = ts"
        ).fetchone()[0]
        n_minus_one, n_uuid = con.execute(
            "SELECT count(*) FILTER (WHERE trade_id = '-1'), "
            "count(*) FILTER (WHERE TRY_CAST(trade_id AS UUID) IS NOT NULL) FROM trades"
        ).fetchone()
    traded = ~np.isnat(tr["trade_ts"])
    closed = ~np.isnat(tr["closed_ts"])
    points, per_point = np.unique(tr["decision_id"], return_counts=True)
    closes_at = set(tr["closed_ts"][closed].tolist())
    cases = {
        "decisions left out (before the first bar, no bars)": len(points) < n_points,
        "a decision without a trade": (~traded).any(),
        "a decision with several trades": (per_point > 1).any(),
        "a trade still open": (traded & ~closed).any(),
        "a zero-duration trade": n_zero > 0,
        "a trade entered after its signal": (tr["trade_ts"][traded] > tr["ts"][traded]).any(),
        "trade id '-1'": n_minus_one == 1,
        "a UUID trade id": n_uuid > 0,
        "a missing model signal": np.isnan(tr["conf_nhits"]).any(),
        "no propensity": np.isnan(tr["action_prob"][traded]).any(),
        "no meta propensity": np.isnan(tr["meta_action_prob"][traded]).any(),
        "a sizing propensity": (~np.isnan(tr["sizing_action_prob"][traded])).any(),
        "a decision at another trade's close": any(t in closes_at for t in tr["ts"].tolist()),
        "a decision before the first switch row": (tr["ts"] < np.datetime64(FIRST_SWITCH)).any(),
        "RL off at a signal": (~tr["rl_at_signal"]).any(),
        "RL off at a close": (~tr["rl_at_close"][closed]).any(),
        "zero volatility": (tr["volatility"] == 0.0).any(),
        "every regime at a decision": set(tr["regime"]) == {r.name for r in Regime},
        "more closes than the win-rate window": tr["closed_before"].max() > 20,
    }
    assert all(cases.values()), [case for case, held in cases.items() if not held]
