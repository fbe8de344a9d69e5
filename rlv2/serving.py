"""What a live consumer imports to load a production policy: a Q-table as an MLflow model.

One line loads the position-sizing agent's production policy::

    policy = load_policy("position_sizing")  # models:/rlv2-position-sizing@production -> /7
    action = policy.act({"signal_confidence": 0.8, "portfolio_exposure": 0.3,
                         "recent_winrate": 0.55, "volatility": 0.02,
                         "equity_curve_slope": 0.0})

The registered models are MLflow pyfunc models logged from code: the model's code is the
file ``rlv2/policy_model.py`` (MLflow's models-from-code; it builds a ``QTablePolicy``), and
its artifacts are plain files: ``q_table`` (the Q-table, ``.npy``, read with
``allow_pickle=False``), ``space`` (JSON: agent name and state space,
``StateSpace.to_dict``) and, for models logged since they existed, ``visits`` (training
events per state, int64 ``.npy``; the learner and back-off levels are in the model's
config: ``rlv2.coverage.Coverage``). Nothing on the way from the registry to a consumer is
a pickle, so they load with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``.
``mlflow.pyfunc.load_model("models:/rlv2-position-sizing@production")`` and ``mlflow models
serve`` load them as well; the serving environment needs ``rlv2`` installed, since the
model's code imports this module.

Verified at every load. The model's ``model_config`` holds ``q_sha256``, the digest of its
Q-table and state space (``q_sha256()``), ``visits_sha256``, the digest of its visit counts,
learner and back-off levels (``Coverage.sha256()``), and ``source``, what to call it in a
message. ``load_context`` recomputes both digests from the artifacts and refuses a mismatch
(:class:`DigestMismatch`, naming the source and both digests), and refuses a table that is
not float64, not (states x actions) or not finite, and counts that are not int64, one per
state. :func:`load_policy` never creates a tracking store (:class:`StoreNotFound` names the
one it looked for), resolves the alias to its version first (``Policy.version``,
``Policy.model_uri`` ``models:/NAME/N``) and loads that version with the digests of the
registry's ``q_sha256`` and ``visits_sha256`` tags (the tracking store, not the artifact
store, vouches for them), after checking that the model's code file is this package's
``policy_model.py``.

Input (SPEC A2): one row per decision, one column per raw state feature, named as in the
state space (meta-strategy: ``regime`` as a name such as ``TREND`` or its code,
``volatility``, ``market_pressure``, ``confidence``, ``previous_winrate``,
``account_health``; position sizing: ``signal_confidence``, ``portfolio_exposure``,
``recent_winrate``, ``volatility``, ``equity_curve_slope``). Extra columns are ignored.
A regime name matches in any case. A row the policy cannot answer is refused, one line
naming the column, the row (from 0) and the value (:class:`RefusedInput` from
``greedy_actions``; ``MlflowException`` with ``INVALID_PARAMETER_VALUE`` from ``predict``,
which ``mlflow models serve`` answers with HTTP 400): a missing column, an unknown regime,
text, NaN, an infinity, or a value outside its SPEC A2 range
(``rlv2.states.FEATURE_RANGES``).

Output: one row per input row: ``state`` (index), ``action`` (code, SPEC A3), the decoded
parts (``strategy``, ``model``, ``weight_action`` for meta-strategy; ``size_multiplier``,
``leverage`` for sizing), ``q_value``, the greedy action's Q-value, and what data stood
behind it: ``visited`` (the state occurred in training), ``visits`` (its training events),
``fallback`` (``none`` when visited; else the back-off level, ``global`` or ``initial`` that
gave its value: ``rlv2.coverage``) and ``fallback_visits`` (the events behind the value). A
model without counts answers them null and ``fallback`` ``unknown``. The greedy action is
the first argmax of the state's Q-row (``rlv2.qlearning.greedy_policy``).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model as MlflowModel
from mlflow.models.model import MODEL_CONFIG
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import FLAVOR_NAME as PYFUNC_FLAVOR
from mlflow.pyfunc import PyFuncModel, load_model
from mlflow.pyfunc.model import PythonModel, PythonModelContext
from numpy.typing import ArrayLike, NDArray

from rlv2.actions import meta_space, sizing_space
from rlv2.coverage import Coverage
from rlv2.domain import Agent, Model, Strategy, WeightAction, agent_spec
from rlv2.qlearning import greedy_policy
from rlv2.registry_probe import sqlite_path
from rlv2.states import FEATURE_RANGES, Feature, StateSpace

PRODUCTION_ALIAS = "production"
"""Alias of the version a live consumer loads."""

Q_TABLE_ARTIFACT = "q_table"
"""Key of the Q-table (``.npy``) among the pyfunc model's artifacts."""
SPACE_ARTIFACT = "space"
"""Key of the agent and state-space JSON among the pyfunc model's artifacts."""
VISITS_ARTIFACT = "visits"
"""Key of the training events per state (``.npy``, int64) among the model's artifacts."""
VISITS_DIGEST_KEY = "visits_sha256"
"""Tag of a registered version, and key of its ``model_config``: ``Coverage.sha256()``."""
DIGEST_KEY = "q_sha256"
"""Tag of a registered version, and key of its model's ``model_config``: ``q_sha256()``."""
SOURCE_KEY = "source"
"""Key of the ``model_config`` item that names the model in messages (``NAME vN``)."""
POLICY_CODE = Path(__file__).with_name("policy_model.py")
"""The models-from-code file every policy model is logged with."""

MODEL_CODE_LOCK = threading.Lock()
"""Held while MLflow runs a models-from-code file: it hands the model over through a
module global (``mlflow.models.set_model``), which two threads must not share."""


class DigestMismatch(ValueError):
    """A Q-table or state space whose digest is not the one its version was registered with."""


class RefusedInput(ValueError):
    """An input row the policy cannot answer: a missing column, an unknown category, a value
    that is not a finite number or lies outside its SPEC A2 range."""


class StoreNotFound(ValueError):
    """A tracking store that does not exist (``load_policy`` never creates one)."""


def q_sha256(q: ArrayLike, state_space: StateSpace) -> str:
    """Digest of a Q-table and its state space: the identity of a registered version."""
    arr = np.ascontiguousarray(q, dtype=np.float64)
    header = json.dumps({"shape": list(arr.shape), "state_space": state_space.to_dict()})
    digest = hashlib.sha256(header.encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


def verify_digest(
    q: NDArray[np.float64], state_space: StateSpace, expected: str | None, source: str
) -> None:
    """Raise :class:`DigestMismatch` unless the table and space hash to ``expected``."""
    if not expected:
        raise DigestMismatch(f"{source}: no {DIGEST_KEY} to verify its Q-table against; refused")
    found = q_sha256(q, state_space)
    if found != expected:
        raise DigestMismatch(
            f"{source}: Q-table or state space changed since it was registered: "
            f"{DIGEST_KEY} {found} found, {expected} registered; refused"
        )


def check_agent(agent: str) -> Agent:
    """The agent ``agent`` names, or a ValueError naming the choices."""
    return agent_spec(agent).agent


def action_labels(agent: str) -> list[str]:
    """Readable labels of the agent's actions, in code order."""
    return agent_spec(agent).action_space.labels()


def check_q_table(agent: str, q: Any, state_space: StateSpace) -> NDArray[np.float64]:
    """Return ``q`` as a float64 array, raising unless it is (n_states, n_actions) and finite."""
    if isinstance(q, np.ndarray) and q.dtype.kind not in "fiub":
        raise ValueError(f"{agent} Q-table: dtype {q.dtype}, expected float64")
    arr = np.asarray(q, dtype=np.float64)
    expected = (state_space.n_states, agent_spec(agent).n_actions)
    if arr.shape != expected:
        raise ValueError(
            f"{agent} Q-table: shape {arr.shape}, expected {expected} "
            f"({state_space.name} states x {agent} actions)"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{agent} Q-table: contains NaN or infinite values")
    return arr


def _shown(value: Any) -> str:
    """A value as a message shows it: strings quoted, numbers plain (no numpy repr)."""
    return repr(value) if isinstance(value, str) else str(value)


def _refused(space: StateSpace, column: str, row: int, value: Any, why: str) -> RefusedInput:
    """The one-line refusal of one input value, naming its column, row and value."""
    return RefusedInput(
        f"{space.name} policy input: column {column!r}, row {row}: {_shown(value)} {why}; refused"
    )


def _category_codes(space: StateSpace, feature: Feature, column: pd.Series) -> NDArray[np.float64]:
    """Codes of a categorical column given as names (any case) or integer codes."""
    lookup = {c.upper(): i for i, c in enumerate(feature.categories)}
    codes = np.empty(len(column), np.float64)
    for row, value in enumerate(column.to_numpy(dtype=object)):
        if isinstance(value, str) and value.strip().upper() in lookup:
            codes[row] = lookup[value.strip().upper()]
        elif (
            isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool | np.bool_)
            and float(value) in range(len(feature.categories))
        ):
            codes[row] = float(value)
        else:
            names = ", ".join(feature.categories)
            raise _refused(
                space,
                feature.name,
                row,
                value,
                f"is not one of {names} or their codes 0..{len(feature.categories) - 1}",
            )
    return codes


def _numbers(space: StateSpace, feature: Feature, column: pd.Series) -> NDArray[np.float64]:
    """A continuous column as float64, refusing text, NaN, infinities and values outside
    the feature's SPEC A2 range (``rlv2.states.FEATURE_RANGES``)."""
    raw = column.to_numpy(dtype=object)
    numbers = np.asarray(pd.to_numeric(pd.Series(raw), errors="coerce"), dtype=np.float64)
    for row in np.flatnonzero(~np.isfinite(numbers)):
        value = raw[row]
        if isinstance(value, str):
            why = "is not a number"
        elif value is None or np.isnan(numbers[row]):
            why = "is missing or NaN"
        else:
            why = "is not finite"
        raise _refused(space, feature.name, int(row), value, why)
    low, high = FEATURE_RANGES.get(feature.name, (-np.inf, np.inf))
    outside = np.flatnonzero((numbers < low) | (numbers > high))
    if outside.size:
        row = int(outside[0])
        more = f" ({outside.size} rows in all)" if outside.size > 1 else ""
        raise _refused(
            space, feature.name, row, raw[row], f"is outside [{low:g}, {high:g}] (SPEC A2){more}"
        )
    return numbers


def feature_values(state_space: StateSpace, frame: pd.DataFrame) -> dict[str, NDArray[np.float64]]:
    """Raw feature columns of ``frame``, validated; category names become codes.

    Raises :class:`RefusedInput` (one line naming the column, the row, counted from 0, and
    the value) for a missing column, an unknown category, a value that is not a finite
    number, or one outside its SPEC A2 range.
    """
    missing = [name for name in state_space.feature_names if name not in frame.columns]
    if missing:
        raise RefusedInput(
            f"{state_space.name} policy input: missing feature column(s) {missing}; "
            f"expected {list(state_space.feature_names)}; refused"
        )
    return {
        f.name: (_category_codes if f.categories else _numbers)(
            state_space, f, pd.Series(frame[f.name])
        )
        for f in state_space.features
    }


@dataclass(frozen=True)
class CoverageAnswers:
    """Per state, what an answer says about its data (``rlv2.coverage``), looked up per row."""

    visits: NDArray[np.int64]
    """Training events in the state."""
    fallback: NDArray[np.object_]
    """``none`` for a visited state, else the fallback that gives its value."""
    fallback_visits: NDArray[np.int64]
    """Training events behind the value: the state's own, or its fallback level's."""

    @classmethod
    def of(cls, coverage: Coverage, state_space: StateSpace) -> CoverageAnswers:
        """Every state's answers of a coverage, computed once at load."""
        fallback, behind = coverage.answers(state_space)
        return cls(coverage.visits, fallback, behind)

    def columns(self, states: NDArray[np.int64]) -> dict[str, Any]:
        """The coverage columns of the answers for ``states``."""
        return {
            "visited": self.visits[states] > 0,
            "visits": self.visits[states],
            "fallback": self.fallback[states],
            "fallback_visits": self.fallback_visits[states],
        }


UNKNOWN_COVERAGE = "unknown"
"""``fallback`` of every answer of a model logged without visit counts."""


def greedy_actions(
    q: NDArray[np.float64],
    state_space: StateSpace,
    agent: str,
    frame: pd.DataFrame,
    answers: CoverageAnswers | None = None,
) -> pd.DataFrame:
    """The greedy action of the agent's Q-table for each row of raw state features, with
    what data stood behind it (``answers``; a model without counts says ``unknown``)."""
    q = check_q_table(agent, q, state_space)
    states = np.atleast_1d(
        np.asarray(state_space.encode(feature_values(state_space, frame)), dtype=np.int64)
    )
    actions = greedy_policy(q[states]) if states.size else np.zeros(0, dtype=np.int64)
    out = pd.DataFrame({"state": states, "action": actions}, index=frame.index)
    if check_agent(agent) is Agent.META_STRATEGY:
        strategy, model, weight = meta_space.decode_arrays(actions)
        out["strategy"] = [Strategy(int(c)).name for c in strategy]
        out["model"] = [Model(int(c)).name for c in model]
        out["weight_action"] = [WeightAction(int(c)).name for c in weight]
    else:
        size, leverage = sizing_space.decode_arrays(actions)
        out["size_multiplier"] = size
        out["leverage"] = leverage
    out["q_value"] = q[states, actions]
    if answers is not None:
        for column, values in answers.columns(states).items():
            out[column] = values
    else:
        unknown = pd.Series([None] * len(out), index=out.index, dtype=object)
        out["visited"], out["visits"] = unknown, unknown
        out["fallback"], out["fallback_visits"] = UNKNOWN_COVERAGE, unknown
    return out


def example_features(state_space: StateSpace) -> pd.DataFrame:
    """One row of raw features, each in a middle bin: the model's input example."""
    row: dict[str, Any] = {}
    for feature in state_space.features:
        if feature.categories:
            row[feature.name] = feature.categories[0]
        else:
            row[feature.name] = float(np.mean(feature.edges[:2]))
    return pd.DataFrame([row])


def read_policy(
    q_path: str | Path, space_path: str | Path, expected: str | None, source: str
) -> tuple[Agent, NDArray[np.float64], StateSpace]:
    """Read a policy's two plain artifacts and verify them against the digest ``expected``.

    The table is read with ``allow_pickle=False`` and must be float64, (states x actions)
    and finite; the space is JSON. Anything else, or a digest that differs, raises
    ``ValueError`` naming ``source``.
    """
    try:
        spec = json.loads(Path(space_path).read_text(encoding="utf-8"))
        agent = check_agent(spec["agent"])
        state_space = StateSpace.from_dict(spec["state_space"])
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{source}: unreadable state space {Path(space_path).name}: {error}"
        ) from None
    try:
        q = np.load(q_path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{source}: unreadable Q-table {Path(q_path).name}: {error}") from None
    if q.dtype != np.float64:
        raise ValueError(f"{source}: Q-table of dtype {q.dtype}, expected float64; refused")
    checked = check_q_table(agent, q, state_space)
    verify_digest(checked, state_space, expected, source)
    return agent, checked, state_space


def read_coverage(
    visits_path: str | Path, config: Mapping[str, Any], state_space: StateSpace, source: str
) -> Coverage:
    """Read a policy's visit counts and verify them against ``config``'s ``visits_sha256``.

    The counts are read with ``allow_pickle=False`` and must be int64, one per state, not
    negative; the learner and back-off levels come from ``config``. Anything else, or a
    digest that differs, raises ``ValueError`` naming ``source``.
    """
    try:
        visits = np.load(visits_path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{source}: unreadable visit counts {Path(visits_path).name}: {error}"
        ) from None
    try:
        coverage = Coverage.from_config(visits, config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: unreadable coverage config: {error}") from None
    coverage.check(state_space, source)
    expected = config.get(VISITS_DIGEST_KEY)
    if not expected:
        raise DigestMismatch(
            f"{source}: no {VISITS_DIGEST_KEY} to verify its visit counts against; refused"
        )
    found = coverage.sha256()
    if found != expected:
        raise DigestMismatch(
            f"{source}: visit counts or learner changed since they were logged: "
            f"{VISITS_DIGEST_KEY} {found} found, {expected} registered; refused"
        )
    return coverage


class QTablePolicy(PythonModel):
    """An agent's greedy policy as an MLflow pyfunc model (module docstring: input, output)."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load the Q-table, state space and visit counts from the artifacts, verified."""
        config = context.model_config or {}
        source = str(config.get(SOURCE_KEY) or "policy model")
        self.agent, self.q, self.state_space = read_policy(
            context.artifacts[Q_TABLE_ARTIFACT],
            context.artifacts[SPACE_ARTIFACT],
            config.get(DIGEST_KEY),
            source,
        )
        self.coverage: Coverage | None = None
        self.answers: CoverageAnswers | None = None
        if VISITS_ARTIFACT in context.artifacts:
            self.coverage = read_coverage(
                context.artifacts[VISITS_ARTIFACT], config, self.state_space, source
            )
            self.answers = CoverageAnswers.of(self.coverage, self.state_space)
        elif config.get(VISITS_DIGEST_KEY):
            raise ValueError(f"{source}: {VISITS_DIGEST_KEY} given but no visit counts; refused")

    def predict(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Greedy action of each row of raw state features; a row it cannot answer is refused.

        The refusal is an ``MlflowException`` with ``INVALID_PARAMETER_VALUE``, which
        ``mlflow models serve`` answers with HTTP 400 and the message in the body (any other
        exception becomes a generic 400 with a stack trace).
        """
        try:
            return greedy_actions(self.q, self.state_space, self.agent, model_input, self.answers)
        except RefusedInput as refused:
            raise MlflowException(str(refused), error_code=INVALID_PARAMETER_VALUE) from None


def _numeric_as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer and boolean columns as float64, which the model signature's doubles accept."""
    cast = {c: np.float64 for c in frame.columns if frame[c].dtype.kind in "iub"}
    return frame.astype(cast) if cast else frame


@dataclass(frozen=True)
class Policy:
    """A loaded policy: ``predict`` a frame of raw state features, or ``act`` on one dict."""

    agent: str
    model_uri: str
    """``models:/NAME/VERSION``: the version loaded, not the alias that named it."""
    model: PyFuncModel
    version: str = ""
    """The registered version the alias named when it was loaded."""
    alias: str = ""
    """The alias it was loaded by."""
    tracking_uri: str = ""
    """The registry it was loaded from."""

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Greedy actions and their decoded parts, one row per row of ``frame``."""
        return self.model.predict(_numeric_as_float(frame))

    def act(self, features: Mapping[str, Any]) -> int:
        """The greedy action code for one state given as raw features."""
        return int(self.predict(pd.DataFrame([dict(features)]))["action"].iloc[0])

    @property
    def q_table(self) -> NDArray[np.float64]:
        """The policy's Q-table."""
        return self.model.unwrap_python_model().q

    @property
    def state_space(self) -> StateSpace:
        """The policy's state space."""
        return self.model.unwrap_python_model().state_space

    def agent_of_model(self) -> Agent:
        """The agent the loaded model's artifacts say it is for."""
        return self.model.unwrap_python_model().agent

    @property
    def coverage(self) -> Coverage | None:
        """Training events per state and the learner, or None for a model logged without."""
        return self.model.unwrap_python_model().coverage

    def __str__(self) -> str:
        """``NAME vN (alias production) from URI``."""
        return f"{self.model_uri} (alias {self.alias}) from {self.tracking_uri}"


def registered_digest(agent: str, version: str | int) -> tuple[str, str]:
    """``(NAME vN, q_sha256 tag)`` of a registered version; refused if it has no digest."""
    name = agent_spec(agent).model_name
    tags = MlflowClient().get_model_version(name, str(version)).tags
    source = f"{name} v{version}"
    if not tags.get(DIGEST_KEY):
        raise DigestMismatch(f"{source}: registered without a {DIGEST_KEY} tag; refused")
    return source, tags[DIGEST_KEY]


def check_model_code(model_dir: str | Path, source: str) -> None:
    """Refuse a model whose code file is not this package's ``policy_model.py``."""
    code = Path(model_dir) / POLICY_CODE.name
    if not code.is_file() or code.read_bytes() != POLICY_CODE.read_bytes():
        raise ValueError(
            f"{source}: its model code {POLICY_CODE.name} is missing or differs from "
            f"{POLICY_CODE}; refused (MLflow would run it)"
        )


def check_store(uri: str) -> None:
    """Raise :class:`StoreNotFound` if ``uri`` names a local store that does not exist.

    MLflow creates a SQLite database (or a file store's folder) on first use, so a
    consumer started in the wrong directory would otherwise get a new empty store and a
    "not found" about a model that is elsewhere.
    """
    db_file = sqlite_path(uri)
    if db_file is not None:
        if not db_file.is_file():
            raise StoreNotFound(
                f"no MLflow tracking store at {uri}: {db_file} does not exist (set "
                "MLFLOW_TRACKING_URI or pass tracking_uri); nothing created"
            )
        return
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        folder = Path(urlparse(uri).path if scheme else uri)
        if not folder.is_dir():
            raise StoreNotFound(f"no MLflow file store at {uri}: {folder} does not exist")


def _aliased_version(name: str, alias: str, registry: str) -> ModelVersion:
    """The version ``alias`` names, or a ValueError naming the model, alias and registry."""
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ValueError(
            f"no registered model {name} in the registry at {registry} "
            "(has a training run registered one there?)"
        ) from None
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise ValueError(
            f"{name}: no version under the alias {alias!r} in the registry at {registry}"
        ) from None


def load_policy(
    agent: str = Agent.POSITION_SIZING,
    alias: str = PRODUCTION_ALIAS,
    tracking_uri: str | None = None,
) -> Policy:
    """Load an agent's aliased policy from the registry (``tracking_uri`` sets MLflow's URIs).

    Never creates a store: a SQLite file or store folder that does not exist raises
    :class:`StoreNotFound` naming it, and a missing model or alias names the registry. The
    alias is resolved to its version once (``Policy.version``, ``Policy.model_uri`` is
    ``models:/NAME/VERSION``); that version's artifacts are downloaded, its code file
    checked, and its table and space verified against the version's ``q_sha256`` tag,
    its visit counts against its ``visits_sha256`` tag (a mismatch raises
    :class:`DigestMismatch`).
    """
    registry = tracking_uri or mlflow.get_registry_uri()
    check_store(registry)
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    name = agent_spec(agent).model_name
    found = _aliased_version(name, alias, registry)
    version = str(found.version)
    source, digest = registered_digest(agent, version)
    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifacts(f"models:/{name}/{version}", dst_path=tmp)
        check_model_code(local, source)
        config = {DIGEST_KEY: digest, SOURCE_KEY: source}
        flavor = MlflowModel.load(local).flavors.get(PYFUNC_FLAVOR, {})
        logged = flavor.get(MODEL_CONFIG) or {}
        if logged.get(VISITS_DIGEST_KEY):
            if not found.tags.get(VISITS_DIGEST_KEY):
                raise DigestMismatch(
                    f"{source}: registered without a {VISITS_DIGEST_KEY} tag; refused"
                )
            config[VISITS_DIGEST_KEY] = found.tags[VISITS_DIGEST_KEY]
        with MODEL_CODE_LOCK:
            model = load_model(local, model_config=config)
    policy = Policy(agent, f"models:/{name}/{version}", model, version, alias, registry)
    if policy.agent_of_model() != agent_spec(agent).agent:
        raise ValueError(f"{source}: a {policy.agent_of_model()} policy, not {agent}; refused")
    return policy
