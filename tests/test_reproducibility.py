"""The demo's Q-tables and promotion decisions, pinned by a stored digest.

``rlv2 demo`` is deterministic: the same bundled bars, seeds and code give the same
registered Q-tables (their ``q_sha256``) and the same gate figures, to the last bit.
A refactoring must keep them; a change of behaviour updates ``data/demo_digest.json``
on purpose (``RLV2_WRITE_DIGEST=1 pytest tests/test_reproducibility.py``) and says why.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

from rlv2 import cli

pytestmark = pytest.mark.slow

DIGEST_FILE = Path(__file__).parent / "data" / "demo_digest.json"
VOLATILE_TAGS = {"run_id", "promotion.timestamp", "promotion.run_id"}
"""Tags that differ between runs by design (ids and clocks), left out of the digest."""


def registry_summary(client: MlflowClient) -> dict[str, Any]:
    """Every registered version's Q-table digest and decision tags, in a stable order."""
    versions = {}
    for model in client.search_registered_models():
        for v in client.search_model_versions(f"name = '{model.name}'"):
            tags = {k: t for k, t in sorted(v.tags.items()) if k not in VOLATILE_TAGS}
            versions[f"{model.name} v{v.version}"] = tags
    return dict(sorted(versions.items()))


def digest(summary: dict[str, Any]) -> str:
    """sha256 of the summary's canonical JSON."""
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


@pytest.fixture
def demo_store(prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run ``rlv2 demo`` in an empty directory; yield a client on the store it wrote."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert cli.main(["demo", "--db", str(tmp_path / "demo.duckdb")]) == 0
    yield MlflowClient(tracking_uri=uri, registry_uri=uri)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def test_the_demo_registers_the_stored_q_tables_and_decisions(demo_store: MlflowClient):
    summary = registry_summary(demo_store)
    if os.environ.get("RLV2_WRITE_DIGEST") == "1":
        DIGEST_FILE.write_text(
            json.dumps({"sha256": digest(summary), "versions": summary}, indent=1) + "\n"
        )
    stored = json.loads(DIGEST_FILE.read_text())
    assert summary == stored["versions"]
    assert digest(summary) == stored["sha256"]
