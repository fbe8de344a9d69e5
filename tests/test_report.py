"""rlv2.report: the decision summaries and the one-file HTML report (the real one is opened
in Chromium by tests/test_flows.py)."""

from __future__ import annotations

import io
from html.parser import HTMLParser

import pytest
from matplotlib.figure import Figure

from rlv2 import report
from tests.headless_chromium import find_chromium, visit

DECISION = {
    "decision": "refused",
    "promote": False,
    "metric": "sizing_reward",
    "candidate_value": -0.47,
    "champion_value": -0.016,
    "difference": -0.457,
    "ci_low": -0.89,
    "ci_high": -0.02,
    "margin": 0.0,
    "n": 460,
    "champion": "production v1",
    "reason": "difference -0.457 below margin 0",
    "candidate.mean_pnl_pct": 0.01,
    "champion.mean_pnl_pct": 0.05,
    "pnl_tolerance": 0.0,
    "drawdown_tolerance": 1.0,
    "guardrail": "pnl",
    "timestamp": "2026-12-06T04:46:45+00:00",
}


def test_a_decision_reads_verdict_and_reason_first():
    text = report.decision_markdown("position_sizing", "2", DECISION, "#/experiments/2/runs/x")
    lines = text.splitlines()
    assert lines[0] == "### position_sizing v2: refused against production v1"
    rows = [line for line in lines if line.startswith("| ") and "---" not in line]
    assert rows[1].startswith("| decision | REFUSED") and rows[2].startswith("| reason |")
    assert "| interval | [-0.89, -0.02] |" in text
    assert "pnl tolerance 0, drawdown tolerance 1; broken: pnl" in text
    assert "| mean pnl per trade (%): candidate / champion | 0.01 / 0.05 |" in text
    assert text.rstrip().endswith("(#/experiments/2/runs/x)")


def test_a_version_description_says_what_trained_it_and_every_decision():
    training = {
        "learner": "full-information",
        "run_id": "abc123def4567890",
        "run_name": "nightly-retrain",
        "run_link": "#/experiments/1/runs/abc123def4567890",
        "params": {
            "train_start": "1999-02-02",
            "holdout_start": "2017-10-27",
            "holdout_end": "2018-12-26",
            "train_trades": "1698",
            "holdout_trades": "460",
        },
        "q_sha256": "f" * 64,
    }
    promoted = {**DECISION, "decision": "promoted", "reason": "beats logged"}
    text = report.version_description(
        "position_sizing", "2", training, [(DECISION, "#a"), (promoted, "#b")]
    )
    assert "- learner: **full-information**" in text
    assert "training 1999-02-02 to 2017-10-27 (1698 trades), holdout to 2018-12-26" in text
    assert "[nightly-retrain `abc123def456`](#/experiments/1/runs/abc123def4567890)" in text
    assert text.index("refused against") < text.index("promoted against")  # newest first
    assert "Not gated yet." in report.version_description("meta_strategy", "1", training, [])


class _Resources(HTMLParser):
    """Every tag name and every URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action")]


def _png() -> bytes:
    figure = Figure(figsize=(3, 2))
    figure.add_subplot().plot([0, 1], [1, 0])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_the_html_report_embeds_everything_and_escapes_text():
    run = {
        "run_id": "r1",
        "name": "nightly <retrain>",
        "params": {"train_start": "1999-02-02", "alpha": "0.01"},
        "metrics": {"holdout.mean_pnl_pct": 0.01},
        "tags": {"learner": "q-learning"},
    }
    gate = report.GateRecord("position_sizing", "2", DECISION, {"gate": _png()})
    page = report.render_html(
        run, {"learning": _png()}, {"holdout_comparison.csv": "metric,a\nsharpe,0.1\n"}, [gate]
    )
    parsed = _Resources()
    parsed.feed(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags
    assert parsed.urls and all(u.startswith("data:image/png;base64,") for u in parsed.urls)
    assert "nightly &lt;retrain&gt;" in page and "<retrain>" not in page
    assert "default-src 'none'" in page  # the page may fetch nothing
    assert page.index("Promotion decisions") < page.index("Metrics") < page.index("Figures")


def test_the_browser_check_sees_a_page_that_reaches_out(tmp_path):
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium not found (.ci/run installs Debian's chromium with apt-get)")
    page = tmp_path / "leaky.html"
    page.write_text('<html><body><img src="http://rlv2-test.invalid/x.png"></body></html>')
    seen = visit(page.as_uri(), binary)
    assert any(url.startswith("http://rlv2-test.invalid") for url in seen.requests)
    assert seen.images == [
        {"scheme": "http", "complete": True, "naturalWidth": 0, "naturalHeight": 0}
    ]
