"""What the CLI shows: its summary, libraries' logs in a file, JSON, progress, fast checks."""

from __future__ import annotations

import argparse
import json
import logging
import os
import pty
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from rlv2 import cli, console

RLV2 = str(Path(sys.executable).with_name("rlv2"))
REPRS = ("{'", "None", ":00:00.000001", "Traceback")
"""What a Python repr or a traceback leaking into the output looks like."""


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    for key in ("PREFECT_API_URL", "MLFLOW_REGISTRY_URI", "RLV2_LOG_FILE", "RLV2_DB"):
        env.pop(key, None)
    return env


def rlv2(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RLV2, *args],
        cwd=cwd,
        env=env_for(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- options: the same in every subcommand -------------------------------------------------


def test_every_subcommand_takes_the_shared_options_or_says_why_not():
    without_db = {"rollback", "report"}  # MLflow only
    without_tracking = {"ingest", "demo-data"}  # DuckDB only
    for name, parser in subparsers().items():
        flags = {s for a in parser._actions for s in a.option_strings}
        assert {"-v", "--verbose", "--json"} <= flags, name
        assert ("--db" in flags) == (name not in without_db), name
        assert ("--tracking-uri" in flags) == (name not in without_tracking), name
        if name in without_db:
            assert "so it takes no --db" in (parser.description or ""), name
        if name in without_tracking:
            assert "so it takes no --tracking-uri" in (parser.description or ""), name


def test_help_shows_defaults_and_the_environment(capsys):
    assert cli.main(["--help"]) == 0
    top = capsys.readouterr().out
    for name in ("RLV2_DB", "MLFLOW_TRACKING_URI", "RLV2_LOG_FILE", "-v", "--json"):
        assert name in top
    for name, parser in subparsers().items():
        helps = {s: a.help or "" for a in parser._actions for s in a.option_strings}
        if "--db" in helps:
            assert "(default: $RLV2_DB, else rlv2.duckdb" in helps["--db"], name
        if "--tracking-uri" in helps:
            assert (
                "(default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)"
                in (helps["--tracking-uri"])
            ), name


def test_tracking_uri_is_the_store_a_command_uses(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/elsewhere.db"
    assert cli.main(["status", "--tracking-uri", uri, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["tracking_uri"] == uri and (tmp_path / "elsewhere.db").exists()
    assert "MLFLOW_TRACKING_URI" not in os.environ  # set for the command only
    assert not (tmp_path / "mlflow.db").exists()


# --- checks that need no orchestrator: one line, before Prefect --------------------------

PROBE = (
    "import sys\n"
    "from rlv2.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect')[:1])\n"
    "sys.exit(code)\n"
)
"""Runs the CLI in a process that then says whether Prefect was imported at all."""


def probe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=tmp_path,
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("command", ["train", "sweep", "promote"])
def test_a_missing_database_fails_in_one_line_before_prefect(tmp_path, command):
    done = probe(tmp_path, command, "--db", "missing.duckdb")
    assert done.returncode == cli.EXIT_FAILURE
    assert done.stdout.strip() == "[]", "Prefect was imported"
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"rlv2 {command}: error: DuckDB file {tmp_path}/missing.duckdb")
    assert not (tmp_path / "rlv2.log").exists()
    verbose = probe(tmp_path, command, "--db", "missing.duckdb", "-v")
    assert verbose.returncode == cli.EXIT_FAILURE
    assert "Traceback" in verbose.stderr and verbose.stderr.strip().endswith(line)
    first = probe(tmp_path, "-v", command, "--db", "missing.duckdb")  # before the subcommand
    assert first.returncode == cli.EXIT_FAILURE and first.stderr == verbose.stderr


def test_a_database_without_decisions_fails_in_one_line_before_prefect(tmp_path):
    from rlv2 import store

    with store.connect(tmp_path / "empty.duckdb") as con:
        store.apply_schema(con)
    done = probe(tmp_path, "train", "--db", "empty.duckdb")
    assert done.returncode == cli.EXIT_FAILURE and done.stdout.strip() == "[]"
    (line,) = done.stderr.strip().splitlines()
    assert "0 decision points in table signals" in line


def test_a_missing_version_fails_in_one_line_before_prefect(tmp_path, demo_db):
    done = probe(
        tmp_path, "promote", "--db", str(demo_db), "--agent", "meta_strategy", "--version", "99"
    )
    assert done.returncode == cli.EXIT_FAILURE and done.stdout.strip() == "[]"
    assert done.stderr.strip().splitlines() == [
        "rlv2 promote: error: rlv2-meta-strategy: no version 99 in the registry "
        f"sqlite:///{tmp_path}/mlflow.db"
    ]
    # answered without importing MLflow (seconds), from the store read directly
    quick = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE.replace("'prefect'", "'mlflow'"),
            "promote",
            "--db",
            str(demo_db),
            "--agent",
            "meta_strategy",
            "--version",
            "99",
        ],
        cwd=tmp_path,
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert quick.returncode == cli.EXIT_FAILURE and quick.stdout.strip() == "[]"
    both = probe(tmp_path, "promote", "--db", str(demo_db), "--version", "99")
    assert both.stderr.strip().splitlines() == [
        "rlv2 promote: error: --version needs a single --agent"
    ]


# --- quiet: the libraries' output in the log file ----------------------------------------


def test_quiet_sends_loggers_warnings_and_stderr_to_the_log(tmp_path, capsys):
    library = logging.getLogger("some.library")
    handler = logging.StreamHandler(sys.stderr)  # as a library sets itself up at import
    library.addHandler(handler)
    library.propagate = False
    log = tmp_path / "rlv2.log"
    try:
        with console.Quiet("train", path=log) as quiet:
            library.warning("a library's warning")
            warnings.warn("a deprecation nobody here can act on", DeprecationWarning, stacklevel=1)
            print("a progress bar", file=sys.stderr)
            print("the command's own line", file=console.terminal())
        quiet.note_log()
        library.warning("after the command")
    finally:
        library.removeHandler(handler)
    err = capsys.readouterr().err
    assert err.splitlines() == ["the command's own line", f"log: {log}", "after the command"]
    text = log.read_text()
    assert text.startswith("\n== rlv2 train ")
    for line in ("a library's warning", "a deprecation nobody here can act on", "a progress bar"):
        assert line in text


def test_verbose_leaves_everything_on_stderr_and_writes_no_log(tmp_path, capsys):
    log = tmp_path / "rlv2.log"
    with console.Quiet("train", verbose=True, path=log) as quiet:
        print("a library's line", file=sys.stderr)
    quiet.note_log()
    assert capsys.readouterr().err == "a library's line\n"
    assert not log.exists()


# --- progress: a status line on a TTY only -----------------------------------------------


def test_progress_is_silent_without_a_tty(tmp_path, capsys):
    with console.Quiet("ingest", path=tmp_path / "rlv2.log"):
        console.progress("training meta_strategy: epoch 1/20")
    console.progress("outside a command")
    assert capsys.readouterr() == ("", "")


def test_progress_rewrites_one_line_on_a_tty(tmp_path, monkeypatch):
    master, slave = pty.openpty()
    with os.fdopen(slave, "w", closefd=True) as tty:
        monkeypatch.setattr(sys, "stderr", tty)
        with console.Quiet("train", path=tmp_path / "rlv2.log"):
            console.progress("training meta_strategy: epoch 1/20")
            console.progress("training meta_strategy: epoch 2/20")
        monkeypatch.undo()
    chunks = []
    while True:  # a pty hands its bytes over in pieces; EIO once the writer side is closed
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    shown = b"".join(chunks).decode()
    assert shown == (
        "\r\x1b[Ktraining meta_strategy: epoch 1/20\r\x1b[Ktraining meta_strategy: epoch 2/20"
        "\r\x1b[K"
    )


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "bars.csv"
    rows = [f"2020-01-{d:02d},{100 + d},{101 + d},{99 + d},{100 + d},1000" for d in range(1, 29)]
    path.write_text("ts,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return path


def test_an_ingest_shows_its_stages_on_a_tty_and_nothing_on_a_pipe(tmp_path):
    args = ["ingest", _csv(tmp_path).name, "--table", "candles", "--symbol", "SPX"]
    piped = rlv2(*args, "--db", "piped.duckdb", cwd=tmp_path, timeout=300)
    assert piped.returncode == 0 and piped.stderr == ""
    master, slave = pty.openpty()
    done = subprocess.run(
        [RLV2, *args, "--db", "tty.duckdb"],
        cwd=tmp_path,
        env=env_for(tmp_path),
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
        timeout=300,
    )
    os.close(slave)
    shown = os.read(master, 65536).decode()
    os.close(master)
    assert done.returncode == 0 and done.stdout == piped.stdout.replace("piped", "tty")
    assert "\r\x1b[Kingest " in shown and "candles: reading" in shown
    assert shown.endswith("\r\x1b[K")  # erased before the summary


# --- JSON: one document on stdout ---------------------------------------------------------


def test_ingest_and_demo_data_print_one_json_document(tmp_path, capsys):
    db = str(tmp_path / "h.duckdb")
    assert (
        cli.main(
            [
                "ingest",
                str(_csv(tmp_path)),
                "--table",
                "candles",
                "--symbol",
                "SPX",
                "--db",
                db,
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert (report["rows_read"], report["rows_loaded"], report["target_table"]) == (
        28,
        28,
        "candles",
    )
    assert cli.main(["demo-data", "--db", db, "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert {r["target_table"] for r in built["ingests"]} == {
        "signals",
        "trades",
        "positions",
        "policy",
    }


def test_plain_turns_results_into_json_data():
    import numpy as np
    import pandas as pd

    from rlv2.cli_pipeline import plain, when
    from rlv2.pipeline import Split

    ts = pd.Timestamp("2018-12-26 00:00:00.000001")
    value = {
        "split": Split(ts, ts, ts),
        "n": np.int64(3),
        "x": np.float64("nan"),
        "table": pd.DataFrame({"a": [1.5]}),
    }
    assert json.loads(json.dumps(plain(value))) == {
        "split": {"train_start": ts.isoformat()}
        | {k: ts.isoformat() for k in ("holdout_start", "holdout_end")},
        "n": 3,
        "x": None,
        "table": [{"a": 1.5}],
    }
    assert when(ts) == "2018-12-26 00:00"
    assert when("2026-12-06T06:48:40.123+00:00") == "2026-12-06 06:48 UTC"


# --- the whole pipeline, as a user runs it -------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``rlv2 demo`` run in an empty folder, as a user runs it."""
    folder = tmp_path_factory.mktemp("demo-run")
    return folder, rlv2("demo", cwd=folder)


@pytest.mark.slow
def test_the_demo_prints_its_own_summary_only(demo_run):
    folder, done = demo_run
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines() + done.stderr.splitlines()
    assert len(lines) < 40, "\n".join(lines)
    assert done.stderr.splitlines() == [f"log: {folder}/rlv2.log"]
    for leak in (*REPRS, "INFO", "WARNING", "Downloading artifacts", "Flow run"):
        assert leak not in done.stdout + done.stderr, leak
    log = (folder / "rlv2.log").read_text()
    for line in ("Starting temporary server", "Beginning flow run", "Created version"):
        assert line in log


@pytest.mark.slow
def test_status_promote_and_report_print_json(demo_run):
    folder, _ = demo_run
    status = rlv2("status", "--db", "rlv2.duckdb", "--json", cwd=folder)
    found = json.loads(status.stdout)
    assert found["history"]["decisions"] > 1000
    assert [a["agent"] for a in found["agents"]] == ["meta_strategy", "position_sizing"]
    gated = rlv2("promote", "--agent", "position_sizing", "--json", cwd=folder)
    assert gated.returncode in (0, cli.EXIT_REFUSED), gated.stderr
    decision = json.loads(gated.stdout)["position_sizing"]
    assert decision["version"] in (2, "2") and isinstance(decision["promote"], bool)
    back = rlv2("rollback", "position_sizing", "--json", cwd=folder)
    assert back.returncode == cli.EXIT_FAILURE and back.stdout == ""
    (line,) = back.stderr.strip().splitlines()
    assert line.startswith("rlv2 rollback: error: rlv2-position-sizing: no 'previous' version")


@pytest.mark.slow
def test_train_and_sweep_print_json(demo_run):
    folder, _ = demo_run
    trained = rlv2("train", "--no-promote", "--json", cwd=folder)
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout)
    assert set(result["versions"]) == {"meta_strategy", "position_sizing"}
    assert result["holdout"]["n_trades"] == 460
    assert trained.stderr.splitlines() == [f"log: {folder}/rlv2.log"]
    report = rlv2("report", result["run_id"], "--json", cwd=folder)
    assert Path(json.loads(report.stdout)["path"]).is_file()
    swept = rlv2("sweep", "--agent", "meta_strategy", "--alpha", "0.01,0.1", "--json", cwd=folder)
    assert swept.returncode == 0, swept.stderr
    found = json.loads(swept.stdout)["meta_strategy"]
    assert {c["alpha"] for c in found["configurations"]} == {0.01, 0.1}
    assert found["best"] in found["configurations"] and found["version"]
