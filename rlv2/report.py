"""What a person reads about a run and a decision: markdown summaries and a one-file HTML report.

Pure text: this module formats what ``rlv2.tracking`` reads back from MLflow (a run's
params, metrics and tags, its figures as PNG bytes, its holdout table, its promotion
decisions) and never talks to a store. The same decision summary is a registered
version's description, the gate's Prefect markdown artifact and a section of the report.

The HTML report is self-contained: CSS inline, images embedded as base64 ``data:`` URIs,
no script, no font or stylesheet from anywhere, so it opens offline and sends no request.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "GateRecord",
    "decision_markdown",
    "render_html",
    "version_description",
]

WINDOW_PARAMS = (
    ("train_start", "training from"),
    ("validation_start", "validation from (a sweep's fit window until)"),
    ("holdout_start", "holdout from (training until)"),
    ("holdout_end", "holdout until"),
    ("train_trades", "training trades"),
    ("validation_trades", "validation trades"),
    ("holdout_trades", "holdout trades"),
    ("train_trades_incomplete", "training trades left out (a model gave no signal)"),
    ("holdout_trades_incomplete", "holdout trades left out (a model gave no signal)"),
    ("account_equity", "the account's equity: recorded by the live system, or the model"),
    ("db.path", "history database"),
    ("db.fingerprint", "its fingerprint"),
    ("git.commit", "code (git commit)"),
)
"""The params that say what data and code a run saw, in reading order, with their names."""

FIGURE_TITLES = {
    "learning": "Learning curves",
    "policy_meta_strategy": "Meta-strategy policy map",
    "policy_position_sizing": "Position-sizing policy map",
    "q_values_meta_strategy": "Meta-strategy Q-values and visits",
    "q_values_position_sizing": "Position-sizing Q-values and visits",
    "holdout_equity": "Holdout equity",
    "changes_meta_strategy": "Meta-strategy: what changed from production",
    "changes_position_sizing": "Position-sizing: what changed from production",
    "sweep_scores": "Sweep scores",
    "sweep_learning": "Sweep learning curves",
    "gate": "The promotion gate",
}
"""Section titles of the figures, by name (others are titled by their name)."""


class GateRecord(NamedTuple):
    """One promotion decision on a version a run registered, with the gate's figures."""

    agent: str
    version: str
    decision: Mapping[str, Any]
    """A promotion-log entry (``rlv2.tracking.decisions_of``): decision, figures, reason."""
    figures: Mapping[str, bytes]
    """The gate's PNGs by name."""


def _number(value: Any, digits: int = 4) -> str:
    try:
        return f"{float(value):.{digits}g}"
    except (TypeError, ValueError):
        return str(value)


def _verdict(decision: Mapping[str, Any]) -> str:
    return str(decision.get("decision") or ("promoted" if decision.get("promote") else "refused"))


def decision_rows(decision: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The figures of a gate decision as (what, value) rows, in reading order."""
    rows = [
        ("decision", _verdict(decision).upper()),
        ("reason", str(decision.get("reason", ""))),
        ("champion", str(decision.get("champion", decision.get("champion_version", "")))),
        ("metric", str(decision.get("metric", ""))),
    ]
    if "difference" in decision:
        rows += [
            (
                "candidate / champion (mean per trade)",
                f"{_number(decision.get('candidate_value'))} / "
                f"{_number(decision.get('champion_value'))}",
            ),
            ("difference", _number(decision["difference"])),
            *(
                [("symbol-weighted difference", _number(decision["estimate"]))]
                if decision.get("bootstrap") == "newey-west-symbols" and "estimate" in decision
                else []
            ),
            (
                f"interval ({_number(float(decision.get('confidence', 0.95)) * 100, 3)} %)"
                if "confidence" in decision
                else "interval",
                f"[{_number(decision.get('ci_low'))}, {_number(decision.get('ci_high'))}]",
            ),
            ("margin", _number(decision.get("margin", 0.0))),
            ("trades compared", _number(decision.get("n", ""), 10)),
        ]
    if "bootstrap" in decision:
        # newey-west resamples nothing: its block_length is the long-run variance's bandwidth
        span = "bandwidth" if str(decision["bootstrap"]).startswith("newey-west") else "mean block"
        rows.append(
            (
                "bootstrap",
                f"{decision['bootstrap']}, {span} {_number(decision.get('block_length'), 3)}"
                f" trades, effective n {_number(decision.get('effective_n'), 4)}",
            )
        )
    rows.append(("guardrails", _guardrails(decision)))
    if "ips.snips" in decision:  # rlv2.off_policy: an alarm beside the decision, never a reason
        alarm = "DISAGREES (alarm)" if str(decision.get("ips_disagrees")) == "True" else "agrees"
        rows.append(
            (
                "second opinion (SNIPS of the logged propensities)",
                f"{_number(decision['ips.snips'])} ± {_number(decision.get('ips.se'))} vs "
                f"simulated {_number(decision.get('ips.simulated'))}: {alarm}",
            )
        )
    for key, name in (
        ("mean_pnl_pct", "mean pnl per trade (%)"),
        ("max_drawdown_pct", "max drawdown (%)"),
        ("sharpe", "Sharpe per trade"),
    ):
        cand, champ = decision.get(f"candidate.{key}"), decision.get(f"champion.{key}")
        if cand is not None and champ is not None:
            rows.append((f"{name}: candidate / champion", f"{_number(cand)} / {_number(champ)}"))
    if decision.get("holdout_start"):
        window = f"{decision['holdout_start']} to {decision.get('holdout_end', '')}"
        rows.append(("holdout", window))
    if decision.get("timestamp"):
        rows.append(("decided at (UTC)", str(decision["timestamp"])))
    return rows


def _guardrails(decision: Mapping[str, Any]) -> str:
    tolerances = [
        f"{name} tolerance {_number(decision[key])}"
        for key, name in (("pnl_tolerance", "pnl"), ("drawdown_tolerance", "drawdown"))
        if key in decision
    ]
    if not tolerances:
        return "none configured"
    broken = str(decision.get("guardrail", "") or "")
    return ", ".join(tolerances) + (f"; broken: {broken}" if broken else "; none broken")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def decision_markdown(
    agent: str,
    version: str,
    decision: Mapping[str, Any],
    link: str | None = None,
    level: int = 3,
) -> str:
    """A gate decision in markdown: a heading (of ``level``) with the verdict, then its
    figures."""
    champion = decision.get("champion", decision.get("champion_version", ""))
    heading = "#" * level
    lines = [f"{heading} {agent} v{version}: {_verdict(decision)} against {champion}", ""]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in decision_rows(decision)]
    if link:
        lines += ["", f"[The decision's run in MLflow]({link})"]
    return "\n".join(lines) + "\n"


def version_description(
    agent: str,
    version: str,
    training: Mapping[str, Any],
    decisions: Sequence[tuple[Mapping[str, Any], str | None]],
) -> str:
    """A registered version's description: what trained it, then every gate decision.

    ``training`` holds ``learner``, ``run_name``, ``run_link``, the window params
    (``train_start``, ``holdout_start``, ...) and ``q_sha256``; ``decisions`` the
    promotion-log entries of the version, newest first, each with its run's link.
    """
    params = training.get("params", {})
    lines = [
        f"## {agent} v{version}",
        "",
        "### What trained it",
        "",
        f"- learner: **{training.get('learner', 'unknown')}**",
        f"- training run: [{training.get('run_name', '')} "
        f"`{str(training.get('run_id', ''))[:12]}`]({training.get('run_link', '')})",
    ]
    if params.get("validation_start"):  # a sweep's best: fit, validation, then retrained
        lines.append(
            f"- data: tuned on {params['train_start']} to {params['validation_start']} "
            f"({params.get('train_trades', '?')} trades), validated to "
            f"{params.get('holdout_start', '?')} ({params.get('validation_trades', '?')} "
            "trades), then trained on both"
        )
    elif params.get("train_start"):
        lines.append(
            f"- data: training {params['train_start']} to {params.get('holdout_start', '?')} "
            f"({params.get('train_trades', '?')} trades), holdout to "
            f"{params.get('holdout_end', '?')} ({params.get('holdout_trades', '?')} trades)"
        )
    if params.get("db.path"):
        lines.append(f"- history: `{params['db.path']}` ({params.get('db.fingerprint', '')[:16]})")
    if training.get("flow_run_url"):
        lines.append(f"- Prefect flow run: {training['flow_run_url']}")
    if training.get("q_sha256"):
        lines.append(f"- Q-table sha256: `{training['q_sha256']}`")
    lines += ["", "### Gate decisions, newest first", ""]
    if not decisions:
        lines.append("Not gated yet.")
    for decision, link in decisions:
        lines.append(decision_markdown(agent, version, decision, link, level=4))
    return "\n".join(lines) + "\n"


# --- the HTML report ----------------------------------------------------------------------

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #1d1d1f; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-weight: 600; margin-bottom: 0.3em; }
.promoted { color: #007a4d; font-weight: 700; } .refused { color: #c0392b; font-weight: 700; }
.muted { color: #666; } code { font-size: 0.9em; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for value in row:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            text = _number(value, 6) if numeric else value
            cells.append(f"<td{' class=num' if numeric else ''}>{_esc(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _image(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    title = FIGURE_TITLES.get(name, name.replace("_", " "))
    return (
        f'<figure id="{_esc(name)}"><figcaption>{_esc(title)}</figcaption>'
        f'<img alt="{_esc(title)}" src="data:image/png;base64,{data}"></figure>'
    )


def _csv_table(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return ""
    body = [[_maybe_number(v) for v in row] for row in rows[1:]]
    return _table(body, rows[0])


def _maybe_number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _decision_section(record: GateRecord) -> str:
    verdict = _verdict(record.decision)
    parts = [
        f"<h3>{_esc(record.agent)} v{_esc(record.version)}: "
        f'<span class="{_esc(verdict)}">{_esc(verdict.upper())}</span></h3>',
        _table(decision_rows(record.decision)),
    ]
    parts += [_image(name, png) for name, png in sorted(record.figures.items())]
    return "\n".join(parts)


def render_html(
    run: Mapping[str, Any],
    figures: Mapping[str, bytes],
    tables: Mapping[str, str],
    gates: Sequence[GateRecord],
) -> str:
    """One self-contained HTML page about a run.

    ``run`` is ``rlv2.tracking.run_summary``; ``figures`` its PNGs by name; ``tables``
    CSV artifacts by name (the holdout comparison); ``gates`` the decisions on the
    versions it registered.
    """
    params: Mapping[str, str] = run.get("params", {})
    tags: Mapping[str, str] = run.get("tags", {})
    metrics: Mapping[str, float] = run.get("metrics", {})
    title = f"rlv2 run {run.get('name', '')}"
    facts = [
        ("run id", run.get("run_id", "")),
        ("status", run.get("status", "")),
        ("started (UTC)", run.get("start", "")),
        ("ended (UTC)", run.get("end", "")),
        ("MLflow", run.get("link", "")),
    ]
    facts += [(k, v) for k, v in sorted(tags.items()) if k != "run_key"]
    window = [(name, params[key]) for key, name in WINDOW_PARAMS if key in params]
    sections = [
        f"<h1>{_esc(title)}</h1>",
        f'<p class="muted">Written by <code>rlv2 report</code> from the MLflow run '
        f"<code>{_esc(run.get('run_id', ''))}</code>. Every image is embedded: the page "
        "needs no network.</p>",
        _table(facts),
        "<h2>Data window</h2>",
        _table(window) if window else '<p class="muted">No data window recorded.</p>',
        "<h2>Promotion decisions</h2>",
    ]
    if gates:
        sections += [_decision_section(g) for g in gates]
    else:
        sections.append('<p class="muted">No candidate of this run was gated.</p>')
    sections.append("<h2>Metrics</h2>")
    sections.append(_table(sorted(metrics.items()), ("metric", "value")))
    for name, text in sorted(tables.items()):
        sections += [f"<h2>{_esc(name.replace('_', ' ').removesuffix('.csv'))}</h2>"]
        sections.append(_csv_table(text))
    sections.append("<h2>Figures</h2>")
    ordered = sorted(
        figures, key=lambda n: (list(FIGURE_TITLES).index(n) if n in FIGURE_TITLES else 99, n)
    )
    sections += [_image(name, figures[name]) for name in ordered]
    sections.append("<h2>Parameters</h2>")
    sections.append(
        f"<details><summary>{len(params)} parameters</summary>"
        + _table(sorted(params.items()), ("parameter", "value"))
        + "</details>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title>"
        # no request may leave the page: inline styles and data: images only
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
