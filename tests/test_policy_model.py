"""rlv2.policy_model and the verified load: no pickle from registry to consumer, and a
Q-table or state space changed after registration is refused at every load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from rlv2 import serving, tracking
from rlv2.actions import meta_space, sizing_space
from rlv2.coverage import Coverage
from rlv2.domain import Learner
from rlv2.pipeline import TrainConfig
from rlv2.states import META_STATE_SPACE, SIZING_STATE_SPACE

PICKLE_SWITCH = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
"""MLflow's own switch (mlflow.environment_variables): false refuses cloudpickled models."""


def sizing_q(best: int = 9) -> np.ndarray:
    q = np.zeros((SIZING_STATE_SPACE.n_states, sizing_space.n))
    q[17, best] = 1.5
    return q


def meta_q() -> np.ndarray:
    q = np.zeros((META_STATE_SPACE.n_states, meta_space.n))
    q[100, 7] = 0.25
    return q


@pytest.fixture
def store(mlflow_sqlite: str) -> Iterator[str]:
    """Both agents registered and promoted, plus one logged but unregistered model."""
    uri = mlflow_sqlite
    sizing = tracking.log_policy_model("position_sizing", sizing_q(), SIZING_STATE_SPACE)
    meta = tracking.log_policy_model("meta_strategy", meta_q(), META_STATE_SPACE)
    assert sizing is not None and meta is not None
    tracking.log_policy_model(
        "position_sizing", sizing_q(best=3), SIZING_STATE_SPACE, registered=False
    )
    tracking.promote("position_sizing", sizing.version, {"reason": "test"}, expected=None)
    tracking.promote("meta_strategy", meta.version, {"reason": "test"}, expected=None)
    yield uri


def logged_models() -> list:
    experiment = MlflowClient().get_experiment_by_name(tracking.EXPERIMENT)
    assert experiment is not None
    return mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id], output_format="list"
    )


def model_dir(digest: str) -> Path:
    """The local artifact folder of the logged model with this digest."""
    (model,) = [m for m in logged_models() if m.tags.get("q_sha256") == digest]
    return Path(urlparse(model.artifact_location).path)


def test_no_logged_model_holds_a_pickle(store: str) -> None:
    models = logged_models()
    assert len(models) == 3
    for model in models:
        folder = Path(urlparse(model.artifact_location).path)
        files = {p.name for p in folder.rglob("*") if p.is_file()}
        assert not [f for f in files if f.endswith((".pkl", ".pickle"))], files
        assert {"MLmodel", "policy_model.py", "q.npy", "space.json"} <= files
        flavor = mlflow.models.Model.load(str(folder)).flavors["python_function"]
        assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
        assert "python_model" not in flavor
        assert (folder / "policy_model.py").read_bytes() == serving.POLICY_CODE.read_bytes()


def test_every_model_loads_with_pickle_deserialization_off(
    store: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(PICKLE_SWITCH, "false")
    for model in logged_models():
        loaded = mlflow.pyfunc.load_model(model.model_uri)
        assert loaded.unwrap_python_model().q.shape[0] in (243, 972)
    for alias_uri in ("rlv2-position-sizing@production", "rlv2-meta-strategy@production"):
        mlflow.pyfunc.load_model(f"models:/{alias_uri}")
    policy = serving.load_policy("position_sizing")
    assert policy.version == "1" and policy.act(
        {**serving.example_features(SIZING_STATE_SPACE).iloc[0].to_dict()}
    ) in range(sizing_space.n)
    np.testing.assert_array_equal(policy.q_table, sizing_q())
    assert serving.load_policy("meta_strategy").version == "1"
    loaded = tracking.load_q_table("meta_strategy")
    assert loaded is not None
    np.testing.assert_array_equal(loaded[0], meta_q())

    # the switch is MLflow's: a cloudpickled model is refused under it
    class Pickled(PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[override]
            return model_input

    monkeypatch.delenv(PICKLE_SWITCH)
    mlflow.pyfunc.save_model(tmp_path / "pickled", python_model=Pickled())
    assert (tmp_path / "pickled" / "python_model.pkl").is_file()
    monkeypatch.setenv(PICKLE_SWITCH, "false")
    with pytest.raises(MlflowException, match="pickle is disallowed"):
        mlflow.pyfunc.load_model(str(tmp_path / "pickled"))


def _rewrite_table(folder: Path, change) -> None:
    path = folder / "artifacts" / "q.npy"
    q = np.load(path, allow_pickle=False)
    np.save(path, change(q), allow_pickle=False)


@pytest.mark.parametrize("what", ["table", "bin edges"])
def test_a_changed_artifact_is_refused_at_every_load(
    store: str, what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlv2.flows.common import load_production

    digest = tracking.q_sha256(sizing_q(), SIZING_STATE_SPACE)
    folder = model_dir(digest)
    if what == "table":  # size 1.8 x leverage 7 everywhere
        _rewrite_table(folder, lambda q: np.where(np.arange(q.shape[1]) == 55, 9.0, q))
    else:
        path = folder / "artifacts" / "space.json"
        spec = json.loads(path.read_text())
        spec["state_space"]["features"][0]["edges"] = [0.1, 0.2]
        path.write_text(json.dumps(spec))
    version = "rlv2-position-sizing v1"
    with pytest.raises(serving.DigestMismatch, match=f"{version}: .*{digest} registered") as err:
        serving.load_policy("position_sizing")
    assert len([w for w in str(err.value).split() if len(w) == 64]) == 2  # both digests
    with pytest.raises(serving.DigestMismatch, match=version):
        tracking.load_q_table("position_sizing")
    with pytest.raises(serving.DigestMismatch, match=version):
        tracking.load_q_table("position_sizing", version=1)
    with pytest.raises(serving.DigestMismatch, match="rlv2-position-sizing model of run"):
        mlflow.pyfunc.load_model("models:/rlv2-position-sizing@production")
    with pytest.raises(serving.DigestMismatch, match=version):  # the gate and warm start
        load_production.fn("position_sizing", TrainConfig())
    assert serving.load_policy("meta_strategy").version == "1"  # the other agent loads


def test_a_changed_model_code_file_is_refused(store: str) -> None:
    folder = model_dir(tracking.q_sha256(sizing_q(), SIZING_STATE_SPACE))
    code = folder / "policy_model.py"
    code.write_text(code.read_text() + "\nimport os  # anything at all\n")
    with pytest.raises(ValueError, match="policy_model.py is missing or differs"):
        serving.load_policy("position_sizing")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (np.full((243, 56), np.nan), "NaN or infinite"),
        (np.full((243, 56), np.inf), "NaN or infinite"),
        (np.zeros((972, 48)), "shape"),
        (np.zeros((243, 56), dtype=np.float32), "dtype float32"),
        (np.zeros((243, 56), dtype=np.int64), "dtype int64"),
    ],
)
def test_a_table_that_is_not_finite_float64_of_its_shape_is_refused(
    tmp_path: Path, table: np.ndarray, message: str
) -> None:
    np.save(tmp_path / "q.npy", table)
    (tmp_path / "space.json").write_text(
        json.dumps({"agent": "position_sizing", "state_space": SIZING_STATE_SPACE.to_dict()})
    )
    digest = tracking.q_sha256(np.asarray(table, dtype=np.float64), SIZING_STATE_SPACE)
    with pytest.raises(ValueError, match=message):
        serving.read_policy(tmp_path / "q.npy", tmp_path / "space.json", digest, "v9")


def test_an_object_array_is_not_unpickled(tmp_path: Path) -> None:
    np.save(tmp_path / "q.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "space.json").write_text(
        json.dumps({"agent": "position_sizing", "state_space": SIZING_STATE_SPACE.to_dict()})
    )
    with pytest.raises(ValueError, match="v9: unreadable Q-table q.npy"):
        serving.read_policy(tmp_path / "q.npy", tmp_path / "space.json", "0" * 64, "v9")


def test_a_model_without_a_digest_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "q.npy", sizing_q())
    (tmp_path / "space.json").write_text(
        json.dumps({"agent": "position_sizing", "state_space": SIZING_STATE_SPACE.to_dict()})
    )
    with pytest.raises(serving.DigestMismatch, match="no q_sha256"):
        serving.read_policy(tmp_path / "q.npy", tmp_path / "space.json", None, "v9")


def test_changed_visit_counts_are_refused_at_every_load(store: str) -> None:
    coverage = Coverage.of_events(
        np.full(10, 17), 243, Learner.FULL_INFORMATION, (("portfolio_exposure",),)
    )
    version = tracking.log_policy_model(
        "position_sizing", sizing_q(best=5), SIZING_STATE_SPACE, coverage=coverage
    )
    assert version is not None and version.tags["visits_sha256"] == coverage.sha256()
    tracking.promote("position_sizing", version.version, {"reason": "test"}, expected="1")
    policy = serving.load_policy("position_sizing")
    assert policy.version == "2" and policy.coverage is not None
    np.testing.assert_array_equal(policy.coverage.visits, coverage.visits)
    assert policy.coverage.backoff_levels == (("portfolio_exposure",),)
    client = MlflowClient()
    client.delete_model_version_tag("rlv2-position-sizing", "2", "visits_sha256")
    with pytest.raises(serving.DigestMismatch, match="registered without a visits_sha256 tag"):
        serving.load_policy("position_sizing")
    client.set_model_version_tag("rlv2-position-sizing", "2", "visits_sha256", coverage.sha256())
    folder = model_dir(tracking.q_sha256(sizing_q(best=5), SIZING_STATE_SPACE))
    assert (folder / "artifacts" / "visits.npy").is_file()
    visits = coverage.visits.copy()
    visits[18] = 3  # a state claimed visited that was not
    np.save(folder / "artifacts" / "visits.npy", visits, allow_pickle=False)
    with pytest.raises(serving.DigestMismatch, match="rlv2-position-sizing v2: visit counts"):
        serving.load_policy("position_sizing")
    with pytest.raises(serving.DigestMismatch, match="visits_sha256"):
        mlflow.pyfunc.load_model("models:/rlv2-position-sizing@production")
    np.save(folder / "artifacts" / "visits.npy", visits.astype(np.float64), allow_pickle=False)
    with pytest.raises(ValueError, match="visit counts of dtype float64"):
        serving.load_policy("position_sizing")


def test_a_missing_model_names_the_registry_it_looked_in(store: str) -> None:
    MlflowClient().delete_registered_model("rlv2-meta-strategy")
    with pytest.raises(
        ValueError, match=f"no registered model rlv2-meta-strategy in .* at {store}"
    ):
        serving.load_policy("meta_strategy")
