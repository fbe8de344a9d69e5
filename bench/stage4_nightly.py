"""Stage 4: the nightly retrain end to end (``rlv2.flows.nightly.nightly_retrain``).

The flow runs with Prefect (ephemeral API) and MLflow (a fresh SQLite store) in a child
process, so their settings, threads and servers never touch the benchmark's own
process: ``python -m bench.stage4_nightly DB [DB ...]`` runs the flow on each history in
turn and prints its timings as JSON. The same child then times, on the last (largest)
history, the bare data scan and the compiled kernel (``rlv2.pipeline.train_agent`` for
both agents on the flow's training window, same epochs), and each part of the flow from
the plain functions under its tasks.
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
from rlv2.domain import Agent

TITLE = "Nightly retrain end to end (Prefect + MLflow)"
EPOCHS = 5
TARGET_VS_SCAN_KERNEL = 3.0
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


@contextmanager
def _timing_calls(
    timings: dict[str, list[float]], part: str, module: Any, names: tuple[str, ...]
) -> Iterator[None]:
    """Add the time of every call of ``module.<name>`` to ``timings["in PART: ..."]``.

    The module's functions are patched for the block: the part calls them by module global.
    """
    originals = {name: getattr(module, name) for name in names}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            cpu0, t0 = _cpu(), time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                key = f"in {part}: {module.__name__.rsplit('.', 1)[-1]}.{name}"
                spent = timings.setdefault(key, [0.0, 0.0])
                spent[0] += time.perf_counter() - t0
                spent[1] += _cpu() - cpu0

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


def _parts(db: str, timings: dict[str, list[float]]) -> int:
    """Time the bare scan, the kernel and each part of the flow on ``db``; return train trades."""
    from rlv2 import history, pipeline, store, tracking
    from rlv2.flows.common import plan_split
    from rlv2.flows.nightly import log_training
    from rlv2.pipeline import TrainConfig
    from rlv2.replay import inputs

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
    trained = {
        agent: _timed(
            timings, f"kernel {agent}", lambda a=agent: pipeline.train_agent(a, train, config)
        )
        for agent in Agent
    }
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
    _timed(timings, "configure MLflow", tracking.configure)
    for i, db in enumerate(dbs):
        _timed(timings, f"flow {i}", lambda d=db: nightly_retrain(db=d, config=config))
    train_trades = _parts(dbs[-1], timings)
    return {"timings": timings, "train_trades": train_trades}


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
    """``part: load_window (train)``; a call inside a part, indented under it."""
    if not key.startswith("in "):
        return f"part: {key}"
    part, call = key.removeprefix("in ").split(": ", 1)
    window = part.removeprefix("load_window ") if part.startswith("load_window") else ""
    return f"    - {call} {window}".rstrip()


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
    last_flow = f"flow {1 + len(sized)}"
    kernel = [sum(t[f"kernel {a}"][i] for a in Agent) for i in (0, 1)]
    scan_kernel = [t["scan"][i] + kernel[i] for i in (0, 1)]
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
            kernel,
            f"{out['train_trades']:,} training trades x {EPOCHS} epochs",
        ),
        _row(large.label, "scan + kernel", n, scan_kernel, "the target's denominator"),
    ]
    parts = []
    for part in t:
        if not part.startswith(("flow ", "scan", "configure", "in ")):
            parts += [part, *(k for k in t if k.startswith(f"in {part}: "))]
    result.rows += [_row(large.label, _part_label(k), n, t[k]) for k in parts]
    ratio = t[last_flow][0] / scan_kernel[0]
    result.checks += [
        Check(
            4,
            large.label,
            "flow time / (bare scan + kernel)",
            f"{ratio:,.2f}x ({format_seconds(t[last_flow][0])})",
            f"<= {TARGET_VS_SCAN_KERNEL:g}x",
            ratio <= TARGET_VS_SCAN_KERNEL,
        ),
        Check(
            4,
            large.label,
            "flow time minus fixed overhead / (scan + kernel)",
            f"{(t[last_flow][0] - t['flow 1'][0]) / scan_kernel[0]:,.2f}x",
            f"<= {TARGET_VS_SCAN_KERNEL:g}x",
            (t[last_flow][0] - t["flow 1"][0]) / scan_kernel[0] <= TARGET_VS_SCAN_KERNEL,
            binding=False,
        ),
    ]
    result.notes += [
        "Every figure is one run (the flow takes seconds to minutes); 'ns/update' is per "
        "trade of the history; 'cores' is the child process's CPU over wall time.",
        "The flow runs in a child interpreter with MLflow on a fresh SQLite store and "
        "Prefect's ephemeral API in a temporary PREFECT_HOME; it runs first twice on a "
        f"{format_count(OVERHEAD_CANDLES)}-candle history (cold, then the fixed "
        "overhead) and then on each history of the scaling rows (epochs=5 each); the "
        "target and the parts use the largest. promote=True: the candidates go "
        "through the promotion gate as in production.",
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
