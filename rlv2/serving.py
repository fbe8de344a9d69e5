"""What a live consumer imports to load a production policy: a Q-table as an MLflow model.

One line loads the position-sizing agent's production policy::

    policy = load_policy("position_sizing")          # models:/rlv2-position-sizing@production
    action = policy.act({"signal_confidence": 0.8, "portfolio_exposure": 0.3,
                         "recent_winrate": 0.55, "volatility": 0.02,
                         "equity_curve_slope": 0.0})

The registered models are MLflow pyfunc models logged from code: the model's code is the
file ``rlv2/policy_model.py`` (MLflow's models-from-code; it builds a ``QTablePolicy``), and
its artifacts are plain files: ``q_table`` (the Q-table, ``.npy``, read with
``allow_pickle=False``) and ``space`` (JSON: agent name and state space,
``StateSpace.to_dict``). Nothing on the way from the registry to a consumer is a pickle, so
they load with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``.
``mlflow.pyfunc.load_model("models:/rlv2-position-sizing@production")`` and ``mlflow models
serve`` load them as well; the serving environment needs ``rlv2`` installed, since the
model's code imports this module.

Verified at every load. The model's ``model_config`` holds ``q_sha256``, the digest of its
Q-table and state space (``q_sha256()``), and ``source``, what to call it in a message.
``load_context`` recomputes the digest from the artifacts and refuses a mismatch
(:class:`DigestMismatch`, naming the source and both digests), and refuses a table that is
not float64, not (states x actions) or not finite. :func:`load_policy` resolves the alias
to its version first and loads that version with the digest of the registry's
``q_sha256`` tag (the tracking store, not the artifact store, vouches for it), after
checking that the model's code file is this package's ``policy_model.py``.

Input (SPEC A2): one row per decision, one column per raw state feature, named as in the
state space (meta-strategy: ``regime`` as a name such as ``TREND`` or its code,
``volatility``, ``market_pressure``, ``confidence``, ``previous_winrate``,
``account_health``; position sizing: ``signal_confidence``, ``portfolio_exposure``,
``recent_winrate``, ``volatility``, ``equity_curve_slope``). Extra columns are ignored.

Output: one row per input row: ``state`` (index), ``action`` (code, SPEC A3), the decoded
parts (``strategy``, ``model``, ``weight_action`` for meta-strategy; ``size_multiplier``,
``leverage`` for sizing) and ``q_value``, the greedy action's Q-value. The greedy action is
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

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel, load_model
from mlflow.pyfunc.model import PythonModel, PythonModelContext
from numpy.typing import ArrayLike, NDArray

from rlv2.actions import meta_space, sizing_space
from rlv2.domain import Agent, Model, Strategy, WeightAction, agent_spec
from rlv2.qlearning import greedy_policy
from rlv2.states import StateSpace

PRODUCTION_ALIAS = "production"
"""Alias of the version a live consumer loads."""

Q_TABLE_ARTIFACT = "q_table"
"""Key of the Q-table (``.npy``) among the pyfunc model's artifacts."""
SPACE_ARTIFACT = "space"
"""Key of the agent and state-space JSON among the pyfunc model's artifacts."""
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


def _feature_values(state_space: StateSpace, frame: pd.DataFrame) -> dict[str, Any]:
    """Raw feature columns of ``frame``; category names become codes so both may be mixed."""
    missing = [name for name in state_space.feature_names if name not in frame.columns]
    if missing:
        raise ValueError(
            f"{state_space.name} policy input: missing feature column(s) {missing}; "
            f"expected {list(state_space.feature_names)}"
        )
    values: dict[str, Any] = {}
    for feature in state_space.features:
        column = frame[feature.name]
        if feature.categories:
            lookup = {c: i for i, c in enumerate(feature.categories)}
            unknown = [x for x in column if isinstance(x, str) and x not in lookup]
            if unknown:
                raise ValueError(
                    f"{feature.name}: unknown category {unknown[0]!r}, "
                    f"expected one of {list(feature.categories)} or their codes"
                )
            values[feature.name] = np.asarray(
                [lookup[x] if isinstance(x, str) else x for x in column], dtype=np.float64
            )
        else:
            try:
                values[feature.name] = np.asarray(pd.to_numeric(column), dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{feature.name}: values must be numbers ({err})") from err
    return values


def greedy_actions(
    q: NDArray[np.float64], state_space: StateSpace, agent: str, frame: pd.DataFrame
) -> pd.DataFrame:
    """The greedy action of the agent's Q-table for each row of raw state features."""
    q = check_q_table(agent, q, state_space)
    states = np.atleast_1d(
        np.asarray(state_space.encode(_feature_values(state_space, frame)), dtype=np.int64)
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


class QTablePolicy(PythonModel):
    """An agent's greedy policy as an MLflow pyfunc model (module docstring: input, output)."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load the Q-table and state space from the model's artifacts, verified."""
        config = context.model_config or {}
        self.agent, self.q, self.state_space = read_policy(
            context.artifacts[Q_TABLE_ARTIFACT],
            context.artifacts[SPACE_ARTIFACT],
            config.get(DIGEST_KEY),
            str(config.get(SOURCE_KEY) or "policy model"),
        )

    def predict(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Greedy action of each row of raw state features."""
        return greedy_actions(self.q, self.state_space, self.agent, model_input)


def _numeric_as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer and boolean columns as float64, which the model signature's doubles accept."""
    cast = {c: np.float64 for c in frame.columns if frame[c].dtype.kind in "iub"}
    return frame.astype(cast) if cast else frame


@dataclass(frozen=True)
class Policy:
    """A loaded policy: ``predict`` a frame of raw state features, or ``act`` on one dict."""

    agent: str
    model_uri: str
    model: PyFuncModel
    version: str = ""
    """The registered version the alias named when it was loaded."""

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


def model_uri(agent: str, alias: str = PRODUCTION_ALIAS) -> str:
    """The ``models:/NAME@ALIAS`` URI of an agent's aliased version."""
    return f"models:/{agent_spec(agent).model_name}@{alias}"


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


def load_policy(
    agent: str = Agent.POSITION_SIZING,
    alias: str = PRODUCTION_ALIAS,
    tracking_uri: str | None = None,
) -> Policy:
    """Load an agent's aliased policy from the registry (``tracking_uri`` sets MLflow's URIs).

    The alias is resolved to its version once; that version's artifacts are downloaded,
    its code file checked, and its table and space verified against the version's
    ``q_sha256`` tag (a mismatch raises :class:`DigestMismatch`).
    """
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    name = agent_spec(agent).model_name
    try:
        version = MlflowClient().get_model_version_by_alias(name, alias).version
    except MlflowException as error:
        raise ValueError(f"{name}: no version under the alias {alias!r}") from error
    source, digest = registered_digest(agent, version)
    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifacts(f"models:/{name}/{version}", dst_path=tmp)
        check_model_code(local, source)
        config = {DIGEST_KEY: digest, SOURCE_KEY: source}
        with MODEL_CODE_LOCK:
            model = load_model(local, model_config=config)
    policy = Policy(agent, model_uri(agent, alias), model, str(version))
    if policy.agent_of_model() != agent_spec(agent).agent:
        raise ValueError(f"{source}: a {policy.agent_of_model()} policy, not {agent}; refused")
    return policy
