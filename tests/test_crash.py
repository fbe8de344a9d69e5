"""Crash-consistent reruns: ``rlv2 train`` killed (SIGKILL) at each named point of
``rlv2.faults``, then run again, leaves a registry that tells the truth."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from rlv2 import tracking
from rlv2.domain import AGENT_SPECS
from rlv2.faults import KILL_ENV, KILL_POINTS, kill_point

# the guardrails off: the demo's sizing candidate then beats the logged behaviour, so the
# run moves an alias and the kill points in the promotion are reached
LOOSE = ("--pnl-tolerance", "1000", "--drawdown-tolerance", "1000")


def _marked(mark: str) -> list[int]:
    """Processes whose environment holds ``mark`` (a run's own and its children)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def _train(db: Path, cwd: Path, env: dict[str, str]) -> tuple[int, int, str, str]:
    """Run ``rlv2 train``: its process id, exit code, stdout and stderr."""
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("rlv2")), "train", "--db", str(db), *LOOSE],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = process.communicate(timeout=600)
    return process.pid, process.returncode, out, err


def test_an_unknown_kill_point_is_an_error_and_an_unset_one_does_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="not one of"):
        kill_point("nowhere")
    monkeypatch.delenv(KILL_ENV, raising=False)
    for point in KILL_POINTS:
        kill_point(point)  # still alive
    monkeypatch.setenv(KILL_ENV, "trained")
    kill_point("logging")  # another point: still alive


@pytest.mark.slow
@pytest.mark.server  # each `rlv2 train` starts a temporary Prefect server on loopback
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_rerun_after_a_kill_leaves_the_registry_consistent(
    point: str, demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "history.duckdb"
    shutil.copy(demo_db, db)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mark = f"RLV2_TEST_MARK={uuid.uuid4().hex}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "RLV2_TEST_MARK": mark.split("=", 1)[1],
    }
    for key in ("MLFLOW_REGISTRY_URI", "PREFECT_API_URL", KILL_ENV):
        env.pop(key, None)

    pid, code, out, err = _train(db, tmp_path, {**env, KILL_ENV: point})
    assert code == -9, out + err
    assert f"{KILL_ENV}: killed at {point}" in err
    deadline = time.monotonic() + 15
    while _marked(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _marked(mark)
    for pid in left:  # clean up before failing
        os.kill(pid, 9)
    assert not left, "a process of the killed rlv2 (its Prefect server) outlived it"

    _, code, out, err = _train(db, tmp_path, env)
    assert code in (0, 3), out + err  # 3: a refusal
    assert not _marked(mark)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    tracking.configure()
    client = MlflowClient()
    try:
        killed_runs = [
            run
            for name in (tracking.EXPERIMENT, tracking.PROMOTION_EXPERIMENT)
            for run in client.search_runs([tracking.experiment_id(name)], max_results=1000)
            if run.data.tags.get(tracking.PROCESS_TAG, "").split(":")[1:2] == [str(pid)]
        ]
        # what the killed process left open is FAILED, never RUNNING
        assert "RUNNING" not in [run.info.status for run in killed_runs]
        if point in ("logging", "decision-log"):  # the kill came with a run open
            assert "FAILED" in [run.info.status for run in killed_runs]
        log = tracking.promotion_log()
        assert bool(log["reason"].notna().all())  # no half-written entry is read as one
        for agent, spec in AGENT_SPECS.items():
            versions = client.search_model_versions(f"name = '{spec.model_name}'")
            digests = [v.tags["q_sha256"] for v in versions]
            assert len(digests) == len(set(digests)) == 1, (agent, digests)  # one table, once
            for alias in client.get_registered_model(spec.model_name).aliases:
                # an aliased version loads, its artifacts verified against its digest
                assert tracking.load_q_table(agent, alias) is not None
            production = tracking.production_version(agent)
            entries = log[(log["agent"] == str(agent)) & (log["decision"] == "promoted")]
            # one alias move, one log entry for it
            assert list(entries["version"]) == ([int(production.version)] if production else [])
        # the demo's sizing table beats the logged behaviour: the rerun completed it
        assert tracking.production_version("position_sizing") is not None
        [sizing] = [row for row in tracking.status() if row["agent"] == "position_sizing"]
        assert sizing["figures"]["decision"] == "promoted"
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def _tiny_tmpfs_works(folder: Path) -> bool:
    """Whether this host lets an unprivileged process mount a tmpfs in its own namespace."""
    probe = subprocess.run(
        ["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.server  # each `rlv2 train` starts a temporary Prefect server on loopback
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare")
def test_a_run_whose_artifacts_cannot_be_written_is_failed_and_registers_nothing(
    demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The artifact store full (ENOSPC): ``mlartifacts/`` beside the SQLite store is a
    64 KiB tmpfs, mounted in a mount namespace of the ``rlv2 train`` process alone."""
    artifacts = tmp_path / "mlartifacts"
    artifacts.mkdir()
    if not _tiny_tmpfs_works(artifacts):
        pytest.skip("this host does not let an unprivileged process mount a tmpfs")
    db = tmp_path / "history.duckdb"
    shutil.copy(demo_db, db)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for key in ("MLFLOW_REGISTRY_URI", "PREFECT_API_URL", KILL_ENV):
        env.pop(key, None)
    rlv2 = str(Path(sys.executable).with_name("rlv2"))
    mount_then_run = 'mount -t tmpfs -o size=64k tmpfs "$1" && shift && exec "$@"'
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", mount_then_run, "sh", str(artifacts)]
        + [rlv2, "train", "--db", str(db), *LOOSE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("rlv2 train: error")]
    assert len(errors) == 1, done.stderr  # one line says why
    assert "No space left on device" in errors[0] and "the run is FAILED" in errors[0]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    tracking.configure()
    client = MlflowClient()
    try:
        runs = client.search_runs([tracking.experiment_id(tracking.EXPERIMENT)])
        assert runs and {run.info.status for run in runs} == {"FAILED"}
        for spec in AGENT_SPECS.values():
            assert not client.search_model_versions(f"name = '{spec.model_name}'")
        assert tracking.promotion_log().empty  # no gate ran, no alias moved
        assert all(row["production_version"] is None for row in tracking.status())
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
