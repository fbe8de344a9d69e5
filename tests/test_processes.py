"""rlv2.processes, and what it is for: runs left RUNNING by a killed process end FAILED."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from rlv2 import tracking
from rlv2.processes import is_gone, this_process


def test_this_process_is_alive_and_a_finished_one_is_gone() -> None:
    assert not is_gone(this_process())
    done = subprocess.run(
        [sys.executable, "-c", "from rlv2.processes import this_process; print(this_process())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert is_gone(done.stdout.strip())
    host, pid, start = this_process().split(":")
    assert is_gone(f"{host}:{pid}:{int(start or 0) + 1}")  # the same id, another process
    assert not is_gone(f"elsewhere:{pid}:{start}")  # another host's: cannot tell
    assert not is_gone("garbage")


@pytest.fixture
def store(mlflow_sqlite: str) -> str:
    """The module's MLflow store: a fresh SQLite one (``conftest.mlflow_sqlite``)."""
    return mlflow_sqlite


def test_a_run_of_a_killed_process_is_marked_failed_at_the_next_start(store: str) -> None:
    code = (
        "import os, sys\nfrom rlv2 import tracking\ntracking.configure()\n"
        "with tracking.start_run('doomed', {'alpha': 0.1}) as run:\n"
        "    print(run.info.run_id, flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy()
    )
    assert killed.returncode == -9
    run_id = killed.stdout.strip()
    client = MlflowClient()
    assert client.get_run(run_id).info.status == "RUNNING"
    with tracking.start_run("alive", {"alpha": 0.2}) as mine:
        assert tracking.fail_stale_runs() == [run_id]  # not the live run of this process
        tracking.configure()  # which every rlv2 command runs first
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["rlv2.failed_reason"].startswith("process ")
    assert client.get_run(mine.info.run_id).info.status == "FINISHED"
