"""One writer at a time on the MLflow registry, across threads, processes and hosts.

MLflow has no compare-and-set: registering a version, moving an alias and writing the
promotion log are separate calls, and two runs interleaving them registered the same
Q-table twice and promoted both. ``registry_lock(uri)`` serialises those writes;
``rlv2.tracking`` takes it around each of them. Two kinds, chosen by the store's URI:

SQLite store (``sqlite:///path/mlflow.db``, the embedded default)
    An exclusive ``flock`` on ``mlflow.db.rlv2-lock`` beside the database file. The
    kernel drops it when its holder dies, so a killed run never leaves it held. It also
    covers the store's creation (``tracking.configure``): two processes creating one
    SQLite store at once crashed in MLflow's schema migration.

Any other store (a tracking server ``http(s)://``, or a database URI)
    A lease kept in the registry itself: the registered model ``rlv2-registry-lock``.
    Creating a registered model is the one atomic test-and-set MLflow's API offers (a name
    exists once; a second create fails with ``RESOURCE_ALREADY_EXISTS``, enforced by the
    server's database), so acquiring is creating it, tagged with its ``owner`` and
    ``expires_at``, and releasing is deleting it. A lease past its expiry (its holder
    died) is broken by renaming it away, which also succeeds only once. Why not a tag on
    the agents' models: setting a tag is last-writer-wins, two writers can both read
    "free" and both win. Why not Prefect's global concurrency limits: they are atomic only
    on a shared Prefect server, and ``rlv2`` commands run flows on an ephemeral server of
    their own, so two commands would never see each other's limit (the deployments'
    ``concurrency_limit`` in ``prefect.yaml`` keeps scheduled runs of one deployment from
    overlapping). The lease assumes clocks agree to well within ``LEASE_SECONDS``, and a
    holder that takes longer than that (a registry write hung for minutes) may see its
    lease broken.

The lock is re-entrant within a thread (a promotion that records its decision takes it
once), and a wait longer than the timeout raises :class:`RegistryBusy` naming the holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from rlv2.registry_probe import sqlite_path

LOCK_MODEL = "rlv2-registry-lock"
"""Registered model whose existence is the lease of a store other than SQLite."""
LOCK_SUFFIX = ".rlv2-lock"
"""Suffix of the lock file beside a SQLite store's database file."""
WAIT_SECONDS = 300.0
"""How long a writer waits for the lock before it gives up (a promotion holds it seconds)."""
LEASE_SECONDS = 600.0
"""How long a lease in the registry holds before another writer may break it."""
POLL_SECONDS = 0.2
"""Pause between two tries to take a held lock."""

_held = threading.local()


class RegistryBusy(RuntimeError):
    """The registry lock stayed held for longer than the wait allowed."""


def owner_label(purpose: str = "") -> str:
    """Who holds the lock, for messages: host, process id, thread and purpose."""
    thread = threading.current_thread().name
    label = f"{socket.gethostname()} pid {os.getpid()} {thread}"
    return f"{label} ({purpose})" if purpose else label


@contextmanager
def registry_lock(
    uri: str, purpose: str = "", wait_seconds: float = WAIT_SECONDS
) -> Iterator[None]:
    """Hold the store's registry lock for the block (see the module docstring)."""
    depth: dict[str, int] = getattr(_held, "depth", None) or {}
    _held.depth = depth
    if depth.get(uri):
        depth[uri] += 1
        try:
            yield
        finally:
            depth[uri] -= 1
        return
    db_file = sqlite_path(uri)
    lock = (
        _file_lock(db_file.with_name(db_file.name + LOCK_SUFFIX), purpose, wait_seconds)
        if db_file is not None
        else _lease(uri, purpose, wait_seconds)
    )
    with lock:
        depth[uri] = 1
        try:
            yield
        finally:
            depth[uri] = 0


@contextmanager
def _file_lock(path: Path, purpose: str, wait_seconds: float) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``, polled until ``wait_seconds`` have passed."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"registry lock {path}: folder {path.parent} does not exist")
    deadline = time.monotonic() + wait_seconds
    with path.open("a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise RegistryBusy(
                        f"registry lock {path} held by {holder} for over {wait_seconds:.0f} s"
                    ) from None
                time.sleep(POLL_SECONDS)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{owner_label(purpose)} since {datetime.now(UTC).isoformat()}\n")
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lease_of(client: MlflowClient) -> dict[str, str] | None:
    """The tags of the current lease, or None if there is none."""
    try:
        return dict(client.get_registered_model(LOCK_MODEL).tags)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _break_expired(client: MlflowClient, lease: dict[str, str]) -> None:
    """Remove a lease past its expiry; another writer may have done so first."""
    stale = f"{LOCK_MODEL}-stale-{uuid.uuid4().hex[:12]}"
    try:
        client.rename_registered_model(LOCK_MODEL, stale)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return
        raise
    if client.get_registered_model(stale).tags.get("token") != lease.get("token"):
        # a live lease was taken between the look and the rename: give it back
        client.rename_registered_model(stale, LOCK_MODEL)
        return
    client.delete_registered_model(stale)


@contextmanager
def _lease(uri: str, purpose: str, wait_seconds: float) -> Iterator[None]:
    """A lease in the registry of the store at ``uri``: the registered model LOCK_MODEL."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    token = uuid.uuid4().hex
    owner = owner_label(purpose)
    deadline = time.monotonic() + wait_seconds
    while True:
        expires = time.time() + LEASE_SECONDS
        tags = {"owner": owner, "token": token, "expires_at": f"{expires:.3f}"}
        try:
            client.create_registered_model(
                LOCK_MODEL, tags=tags, description="rlv2's registry lock (rlv2.registry_lock)"
            )
            break
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        lease = _lease_of(client)
        if lease is not None and float(lease.get("expires_at", "0")) < time.time():
            _break_expired(client, lease)
            continue
        if time.monotonic() > deadline:
            holder = json.dumps(lease) if lease else "another writer"
            raise RegistryBusy(
                f"registry lock {LOCK_MODEL} of {uri} held by {holder} for over "
                f"{wait_seconds:.0f} s"
            )
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        lease = _lease_of(client)
        if lease is not None and lease.get("token") == token:
            client.delete_registered_model(LOCK_MODEL)
