"""The gate's trade-off between false promotions and power, on stage 8's differences.

``.venv/bin/python -m bench.gate_frontier [--cache DIR] [--sizes small|full]
[--seeds stage8|held-out]``: builds stage 8's no-edge replicates and planted candidates
(``bench.stage8_gate``: the same histories, seeds and candidates; ``held-out``: the next
200 no-edge histories and planted seeds 20-39, which chose nothing), keeps each one's
per-trade differences on the meta reward and each trade's symbol (``DIR/null-SEEDS.npz``,
``DIR/power-SEEDS.npz``: reused when present, since they do not depend on the gate), and
prints, for the default interval (``newey-west-symbols``) at each bandwidth share and for
the previous default (``newey-west``, bandwidth floor 1.3 sqrt(n)) at the default
confidence, the false-promotion rates by kind and the power (the default guardrails
applied), as the README's trade-off table shows them.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.stage7_planted import VARIANTS
from bench.stage8_gate import (
    NULL_HISTORIES,
    NULL_SEED,
    POWER_SEEDS,
    RUN_LENGTHS,
    _windows,
)
from rlv2 import pipeline
from rlv2.demo import build_planted_database
from rlv2.domain import Agent
from rlv2.evaluation import (
    guardrail_breaches,
    hac_interval,
    paired_differences,
    paired_groups,
    symbol_hac_interval,
)
from rlv2.measure import no_edge_pairs
from rlv2.planted import PlantedConfig
from rlv2.replay import SimulationResult

SHARES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)
"""Bandwidth shares of ``newey-west-symbols`` compared; 0.15 is the gate's."""
Series = dict[str, NDArray[np.float64] | NDArray[np.int64]]


def _first(seeds: str, sizes: str) -> tuple[range, range]:
    """The no-edge history numbers and the planted seeds of a seed set."""
    n, power = NULL_HISTORIES[sizes], len(POWER_SEEDS[sizes])
    if seeds == "stage8":
        return range(n), range(power)
    return range(n, 2 * n), range(power, 2 * power)


def _store(
    out: Series, key: str, candidate: SimulationResult, champion: SimulationResult, groups: Any
) -> None:
    out[f"{key}|diff"] = paired_differences(candidate, champion, "meta_reward")
    found = paired_groups(candidate, champion, groups)
    assert found is not None
    out[f"{key}|groups"] = found


def null_differences(histories: range, tmp: Path) -> Series:
    """No-edge replicates: ``history|pair|kind|run length|diff`` (and ``|groups``)."""
    config = pipeline.TrainConfig()
    out: Series = {}
    for i in histories:
        run_length = RUN_LENGTHS[i % len(RUN_LENGTHS)]
        planted = PlantedConfig(seed=NULL_SEED + i, no_edge=True, error_run_length=run_length)
        path = tmp / f"null-{i}.duckdb"
        build_planted_database(path, planted)
        _, holdout = _windows(path)
        path.unlink()
        pairs = no_edge_pairs(holdout, config, np.random.default_rng(i))
        for j, (kind, candidate, champion) in enumerate(pairs):
            if candidate.equity.size < 2 or min(candidate.equity.min(), champion.equity.min()) <= 0:
                continue  # bust: the gate refuses it before any comparison (as stage 8)
            key = f"{i}|{j}|{kind}|{run_length}"
            _store(out, key, candidate, champion, holdout.decision_symbols())
    return out


def power_differences(seeds: range, tmp: Path) -> Series:
    """Planted candidates: ``variant|seed|guardrails broken|diff`` (and ``|groups``)."""
    config = pipeline.TrainConfig()
    out: Series = {}
    for variant, fields in VARIANTS.items():
        for seed in seeds:
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
            key = f"{variant}|{seed}|{','.join(broken)}"
            _store(out, key, candidate, champion, holdout.decision_symbols())
    return out


def cached(path: Path, build: Callable[[], Series]) -> dict[str, tuple[Any, Any]]:
    """The differences in ``path`` (or ``build()``'s, saved there): key -> (diff, groups)."""
    if path.exists():
        with np.load(path) as stored:
            values: Series = {k: stored[k] for k in stored.files}
    else:
        values = build()
        np.savez(path, **values)  # pyright: ignore[reportArgumentType]
    keys = {k.rsplit("|", 1)[0] for k in values}
    return {k: (values[f"{k}|diff"], values[f"{k}|groups"]) for k in sorted(keys)}


def _rate(verdicts: list[bool]) -> str:
    return f"{np.mean(verdicts):.1%} ({sum(verdicts)}/{len(verdicts)})"


def main() -> None:
    """Print the trade-off table's rows."""
    parser = argparse.ArgumentParser(description="The gate's false promotions and power.")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--sizes", choices=("small", "full"), default="full")
    parser.add_argument("--seeds", choices=("stage8", "held-out"), default="stage8")
    args = parser.parse_args()
    confidence = pipeline.TrainConfig().confidence
    histories, seeds = _first(args.seeds, args.sizes)
    with tempfile.TemporaryDirectory(prefix="rlv2-frontier-") as folder:
        cache = args.cache or Path(folder)
        cache.mkdir(parents=True, exist_ok=True)
        tag = f"{args.seeds}-{args.sizes}"
        nulls = cached(cache / f"null-{tag}.npz", lambda: null_differences(histories, Path(folder)))
        power = cached(cache / f"power-{tag}.npz", lambda: power_differences(seeds, Path(folder)))
    print(f"{args.seeds} seeds: {len(nulls)} no-edge replicates, {len(power)} planted candidates")
    print("| interval | by state | one model | power |")
    print("|---|---|---|---|")
    gates: list[tuple[str, Callable[[Any, Any], bool]]] = [
        ("newey-west, floor 1.3 sqrt(n)", lambda d, g: hac_interval(d, confidence).low > 0.0)
    ]
    for share in SHARES:
        gates.append(
            (
                f"newey-west-symbols, share {share:g}",
                lambda d, g, s=share: symbol_hac_interval(d, g, confidence, s).low > 0.0,
            )
        )
    for name, promotes in gates:
        rates = [
            _rate(
                [
                    promotes(d, g) and float(d.mean()) >= 0.0
                    for key, (d, g) in nulls.items()
                    if key.split("|")[2] == kind
                ]
            )
            for kind in ("by state", "one model")
        ]
        rates.append(
            _rate(
                [
                    promotes(d, g) and float(d.mean()) >= 0.0 and not key.split("|")[2]
                    for key, (d, g) in power.items()
                ]
            )
        )
        print(f"| {name} | " + " | ".join(rates) + " |")


if __name__ == "__main__":
    main()
