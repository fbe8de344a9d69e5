"""A wheel of rlv2 carries its SQL, bundled data and flows, and works installed from it alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "rlv2", "flows", "sql", "data")

CHECK = """
import importlib.util
import sys
from pathlib import Path
from rlv2 import demo_data, pipeline, replay, store
site = Path(sys.argv[1]).resolve()
for module in (store, replay, pipeline):  # every subpackage ships (rlv2.replay once did not)
    assert Path(module.__file__).resolve().is_relative_to(site), module.__file__
assert store.SQL_DIR == site / "rlv2" / "sql", store.SQL_DIR
assert demo_data.DATA_DIR == site / "rlv2" / "data", demo_data.DATA_DIR
assert store.sql_path("ingest_rules_trades").is_relative_to(store.SQL_DIR / "ingest")
assert importlib.util.find_spec("flows") is None, "a top-level module flows is installed"
from rlv2.flows import nightly, promote, sweep
assert Path(nightly.__file__).resolve() == site / "rlv2" / "flows" / "nightly.py"
assert nightly.nightly_retrain.name == "nightly-retrain", nightly.nightly_retrain.name
with store.connect(":memory:") as con:
    store.apply_schema(con)
    print(len(con.execute("SELECT * FROM duckdb_tables()").fetchall()), "tables")
print(len(demo_data.load_bundled_candles()), "candles")
"""


@pytest.mark.slow
def test_a_wheel_carries_sql_data_and_flows_and_runs_outside_the_checkout(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, source / name)
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source], check=True
    )
    (wheel,) = wheels.glob("rlv2-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    sql = sorted(n.removeprefix("rlv2/sql/") for n in names if n.startswith("rlv2/sql/"))
    shipped = [*(REPO / "sql").rglob("*.sql"), *(REPO / "sql").rglob("README.md")]
    assert sql == sorted(p.relative_to(REPO / "sql").as_posix() for p in shipped)
    assert "contract/schema.sql" in sql
    assert {Path(n).name for n in names if n.startswith("rlv2/data/")} >= {
        p.name for p in (REPO / "data").glob("*.csv")
    }
    flows = sorted(Path(n).name for n in names if n.startswith("rlv2/flows/"))
    assert flows == sorted(p.name for p in (REPO / "flows").glob("*.py"))
    assert not [n for n in names if n.startswith("flows/")]  # no top-level package flows
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", CHECK, site],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "candles" in run.stdout
