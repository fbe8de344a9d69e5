"""The promotion gate as a flow: champion/challenger on the holdout, aliases in MLflow.

Judging is separate from recording: ``judge_candidate`` computes the decision (no I/O),
``record_decision`` moves the aliases and writes the decision. Neither is retried: a
retry after a partial write would record a second decision. An interrupted promotion
is completed by running the gate again (``tracking.promote`` sets ``previous`` before
``production`` and records the decision last; a candidate found in production already
has a missing log entry written, ``tracking.complete_promotion``).

One promotion at a time: ``record_decision`` hands ``tracking.promote`` the production
version the gate compared against, and the promotion happens only if production is still
that version when, under the registry lock, the aliases are about to move
(compare-and-set); otherwise it is recorded as refused, naming what production became.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from rlv2 import pipeline, tracking
from rlv2.domain import Agent, agent_spec
from rlv2.flows.common import (
    DEFAULT_CONFIG,
    DEFAULT_DB,
    IO_RETRIES,
    db_path,
    load_production,
    load_window,
    plan_split,
)
from rlv2.pipeline import TrainConfig, WindowData


@task(cache_policy=NO_CACHE)
def judge_candidate(
    agent: str,
    candidate_q: np.ndarray,
    holdout: WindowData,
    config: TrainConfig,
    champion: tuple[str | None, np.ndarray | None],
    partner_q: np.ndarray | None,
) -> dict[str, Any]:
    """The gate's decision and figures: the candidate against the champion on the holdout."""
    champion_version, champion_q = champion
    champion_name = f"production v{champion_version}" if champion_version else "logged"
    decision, cand_metrics, champ_metrics = pipeline.promotion_gate(
        agent, holdout, config, candidate_q, champion_q, partner_q, champion_name
    )
    return {
        **decision.as_dict(),
        **{f"candidate.{k}": v for k, v in cand_metrics.items()},
        **{f"champion.{k}": v for k, v in champ_metrics.items()},
        "holdout_start": str(holdout.start),
        "holdout_end": str(holdout.end),
    }


@task(cache_policy=NO_CACHE)
def record_decision(
    agent: str, version: str, figures: dict[str, Any], expected: str | None
) -> dict[str, Any]:
    """Promote the candidate if the gate says so and production is still ``expected``;
    record the decision either way. Returns what changed in ``figures`` (a promotion
    refused because production moved, or found done already)."""
    changed: dict[str, Any] = {}
    if figures["promote"]:
        outcome = tracking.promote(agent, version, figures, expected=expected)
        if outcome == tracking.STALE:
            changed = {"promote": False, "reason": "production changed since the gate ran"}
        elif outcome == tracking.ALREADY:
            changed = {"promote": False, "reason": "already"}
    else:
        tracking.record_decision(agent, version, {**figures, "decision": "refused"})
    decided = {**figures, **changed}
    verdict = "PROMOTED" if decided["promote"] else "refused"
    print(f"{agent} v{version}: {verdict} vs {figures['champion']}: {decided['reason']}")
    return changed


def gate_candidates(
    candidates: dict[str, tuple[str, np.ndarray]],
    holdout: WindowData,
    config: TrainConfig,
) -> dict[str, dict[str, Any]]:
    """Gate each agent's candidate, the other agent playing its production table.

    Each production version is read from the registry once, before any gate moves an
    alias: it is one agent's champion and the other's partner.
    """
    production = {agent: load_production(agent, config) for agent in Agent}
    out = {}
    for agent, (version, q) in candidates.items():
        (other,) = (a for a in Agent if a != agent)
        champion = production[agent]
        if champion[0] == str(version):
            if tracking.complete_promotion(agent, version):
                print(f"{agent}: v{version} was in production without a log entry; recorded")
            print(f"{agent}: v{version} is already in production")
            out[str(agent)] = {
                "agent": str(agent),
                "version": version,
                "promote": False,
                "reason": "already",
            }
            continue
        figures = judge_candidate(agent, q, holdout, config, champion, production[other][1])
        changed = record_decision(agent, version, figures, champion[0])
        out[str(agent)] = {"agent": str(agent), "version": version, **figures, **changed}
    return out


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def load_candidate(agent: str, version: str | None) -> tuple[str, np.ndarray]:
    """A registered version's Q-table (default: the agent's newest version)."""
    chosen = version or tracking.latest_version(agent)
    if chosen is None:
        raise ValueError(f"no registered version of {agent_spec(agent).model_name} to gate")
    loaded = tracking.load_q_table(agent, version=str(chosen))
    if loaded is None:
        raise ValueError(f"{agent_spec(agent).model_name} v{chosen} not found")
    return str(chosen), loaded[0]


@flow(name="promote", log_prints=True)
def promote(
    agent: str = "both",
    version: str | None = None,
    db: str = DEFAULT_DB,
    config: TrainConfig = DEFAULT_CONFIG,
) -> dict[str, dict[str, Any]]:
    """Gate registered candidates (default: each agent's newest version) against production.

    ``config`` gives the holdout (``holdout_fraction``, the features), the gate
    (``metric``, ``margin``, ``n_boot``, ``confidence``, the bootstrap's ``replay.seed``)
    and the rewards' weights; its training fields are not used.
    """
    tracking.configure()
    agents = list(Agent) if agent == "both" else [agent_spec(agent).agent]
    if version is not None and len(agents) != 1:
        raise ValueError("--version needs a single --agent")
    path = db_path(db)
    split = plan_split(path, config.holdout_fraction)
    holdout = load_window(path, split.holdout_start, split.holdout_end, config)
    candidates = {name: load_candidate(name, version) for name in agents}
    return gate_candidates(candidates, holdout, config)
