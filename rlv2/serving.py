"""What a live consumer imports to load a production policy: a Q-table as an MLflow model.

One line loads the position-sizing agent's production policy::

    policy = load_policy("position_sizing")          # models:/rlv2-position-sizing@production
    action = policy.act({"signal_confidence": 0.8, "portfolio_exposure": 0.3,
                         "recent_winrate": 0.55, "volatility": 0.02,
                         "equity_curve_slope": 0.0})

The registered models are MLflow pyfunc models (``QTablePolicy``) whose artifacts are plain
files: ``q_table`` (the Q-table, ``.npy``) and ``space`` (JSON: agent name and state space,
``StateSpace.to_dict``). ``mlflow.pyfunc.load_model("models:/rlv2-position-sizing@production")``
and ``mlflow models serve`` load them as well; the serving environment needs ``rlv2``
installed, since the model's code is this module.

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

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PyFuncModel, load_model
from mlflow.pyfunc.model import PythonModel, PythonModelContext
from numpy.typing import NDArray

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


def check_agent(agent: str) -> Agent:
    """The agent ``agent`` names, or a ValueError naming the choices."""
    return agent_spec(agent).agent


def action_labels(agent: str) -> list[str]:
    """Readable labels of the agent's actions, in code order."""
    return agent_spec(agent).action_space.labels()


def check_q_table(agent: str, q: Any, state_space: StateSpace) -> NDArray[np.float64]:
    """Return ``q`` as a float64 array, raising unless it is (n_states, n_actions) and finite."""
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


class QTablePolicy(PythonModel):
    """An agent's greedy policy as an MLflow pyfunc model (module docstring: input, output)."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load the Q-table and the agent's state space from the model's artifacts."""
        spec = json.loads(Path(context.artifacts[SPACE_ARTIFACT]).read_text())
        self.agent: Agent = check_agent(spec["agent"])
        self.state_space = StateSpace.from_dict(spec["state_space"])
        self.q = check_q_table(
            self.agent, np.load(context.artifacts[Q_TABLE_ARTIFACT]), self.state_space
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


def model_uri(agent: str, alias: str = PRODUCTION_ALIAS) -> str:
    """The ``models:/NAME@ALIAS`` URI of an agent's aliased version."""
    return f"models:/{agent_spec(agent).model_name}@{alias}"


def load_policy(
    agent: str = Agent.POSITION_SIZING,
    alias: str = PRODUCTION_ALIAS,
    tracking_uri: str | None = None,
) -> Policy:
    """Load an agent's aliased policy from the registry (``tracking_uri`` sets MLflow's URIs)."""
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    uri = model_uri(agent, alias)
    return Policy(agent, uri, load_model(uri))
