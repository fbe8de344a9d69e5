"""The pipeline subcommands of ``rlv2``: demo-data, demo, train, sweep, promote, rollback, status,
report.

They run the Prefect flows of ``rlv2.flows`` in ephemeral mode unless ``PREFECT_API_URL``
points at a server, and log to MLflow at ``MLFLOW_TRACKING_URI`` (default: ``mlflow.db``
in the working directory). The flows are imported when a command runs, so the core never
loads Prefect (pyright cannot resolve them: setuptools maps ``flows/`` to ``rlv2.flows``).

Their settings are the fields of the config dataclasses (``TrainConfig``, ``SweepConfig``):
each field is an option (``rlv2.config``), its help the field's docstring, its default the
field's default; ``--config FILE.toml`` reads them from a file, ``--print-config`` prints
them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rlv2.config import (
    ConfigError,
    Setting,
    dumps,
    field_docs,
    from_data,
    read_toml,
    settings,
    with_values,
)
from rlv2.console import clear_progress, progress, versions_text, when
from rlv2.domain import Agent, agent_spec
from rlv2.pipeline import TrainConfig
from rlv2.sweeps import DIMENSIONS, SweepConfig

AGENT_CHOICES = (*(a.value for a in Agent), "both")

EXIT_REFUSED = 3
"""Exit code of ``rlv2 promote`` and ``rlv2 train`` when the gate refused a candidate (0:
promoted, or nothing to gate), so that cron and CI can react."""

TRAINING_ONLY = (
    "mode",
    "epochs",
    "replay.alpha",
    "replay.gamma",
    "replay.epsilon",
    "replay.epsilon_decay",
    "replay.epsilon_min",
    "replay.episode",
)
"""Settings that only training reads: ``rlv2 promote`` has no options for them."""
SWEPT = tuple(f"replay.{name}" for name in DIMENSIONS)
"""Settings a sweep tries several values of: its options take lists (``SweepConfig``)."""

CONFIG_EPILOG = (
    "Settings are, in order of precedence: these options, then --config FILE.toml, then "
    "the defaults. --print-config prints the effective settings as TOML, each under its "
    "meaning: a starting point for a team's file (every key of it is optional). State bins "
    "are set in the file only: [replay.meta_space] / [replay.sizing_space], e.g. "
    "volatility = [0.005, 0.02]."
)
"""The epilog of the subcommands whose settings come from the config dataclasses."""


DB_HELP = (
    "the DuckDB file with the history (default: $RLV2_DB, else rlv2.duckdb, the demo's, in "
    "the working directory)"
)
"""Help of ``--db`` where the history is read."""
TRACKING_HELP = (
    "the MLflow tracking and registry store (default: $MLFLOW_TRACKING_URI, else "
    "sqlite:///<cwd>/mlflow.db)"
)
"""Help of ``--tracking-uri``, the same in every subcommand."""


def add_common_options(
    parser: argparse.ArgumentParser, *, db: str | None = DB_HELP, tracking: bool = True
) -> None:
    """Add the options every subcommand shares: ``--db`` (help ``db``; None: none),
    ``--tracking-uri`` (unless ``tracking`` is false), ``--json`` and ``-v``."""
    if db is not None:
        parser.add_argument(
            "--db", default=os.environ.get("RLV2_DB", "rlv2.duckdb"), metavar="PATH", help=db
        )
    if tracking:
        parser.add_argument("--tracking-uri", metavar="URI", help=TRACKING_HELP)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the result as one JSON document on stdout, and nothing else there",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show Prefect's and MLflow's logs, libraries' warnings and a failure's traceback "
        "on stderr (default: they go to $RLV2_LOG_FILE, else rlv2.log in the working "
        "directory, whose path is printed)",
    )


def _db(parser: argparse.ArgumentParser) -> None:
    """The options of a subcommand that reads the history and MLflow."""
    add_common_options(parser)


def say(*lines: str) -> None:
    """Print a command's own lines on stdout (after erasing a progress line)."""
    clear_progress()
    for line in lines:
        print(line)


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: numbers, text, lists, objects; NaN and inf as null."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if hasattr(value, "_asdict"):  # a NamedTuple
        return plain(value._asdict())
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if hasattr(value, "columns") and hasattr(value, "to_dict"):  # a DataFrame
        return plain(value.to_dict(orient="records"))
    if isinstance(value, datetime | date) or hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return plain({k: getattr(value, k) for k in value.__dataclass_fields__})
    if hasattr(value, "tolist"):  # numpy scalars and arrays, pandas Series
        return plain(value.tolist())
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Path):
        return str(value)
    return str(getattr(value, "value", value))  # enums by value, anything else as text


def emit_json(result: Any) -> None:
    """Print ``result`` as one JSON document on stdout."""
    clear_progress()
    print(json.dumps(plain(result), indent=2, allow_nan=False))


def _option_type(setting: Setting) -> Any:
    """argparse ``type`` of a setting: its parser, errors as argparse reports them."""

    def parse(text: str) -> Any:
        try:
            return setting.parse(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def add_config_options(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    exclude: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
) -> None:
    """Add one option per setting of the config dataclass ``cls`` (see ``rlv2.config``).

    Options default to None (not given): a given option overrides the file, an absent one
    leaves it. Settings are grouped by their section (``replay``, ``features``).
    """
    groups: dict[str, Any] = {}
    top_first = sorted(settings(cls), key=lambda s: len(s.path) > 1)
    for s in top_first:
        if not s.on_command_line or s.key in exclude or (only is not None and s.key not in only):
            continue
        section = s.path[0] if len(s.path) > 1 else ""
        if section not in groups:
            title = f"{cls.__name__}.{section}" if section else cls.__name__
            doc = field_docs(cls).get(section, "") if section else _first_line(cls.__doc__)
            groups[section] = parser.add_argument_group(title, doc.replace("``", ""))
        groups[section].add_argument(
            s.flag,
            dest=f"{cls.__name__}:{s.key}",
            type=_option_type(s),
            action="extend" if s.many else "store",
            default=None,
            metavar=s.metavar(),
            help=s.help().replace("%", "%%"),
        )


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc else ""


def _file_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE.toml",
        help="read the settings from a TOML file (the options given here override it)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings as TOML and exit",
    )


def from_options(args: argparse.Namespace, cls: type, base: Any) -> Any:
    """``base`` with the settings of ``cls`` given on the command line."""
    values = {}
    for s in settings(cls):
        value = getattr(args, f"{cls.__name__}:{s.key}", None)
        if value is not None:
            values[s.path] = tuple(value) if s.many else value
    return with_values(base, values)


def configs(args: argparse.Namespace) -> tuple[TrainConfig, SweepConfig]:
    """The effective training and sweep configurations: defaults, file, options."""
    train, search = TrainConfig(), SweepConfig()
    if args.config_file:
        data = read_toml(args.config_file)
        sweep_data = data.pop("sweep", {})
        train = from_data(TrainConfig, data, source=args.config_file)
        search = from_data(SweepConfig, sweep_data, source=f"{args.config_file} [sweep]")
    return from_options(args, TrainConfig, train), from_options(args, SweepConfig, search)


def preflight(db: str | None) -> None:
    """Fail before any flow (and its Prefect server) starts, in one line: ``db`` must be
    an existing local file with decision points, and the MLflow store usable
    (``tracking.configure`` fails fast, naming the URI). Then tie Prefect's temporary
    server to this process, so that a killed ``rlv2`` leaves none behind
    (``rlv2.flows.lifetime``)."""
    if db is not None:
        check_history(db)
    from rlv2 import tracking  # MLflow takes a second to import: after the history's check

    tracking.configure()
    progress("starting Prefect")
    from rlv2.flows.lifetime import tie_temporary_server  # pyright: ignore[reportMissingImports]

    tie_temporary_server()


def check_history(db: str) -> tuple[Any, Any, int]:
    """First and last decision time and the number of decisions of ``db``, or an error
    naming what is missing (no file, no decisions)."""
    from rlv2 import history, store

    path = store.local_db_path(db)
    if not path.is_file():
        raise FileNotFoundError(
            f"DuckDB file {path.resolve()} not found: run `rlv2 demo-data --db {db}` or "
            "`rlv2 ingest`"
        )
    with store.connect(path, read_only=True) as con:
        bounds = history.decision_bounds(con)
    if bounds[2] < 2:
        raise ValueError(
            f"{path.resolve()}: {bounds[2]} decision points in table signals: nothing to "
            "train on (load them with `rlv2 ingest --table signals`)"
        )
    return bounds


def print_config(train: TrainConfig, search: SweepConfig | None = None) -> None:
    """Print the effective configuration as a TOML file (``--print-config``)."""
    print(dumps(train, header="rlv2 settings (TrainConfig); every key is optional"), end="")
    if search is not None:
        print()
        print(dumps(search, root=("sweep",), header="rlv2 sweep (SweepConfig)"), end="")


def add_demo_data_command(subparsers: Any) -> None:
    """Register ``rlv2 demo-data``."""
    parser = subparsers.add_parser(
        "demo-data",
        help="build the demo trade history from real bars into the DuckDB file",
        description="Load the bundled real price bars (unless the database already has "
        "candles) and build a trade history on them: synthetic model forecasts and "
        "behaviour policy, real prices and outcomes. Everything goes through `rlv2 ingest`. "
        "It writes DuckDB only, so it takes no --tracking-uri.",
    )
    add_common_options(
        parser,
        db="the DuckDB file to fill (default: $RLV2_DB, else rlv2.duckdb in the working "
        "directory; created if missing)",
        tracking=False,
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic parts (default: 0)"
    )
    parser.set_defaults(run=run_demo_data)


def demo_data(db: str, seed: int = 0) -> list[Any]:
    """Build the demo history into ``db``; the ingest reports."""
    from rlv2.demo import build_demo_database
    from rlv2.demo_data import DemoConfig

    return build_demo_database(db, DemoConfig(seed=seed))


def demo_data_lines(reports: list[Any]) -> list[str]:
    """One line per table loaded."""
    return [
        f"{Path(r.source).name:>18} -> {r.target_table:<9} read {r.rows_read} = loaded "
        f"{r.rows_loaded} + duplicates {r.rows_duplicate} + quarantined {r.rows_quarantined}"
        for r in reports
    ]


def run_demo_data(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 demo-data``."""
    reports = demo_data(args.db, args.seed)
    if args.json:
        emit_json({"db": str(Path(args.db).resolve()), "ingests": reports})
    else:
        say(*demo_data_lines(reports))
    return 0


def add_train_command(subparsers: Any) -> None:
    """Register ``rlv2 train``: its settings are every field of ``TrainConfig``."""
    parser = subparsers.add_parser(
        "train",
        help="nightly retrain: both agents on all but the final holdout, then the gate",
        description="Run the nightly-retrain flow: train both agents (in parallel) on "
        "every decision before the final holdout, evaluate them on it, log the run, "
        "register the candidates in MLflow and run the promotion gate. Exit code "
        f"{EXIT_REFUSED} when the gate refused a candidate.",
        epilog=CONFIG_EPILOG,
    )
    _db(parser)
    _file_options(parser)
    parser.add_argument(
        "--warm-start", action="store_true", help="start from the production Q-tables"
    )
    parser.add_argument(
        "--no-promote", dest="promote", action="store_false", help="register, do not gate"
    )
    add_config_options(parser, TrainConfig)
    parser.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 train``."""
    config, _ = configs(args)
    if args.print_config:
        print_config(config)
        return 0
    preflight(args.db)
    from rlv2.flows.nightly import nightly_retrain  # pyright: ignore[reportMissingImports]

    result = nightly_retrain(
        db=args.db, config=config, warm_start=args.warm_start, promote=args.promote
    )
    if args.json:
        emit_json(result)
    else:
        say(*training_lines(result))
    return _gate_exit(result.get("decisions", {}), show=not args.json)


def _gate_exit(decisions: dict[str, dict[str, Any]], *, show: bool = True) -> int:
    """``EXIT_REFUSED`` if the gate judged and refused a candidate, else 0 (``show``:
    say so on stdout)."""
    from rlv2.pipeline import refused_agents

    names = refused_agents(decisions)
    if names:
        if show:
            say(f"refused: {', '.join(names)} (exit {EXIT_REFUSED})")
        return EXIT_REFUSED
    return 0


def training_lines(result: Mapping[str, Any]) -> list[str]:
    """A nightly retrain's summary: run, windows, holdout figures, second opinions, gate."""
    lines = [f"MLflow run {result['run_id']}: candidates {versions_text(result['versions'])}"]
    split = result.get("split")
    if split:
        lines.append(
            f"training {when(split['train_start'])} .. {when(split['holdout_start'])}, "
            f"holdout .. {when(split['holdout_end'])}"
        )
    hold, logged = result["holdout"], result["logged"]
    lines.append(f"{'holdout':<22}{'candidates':>12}{'logged':>12}")
    for key in ("n_trades", "mean_pnl_pct", "sharpe", "max_drawdown_pct", "win_rate"):
        lines.append(f"{key:<22}{hold[key]:>12.4f}{logged[key]:>12.4f}")
    for key in ("meta_mean_reward", "sizing_mean_reward"):
        lines.append(f"{key:<22}{hold[key]:>12.4f}{logged[key]:>12.4f}")
    for agent, ips in result.get("ips", {}).items():
        alarm = ": DISAGREE (an alarm, not a gate)" if ips["ips_disagrees"] else ""
        lines.append(
            f"{agent} second opinion on {ips['ips.metric']}: simulated "
            f"{ips['ips.simulated']:.4f} vs SNIPS {ips.get('ips.snips', float('nan')):.4f} "
            f"± {ips.get('ips.se', float('nan')):.4f}{alarm}"
        )
    return lines + decision_lines(result.get("decisions", {}))


def decision_lines(decisions: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per gate decision (and its second opinion, when there is one)."""
    lines = []
    for agent, d in decisions.items():
        if d.get("reason") == "already":
            lines.append(f"{agent}: v{d['version']} already in production")
            continue
        verdict = "PROMOTED" if d["promote"] else "refused"
        # the symbol gate's interval is about the weighted mean, not the plain difference
        weighted = (
            f", symbol-weighted {d['estimate']:.4f}"
            if d.get("bootstrap") == "newey-west-symbols" and "estimate" in d
            else ""
        )
        lines.append(
            f"{agent} v{d['version']}: {verdict} vs {d['champion']} on {d['metric']}: "
            f"{d['candidate_value']:.4f} vs {d['champion_value']:.4f}, diff {d['difference']:.4f}"
            f"{weighted} CI [{d['ci_low']:.4f}, {d['ci_high']:.4f}] (n={d['n']}): {d['reason']}"
        )
        if "ips.metric" in d:
            alarm = ": DISAGREE (an alarm, not a gate)" if d["ips_disagrees"] else ""
            lines.append(
                f"    second opinion on {d['ips.metric']}: simulated {d['ips.simulated']:.4f} vs "
                f"SNIPS {d.get('ips.snips', float('nan')):.4f} ± "
                f"{d.get('ips.se', float('nan')):.4f} ({d['ips.matched']} of {d['ips.n']} "
                f"logged trades match){alarm}"
            )
    return lines


def add_sweep_command(subparsers: Any) -> None:
    """Register ``rlv2 sweep``: ``TrainConfig``'s settings as the base, ``SweepConfig``'s."""
    parser = subparsers.add_parser(
        "sweep",
        help="hyperparameter sweep (grid, random or Optuna TPE); registers the best",
        description="Sweep α, γ, the ε schedule and the reward weights, each method an "
        "Optuna study. Configurations that share reward weights train in one replay_sweep "
        "pass; each is a nested MLflow run scored on a validation window cut from the end "
        "of the training window. A value option takes a list: --alpha 0.01,0.1 or "
        "--alpha 0.01 --alpha 0.1; --meta-weights once per weight vector.",
        epilog=CONFIG_EPILOG + " The file's [sweep] table holds the SweepConfig settings.",
    )
    _db(parser)
    _file_options(parser)
    parser.add_argument(
        "--agent", choices=AGENT_CHOICES, default="both", help="which agent(s) to sweep"
    )
    parser.add_argument(
        "--task-runner",
        choices=("threads", "dask", "ray"),
        default="threads",
        help="Prefect task runner for the configurations (dask/ray need their extras)",
    )
    add_config_options(parser, SweepConfig)
    add_config_options(parser, TrainConfig, exclude=SWEPT)
    parser.set_defaults(run=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 sweep``."""
    config, search = configs(args)
    if args.print_config:
        print_config(config, search)
        return 0
    preflight(args.db)
    from rlv2.flows.sweep import sweep  # pyright: ignore[reportMissingImports]

    out = sweep(
        db=args.db, config=config, search=search, agent=args.agent, task_runner=args.task_runner
    )
    if args.json:
        emit_json(sweep_result(out))
    else:
        say(*sweep_lines(out))
    return 0


SWEPT_COLUMNS = (*DIMENSIONS, "meta_weights", "sizing_weights")
"""Columns of a sweep's table that hold a configuration's hyperparameters."""


def sweep_result(out: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A sweep's result for ``--json``: per agent its run, registered version, best
    configuration and every configuration's figures."""
    return {
        agent: {
            "run_id": r["run_id"],
            "version": r["version"],
            "best": r["best"],
            "configurations": r["table"],
        }
        for agent, r in out.items()
    }


def sweep_lines(out: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per agent: how many configurations, the best one's values and score."""
    lines = []
    for agent, r in out.items():
        table, best = r["table"], r["best"]
        if best is None:
            lines.append(f"{agent}: the study has tried every configuration; nothing logged")
            continue
        varied = [c for c in SWEPT_COLUMNS if c in table and table[c].nunique() > 1]
        values = ", ".join(f"{c} {best[c]}" for c in varied) or "the only configuration"
        registered = f"registered v{r['version']}" if r["version"] else "not registered"
        lines.append(
            f"{agent}: {len(table)} configurations, best {values}: validation score "
            f"{best['score']:.4f}; {registered} (MLflow run {r['run_id']})"
        )
    return lines


def add_promote_command(subparsers: Any) -> None:
    """Register ``rlv2 promote``: the settings of ``TrainConfig`` that the gate reads."""
    parser = subparsers.add_parser(
        "promote",
        help="gate registered candidates against production on their own holdout",
        description="Champion/challenger: the candidate (default: the newest registered "
        "version) takes the alias production only if its greedy policy beats production "
        "(or, with none yet, the logged behaviour) on the holdout by the margin, with a "
        "bootstrap confidence interval above zero. The holdout is the one the candidate's "
        "training run recorded on the version, from its start to the newest decision; "
        "--holdout-fraction is only a request that is checked: one that would overlap the "
        "candidate's training window is refused. Every decision is recorded. --seed "
        f"seeds the bootstrap. Exit code {EXIT_REFUSED} when a candidate was refused.",
        epilog=CONFIG_EPILOG,
    )
    _db(parser)
    _file_options(parser)
    parser.add_argument(
        "--agent", choices=AGENT_CHOICES, default="both", help="which agent(s) to gate"
    )
    parser.add_argument("--version", help="the registered version to gate (one agent only)")
    add_config_options(parser, TrainConfig, exclude=TRAINING_ONLY)
    parser.set_defaults(run=run_promote)


def run_promote(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 promote``."""
    config, _ = configs(args)
    if args.print_config:
        print_config(config)
        return 0
    if args.version is not None and args.agent == "both":
        raise ValueError("--version needs a single --agent")
    check_history(args.db)
    if args.version is not None:
        _check_version(args.agent, args.version)
    from rlv2 import tracking  # seconds to import (MLflow): after the quick checks

    tracking.configure()
    if args.version is not None:
        tracking.version_of(args.agent, args.version)  # a ValueError naming it if none
    preflight(None)
    from rlv2.flows.promote import promote  # pyright: ignore[reportMissingImports]

    decisions = promote(
        agent=args.agent,
        version=args.version,
        db=args.db,
        config=config,
        holdout_fraction=config.holdout_fraction if _asks_for_holdout(args) else None,
    )
    if args.json:
        emit_json(decisions)
    else:
        say(*decision_lines(decisions))
    return _gate_exit(decisions, show=not args.json)


def _check_version(agent: str, version: str) -> None:
    """A ValueError naming the version if the registry plainly lacks it, before MLflow loads."""
    from rlv2 import registry_probe

    name = agent_spec(agent).model_name
    uri = registry_probe.store_uri()
    if registry_probe.version_known(uri, name, version) is False:
        raise ValueError(f"{name}: no version {version} in the registry {uri}")


def _asks_for_holdout(args: argparse.Namespace) -> bool:
    """Whether ``--holdout-fraction`` or the ``--config`` file names a holdout fraction.

    ``rlv2 promote`` gates on each candidate's recorded holdout; a holdout fraction
    given is a request it checks against the candidate's training window.
    """
    if getattr(args, "TrainConfig:holdout_fraction", None) is not None:
        return True
    return bool(args.config_file) and "holdout_fraction" in read_toml(args.config_file)


def add_rollback_command(subparsers: Any) -> None:
    """Register ``rlv2 rollback``."""
    parser = subparsers.add_parser(
        "rollback",
        help="move production back to the previous version",
        description="Move the alias production of an agent back to the version under "
        "previous (the one it replaced), and record it in the promotion log. It reads "
        "the MLflow registry only, so it takes no --db.",
    )
    parser.add_argument("agent", choices=[a.value for a in Agent], help="the agent to roll back")
    parser.add_argument("--reason", default="", help="why, for the promotion log")
    add_common_options(parser, db=None)
    parser.set_defaults(run=run_rollback)


def run_rollback(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 rollback``."""
    from rlv2 import tracking

    tracking.configure()
    version = tracking.rollback(args.agent, reason=args.reason)
    if args.json:
        emit_json({"agent": args.agent, "production_version": int(version.version)})
    else:
        say(f"{args.agent}: production is now v{version.version}")
    return 0


def add_status_command(subparsers: Any) -> None:
    """Register ``rlv2 status``."""
    parser = subparsers.add_parser(
        "status",
        help="what is in production for each agent, since when, with which figures",
        description="What is in production for each agent (from the MLflow registry), "
        "since when, with the figures of the decision that promoted it, and the history "
        "in --db (its decisions, when the file exists).",
    )
    add_common_options(parser)
    parser.add_argument("--log", action="store_true", help="also list the promotion log")
    parser.set_defaults(run=run_status)


def status_result(db: str | None, log: bool = False) -> dict[str, Any]:
    """What ``rlv2 status`` reports: the store, the history's span, each agent's
    production version and figures, and (``log``) the promotion log."""
    from rlv2 import store, tracking

    uri = tracking.configure()
    result: dict[str, Any] = {"tracking_uri": uri, "history": None}
    if db is not None and store.local_db_path(db).is_file():
        found: dict[str, Any] = {"db": str(store.local_db_path(db).resolve())}
        try:
            first, last, n = check_history(db)
            found |= {"decisions": n, "first": first, "last": last}
        except Exception as error:  # an unreadable history must not hide production's status
            found["error"] = str(error).strip().splitlines()[0] if str(error).strip() else ""
        result["history"] = found
    result["agents"] = tracking.status()
    if log:
        result["log"] = tracking.promotion_log()
    return result


def status_lines(result: Mapping[str, Any]) -> list[str]:
    """``rlv2 status`` as text."""
    lines = [f"MLflow: {result['tracking_uri']}"]
    found = result.get("history")
    if found and "error" in found:
        lines.append(f"history: {found['db']}: {found['error']}")
    elif found:
        lines.append(
            f"history: {found['db']}: {found['decisions']} decisions "
            f"{when(found['first'])} .. {when(found['last'])}"
        )
    for row in result["agents"]:
        production = row.get("production_version")
        if production is None:
            lines.append(f"{row['agent']}: nothing in production")
            continue
        previous = row.get("previous_version")
        lines.append(
            f"{row['agent']}: production v{production} since {when(row.get('since'))} "
            + (f"(previous v{previous})" if previous else "(no previous version)")
        )
        figures = row.get("figures") or {}
        for key in STATUS_FIGURES:
            if key in figures:
                shown = when(figures[key]) if key.startswith("holdout_") else _short(figures[key])
                lines.append(f"    {key}: {shown}")
    if "log" in result:
        lines += log_lines(result["log"])
    return lines


def log_lines(log: Any) -> list[str]:
    """The promotion log (a frame, newest first), one line per entry: when, which version,
    what was decided against what, and why (``--json`` has every figure)."""
    if log.empty:
        return ["promotion log is empty"]
    lines = [f"promotion log, newest first ({len(log)} entries; --json for every figure):"]
    for row in log.to_dict("records"):
        version = row.get("version")
        line = f"  {when(row.get('timestamp'))} {row.get('agent')} v{_short(version)}: "
        line += str(row.get("decision"))
        champion = row.get("champion")
        if isinstance(champion, str) and champion:
            line += f" vs {champion}"
        reason = row.get("reason")
        if isinstance(reason, str) and reason:
            line += f": {reason}"
        lines.append(line)
    return lines


def run_status(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 status``."""
    result = status_result(args.db, args.log)
    if args.json:
        emit_json(result)
    else:
        say(*status_lines(result))
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
    "ips.simulated",
    "ips.snips",
    "ips.se",
    "ips_disagrees",
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
    add_config_options(parser, TrainConfig, only=("epochs",))
    parser.set_defaults(run=run_demo)


DEMO_SWEEP = SweepConfig(alpha=(0.01, 0.1), gamma=(0.9, 0.99), epsilon=(0.1,))
"""The demo's sweep: a grid over α and γ."""


def run_demo(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 demo``."""
    from rlv2 import tracking

    config = from_options(args, TrainConfig, TrainConfig())
    preflight(None)
    from rlv2.flows.nightly import nightly_retrain  # pyright: ignore[reportMissingImports]
    from rlv2.flows.promote import promote  # pyright: ignore[reportMissingImports]
    from rlv2.flows.sweep import sweep  # pyright: ignore[reportMissingImports]

    text = not args.json
    if text:
        say("== 1/4 demo history (bundled real bars, synthetic forecasts and behaviour)")
    reports = demo_data(args.db)
    if text:
        say(*demo_data_lines(reports), "", "== 2/4 nightly retrain")
    nightly = nightly_retrain(db=args.db, config=config)
    if text:
        say(*training_lines(nightly), "")
        say("== 3/4 sweep (grid over α and γ, one replay_sweep pass per agent)")
    searched = sweep(db=args.db, config=config, search=DEMO_SWEEP)
    if text:
        say(*sweep_lines(searched), "", "== 4/4 promotion gate for the sweep's best candidates")
    decisions = promote(db=args.db)
    status = status_result(None)
    uri = tracking.tracking_uri()
    ui = f"{Path(sys.executable).with_name('mlflow')} ui --backend-store-uri {uri}"
    if text:
        say(*decision_lines(decisions), "", *status_lines(status), "", f"Open the MLflow UI: {ui}")
    else:
        emit_json(
            {
                "history": reports,
                "nightly": nightly,
                "sweep": sweep_result(searched),
                "promotion": decisions,
                "status": status,
                "mlflow_ui": ui,
            }
        )
    return 0


def add_report_command(subparsers: Any) -> None:
    """Register ``rlv2 report``."""
    parser = subparsers.add_parser(
        "report",
        help="write one self-contained HTML report of an MLflow run",
        description="Read a run back from MLflow (parameters, data window, metrics, every "
        "figure, the holdout table, the promotion decisions on the versions it registered "
        "with the gate's figures) and write it as one HTML file: images embedded, no "
        "script, nothing fetched from the network. It reads MLflow only, so it takes no --db.",
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the MLflow run (e.g. a nightly run)")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write it (default: report-<run id>.html in the working directory)",
    )
    add_common_options(parser, db=None)
    parser.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Carry out ``rlv2 report``."""
    from rlv2 import tracking

    tracking.configure()
    page = tracking.run_report(args.run_id)
    path = Path(args.output or f"report-{args.run_id}.html")
    path.write_text(page, encoding="utf-8")
    if args.json:
        emit_json({"run_id": args.run_id, "path": path.resolve(), "bytes": len(page)})
    else:
        say(f"report of run {args.run_id}: {path.resolve()} ({len(page) // 1024} KiB)")
    return 0


COMMANDS = (
    add_demo_command,
    add_demo_data_command,
    add_train_command,
    add_sweep_command,
    add_promote_command,
    add_rollback_command,
    add_status_command,
    add_report_command,
)
"""The pipeline subcommands, registered after ``ingest``."""
