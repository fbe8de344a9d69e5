"""The gate's trade-off between false promotions and power, on stage 8's differences.

``.venv/bin/python -m bench.gate_frontier [--cache DIR] [--sizes small|full]``: builds
stage 8's no-edge replicates and planted candidates (``bench.stage8_gate``: the same
histories, seeds and candidates), keeps each one's per-trade differences on the meta
reward (``DIR/null.npz``, ``DIR/power.npz``: reused when present, since they do not
depend on the gate), and reports, for the Newey-West interval with each bandwidth floor
``c`` x sqrt(n) (``rlv2.evaluation.hac_interval``) at the default confidence, the
false-promotion rates by kind and the power (the default guardrails applied), as the
README's trade-off table shows them.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.stage7_planted import VARIANTS
from bench.stage8_gate import (
    NULL_HISTORIES,
    NULL_SEED,
    POWER_SEEDS,
    RUN_LENGTHS,
    _windows,
    null_pairs,
)
from rlv2 import pipeline
from rlv2.demo import build_planted_database
from rlv2.domain import Agent
from rlv2.evaluation import guardrail_breaches, hac_interval, paired_differences
from rlv2.planted import PlantedConfig

FLOORS = (0.0, 0.5, 1.0, 1.3, 1.6, 2.0, 2.5)
"""Bandwidth floors (times sqrt(n)) compared; 1.3 is the gate's."""


def null_differences(sizes: str, tmp: Path) -> dict[str, NDArray[np.float64]]:
    """Stage 8's no-edge replicates: ``history|pair|kind|run length`` -> differences."""
    config = pipeline.TrainConfig()
    out = {}
    for i in range(NULL_HISTORIES[sizes]):
        run_length = RUN_LENGTHS[i % len(RUN_LENGTHS)]
        planted = PlantedConfig(seed=NULL_SEED + i, no_edge=True, error_run_length=run_length)
        path = tmp / f"null-{i}.duckdb"
        build_planted_database(path, planted)
        _, holdout = _windows(path)
        path.unlink()
        pairs = null_pairs(holdout, config, np.random.default_rng(i))
        for j, (kind, candidate, champion) in enumerate(pairs):
            if candidate.equity.size < 2 or min(candidate.equity.min(), champion.equity.min()) <= 0:
                continue  # bust: the gate refuses it before any comparison (as stage 8)
            out[f"{i}|{j}|{kind}|{run_length}"] = paired_differences(
                candidate, champion, "meta_reward"
            )
    return out


def power_differences(sizes: str, tmp: Path) -> dict[str, NDArray[np.float64]]:
    """Stage 8's planted candidates: ``variant|seed|guardrails broken`` -> differences."""
    config = pipeline.TrainConfig()
    out = {}
    for variant, fields in VARIANTS.items():
        for seed in POWER_SEEDS[sizes]:
            path = tmp / f"{variant}-{seed}.duckdb"
            build_planted_database(path, PlantedConfig(seed=seed, **fields))  # type: ignore[arg-type]
            train, holdout = _windows(path)
            path.unlink()
            if holdout.n_trades < 2:
                continue
            q = pipeline.train_agent(Agent.META_STRATEGY, train, config).q
            candidate, _ = pipeline.evaluate(holdout, config, q, None)
            champion, _ = pipeline.evaluate(holdout, config, None, None)
            broken = guardrail_breaches(
                candidate, champion, "logged", config.pnl_tolerance, config.drawdown_tolerance
            )
            out[f"{variant}|{seed}|{','.join(broken)}"] = paired_differences(
                candidate, champion, "meta_reward"
            )
    return out


def cached(
    path: Path, build: Callable[[], dict[str, NDArray[np.float64]]]
) -> dict[str, NDArray[np.float64]]:
    """The differences in ``path``, or ``build()``'s, saved there."""
    if path.exists():
        with np.load(path) as stored:
            return {k: stored[k] for k in stored.files}
    values = build()
    np.savez(path, **values)
    return values


def main() -> None:
    """Print the trade-off table's rows."""
    parser = argparse.ArgumentParser(description="The gate's false promotions and power by floor.")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--sizes", choices=("small", "full"), default="full")
    args = parser.parse_args()
    confidence = pipeline.TrainConfig().confidence
    with tempfile.TemporaryDirectory(prefix="rlv2-frontier-") as folder:
        cache = args.cache or Path(folder)
        cache.mkdir(parents=True, exist_ok=True)
        nulls = cached(cache / "null.npz", lambda: null_differences(args.sizes, Path(folder)))
        power = cached(cache / "power.npz", lambda: power_differences(args.sizes, Path(folder)))
    print(f"{len(nulls)} no-edge replicates, {len(power)} planted candidates")
    for floor in FLOORS:
        rates = {}
        for kind in ("by state", "one model"):
            verdicts = [
                hac_interval(d, confidence, floor).low > 0.0
                for key, d in nulls.items()
                if key.split("|")[2] == kind
            ]
            rates[kind] = f"{np.mean(verdicts):.1%} ({sum(verdicts)}/{len(verdicts)})"
        promoted = [
            hac_interval(d, confidence, floor).low > 0.0 and not key.split("|")[2]
            for key, d in power.items()
        ]
        rates["power"] = f"{np.mean(promoted):.1%} ({sum(promoted)}/{len(promoted)})"
        print(f"| {floor:g} | " + " | ".join(rates.values()) + " |")


if __name__ == "__main__":
    main()
