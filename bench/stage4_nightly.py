"""Stage 4: the nightly retrain end to end (``rlv2.flows.nightly.nightly_retrain``).

The flow runs with Prefect (ephemeral API) and MLflow (a fresh SQLite store) in a child
process, so their settings, threads and servers never touch the benchmark's own
process: ``python -m bench.stage4_nightly DB [DB ...]`` runs the flow on each history in
turn and prints its timings as JSON. The same child then times, on the last (largest)
history, the bare data scan and the compiled kernel (``rlv2.pipeline.train_agent`` for
both agents on the flow's training window, same epochs), and each part of the flow from
the plain functions under its tasks. Inside ``train_agent`` it times the learner kernels
alone (the ``replay`` calls, the target's denominator with the scan) apart from the
construction of each agent's counterfactual reward matrix (its own rows, in entries per
second).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import (
    BenchConfig,
    Check,
    Row,
    Stage,
    StageResult,
    Timing,
    format_count,
    format_seconds,
    progress,
)
from bench.stage3_features import CASE as SCALING_CASE
from bench.stage3_features import SIZES, History, history_db
from rlv2.domain import Agent, agent_spec

TITLE = "Nightly retrain end to end (Prefect + MLflow)"
EPOCHS = 5
TARGET_VS_SCAN_KERNEL = 3.0
TARGET_COUNTERFACTUAL_ENTRIES_PER_S = 50e6
"""Issue 12: each agent's counterfactual reward matrix built at >= 50M entries/s."""
OVERHEAD_CANDLES = 3_000
"""The overhead run's history: a few hundred trades, so the flow's fixed costs dominate."""
SCAN_SQL = (
    "SELECT count(*), sum(close) FROM candles",
    "SELECT count(*), sum(confidence) FROM signals",
    "SELECT count(*), sum(entry_price) FROM trades",
    "SELECT count(*), sum(pnl_pct) FROM positions",
)
FLOW_IMPL = "flow nightly_retrain()"
MLFLOW_CALLS = (
    "provenance",
    "start_run",
    "log_config",
    "log_curves",
    "log_metrics",
    "log_q_table",
    "log_policy_model",
)
"""The tracking functions log_training calls, timed inside it."""
HISTORY_CALLS = ("load_transitions", "load_bars")
"""The functions of rlv2.history that pipeline.load_window calls, timed inside it."""
INPUT_CALLS = (
    "decision_order",
    "counterfactual_paths",
    "path_windows",
    "window_features",
    "simulation_inputs",
)
"""The functions of rlv2.replay.inputs that pipeline.load_window calls, timed inside it."""
COUNTERFACTUAL_CALLS = {
    Agent.META_STRATEGY: "meta_counterfactual_rewards",
    Agent.POSITION_SIZING: "sizing_counterfactual_rewards",
}
"""Each agent's reward-matrix builder in rlv2.replay.counterfactual (it builds only its own)."""
FULL_INFORMATION_CALL = "full_information_q"
"""The full-information learner as pipeline.train_full_information calls it (the default)."""
LEARNER_CALL = "replay"
"""The learner kernel as rlv2.replay.counterfactual.train_kernel calls it, once per epoch."""
KERNEL_CALLS = (LEARNER_CALL, *COUNTERFACTUAL_CALLS.values())
"""The functions of rlv2.replay.counterfactual that pipeline.train_agent calls, timed inside it."""


# --- the child process --------------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(timings: dict[str, list[float]], name: str, run: Callable[[], Any]) -> Any:
    """Run once; record [wall seconds, CPU seconds] under ``name``; return the result."""
    cpu0, t0 = _cpu(), time.perf_counter()
    out = run()
    timings[name] = [time.perf_counter() - t0, _cpu() - cpu0]
    return out


def _call_key(part: str, module: str, name: str) -> str:
    """Where :func:`_timing_calls` records ``<module>.<name>`` called inside ``part``.

    ``module`` is the last component of the module's name, e.g. ``counterfactual``.
    """
    return f"in {part}: {module}.{name}"


@contextmanager
def _timing_calls(
    timings: dict[str, list[float]],
    part: str,
    module: Any,
    names: tuple[str, ...],
    sizes: dict[str, int] | None = None,
) -> Iterator[None]:
    """Add the time of every call of ``module.<name>`` to ``timings["in PART: ..."]``.

    The module's functions are patched for the block: the part calls them by module global.
    With ``sizes``, the number of entries of the arrays they return is added under the
    same key.
    """
    originals = {name: getattr(module, name) for name in names}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            cpu0, t0 = _cpu(), time.perf_counter()
            out = None
            try:
                out = function(*args, **kwargs)
                return out
            finally:
                key = _call_key(part, module.__name__.rsplit(".", 1)[-1], name)
                spent = timings.setdefault(key, [0.0, 0.0])
                spent[0] += time.perf_counter() - t0
                spent[1] += _cpu() - cpu0
                if sizes is not None and hasattr(out, "size"):
                    sizes[key] = sizes.get(key, 0) + int(out.size)

        return call

    for name, function in originals.items():
        setattr(module, name, timed(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(module, name, function)


def _scan(db: str) -> None:
    from rlv2 import store

    with store.connect(db, read_only=True) as con:
        for sql in SCAN_SQL:
            con.execute(sql).fetchall()


def _parts(db: str, timings: dict[str, list[float]], sizes: dict[str, int]) -> int:
    """Time the bare scan, the kernel and each part of the flow on ``db``; return train trades.

    ``sizes`` receives the entries of each counterfactual reward matrix built.
    """
    from rlv2 import history, pipeline, store, tracking
    from rlv2.flows.common import plan_split
    from rlv2.flows.nightly import log_training
    from rlv2.pipeline import TrainConfig
    from rlv2.replay import counterfactual, inputs

    config = TrainConfig(epochs=EPOCHS)
    _timed(timings, "scan", lambda: _scan(db))
    split = _timed(timings, "plan split", lambda: plan_split.fn(db, config.holdout_fraction))
    bounds = {
        "train": (split.train_start, split.holdout_start),
        "holdout": (split.holdout_start, split.holdout_end),
    }
    windows = {}
    with store.connect(db, read_only=True) as con:
        for name, (start, end) in bounds.items():
            _timed(
                timings,
                f"load_transitions ({name})",
                lambda s=start, e=end: history.load_transitions(con, s, e, config.features),
            )
            part = f"load_window ({name})"
            with (
                _timing_calls(timings, part, history, HISTORY_CALLS),
                _timing_calls(timings, part, inputs, INPUT_CALLS),
            ):
                windows[name] = _timed(
                    timings,
                    part,
                    lambda s=start, e=end: pipeline.load_window(con, s, e, config.features),
                )
    train, holdout = windows["train"], windows["holdout"]
    trained = {}
    for agent in Agent:
        part = f"kernel {agent}"
        with (
            _timing_calls(timings, part, counterfactual, KERNEL_CALLS, sizes),
            _timing_calls(timings, part, pipeline, (FULL_INFORMATION_CALL,)),
        ):
            trained[agent] = _timed(
                timings, part, lambda a=agent: pipeline.train_agent(a, train, config)
            )
    meta_q, sizing_q = trained[Agent.META_STRATEGY].q, trained[Agent.POSITION_SIZING].q
    evaluation = _timed(
        timings,
        "evaluate x2",
        lambda: {
            "holdout": pipeline.evaluate(holdout, config, meta_q, sizing_q)[1],
            "logged": pipeline.evaluate(holdout, config, None, None)[1],
        },
    )
    part = "log_training (MLflow)"
    with _timing_calls(timings, part, tracking, MLFLOW_CALLS):
        _timed(
            timings,
            part,
            lambda: log_training.fn(
                "bench-parts", trained, evaluation, train, holdout, split, config, db
            ),
        )
    _timed(
        timings,
        "promotion gates x2",
        lambda: [
            pipeline.promotion_gate(a, holdout, config, trained[a].q, None, None, "logged")
            for a in Agent
        ],
    )
    return train.n_trades


def child_main(dbs: list[str]) -> dict[str, Any]:
    """Run the flow on each history in turn, then time the parts on the last one."""
    from rlv2 import tracking
    from rlv2.flows.nightly import nightly_retrain
    from rlv2.pipeline import TrainConfig

    config = TrainConfig(epochs=EPOCHS)
    timings: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    _timed(timings, "configure MLflow", tracking.configure)
    for i, db in enumerate(dbs):
        _timed(timings, f"flow {i}", lambda d=db: nightly_retrain(db=d, config=config))
    train_trades = _parts(dbs[-1], timings, sizes)
    return {"timings": timings, "sizes": sizes, "train_trades": train_trades}


def _child_environment(workdir: Path) -> dict[str, str]:
    """Fresh MLflow and Prefect homes in ``workdir``; Prefect's ephemeral API, no telemetry."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "PREFECT_API", "PREFECT_PROFILES"))
    }
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    env["PREFECT_HOME"] = str(workdir / "prefect")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["PREFECT_LOGGING_LEVEL"] = "WARNING"
    return env


def run_child(dbs: list[Path]) -> dict[str, Any]:
    """Run :func:`child_main` in a fresh interpreter, in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="bench-nightly-") as tmp:
        workdir = Path(tmp)
        completed = subprocess.run(
            [sys.executable, "-m", "bench.stage4_nightly", *map(str, dbs)],
            cwd=workdir,
            env={**_child_environment(workdir), "PYTHONPATH": str(Path(__file__).parent.parent)},
            capture_output=True,
            text=True,
            check=False,
        )
    if completed.returncode != 0:
        raise RuntimeError(
            f"the nightly child failed ({completed.returncode}):\n{completed.stderr[-4000:]}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- the stage ----------------------------------------------------------------------------


def _row(case: str, impl: str, n: int, timing: list[float], note: str = "") -> Row:
    seconds, cpu = timing
    return Row(4, case, impl, n, n, Timing((seconds,), (cpu,), None), note=note)


def _part_label(key: str) -> str:
    """``part: load_window (train)``; a call inside a part, indented under it.

    A call inside a window's or an agent's part says which, so that its rows stay apart.
    """
    if not key.startswith("in "):
        return f"part: {key}"
    part, call = key.removeprefix("in ").split(": ", 1)
    which = ""
    if part.startswith("load_window "):
        which = part.removeprefix("load_window ")  # already "(train)"
    elif part.startswith("kernel "):
        which = f"({part.removeprefix('kernel ')})"
    return f"    - {call} {which}".rstrip()


def _summed(t: dict[str, list[float]], keys: list[str]) -> list[float]:
    """[wall, CPU] seconds of several timed calls added up."""
    return [sum(t[k][i] for k in keys) for i in (0, 1)]


def _learner_keys(t: dict[str, list[float]]) -> list[str]:
    """The recorded learner calls inside both agents' ``train_agent``: SPEC A4's ``replay``
    or the full-information learner, whichever the configuration trains."""
    keys = []
    for a in Agent:
        options = [
            _call_key(f"kernel {a}", "counterfactual", LEARNER_CALL),
            _call_key(f"kernel {a}", "pipeline", FULL_INFORMATION_CALL),
        ]
        found = [k for k in options if k in t]
        if not found:
            raise RuntimeError(
                f"no learner call ({options}) seen inside pipeline.train_agent: "
                "has train_agent stopped calling it?"
            )
        keys += found
    return keys


def _counterfactual_rows(
    large: History, t: dict[str, list[float]], sizes: dict[str, int]
) -> tuple[list[Row], list[Check]]:
    """Each agent's counterfactual reward matrix built inside its train_agent: entries/s."""
    rows, checks = [], []
    for agent, name in COUNTERFACTUAL_CALLS.items():
        key = _call_key(f"kernel {agent}", "counterfactual", name)
        if key not in t:
            continue
        entries, n_actions = sizes[key], agent_spec(agent).n_actions
        timing = Timing((t[key][0],), (t[key][1],), None)
        note = f"{entries // n_actions:,} decisions x {n_actions} actions; entries/s"
        row = Row(4, large.label, f"counterfactual: {name}", entries, entries, timing, note=note)
        rows.append(row)
        checks.append(
            Check(
                4,
                large.label,
                f"{name}: entries per second",
                f"{row.throughput / 1e6:,.1f}M/s ({format_seconds(row.timing.median)})",
                f">= {TARGET_COUNTERFACTUAL_ENTRIES_PER_S / 1e6:g}M/s",
                row.throughput >= TARGET_COUNTERFACTUAL_ENTRIES_PER_S,
            )
        )
    return rows, checks


def _ratio_check(
    label: str, what: str, flow: float, denominator: float, binding: bool = True
) -> Check:
    ratio = flow / denominator
    return Check(
        4,
        label,
        what,
        f"{ratio:,.2f}x ({format_seconds(flow)})",
        f"<= {TARGET_VS_SCAN_KERNEL:g}x",
        ratio <= TARGET_VS_SCAN_KERNEL,
        binding=binding,
    )


def run(config: BenchConfig) -> StageResult:
    """Run stage 4 on the configured sizes; the target and the parts on the largest."""
    result = StageResult(4, TITLE)
    tiny: History = history_db(OVERHEAD_CANDLES)
    sized: list[History] = [history_db(n) for n in SIZES[config.sizes]]
    large = sized[-1]
    labels = ", ".join(h.label for h in sized)
    progress(f"stage 4: nightly_retrain on {tiny.label} (twice), then on {labels}")
    out = run_child([tiny.path, tiny.path, *(h.path for h in sized)])
    t: dict[str, list[float]] = out["timings"]
    n = large.n_trades
    flow = t[f"flow {1 + len(sized)}"][0]
    train_agent = _summed(t, [f"kernel {a}" for a in Agent])
    learner = _summed(t, _learner_keys(t))
    scan_learner = [t["scan"][i] + learner[i] for i in (0, 1)]
    result.rows += [
        _row(
            tiny.label,
            f"{FLOW_IMPL}, first (cold)",
            tiny.n_trades,
            t["flow 0"],
            "Prefect API start, imports, numba cache loads",
        ),
        _row(
            tiny.label,
            f"{FLOW_IMPL}, fixed overhead",
            tiny.n_trades,
            t["flow 1"],
            "same flow again: the fixed cost",
        ),
        *(
            _row(SCALING_CASE, FLOW_IMPL, h.n_trades, t[f"flow {2 + i}"], h.label)
            for i, h in enumerate(sized)
        ),
        _row(large.label, "bare data scan", n, t["scan"], "count + sum over the 4 tables"),
        _row(
            large.label,
            "kernel: train_agent x2",
            n,
            train_agent,
            f"{out['train_trades']:,} training trades x {EPOCHS} epochs; counterfactual "
            "rewards, states and the learner",
        ),
        _row(
            large.label,
            f"learner kernels: {LEARNER_CALL} x{len(Agent) * EPOCHS}",
            n,
            learner,
            "the replay calls inside train_agent x2 alone",
        ),
        _row(large.label, "scan + learner kernels", n, scan_learner, "the target's denominator"),
    ]
    counterfactual_rows, counterfactual_checks = _counterfactual_rows(large, t, out["sizes"])
    result.rows += counterfactual_rows
    parts = []
    for part in t:
        if not part.startswith(("flow ", "scan", "configure", "in ")):
            parts += [part, *(k for k in t if k.startswith(f"in {part}: "))]
    result.rows += [_row(large.label, _part_label(k), n, t[k]) for k in parts]
    result.checks += [
        _ratio_check(
            large.label, "flow time / (bare scan + learner kernels)", flow, scan_learner[0]
        ),
        _ratio_check(
            large.label,
            "flow time minus fixed overhead / (scan + learner kernels)",
            flow - t["flow 1"][0],
            scan_learner[0],
            binding=False,
        ),
        _ratio_check(
            large.label,
            "flow time / (bare scan + train_agent x2), the former denominator",
            flow,
            t["scan"][0] + train_agent[0],
            binding=False,
        ),
        *counterfactual_checks,
    ]
    result.notes += [
        "Every figure is one run (the flow takes seconds to minutes); 'ns/update' is per "
        "trade of the history (per entry in the counterfactual rows); 'cores' is the child "
        "process's CPU over wall time.",
        "The flow runs in a child interpreter with MLflow on a fresh SQLite store and "
        "Prefect's ephemeral API in a temporary PREFECT_HOME; it runs first twice on a "
        f"{format_count(OVERHEAD_CANDLES)}-candle history (cold, then the fixed "
        "overhead) and then on each history of the scaling rows (epochs=5 each); the "
        "target and the parts use the largest. promote=True: the candidates go "
        "through the promotion gate as in production.",
        "The target's denominator is the bare scan plus the learner kernels alone: the "
        f"{LEARNER_CALL} calls inside train_agent (one per epoch and agent), without the "
        "counterfactual reward matrices, the state encoding or anything else train_agent "
        "does (issue 12: the matrices were most of train_agent and hid in the "
        "denominator). The matrices have rows of their own: "
        + " and ".join(COUNTERFACTUAL_CALLS.values())
        + ", each timed inside its agent's train_agent on the training window, in "
        "matrix entries (decisions x actions) per second.",
        "Parts: the plain functions under the flow's tasks, timed one after the other in "
        "the same child after the flows (warm); the flow runs the two load_window tasks and "
        "the two train_agent tasks concurrently (2 threads), so the parts can add up to more "
        "than the flow. The 'part: load_transitions' rows call it alone (it loads its own "
        "bars), as load_window does inside; the indented rows are the calls inside the "
        "part above them (module functions timed by patching them for that call).",
    ]
    return result


STAGE = Stage(4, TITLE, run)

if __name__ == "__main__":
    print(json.dumps(child_main(sys.argv[1:])))
