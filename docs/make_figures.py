"""Redraw the README's two figures from the demo history: ``.venv/bin/python docs/make_figures.py``.

What ``rlv2 demo``'s nightly retrain draws, with the defaults of ``TrainConfig``: the
holdout equity of the candidates against the logged behaviour and buy-and-hold, and the
promotion gate of the position-sizing candidate against the logged behaviour (the demo's
first gate, nothing in production yet). No MLflow, no Prefect: the pipeline's functions
on a demo database built in a temporary folder. Deterministic: the same code redraws the
same charts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rlv2 import evidence, figures, history, pipeline, store
from rlv2.demo import build_demo_database
from rlv2.domain import Agent
from rlv2.pipeline import TrainConfig

DOCS = Path(__file__).resolve().parent


def main() -> None:
    """Write docs/holdout_equity.png and docs/gate_position_sizing.png."""
    config = TrainConfig()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.duckdb"
        build_demo_database(db)
        with store.connect(db, read_only=True) as con:
            first, last, _ = history.decision_bounds(con)
            cut = history.holdout_start(con, config.holdout_fraction)
            split = pipeline.walk_forward_split(first, last, cut)
            train = pipeline.load_window(con, split.train_start, cut, config.features)
            holdout = pipeline.load_window(con, cut, split.holdout_end, config.features)
    trained = {a: pipeline.train_agent(a, train, config) for a in Agent}
    drawn = evidence.training_figures(trained, train, holdout, config, {})
    agent = Agent.POSITION_SIZING
    decision, _, _ = pipeline.promotion_gate(
        agent, holdout, config, trained[agent].q, None, None, "logged"
    )
    runs = evidence.gate_runs(agent, holdout, config, trained[agent].q, None, None)
    gate = figures.gate(evidence.gate_evidence(agent, runs, config, decision.as_dict()))
    for name, figure in (
        ("holdout_equity", drawn["holdout_equity"]),
        ("gate_position_sizing", gate),
    ):
        path = DOCS / f"{name}.png"
        figure.savefig(path, metadata={"Software": None})  # no version stamp: stable bytes
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
