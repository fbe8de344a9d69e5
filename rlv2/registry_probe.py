"""Quick questions to the MLflow registry without importing MLflow (part of the tracking edge).

MLflow takes seconds to import and to open its store; the CLI's checks before Prefect
starts must answer in under two. A SQLite store is read directly, read-only (MLflow's
``model_versions`` table); a tracking server is asked over its REST API (``GET
/api/2.0/mlflow/model-versions/get``, with the ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` or ``MLFLOW_TRACKING_TOKEN`` MLflow itself would send). Any
other store, or any answer these cannot read, is ``None``: the caller asks MLflow.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

PROBE_SECONDS = 5.0
"""How long a tracking server gets to answer one question."""


def store_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store ``<cwd>/mlflow.db``."""
    return (
        os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"
    )


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores or in memory)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = uri[len(prefix) :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path).resolve()


def version_known(uri: str, model: str, version: str | int) -> bool | None:
    """Whether ``model`` has version ``version`` in the registry at ``uri``; None: can't tell."""
    if uri.startswith("sqlite:///"):
        return _sqlite_version_known(uri, model, str(version))
    if uri.startswith(("http://", "https://")):
        return _rest_version_known(uri, model, str(version))
    return None


def _sqlite_version_known(uri: str, model: str, version: str) -> bool | None:
    db_file = sqlite_path(uri)
    if db_file is None:
        return None
    if not db_file.is_file():
        return False  # no store, so no version (the store is not created here)
    try:
        # mode=ro: a check must never create or migrate a store
        with sqlite3.connect(f"{db_file.as_uri()}?mode=ro", uri=True, timeout=2.0) as con:
            row = con.execute(
                "SELECT 1 FROM model_versions WHERE name = ? AND version = ?",
                (model, int(version)),
            ).fetchone()
    except (sqlite3.Error, ValueError):
        return None  # not MLflow's schema, or a version that is not a number: ask MLflow
    return row is not None


def _rest_version_known(uri: str, model: str, version: str) -> bool | None:
    query = urllib.parse.urlencode({"name": model, "version": version})
    request = urllib.request.Request(
        f"{uri.rstrip('/')}/api/2.0/mlflow/model-versions/get?{query}", headers=_auth_headers()
    )
    try:
        with urllib.request.urlopen(request, timeout=PROBE_SECONDS) as answer:
            return answer.status == 200
    except urllib.error.HTTPError as error:
        try:
            code = json.loads(error.read() or b"{}").get("error_code")
        except ValueError:
            code = None
        return False if code == "RESOURCE_DOES_NOT_EXIST" else None
    except (urllib.error.URLError, OSError):
        return None  # unreachable: the store check that follows says so, naming the URI


def _auth_headers() -> dict[str, str]:
    """The credentials MLflow's client would send, from its environment variables."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    return {}
