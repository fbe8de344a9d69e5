"""The promotion gate as a flow: champion/challenger on the holdout, aliases in MLflow."""

from __future__ import annotations

from typing import Any

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from rlv2 import pipeline, tracking
from rlv2.flows.common import DEFAULT_DB, db_path, load_window, plan_split, production_q
from rlv2.history import WindowData
from rlv2.pipeline import TrainConfig
from rlv2.replay import AGENTS


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def gate_agent(
    agent: str,
    version: str,
    candidate_q: np.ndarray,
    holdout: WindowData,
    config: TrainConfig,
    champion_q: np.ndarray | None,
    partner_q: np.ndarray | None,
) -> dict[str, Any]:
    """Compare a candidate with production on the holdout; record it; promote if it wins."""
    champion = tracking.production_version(agent)
    champion_name = f"production v{champion.version}" if champion is not None else "logged"
    if champion is not None and str(champion.version) == str(version):
        print(f"{agent}: v{version} is already in production")
        return {"agent": agent, "version": version, "promote": False, "reason": "already"}
    decision, cand_metrics, champ_metrics = pipeline.promotion_gate(
        agent, holdout, config, candidate_q, champion_q, partner_q, champion_name
    )
    figures = {
        **decision.as_dict(),
        **{f"candidate.{k}": v for k, v in cand_metrics.items()},
        **{f"champion.{k}": v for k, v in champ_metrics.items()},
        "holdout_start": str(holdout.start),
        "holdout_end": str(holdout.end),
    }
    if decision.promote:
        tracking.promote(agent, version, figures)  # records the decision itself
    else:
        tracking.record_decision(agent, version, {**figures, "decision": "refused"})
    verdict = "PROMOTED" if decision.promote else "refused"
    print(f"{agent} v{version}: {verdict} vs {champion_name}: {decision.reason}")
    return {"agent": agent, "version": version, **figures}


def gate_candidates(
    candidates: dict[str, tuple[str, np.ndarray]],
    holdout: WindowData,
    config: TrainConfig,
) -> dict[str, dict[str, Any]]:
    """Gate each agent's candidate, the other agent playing its production table.

    Each production table is loaded from the registry once: it is one agent's champion
    and the other's partner.
    """
    production = {agent: production_q.fn(agent, config) for agent in AGENTS}
    out = {}
    for agent, (version, q) in candidates.items():
        other = AGENTS[1] if agent == AGENTS[0] else AGENTS[0]
        out[agent] = gate_agent(
            agent, version, q, holdout, config, production[agent], production[other]
        )
    return out


@flow(name="promote", log_prints=True)
def promote(
    agent: str = "both",
    version: str | None = None,
    db: str = DEFAULT_DB,
    holdout_fraction: float = 0.2,
    metric: str = "reward",
    margin: float = 0.0,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Gate registered candidates (default: each agent's newest version) against production."""
    tracking.configure()
    agents = list(AGENTS) if agent == "both" else [agent]
    if version is not None and len(agents) != 1:
        raise ValueError("--version needs a single --agent")
    config = TrainConfig(holdout_fraction=holdout_fraction, metric=metric, margin=margin)
    config = config.with_hyperparameters(seed=seed)
    path = db_path(db)
    split = plan_split(path, holdout_fraction)
    holdout = load_window(path, split.holdout_start, split.holdout_end, config)
    candidates = {}
    for name in agents:
        chosen = version or tracking.latest_version(name)
        if chosen is None:
            raise ValueError(f"no registered version of {tracking.MODEL_NAMES[name]} to gate")
        loaded = tracking.load_q_table(name, version=str(chosen))
        if loaded is None:
            raise ValueError(f"{tracking.MODEL_NAMES[name]} v{chosen} not found")
        candidates[name] = (str(chosen), loaded[0])
    return gate_candidates(candidates, holdout, config)
