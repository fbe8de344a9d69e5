"""The benchmark's report: the measurements, the targets and the scaling, as text or markdown."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import numba
import numpy as np

from bench.compiled import compiler_version
from bench.harness import (
    BenchConfig,
    Row,
    StageResult,
    format_bytes,
    format_count,
    format_equal,
    format_rate,
    format_seconds,
    render_table,
)

RESULTS_DIR = Path(__file__).parent / "results"

_ROW_HEADERS = (
    "workload",
    "implementation",
    "N",
    "median",
    "ns/update",
    "throughput",
    "call allocates",
    "cores",
    "Q equal",
    "note",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    """The 1-minute load average, where the platform has one."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _load_line(load_before: float | None) -> str:
    load_after = load_average()
    if load_before is None or load_after is None:
        return "load average: unknown"
    return (
        f"load average (1 min): {load_before:.2f} before the run, {load_after:.2f} after "
        "(it lags by a minute; the cores column shows contention: a single-threaded row "
        "well below 1.00, or a sweep well below 2.00, means other processes took CPU time)"
    )


def machine_lines(config: BenchConfig, argv: Sequence[str], load_before: float | None) -> list[str]:
    """Where and how the run happened."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"run: python -m bench {' '.join(argv)}".rstrip() + f"  ({when})",
        f"sizes={config.sizes}{' (quick)' if config.quick else ''}, "
        f"repeat={config.repeat if config.repeat is not None else 'stage default'}",
        f"cpu: {_cpu_model()}, {os.cpu_count()} logical cores; "
        f"numba {numba.__version__} with {numba.get_num_threads()} threads; "
        f"numpy {np.__version__}; python {platform.python_version()}",
        f"cc: {compiler_version()}",
        _load_line(load_before),
    ]


def _row_cells(row: Row) -> list[str]:
    return [
        row.case,
        row.impl,
        format_count(row.n_events),
        format_seconds(row.timing.median),
        f"{row.ns_per_update:,.1f}",
        format_rate(row.throughput),
        format_bytes(row.timing.allocated),
        f"{row.timing.cores_busy:.2f}",
        format_equal(row.equal),
        row.note,
    ]


def _scaling_cells(rows: Sequence[Row]) -> list[list[str]]:
    """Per workload and implementation: ns/update at each N and time growth over N growth."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.case, row.impl), []).append(row)
    cells = []
    for (case, impl), group in groups.items():
        group = sorted(group, key=lambda r: r.n_events)
        if len(group) < 2:
            continue
        small, large = group[0], group[-1]
        n_growth = large.n_events / small.n_events
        t_growth = large.timing.median / small.timing.median
        per_size = " / ".join(f"{r.ns_per_update:,.1f}" for r in group)
        sizes = " / ".join(format_count(r.n_events) for r in group)
        cells.append(
            [
                case,
                impl,
                sizes,
                per_size,
                f"x{n_growth:,.0f}",
                f"x{t_growth:,.1f}",
                f"{t_growth / n_growth:.2f}",
            ]
        )
    return cells


def _stage_section(result: StageResult, *, markdown: bool) -> list[str]:
    heading = f"Stage {result.number}: {result.title}"
    out = [f"### {heading}" if markdown else f"== {heading} ==", ""]
    if result.rows:
        out += [render_table(_ROW_HEADERS, [_row_cells(r) for r in result.rows], markdown=markdown)]
        out += [""]
    if result.checks:
        title = "Targets (PASS/MISS) and comparisons (info)"
        out += [f"**{title}**" if markdown else f"-- {title} --", ""]
        headers = ("workload", "comparison", "measured", "target", "result")
        cells = [[c.case, c.what, c.measured, c.target, c.marker] for c in result.checks]
        out += [render_table(headers, cells, markdown=markdown), ""]
    scaling = _scaling_cells(result.rows)
    if scaling:
        title = "Scaling: time per update at each N; time growth / N growth (1.00 = linear)"
        out += [f"**{title}**" if markdown else f"-- {title} --", ""]
        headers = ("workload", "implementation", "N", "ns/update", "N x", "time x", "ratio")
        out += [render_table(headers, scaling, markdown=markdown), ""]
    bullet = "- " if markdown else "  * "
    out += [bullet + note for note in result.notes]
    out += [""]
    return out


def render_report(
    results: Sequence[StageResult],
    config: BenchConfig,
    argv: Sequence[str],
    load_before: float | None,
    *,
    markdown: bool,
) -> str:
    """The whole report."""
    out = ["## rlv2 benchmark" if markdown else "rlv2 benchmark", ""]
    bullet = "- " if markdown else "  "
    out += [bullet + line for line in machine_lines(config, argv, load_before)]
    out += [
        "",
        "Baselines are labelled 'baseline:'; ratios are throughputs measured in this run. "
        "PASS/MISS are markers, never an exit status.",
        "",
    ]
    for result in results:
        out += _stage_section(result, markdown=markdown)
    return "\n".join(out)


def write_markdown(text: str) -> Path:
    """Write the markdown report to ``bench/results/latest.md``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "latest.md"
    path.write_text(text + "\n")
    return path


def print_report(text: str) -> None:
    """Print the text report on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
