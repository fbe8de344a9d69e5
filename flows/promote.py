"""The promotion gate as a flow: champion/challenger on the holdout, aliases in MLflow.

Each candidate is judged on its own holdout: the window its training run recorded on the
version (``rlv2.pipeline.TrainingWindows``), from its recorded start to the newest
decision (``pipeline.gate_holdout``), never one recomputed from this flow's settings. A
requested holdout (``holdout_fraction``) that would overlap a candidate's training window
is refused before any gate runs.

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

from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, State

from rlv2 import history, off_policy, pipeline, store, tracking
from rlv2.console import progress, when
from rlv2.domain import Agent, agent_spec
from rlv2.flows.common import (
    DEFAULT_CONFIG,
    DEFAULT_DB,
    IO_RETRIES,
    db_path,
    load_production,
    load_window,
)
from rlv2.flows.explain import REFUSED_STATE, explain_decision
from rlv2.pipeline import TrainConfig, TrainingWindows, WindowData


class Candidate(NamedTuple):
    """A registered version to gate, with its Q-table and the holdout it is judged on."""

    version: str
    q: np.ndarray
    holdout: WindowData


@task(cache_policy=NO_CACHE)
def judge_candidate(
    agent: str,
    candidate_q: np.ndarray,
    holdout: WindowData,
    config: TrainConfig,
    champion: tuple[str | None, np.ndarray | None],
    partner_q: np.ndarray | None,
) -> dict[str, Any]:
    """The gate's decision and figures: the candidate against the champion on the holdout.

    Beside them, when the holdout logged the agent's own propensities, the second opinion
    of ``rlv2.off_policy`` (``ips.*`` and ``ips_disagrees``): an alarm, never a reason.
    """
    champion_version, champion_q = champion
    champion_name = f"production v{champion_version}" if champion_version else "logged"
    decision, cand_metrics, champ_metrics = pipeline.promotion_gate(
        agent, holdout, config, candidate_q, champion_q, partner_q, champion_name
    )
    opinion = off_policy.second_opinion(
        agent, candidate_q, holdout.inputs, holdout.transitions, config.replay
    )
    if opinion is not None:
        _print_opinion(agent, opinion)
    return {
        **decision.as_dict(),
        **{f"candidate.{k}": v for k, v in cand_metrics.items()},
        **{f"champion.{k}": v for k, v in champ_metrics.items()},
        **(opinion.figures() if opinion is not None else {}),
        "holdout_start": str(holdout.start),
        "holdout_end": str(holdout.end),
    }


def _print_opinion(agent: str, opinion: off_policy.SecondOpinion) -> None:
    """One line: the simulated value beside the SNIPS estimate, and the alarm if raised."""
    e = opinion.estimate
    alarm = " DISAGREE (alarm, not a gate)" if opinion.disagrees else ""
    print(
        f"{agent}: simulated {opinion.simulated:.4f} vs SNIPS {e.value:.4f} ± {e.se:.4f} "
        f"({e.matched} of {e.n} logged trades match, ESS {e.ess:.1f}){alarm}"
    )


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
    candidates: dict[str, Candidate], config: TrainConfig
) -> dict[str, dict[str, Any]]:
    """Gate each agent's candidate on its holdout, the other agent playing its production
    table.

    Each production version is read from the registry once, before any gate moves an
    alias: it is one agent's champion and the other's partner.
    """
    production = {agent: load_production(agent, config) for agent in Agent}
    out = {}
    for agent, candidate in candidates.items():
        version = candidate.version
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
        figures = judge_candidate(
            agent, candidate.q, candidate.holdout, config, champion, production[other][1]
        )
        decided = {**figures, **record_decision(agent, version, figures, champion[0])}
        explain_decision(
            agent,
            version,
            decided,
            candidate.holdout,
            config,
            candidate.q,
            champion[1],
            production[other][1],
        )
        out[str(agent)] = {"agent": str(agent), "version": version, **decided}
    return out


def run_name() -> str:
    """The promote flow run's name: ``promote-position_sizing-v3``, ``promote-both-newest``."""
    params = flow_run.get_parameters()
    version = params.get("version")
    return f"promote-{params.get('agent', 'both')}-{f'v{version}' if version else 'newest'}"


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def load_candidate(agent: str, version: str | None) -> tuple[str, np.ndarray, TrainingWindows]:
    """A registered version's Q-table and recorded windows (default: the newest version).

    Raises ValueError naming the version when it records no windows (``TrainingWindows``).
    """
    name = agent_spec(agent).model_name
    chosen = version or tracking.latest_version(agent)
    if chosen is None:
        raise ValueError(f"no registered version of {name} to gate")
    loaded = tracking.load_q_table(agent, version=str(chosen))
    if loaded is None:
        raise ValueError(f"{name} v{chosen} not found")
    windows = TrainingWindows.from_tags(tracking.version_tags(agent, chosen), f"{name} v{chosen}")
    return str(chosen), loaded[0], windows


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def plan_holdout(
    db: str, version: str, windows: TrainingWindows, holdout_fraction: float | None
) -> tuple[datetime, datetime]:
    """The holdout a version is gated on (``pipeline.gate_holdout``), checking a request.

    ``holdout_fraction`` (None: none) is the requested holdout, the latest share of the
    decision points; one that would overlap the training window raises
    ``pipeline.HoldoutRefused``.
    """
    with store.connect(db, read_only=True) as con:
        _, last, _ = history.decision_bounds(con)
        requested = (
            None if holdout_fraction is None else history.holdout_start(con, holdout_fraction)
        )
    return pipeline.gate_holdout(
        windows, version, last, requested, f"holdout_fraction={holdout_fraction}"
    )


@flow(name="promote", flow_run_name=run_name, log_prints=True)
def promote(
    agent: str = "both",
    version: str | None = None,
    db: str = DEFAULT_DB,
    config: TrainConfig = DEFAULT_CONFIG,
    holdout_fraction: float | None = None,
) -> dict[str, dict[str, Any]] | State[Any]:
    """Gate registered candidates (default: each agent's newest version) against production.

    Each candidate is gated on the holdout its training run recorded, from its start to
    the newest decision. ``holdout_fraction`` is a request that is only checked: if the
    latest share of the decisions it names would overlap a candidate's training window,
    nothing is gated and ``pipeline.HoldoutRefused`` says why. ``config`` gives the
    features, the gate (``metric``, ``margin``, ``n_boot``, ``confidence``, the bootstrap's
    ``replay.seed``) and the rewards' weights; its ``holdout_fraction`` and training
    fields are not used. The run ends in the state ``Completed(name="Refused")`` when a
    candidate was refused (the decisions are its result either way).
    """
    tracking.configure()
    agents = list(Agent) if agent == "both" else [agent_spec(agent).agent]
    if version is not None and len(agents) != 1:
        raise ValueError("--version needs a single --agent")
    if holdout_fraction is not None and not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction={holdout_fraction} must be in (0, 1)")
    path = db_path(db)
    chosen = {name: load_candidate(name, version) for name in agents}
    bounds = {}
    for name, (number, _, windows) in chosen.items():  # every request checked before a gate
        label = f"{agent_spec(name).model_name} v{number}"
        bounds[name] = plan_holdout(path, label, windows, holdout_fraction)
        start, end = bounds[name]
        grown = "" if end == windows.holdout_end else f" (recorded to {when(windows.holdout_end)})"
        print(
            f"{label}: trained on {when(windows.train_start)} .. {when(windows.train_end)}; "
            f"gated on its holdout {when(start)} .. {when(end)}{grown}"
        )
    windows_loaded: dict[tuple[datetime, datetime], WindowData] = {}
    candidates = {}
    for name, (number, q, _) in chosen.items():
        if bounds[name] not in windows_loaded:
            windows_loaded[bounds[name]] = load_window(path, *bounds[name], config)
        candidates[name] = Candidate(number, q, windows_loaded[bounds[name]])
    progress("promote: the promotion gate")
    decisions = gate_candidates(candidates, config)
    names = pipeline.refused_agents(decisions)
    if names:
        return Completed(name=REFUSED_STATE, message=f"refused: {', '.join(names)}", data=decisions)
    return decisions
