"""The pipeline subcommands of ``rlv2``: demo-data, demo, train, sweep, promote, rollback, status.

They run the Prefect flows of ``rlv2.flows`` in ephemeral mode unless ``PREFECT_API_URL``
points at a server, and log to MLflow at ``MLFLOW_TRACKING_URI`` (default: ``mlflow.db``
in the working directory). The flows are imported when a command runs, so the core never
loads Prefect (pyright cannot resolve them: setuptools maps ``flows/`` to ``rlv2.flows``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rlv2.replay import AGENTS

AGENT_CHOICES = ("meta_strategy", "position_sizing", "both")


def _floats(text: str) -> list[float]:
    """Parse a comma-separated list of numbers (``0.01,0.1``)."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers, comma-separated: {text!r}") from None


def _db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get("RLV2_DB", "rlv2.duckdb"),
        metavar="PATH",
        help="the DuckDB file with the history (default: $RLV2_DB, else rlv2.duckdb, the "
        "demo's, in the working directory)",
    )


def _training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=("explore", "logged"),
        default="explore",
        help="explore: the agents try every action on counterfactual outcomes from the "
        "price path (simulated mode, compiled); logged: off-policy Q-learning on the "
        "actions the system took (default: explore)",
    )
    parser.add_argument(
        "--epochs", type=int, default=20, help="passes over the training window (default 20)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every random stream (0)")
    parser.add_argument(
        "--holdout-fraction",
        type=float,
        default=0.2,
        help="share of the decision points kept as the final holdout (default 0.2)",
    )


def _gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metric",
        default="reward",
        choices=("reward", "pnl_pct", "meta_reward", "sizing_reward"),
        help="per-trade quantity the promotion gate compares (default: each agent's own "
        "SPEC A1 reward)",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=0.0,
        help="how much the candidate's mean must beat the champion's (default 0)",
    )


def add_demo_data_command(subparsers: Any) -> None:
    """Register ``rlv2 demo-data``."""
    parser = subparsers.add_parser(
        "demo-data",
        help="build the demo trade history from real bars into the DuckDB file",
        description="Load the bundled real price bars (unless the database already has "
        "candles) and build a trade history on them: synthetic model forecasts and "
        "behaviour policy, real prices and outcomes. Everything goes through `rlv2 ingest`.",
    )
    _db(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic parts")
    parser.set_defaults(run=run_demo_data)


def run_demo_data(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 demo-data``."""
    from rlv2.demo import build_demo_database
    from rlv2.demo_data import DemoConfig

    for r in build_demo_database(args.db, DemoConfig(seed=args.seed)):
        print(
            f"{Path(r.source).name:>18} -> {r.target_table:<9} read {r.rows_read} = loaded "
            f"{r.rows_loaded} + duplicates {r.rows_duplicate} + quarantined {r.rows_quarantined}"
        )
    return 0


def add_train_command(subparsers: Any) -> None:
    """Register ``rlv2 train``."""
    parser = subparsers.add_parser(
        "train",
        help="nightly retrain: both agents on all but the final holdout, then the gate",
        description="Run the nightly-retrain flow: train both agents (in parallel) on "
        "every decision before the final holdout, evaluate them on it, log the run, "
        "register the candidates in MLflow and run the promotion gate.",
    )
    _db(parser)
    _training_options(parser)
    _gate_options(parser)
    parser.add_argument("--alpha", type=float, default=0.01, help="learning rate (0.01)")
    parser.add_argument("--gamma", type=float, default=0.99, help="discount (0.99)")
    parser.add_argument("--epsilon", type=float, default=0.1, help="initial ε (0.1)")
    parser.add_argument("--epsilon-decay", type=float, default=0.995, help="ε decay (0.995)")
    parser.add_argument("--epsilon-min", type=float, default=0.01, help="ε floor (0.01)")
    parser.add_argument(
        "--warm-start", action="store_true", help="start from the production Q-tables"
    )
    parser.add_argument(
        "--no-promote", dest="promote", action="store_false", help="register, do not gate"
    )
    parser.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 train``."""
    from rlv2.flows.nightly import nightly_retrain  # pyright: ignore[reportMissingImports]

    result = nightly_retrain(
        db=args.db,
        mode=args.mode,
        epochs=args.epochs,
        alpha=args.alpha,
        gamma=args.gamma,
        epsilon=args.epsilon,
        epsilon_decay=args.epsilon_decay,
        epsilon_min=args.epsilon_min,
        seed=args.seed,
        holdout_fraction=args.holdout_fraction,
        warm_start=args.warm_start,
        promote=args.promote,
        metric=args.metric,
        margin=args.margin,
    )
    _print_training(result)
    return 0


def _print_training(result: dict[str, Any]) -> None:
    print(f"\nMLflow run {result['run_id']}; candidates {result['versions']}")
    hold, logged = result["holdout"], result["logged"]
    print(f"{'holdout':<22}{'candidates':>12}{'logged':>12}")
    for key in ("n_trades", "mean_pnl_pct", "sharpe", "max_drawdown_pct", "win_rate"):
        print(f"{key:<22}{hold[key]:>12.4f}{logged[key]:>12.4f}")
    for key in ("meta_mean_reward", "sizing_mean_reward"):
        print(f"{key:<22}{hold[key]:>12.4f}{logged[key]:>12.4f}")
    _print_decisions(result.get("decisions", {}))


def _print_decisions(decisions: dict[str, dict[str, Any]]) -> None:
    for agent, d in decisions.items():
        if d.get("reason") == "already":
            print(f"{agent}: v{d['version']} already in production")
            continue
        verdict = "PROMOTED" if d["promote"] else "refused"
        print(
            f"{agent} v{d['version']}: {verdict} vs {d['champion']} on {d['metric']}: "
            f"{d['candidate_value']:.4f} vs {d['champion_value']:.4f}, diff {d['difference']:.4f} "
            f"CI [{d['ci_low']:.4f}, {d['ci_high']:.4f}] (n={d['n']}): {d['reason']}"
        )


def add_sweep_command(subparsers: Any) -> None:
    """Register ``rlv2 sweep``."""
    parser = subparsers.add_parser(
        "sweep",
        help="hyperparameter sweep (grid, random or Optuna TPE); registers the best",
        description="Sweep α, γ, the ε schedule, reward weights and state bins. Grids over "
        "the kernel hyperparameters train in one replay_sweep pass; each configuration is "
        "a nested MLflow run scored on a validation window cut from the training window.",
    )
    _db(parser)
    _training_options(parser)
    parser.add_argument(
        "--agent", choices=AGENT_CHOICES, default="both", help="which agent(s) to sweep"
    )
    parser.add_argument(
        "--method",
        choices=("grid", "random", "tpe"),
        default="grid",
        help="grid: every combination of the listed values; random: --trials draws between "
        "them; tpe: Optuna's TPE over that range, in a persistent study (default grid)",
    )
    parser.add_argument("--alpha", type=_floats, help="values of α, e.g. 0.01,0.05,0.2")
    parser.add_argument("--gamma", type=_floats, help="values of γ, e.g. 0.9,0.99")
    parser.add_argument("--epsilon", type=_floats, help="initial ε values")
    parser.add_argument("--epsilon-decay", type=_floats, help="ε decay values")
    parser.add_argument("--epsilon-min", type=_floats, help="ε floor values")
    parser.add_argument(
        "--meta-weights",
        type=_floats,
        action="append",
        help="meta reward weights drawdown,sharpe,regime (repeatable; default 0.5,0.2,0.15)",
    )
    parser.add_argument(
        "--sizing-weights",
        type=_floats,
        action="append",
        help="sizing reward weights risk,volatility (repeatable; default 0.4,0.1)",
    )
    parser.add_argument("--trials", type=int, default=16, help="random/TPE configurations")
    parser.add_argument(
        "--study", default="rlv2-sweep", help="Optuna study name (a rerun resumes it)"
    )
    parser.add_argument(
        "--storage", help="Optuna storage URL (default sqlite:///optuna.db in the working dir)"
    )
    parser.add_argument(
        "--task-runner",
        choices=("threads", "dask", "ray"),
        default="threads",
        help="Prefect task runner for the configurations (dask/ray need their extras)",
    )
    parser.set_defaults(run=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 sweep``."""
    from rlv2.flows.sweep import sweep  # pyright: ignore[reportMissingImports]

    sweep(
        db=args.db,
        agent=args.agent,
        method=args.method,
        alpha=args.alpha,
        gamma=args.gamma,
        epsilon=args.epsilon,
        epsilon_decay=args.epsilon_decay,
        epsilon_min=args.epsilon_min,
        meta_weights=args.meta_weights,
        sizing_weights=args.sizing_weights,
        n_trials=args.trials,
        study_name=args.study,
        storage=args.storage,
        epochs=args.epochs,
        mode=args.mode,
        seed=args.seed,
        holdout_fraction=args.holdout_fraction,
        task_runner=args.task_runner,
    )
    return 0


def add_promote_command(subparsers: Any) -> None:
    """Register ``rlv2 promote``."""
    parser = subparsers.add_parser(
        "promote",
        help="gate registered candidates against production on the holdout",
        description="Champion/challenger: the candidate (default: the newest registered "
        "version) takes the alias production only if its greedy policy beats production "
        "(or, with none yet, the logged behaviour) on the holdout by the margin, with a "
        "bootstrap confidence interval above zero. Every decision is recorded.",
    )
    _db(parser)
    _gate_options(parser)
    parser.add_argument(
        "--agent", choices=AGENT_CHOICES, default="both", help="which agent(s) to gate"
    )
    parser.add_argument("--version", help="the registered version to gate (one agent only)")
    parser.add_argument(
        "--holdout-fraction",
        type=float,
        default=0.2,
        help="share of the decision points in the holdout (default 0.2, as in train)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.set_defaults(run=run_promote)


def run_promote(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 promote``."""
    from rlv2.flows.promote import promote  # pyright: ignore[reportMissingImports]

    decisions = promote(
        agent=args.agent,
        version=args.version,
        db=args.db,
        holdout_fraction=args.holdout_fraction,
        metric=args.metric,
        margin=args.margin,
        seed=args.seed,
    )
    _print_decisions(decisions)
    return 0


def add_rollback_command(subparsers: Any) -> None:
    """Register ``rlv2 rollback``."""
    parser = subparsers.add_parser(
        "rollback",
        help="move production back to the previous version",
        description="Move the alias production of an agent back to the version under "
        "previous (the one it replaced), and record it in the promotion log.",
    )
    parser.add_argument("agent", choices=AGENTS, help="the agent to roll back")
    parser.add_argument("--reason", default="", help="why, for the promotion log")
    parser.set_defaults(run=run_rollback)


def run_rollback(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 rollback``."""
    from rlv2 import tracking

    tracking.configure()
    version = tracking.rollback(args.agent, reason=args.reason)
    print(f"{args.agent}: production is now v{version.version}")
    return 0


def add_status_command(subparsers: Any) -> None:
    """Register ``rlv2 status``."""
    parser = subparsers.add_parser(
        "status",
        help="what is in production for each agent, since when, with which figures",
    )
    parser.add_argument("--log", action="store_true", help="also list the promotion log")
    parser.set_defaults(run=run_status)


def run_status(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 status``."""
    from rlv2 import tracking

    uri = tracking.configure()
    print(f"MLflow: {uri}")
    for row in tracking.status():
        production = row.get("production_version")
        if production is None:
            print(f"{row['agent']}: nothing in production")
            continue
        print(
            f"{row['agent']}: production v{production} since {row.get('since')} "
            f"(previous: {row.get('previous_version')})"
        )
        figures = row.get("figures") or {}
        for key in STATUS_FIGURES:
            if key in figures:
                print(f"    {key}: {_short(figures[key])}")
    if args.log:
        log = tracking.promotion_log()
        print(log.to_string(index=False) if not log.empty else "promotion log is empty")
    return 0


STATUS_FIGURES = (
    "champion",
    "metric",
    "candidate_value",
    "champion_value",
    "difference",
    "ci_low",
    "ci_high",
    "n",
    "candidate.mean_pnl_pct",
    "champion.mean_pnl_pct",
    "candidate.sharpe",
    "candidate.max_drawdown_pct",
    "candidate.win_rate",
    "holdout_start",
    "holdout_end",
)
"""The promotion figures `rlv2 status` shows (all are tags on the version)."""


def _short(value: Any) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def add_demo_command(subparsers: Any) -> None:
    """Register ``rlv2 demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="the whole pipeline on the bundled data: history, retrain, sweep, promotion",
        description="Build the demo history from the bundled real bars, run a nightly "
        "retrain, a small sweep and the promotion gate, and print what was promoted and "
        "how to open the MLflow UI.",
    )
    _db(parser)
    parser.add_argument("--epochs", type=int, default=20, help="passes over the training window")
    parser.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 demo``."""
    from rlv2 import tracking
    from rlv2.flows.nightly import nightly_retrain  # pyright: ignore[reportMissingImports]
    from rlv2.flows.promote import promote  # pyright: ignore[reportMissingImports]
    from rlv2.flows.sweep import sweep  # pyright: ignore[reportMissingImports]

    print("== 1/4 demo history (bundled real bars, synthetic forecasts and behaviour)")
    run_demo_data(argparse.Namespace(db=args.db, seed=0))
    print("\n== 2/4 nightly retrain")
    _print_training(nightly_retrain(db=args.db, epochs=args.epochs))
    print("\n== 3/4 sweep (grid over α and γ, one replay_sweep pass per agent)")
    sweep(db=args.db, alpha=[0.01, 0.1], gamma=[0.9, 0.99], epsilon=[0.1], epochs=args.epochs)
    print("\n== 4/4 promotion gate for the sweep's best candidates")
    _print_decisions(promote(db=args.db))
    print()
    run_status(argparse.Namespace(log=False))
    uri = tracking.tracking_uri()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    print(f"\nOpen the MLflow UI: {mlflow_bin} ui --backend-store-uri {uri}")
    return 0


COMMANDS = (
    add_demo_command,
    add_demo_data_command,
    add_train_command,
    add_sweep_command,
    add_promote_command,
    add_rollback_command,
    add_status_command,
)
"""The pipeline subcommands, registered after ``ingest``."""
