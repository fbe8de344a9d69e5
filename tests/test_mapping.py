"""The README's "Mapping your database" recipe, run as written on a foreign schema.

The live database has its own table and column names, UUID ids, lower-case enum values
and a model outside rlv2's four (tft); the test applies the README's SQL and commands
literally (taken from its text), ingests, and trains both agents on the result.
"""

from __future__ import annotations

import re
import shlex
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pytest

from rlv2 import pipeline, store
from rlv2.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
MODELS = ("xgboost", "lightgbm", "nhits", "tft")
REGIMES = ("trend", "range", "breakout", "mean_reversion")


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("### Mapping your database")
    return text[start : text.index("\n### ", start + 1)]


def _foreign_database(path: Path) -> None:
    """A live system's schema: other names, UUID ids, lower-case enums, tft as a model."""
    rng = np.random.default_rng(16)
    n_bars = 600
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_bars)))
    bars_at = np.datetime64("2024-01-01T00:00") + np.arange(n_bars) * np.timedelta64(1, "h")
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE ohlcv (pair VARCHAR, bar_close TIMESTAMP, o DOUBLE, h DOUBLE, "
            "l DOUBLE, c DOUBLE, vol DOUBLE)"
        )
        con.executemany(
            "INSERT INTO ohlcv VALUES ('btc-usd', ?, ?, ?, ?, ?, 10)",
            [
                (str(t), p, p * 1.01, p * 0.99, p)
                for t, p in zip(bars_at.tolist(), close.tolist(), strict=True)
            ],
        )
        con.execute(
            "CREATE TABLE forecasts (uuid VARCHAR, created_at TIMESTAMP, pair VARCHAR, "
            "model_name VARCHAR, dir INTEGER, conf DOUBLE, regime VARCHAR)"
        )
        con.execute(
            "CREATE TABLE executions (id VARCHAR, forecast_uuid VARCHAR, executed_at TIMESTAMP, "
            "pair VARCHAR, side INTEGER, price DOUBLE, size_mult DOUBLE, lev INTEGER, "
            "exposure DOUBLE, strategy VARCHAR, weight_action VARCHAR)"
        )
        con.execute(
            "CREATE TABLE closes (execution_id VARCHAR, closed_at TIMESTAMP, exit_px DOUBLE, "
            "pnl DOUBLE, mdd DOUBLE)"
        )
        for bar in range(60, n_bars - 10, 2):
            at = str(bars_at[bar])
            ids = [str(uuid.UUID(int=int(rng.integers(2**62)) << 64 | bar)) for _ in MODELS]
            for signal_id, model in zip(ids, MODELS, strict=True):
                con.execute(
                    "INSERT INTO forecasts VALUES (?, ?, 'btc-usd', ?, ?, ?, ?)",
                    [
                        signal_id,
                        at,
                        model.upper() if model == "nhits" else model,
                        int(rng.choice([-1, 1])),
                        float(rng.uniform(0.3, 0.9)),
                        str(rng.choice(REGIMES)),
                    ],
                )
            chosen = int(rng.integers(len(MODELS)))
            trade_id = f"ex-{uuid.UUID(int=bar * 7919)}"
            side = int(rng.choice([-1, 1]))
            exit_px = float(close[bar + 3])
            pnl = side * (exit_px / close[bar] - 1) * 100 * 2
            con.execute(
                "INSERT INTO executions VALUES (?, ?, ?, 'btc-usd', ?, ?, ?, 2, 0.2, ?, ?)",
                [
                    trade_id,
                    ids[chosen],
                    at,
                    side,
                    float(close[bar]),
                    float(rng.choice([0.4, 1.0, 1.6])),
                    str(rng.choice(REGIMES)),
                    str(rng.choice(["weight_up", "Weight_Down", "weight_hold"])),
                ],
            )
            con.execute(
                "INSERT INTO closes VALUES (?, ?, ?, ?, ?)",
                [trade_id, str(bars_at[bar + 3]), exit_px, float(pnl), float(abs(pnl) / 2)],
            )


def test_the_readme_mapping_recipe_ingests_a_foreign_schema_and_trains(
    tmp_path, monkeypatch, capsys
):
    section = _section()
    (views,) = re.findall(r"```sql\n(.*?)```", section, flags=re.S)
    (commands,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    monkeypatch.chdir(tmp_path)
    _foreign_database(tmp_path / "live.duckdb")
    with duckdb.connect("live.duckdb") as con:
        con.execute(views)
    lines = [line for line in commands.splitlines() if line.strip()]
    assert [shlex.split(line)[4:6] for line in lines] == [
        ["--table", "candles"],
        ["--table", "signals"],
        ["--table", "trades"],
        ["--table", "positions"],
    ]
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "rlv2"
        assert main(argv[1:]) == 0, capsys.readouterr()
        assert "quarantined 0" in capsys.readouterr().out
    with store.connect("h.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM signals").fetchone()[0] > 0
        assert con.execute("SELECT DISTINCT model::VARCHAR FROM signals ORDER BY 1").fetchall() == [
            ("LGBM",),
            ("NHITS",),
            ("PATCHTST",),
            ("XGB",),
        ]
        window = pipeline.load_window(con)
    assert window.n_trades > 0
    config = pipeline.TrainConfig(epochs=1)
    for agent in ("meta_strategy", "position_sizing"):
        trained = pipeline.train_agent(agent, window, config)
        assert np.isfinite(trained.q).all()


@pytest.mark.parametrize("fence", ["sql", "bash"])
def test_the_mapping_section_has_one_block_of_each(fence):
    assert len(re.findall(rf"```{fence}\n", _section())) == 1
