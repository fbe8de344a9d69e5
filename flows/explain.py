"""Tasks that show a person what a flow did: figures, version descriptions, Prefect
artifacts, the run's report, and the tags that tie MLflow runs to their flow run.

Everything here writes what it can write again: a figure or report overwrites itself, a
description is rebuilt from the promotion log, a tag is set to the same value. So the
MLflow writers are retried on transient errors like the other idempotent tasks
(``IO_RETRIES``); a retried artifact task adds one more version of a keyed Prefect
artifact, which shows the same content.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from rlv2 import evidence, figures, report, tracking
from rlv2.domain import agent_spec
from rlv2.flows.common import IO_RETRIES
from rlv2.pipeline import AgentTraining, TrainConfig, WindowData

REFUSED_STATE = "Refused"
"""Name of a flow run's Completed state when the gate refused a candidate."""


def flow_run_tags(**tags: Any) -> dict[str, str]:
    """Tags tying an MLflow run to the Prefect flow run that made it, plus ``tags``.

    ``prefect.flow_run_id`` inside a flow run, ``prefect.flow_run_url`` when a Prefect
    server with a UI is configured (``PREFECT_UI_URL``, derived from ``PREFECT_API_URL``).
    """
    out = {k: str(v) for k, v in tags.items()}
    run_id = flow_run.get_id()
    if run_id:
        out["prefect.flow_run_id"] = run_id
        out["prefect.flow_run_name"] = str(flow_run.get_name() or "")
        url = flow_run.get_flow_run_ui_url()
        if url and url.startswith(("http://", "https://")):
            out["prefect.flow_run_url"] = url
    return out


def artifact_key(kind: str, agent: str) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes): ``gate-meta-strategy``."""
    return f"{kind}-{agent}".replace("_", "-").lower()


@task(cache_policy=NO_CACHE)
def draw_training_figures(
    trained: dict[str, AgentTraining],
    train: WindowData,
    holdout: WindowData,
    config: TrainConfig,
    production: dict[str, np.ndarray | None],
) -> dict[str, Figure]:
    """Draw every figure of a training run (learning, policy maps, Q-values, holdout, changes)."""
    return evidence.training_figures(trained, train, holdout, config, production)


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def explain_decision(
    agent: str,
    version: str,
    decision: dict[str, Any],
    holdout: WindowData,
    config: TrainConfig,
    candidate_q: np.ndarray,
    champion_q: np.ndarray | None,
    partner_q: np.ndarray | None,
) -> str | None:
    """Show a gate decision: its chart on its promotion-log run, the version's description,
    a Prefect markdown artifact keyed per agent. Returns the promotion-log run id."""
    entries = tracking.decisions_of(agent, version)
    log_run = str(entries[0]["run_id"]) if entries else None
    runs = evidence.gate_runs(agent, holdout, config, candidate_q, champion_q, partner_q)
    chart = figures.gate(
        evidence.gate_evidence(agent, runs, config, decision, holdout.decision_symbols())
    )
    link = None
    if log_run is not None:
        tracking.log_figure(chart, "gate", run_id=log_run)
        tracking.set_run_tags(log_run, flow_run_tags())
        link = tracking.run_link(log_run)
    describe_version(agent, version)
    create_markdown_artifact(
        markdown=report.decision_markdown(agent, version, {**decision, **_decided(entries)}, link),
        key=artifact_key("gate", agent),
        description=f"The promotion gate's latest decision on {agent_spec(agent).model_name}",
    )
    return log_run


def _decided(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The recorded verdict and time of the newest decision (the gate's dict lacks them)."""
    if not entries:
        return {}
    return {"decision": entries[0].get("decision"), "timestamp": entries[0].get("timestamp")}


def describe_version(agent: str, version: str) -> None:
    """Rebuild a version's description: its training run and every decision on it."""
    registered = tracking.version_of(agent, version)
    training: dict[str, Any] = {
        "learner": registered.tags.get("learner", "unknown"),
        "q_sha256": registered.tags.get("q_sha256", ""),
    }
    if registered.run_id:
        run = tracking.run_summary(registered.run_id)
        training.update(
            run_id=registered.run_id,
            run_name=run["name"],
            run_link=run["link"],
            params=run["params"],
            flow_run_url=run["tags"].get("prefect.flow_run_url", ""),
        )
    decisions = [
        (d, tracking.run_link(str(d["run_id"]))) for d in tracking.decisions_of(agent, version)
    ]
    tracking.describe_version(
        agent, version, report.version_description(agent, version, training, decisions)
    )


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def log_report(run_id: str) -> str:
    """Attach the run's HTML report to it and link it from a Prefect markdown artifact."""
    tracking.log_text(run_id, tracking.run_report(run_id), tracking.REPORT_FILE)
    uri = tracking.artifact_uri(run_id, tracking.REPORT_FILE)
    link = tracking.run_link(run_id)
    create_markdown_artifact(
        markdown=(
            f"### Report of MLflow run `{run_id}`\n\n"
            f"- the report (one HTML file, images embedded): [{tracking.REPORT_FILE}]({uri})\n"
            f"- the run in MLflow: [{link}]({link})\n"
            f"- again from the command line: `rlv2 report {run_id} -o report.html`\n"
        ),
        key="nightly-report",
        description="The nightly retrain's report: parameters, data window, metrics, figures, "
        "promotion decisions",
    )
    print(f"report: {uri}")
    return uri


@task(cache_policy=NO_CACHE)
def publish_sweep_table(agent: str, table: Any) -> None:
    """The sweep's results as a Prefect table artifact, keyed per agent."""
    records = [{k: _plain(v) for k, v in row.items()} for row in table.to_dict("records")]
    create_table_artifact(
        table=records,
        key=artifact_key("sweep", agent),
        description=f"Sweep of {agent}: every configuration and its validation score, best first",
    )


def _plain(value: Any) -> Any:
    """A JSON-ready cell value."""
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)
