"""rlv2.registry_lock and what it guards: one registry writer at a time, compare-and-set
promotions, identical tables registered once, also when runs start together."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from rlv2 import registry_lock, tracking
from rlv2.actions import sizing_space
from rlv2.registry_lock import LOCK_MODEL, RegistryBusy
from rlv2.states import SIZING_STATE_SPACE
from tests.conftest import MlflowServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(mlflow_sqlite: str) -> str:
    """The module's MLflow store: a fresh SQLite one (``conftest.mlflow_sqlite``)."""
    return mlflow_sqlite


def sizing_q(best: int) -> np.ndarray:
    q = np.zeros((SIZING_STATE_SPACE.n_states, sizing_space.n))
    q[5, best] = 1.0
    return q


def run_together(*jobs: Callable[[], Any]) -> list[Any]:
    """Run the jobs on threads released at the same instant; their results, in order."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = jobs[i]()
        except BaseException as error:  # reported below
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return results


# --- the lock itself ------------------------------------------------------------------------


def _exclusive(lock: Callable[[], Any], n: int = 4) -> None:
    """n threads take the lock at once: never two inside it together."""
    inside: list[int] = []
    overlaps: list[int] = []

    def hold() -> None:
        with lock():
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(len(inside))
            time.sleep(0.05)
            inside.pop()

    run_together(*[hold] * n)
    assert not overlaps


def test_the_file_lock_of_a_sqlite_store_admits_one_holder(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _exclusive(lambda: registry_lock.registry_lock(uri, "test"))
    assert (tmp_path / "mlflow.db.rlv2-lock").is_file()


def test_the_lock_is_reentrant_and_a_long_wait_names_the_holder(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with registry_lock.registry_lock(uri, "outer"), registry_lock.registry_lock(uri, "inner"):
        failure: list[BaseException] = []

        def other() -> None:
            try:
                with registry_lock.registry_lock(uri, "other", wait_seconds=0.3):
                    pass
            except RegistryBusy as error:
                failure.append(error)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert failure and "(outer)" in str(failure[0]) and "held by" in str(failure[0])
    with registry_lock.registry_lock(uri, "after"):  # released by the outer block
        pass


def test_a_killed_holder_releases_the_file_lock(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    code = (
        "import sys, time\nfrom rlv2.registry_lock import registry_lock\n"
        f"with registry_lock({uri!r}, 'doomed'):\n    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(RegistryBusy, match="doomed"):
        with registry_lock.registry_lock(uri, "waiter", wait_seconds=0.3):
            pass
    holder.kill()
    holder.wait()
    with registry_lock.registry_lock(uri, "waiter", wait_seconds=5):
        pass


def test_the_lease_in_the_registry_admits_one_holder_and_expires(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the lease serves a tracking server; the registry API is the same on a SQLite store
    def lease() -> Any:
        return registry_lock._lease(store, "test", 60)

    _exclusive(lease)
    client = MlflowClient()
    assert LOCK_MODEL not in [m.name for m in client.search_registered_models()]
    monkeypatch.setattr(registry_lock, "LEASE_SECONDS", -1.0)  # a holder that died
    abandoned = registry_lock._lease(store, "dead", 60)
    abandoned.__enter__()
    with registry_lock._lease(store, "next", 5):
        owner = client.get_registered_model(LOCK_MODEL).tags["owner"]
        assert owner.endswith("(next)")
    abandoned.__exit__(None, None, None)  # its lease was broken: it removes nothing
    assert LOCK_MODEL not in [m.name for m in client.search_registered_models()]


def test_every_deployment_runs_one_at_a_time() -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    config = PrefectYamlModel.model_validate(yaml.safe_load((ROOT / "prefect.yaml").read_text()))
    assert config.deployments
    for deployment in config.deployments:
        limit = deployment.concurrency_limit
        assert limit is not None and not isinstance(limit, int), deployment.name
        assert (limit.limit, limit.collision_strategy) == (1, "ENQUEUE"), deployment.name


# --- what it guards -------------------------------------------------------------------------


def test_identical_tables_registered_together_make_one_version(store: str) -> None:
    def register() -> str:
        version = tracking.log_policy_model("position_sizing", sizing_q(7), SIZING_STATE_SPACE)
        assert version is not None
        return str(version.version)

    assert run_together(register, register, register) == ["1", "1", "1"]
    versions = MlflowClient().search_model_versions("name = 'rlv2-position-sizing'")
    assert [str(v.version) for v in versions] == ["1"]


def test_promotions_compare_and_set_and_the_log_tells_the_truth(store: str) -> None:
    agent = "position_sizing"
    for best in (1, 2, 3):
        tracking.log_policy_model(agent, sizing_q(best), SIZING_STATE_SPACE)
    tracking.promote(agent, 1, {"reason": "first"}, expected=None)
    # three gates ran against v1: two for v2 (two runs trained the same table), one for v3
    outcomes = run_together(
        lambda: tracking.promote(agent, 2, {"reason": "gate A"}, expected=1),
        lambda: tracking.promote(agent, 2, {"reason": "gate B"}, expected=1),
        lambda: tracking.promote(agent, 3, {"reason": "gate C"}, expected=1),
    )
    winner = 3 if outcomes[2] == tracking.PROMOTED else 2
    assert outcomes.count(tracking.PROMOTED) == 1
    if winner == 2:
        assert sorted(outcomes[:2]) == [tracking.ALREADY, tracking.PROMOTED]
        assert outcomes[2] == tracking.STALE
    else:
        assert outcomes[:2] == [tracking.STALE, tracking.STALE]
    assert tracking.production_version(agent).version == winner  # type: ignore[union-attr]
    log = tracking.promotion_log(agent)
    promoted = log[log["decision"] == "promoted"]
    assert list(promoted["version"]) == [winner, 1]
    assert promoted.iloc[0]["champion_version"] == 1  # the comparison its gate made
    refused = log[log["decision"] == "refused"]
    assert len(refused) == (1 if winner == 2 else 2)
    for _, row in refused.iterrows():
        assert row["reason"].startswith("production changed since the gate ran")
        assert f"production is now v{winner}" in row["reason"]
        assert row["version"] != winner


def test_a_promotion_killed_after_the_alias_moved_is_recorded_on_rerun(store: str) -> None:
    agent, name = "position_sizing", "rlv2-position-sizing"
    client = MlflowClient()
    for best in (1, 2):
        tracking.log_policy_model(agent, sizing_q(best), SIZING_STATE_SPACE)
    tracking.promote(agent, 1, {"reason": "first"}, expected=None)
    client.set_registered_model_alias(name, "previous", "1")  # killed here
    client.set_registered_model_alias(name, "production", "2")
    assert tracking.complete_promotion(agent, 2)
    assert not tracking.complete_promotion(agent, 2)  # once
    log = tracking.promotion_log(agent)
    assert list(log["decision"]) == ["promoted", "promoted"]
    assert log.iloc[0]["version"] == 2 and log.iloc[0]["champion_version"] == 1
    assert "recorded after the fact" in log.iloc[0]["reason"]
    status = [row for row in tracking.status() if row["agent"] == agent][0]
    assert status["figures"]["decision"] == "promoted"


# --- whole runs at once ---------------------------------------------------------------------


def _rlv2(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("rlv2")), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_two_trains_and_a_promote_started_together(
    demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `rlv2 train` and an `rlv2 promote` on one database and one new SQLite store."""
    db = tmp_path / "history.duckdb"
    shutil.copy(demo_db, db)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("MLFLOW_REGISTRY_URI", None)
    # the guardrails off: the demo's sizing candidate wins on its reward, and this test is
    # about one promotion among concurrent writers, not about what the guardrails refuse
    loose = ("--pnl-tolerance", "1000", "--drawdown-tolerance", "1000")
    runs = [
        _rlv2("train", "--db", str(db), *loose, cwd=tmp_path, env=env),
        _rlv2("train", "--db", str(db), *loose, cwd=tmp_path, env=env),
        _rlv2(
            "promote", "--db", str(db), "--agent", "position_sizing", *loose, cwd=tmp_path, env=env
        ),
    ]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    for run, output in zip(runs[:2], outputs[:2], strict=True):
        assert run.returncode in (0, 3), output  # 3: a candidate was refused (documented)
    # the promote may start before anything is registered: then it says so and fails cleanly
    assert runs[2].returncode in (0, 3) or "no registered version" in outputs[2], outputs[2]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracking.configure()
    client = MlflowClient()
    for name in ("rlv2-meta-strategy", "rlv2-position-sizing"):
        versions = client.search_model_versions(f"name = '{name}'")
        assert [str(v.version) for v in versions] == ["1"], name  # one table, registered once
    log = tracking.promotion_log()
    for agent in ("meta_strategy", "position_sizing"):
        entries = log[log["agent"] == agent]
        promoted = entries[entries["decision"] == "promoted"]
        production = tracking.production_version(agent)
        assert len(promoted) == (production is not None)  # one record per alias move
        if production is not None:
            assert promoted.iloc[0]["version"] == int(production.version)
            assert "champion_version" not in promoted or promoted["champion_version"].isna().all()
        assert not (entries["decision"] == "refused").any() or production is None
    # the nightly's sizing table beats the logged behaviour (the demo): one new production
    assert tracking.production_version("position_sizing").version == 1  # type: ignore[union-attr]
    said = "\n".join(outputs)
    assert said.count("position_sizing v1: PROMOTED vs logged on") == 1, said  # CLI summaries
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def test_the_gate_rerun_records_a_promotion_killed_after_the_alias_moved(
    prefect_harness, store: str
) -> None:
    from rlv2.flows.promote import Candidate, gate_candidates
    from rlv2.pipeline import TrainConfig

    agent, name = "position_sizing", "rlv2-position-sizing"
    client = MlflowClient()
    for best in (1, 2):
        tracking.log_policy_model(agent, sizing_q(best), SIZING_STATE_SPACE)
    tracking.promote(agent, 1, {"reason": "first"}, expected=None)
    client.set_registered_model_alias(name, "previous", "1")  # promote(2) killed after
    client.set_registered_model_alias(name, "production", "2")  # moving production
    [before] = [row for row in tracking.status() if row["agent"] == agent]
    assert before["figures"] == {}  # status showed no decision for production

    candidate = Candidate("2", sizing_q(2), None)  # type: ignore[arg-type]  # never judged
    out = gate_candidates({agent: candidate}, TrainConfig())
    assert out[agent]["reason"] == "already"
    log = tracking.promotion_log(agent)
    assert list(log["version"]) == [2, 1] and list(log["decision"]) == ["promoted"] * 2
    assert log.iloc[0]["champion_version"] == 1
    [after] = [row for row in tracking.status() if row["agent"] == agent]
    assert after["figures"]["decision"] == "promoted"


@pytest.mark.server
def test_the_lease_on_a_tracking_server_admits_one_holder_and_expires(
    mlflow_auth_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = mlflow_auth_server.uri
    mlflow_auth_server.sign_in(monkeypatch)
    client = MlflowClient(uri, uri)
    assert registry_lock.sqlite_path(uri) is None  # an http store takes the lease
    _exclusive(lambda: registry_lock.registry_lock(uri, "test", wait_seconds=60))
    assert LOCK_MODEL not in [m.name for m in client.search_registered_models()]
    with registry_lock.registry_lock(uri, "holder"):
        assert client.get_registered_model(LOCK_MODEL).tags["owner"].endswith("(holder)")
    monkeypatch.setattr(registry_lock, "LEASE_SECONDS", -1.0)  # a holder that died
    abandoned = registry_lock._lease(uri, "dead", 60)
    abandoned.__enter__()
    with registry_lock._lease(uri, "next", 5):
        assert client.get_registered_model(LOCK_MODEL).tags["owner"].endswith("(next)")
    abandoned.__exit__(None, None, None)  # its lease was broken: it removes nothing
    assert LOCK_MODEL not in [m.name for m in client.search_registered_models()]
    assert not [m.name for m in client.search_registered_models() if "stale" in m.name]
