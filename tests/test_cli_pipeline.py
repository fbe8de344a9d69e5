"""The pipeline subcommands' settings: options derived from the config dataclasses, files."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from rlv2 import cli, cli_pipeline
from rlv2.config import from_data, settings
from rlv2.pipeline import TrainConfig
from rlv2.replay import ReplayConfig
from rlv2.rewards import MetaRewardWeights
from rlv2.sweeps import SweepConfig


def subparser(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def options(name: str) -> dict[str, argparse.Action]:
    return {s: a for a in subparser(name)._actions for s in a.option_strings}


def printed(capsys, *argv: str) -> str:
    assert cli.main([*argv, "--print-config"]) == 0
    return capsys.readouterr().out


def test_train_has_an_option_per_setting_with_the_dataclass_default_and_docstring():
    found = options("train")
    for s in settings(TrainConfig):
        if s.on_command_line:
            assert s.flag in found, s.key
            assert s.doc.replace("``", "") in found[s.flag].help
    assert "(default 0.01)" in found["--alpha"].help
    assert f"(default {ReplayConfig().epsilon_decay})" in found["--epsilon-decay"].help
    assert "(default 0.5,0.2,0.15)" in found["--meta-weights"].help
    assert "--meta-space" not in found  # state bins: in the file only


def test_promote_offers_only_what_the_gate_reads():
    found = options("promote")
    gate = ("--metric", "--margin", "--holdout-fraction", "--seed", "--n-boot", "--bootstrap")
    for flag in (*gate, "--pnl-tolerance", "--drawdown-tolerance"):
        assert flag in found
    for flag in ("--epochs", "--alpha", "--mode", "--episode"):
        assert flag not in found


def test_sweep_options_take_lists_and_the_rest_is_the_base(capsys):
    found = options("sweep")
    assert "ALPHA[,ALPHA...]" in found["--alpha"].metavar
    out = printed(
        capsys,
        "sweep",
        "--alpha",
        "0.01,0.1",
        "--alpha",
        "0.5",
        "--meta-weights",
        "0.5,0.2,0.15",
        "--meta-weights",
        "0.3,0.2,0.1",
        "--epochs",
        "4",
        "--method",
        "tpe",
    )
    data = tomllib.loads(out)
    search = from_data(SweepConfig, data.pop("sweep"))
    assert search.alpha == (0.01, 0.1, 0.5) and search.method == "tpe"
    assert search.meta_weights == (MetaRewardWeights(), MetaRewardWeights(0.3, 0.2, 0.1))
    assert from_data(TrainConfig, data) == TrainConfig(epochs=4)


def test_print_config_reads_back_as_the_default_configuration(capsys):
    assert from_data(TrainConfig, tomllib.loads(printed(capsys, "train"))) == TrainConfig()


def test_options_override_the_file_which_overrides_the_defaults(tmp_path, capsys):
    path = tmp_path / "team.toml"
    path.write_text(
        "epochs = 3\n[replay]\nalpha = 0.05\n[replay.meta_space]\nvolatility = [0.005, 0.02]\n"
        "[sweep]\nmethod = 'random'\ntrials = 5\n"
    )
    loaded = from_data(
        TrainConfig, tomllib.loads(printed(capsys, "train", "--config", str(path), "--epochs", "4"))
    )
    assert loaded.epochs == 4 and loaded.replay.alpha == 0.05
    assert loaded.replay.meta_space.features[1].edges == (0.005, 0.02)
    data = tomllib.loads(printed(capsys, "sweep", "--config", str(path), "--trials", "7"))
    assert data["sweep"]["method"] == "random" and data["sweep"]["trials"] == 7
    assert data["epochs"] == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--alpha", "0.01,0.1"], "argument --alpha: expected a number"),
        (["train", "--epochs", "0"], "epochs=0 must be >= 1"),
        (["train", "--metric", "sharpe"], "metric='sharpe'"),
        (["sweep", "--method", "bayes"], "method='bayes'"),
        (["train", "--meta-weights", "0.5,0.2"], "expected 3 numbers drawdown,sharpe,regime"),
    ],
)
def test_a_bad_setting_is_a_usage_error_naming_it(argv, message, capsys):
    assert cli.main([*argv, "--print-config"]) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_a_bad_file_is_a_usage_error_naming_it(tmp_path, capsys):
    path = tmp_path / "team.toml"
    path.write_text("[replay]\nalfa = 0.05\n")
    assert cli.main(["train", "--config", str(path)]) == cli.EXIT_USAGE
    assert f"{path}: unknown setting 'replay.alfa'" in capsys.readouterr().err


def test_the_demo_sweep_is_the_grid_the_stored_digest_was_made_with():
    assert cli_pipeline.DEMO_SWEEP.method == "grid"
    assert (cli_pipeline.DEMO_SWEEP.alpha, cli_pipeline.DEMO_SWEEP.gamma) == (
        (0.01, 0.1),
        (0.9, 0.99),
    )
    assert "(default 20)" in options("demo")["--epochs"].help


def test_the_readme_team_file_loads(tmp_path, capsys):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (block,) = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    path = tmp_path / "team.toml"
    path.write_text(block)
    data = tomllib.loads(printed(capsys, "sweep", "--config", str(path)))
    search = from_data(SweepConfig, data.pop("sweep"))
    config = from_data(TrainConfig, data)
    assert (search.method, search.trials, config.epochs) == ("tpe", 32, 30)
    assert config.replay.meta_weights == MetaRewardWeights(sharpe=0.3)


@pytest.mark.parametrize(
    ("decisions", "code"),
    [
        ({}, 0),  # nothing to gate
        ({"meta_strategy": {"promote": True, "reason": "beats logged"}}, 0),
        ({"meta_strategy": {"promote": False, "reason": "already"}}, 0),  # already production
        (
            {
                "meta_strategy": {"promote": True, "reason": "beats logged"},
                "position_sizing": {"promote": False, "reason": "difference below margin"},
            },
            cli_pipeline.EXIT_REFUSED,
        ),
    ],
)
def test_a_refusal_is_exit_code_3(decisions, code, capsys):
    assert cli_pipeline.EXIT_REFUSED == 3
    assert cli_pipeline._gate_exit(decisions) == code
    assert ("refused: position_sizing" in capsys.readouterr().out) == (code == 3)


def test_report_has_its_options():
    found = options("report")
    assert "-o" in found and "--output" in found


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_rlv2_leaves_no_prefect_server_behind(demo_db, tmp_path):
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "train.log"
    with log.open("w") as out:
        rlv2 = subprocess.Popen(
            [str(Path(sys.executable).with_name("rlv2")), "train", "--db", str(demo_db)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    servers: list[int] = []
    while not servers and time.monotonic() < deadline and rlv2.poll() is None:
        time.sleep(0.5)
        servers = [
            child
            for child in _children(rlv2.pid)
            if b"uvicorn" in Path(f"/proc/{child}/cmdline").read_bytes()
        ]
    assert servers, log.read_text()
    rlv2.kill()
    rlv2.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{s}").exists() for s in servers):
        time.sleep(0.2)
    alive = [s for s in servers if Path(f"/proc/{s}").exists()]
    for server in alive:  # clean up before failing
        os.kill(server, 9)
    assert not alive, "the temporary Prefect server outlived a killed rlv2"
