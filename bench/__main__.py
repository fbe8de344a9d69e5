"""``python -m bench``: run the benchmark's stages, print the report, save it as markdown."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from collections.abc import Sequence

import bench
from bench.harness import BenchConfig, Stage
from bench.report import load_average, print_report, render_report, write_markdown

_STAGE_MODULE = re.compile(r"stage(\d+)_\w+")


def discover_stages() -> dict[int, Stage]:
    """Every ``bench/stage<N>_<name>.py`` module's ``STAGE``, by number."""
    stages: dict[int, Stage] = {}
    for module_info in pkgutil.iter_modules(bench.__path__):
        match = _STAGE_MODULE.fullmatch(module_info.name)
        if match is None:
            continue
        stage = importlib.import_module(f"bench.{module_info.name}").STAGE
        if stage.number != int(match.group(1)):
            raise RuntimeError(f"bench/{module_info.name}.py defines stage {stage.number}")
        stages[stage.number] = stage
    return dict(sorted(stages.items()))


def _parse(argv: Sequence[str], available: Sequence[int]) -> tuple[BenchConfig, list[int]]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--stages",
        default=",".join(str(n) for n in available),
        help=f"comma-separated stage numbers (default: all of {list(available)})",
    )
    parser.add_argument(
        "--sizes", choices=("small", "full"), default="full", help="workload sizes (default full)"
    )
    parser.add_argument("--repeat", type=int, help="timed repeats per measurement (min 3)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run (~2 min): small sizes, 3 repeats"
    )
    args = parser.parse_args(argv)
    try:
        numbers = [int(part) for part in args.stages.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--stages={args.stages!r} is not a comma-separated list of numbers")
    unknown = sorted(set(numbers) - set(available))
    if unknown:
        parser.error(f"--stages: no stage {unknown}; available: {list(available)}")
    sizes = "small" if args.quick else args.sizes
    config = BenchConfig(sizes=sizes, repeat=args.repeat, quick=args.quick)
    return config, numbers


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected stages; always 0 unless the benchmark itself fails."""
    argv = list(sys.argv[1:] if argv is None else argv)
    stages = discover_stages()
    config, numbers = _parse(argv, list(stages))
    load_before = load_average()
    results = []
    for number in numbers:
        stage = stages[number]
        print(f"stage {number}: {stage.title} ...", file=sys.stderr, flush=True)
        results.append(stage.run(config))
    print_report(render_report(results, config, argv, load_before, markdown=False))
    path = write_markdown(render_report(results, config, argv, load_before, markdown=True))
    print(f"\nmarkdown report: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
