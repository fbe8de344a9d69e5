"""The README's live-consumer example runs as written (with its placeholders filled in)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

PLACEHOLDERS = """
import numpy as np
signal_id = "sig-1"
last_pnls = [1.5, -0.7, 2.0]
equity_curve = [100.0, 100.15, 100.08, 100.28]
sizing_code = 39
pnl_pct, max_dd_pct = 2.5, 1.0
sharpe, alignment_score = 0.3, 0.72
next_meta_features = None  # set below, after the example's own features exist
"""


def test_live_consumer_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    example = next(b for b in blocks if "EpisodeTracker(" in b)
    example = example.replace("prices = [...]", "prices = list(100 + np.arange(20) * 0.5)")
    example = example.replace(
        "meta.update(r_meta, next_meta_features",
        "next_meta_features = meta_features\nmeta.update(r_meta, next_meta_features",
    )
    example = example.replace(
        "sizing.update(r_size, next_sizing_features",
        "next_sizing_features = {'signal_confidence': 0.7, 'portfolio_exposure': 0.3, "
        "'recent_winrate': 0.5, 'volatility': 0.02, 'equity_curve_slope': 0.0}\n"
        "sizing.update(r_size, next_sizing_features",
    )
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(PLACEHOLDERS + example, "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["tracker"].get_episode_stats()["n_episodes"] == 1
    assert (tmp_path / "qtables.npz").exists()
    assert namespace["meta"].get_stats()["n_updates"] == 1


def test_the_refusal_automation_is_a_valid_prefect_automation():
    import yaml
    from prefect.events.schemas.automations import AutomationCore

    block = next(b for b in re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S))
    automation = AutomationCore.model_validate(yaml.safe_load(block))
    assert automation.trigger.expect == {"prefect.flow-run.Refused"}  # type: ignore[union-attr]
    assert automation.actions[0].type == "send-notification"
