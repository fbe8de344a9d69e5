"""Hyperparameter sweeps as Optuna studies: the search space, its three samplers, resumption.

Every method is an Optuna study with its own sampler: ``grid`` (``GridSampler``: each
combination of the listed values once), ``random`` (``RandomSampler``) and ``tpe``
(``TPESampler``). Random and TPE share one set of rules (:func:`suggest`): α is drawn
log-uniformly and the other kernel hyperparameters uniformly between the smallest and
the largest listed value; reward weights are chosen among the listed vectors. Optuna
records each trial's values as values: numbers as numbers, a weight vector as its text
``"0.5,0.2,0.15"`` (a categorical choice must be a plain value).

A study named in a storage is resumed by a rerun without repeating itself: a grid runs
only its points that no earlier run finished, and the random and TPE samplers are
seeded from the seed and the number of trials already stored (seeded as in the first
run, they would propose its configurations again). Trials an interrupted run left
running are marked failed and their configurations queued again.

Each configuration trains with its own seed, ``stream_seed(seed, config_index)``:
``config_index`` is a grid point's position in the product of the listed values (in
:data:`DIMENSIONS` order), so the order in which the sampler visits the grid changes
nothing, and a random or TPE trial's number. Nothing here trains or logs: the caller
evaluates each batch of proposals (:func:`run_study`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import astuple, dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from rlv2.domain import Learner
from rlv2.pipeline import TrainConfig
from rlv2.qlearning import stream_seed
from rlv2.rewards import MetaRewardWeights, SizingRewardWeights

if TYPE_CHECKING:  # optuna is imported where a study runs: the command line starts faster
    import optuna

METHODS = ("grid", "random", "tpe")
"""Sweep methods, each an Optuna sampler."""
KERNEL_KEYS = ("alpha", "gamma", "epsilon", "epsilon_decay", "epsilon_min")
"""Hyperparameters of the kernel: configurations differing only in these (and the seed)
train together in one ``replay_sweep`` pass."""
WEIGHT_KEYS = ("meta_weights", "sizing_weights")
"""Reward weights: each distinct pair needs its own kernel inputs."""
DIMENSIONS = (*KERNEL_KEYS, *WEIGHT_KEYS)
"""What a sweep varies: fields of ``ReplayConfig``, in the order of the grid's product."""

Value = float | str
"""A value Optuna records: a number, or a weight vector's text."""


@dataclass(frozen=True)
class SweepConfig:
    """How a sweep searches: the method, its budget, its study, and the values it tries.

    The value fields are lists of values of the ``ReplayConfig`` field of the same name;
    an empty list keeps the base configuration's value.
    """

    method: str = "grid"
    """``grid``: every combination of the listed values; ``random``: ``trials`` random
    draws between them; ``tpe``: ``trials`` proposals of Optuna's TPE over that range."""
    trials: int = 16
    """Configurations a random or TPE sweep tries (a grid tries each of its points once)."""
    study: str | None = None
    """Name of an Optuna study kept in ``storage`` (one per agent, suffixed with its
    name): a rerun resumes it and tries only what it has not tried. Without a name the
    study lives in memory for one run."""
    storage: str = "sqlite:///optuna.db"
    """Optuna storage URL of a named study (a relative SQLite path is in the working
    directory)."""
    validation_fraction: float = 0.25
    """Share of the training window's decision points, at its end, on which each
    configuration is scored (the holdout stays untouched for the promotion gate)."""
    alpha: tuple[float, ...] = (0.01, 0.05, 0.2)
    """Values of the learning rate α (random and TPE: log-uniform between the extremes)."""
    gamma: tuple[float, ...] = (0.9, 0.99)
    """Values of the discount γ."""
    epsilon: tuple[float, ...] = (0.1, 0.3)
    """Values of the initial exploration rate ε."""
    epsilon_decay: tuple[float, ...] = ()
    """Values of the ε decay factor (none listed: the base configuration's)."""
    epsilon_min: tuple[float, ...] = ()
    """Values of the ε floor (none listed: the base configuration's); a floor above the
    initial ε is lowered to it."""
    meta_weights: tuple[MetaRewardWeights, ...] = ()
    """Meta-strategy reward weight vectors drawdown,sharpe,regime (none listed: the base
    configuration's)."""
    sizing_weights: tuple[SizingRewardWeights, ...] = ()
    """Position-sizing reward weight vectors risk,volatility (none listed: the base
    configuration's)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}: expected one of {', '.join(METHODS)}")
        if self.trials < 1:
            raise ValueError(f"trials={self.trials} must be >= 1")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction={self.validation_fraction} must be in (0, 1)")


def weights_text(weights: MetaRewardWeights | SizingRewardWeights) -> str:
    """A weight vector as Optuna records it, and as the command line writes it."""
    return ",".join(repr(float(w)) for w in astuple(weights))


def search_space(sweep: SweepConfig, base: TrainConfig) -> dict[str, list[Value]]:
    """The values of each dimension (:data:`DIMENSIONS` order), the base's where none are listed.

    Weight vectors are given as their text (:func:`weights_text`); values listed twice
    are tried once.
    """
    space: dict[str, list[Value]] = {}
    for name in DIMENSIONS:
        listed = getattr(sweep, name) or (getattr(base.replay, name),)
        values = [weights_text(v) if name in WEIGHT_KEYS else float(v) for v in listed]
        space[name] = list(dict.fromkeys(values))
    return space


def suggest(
    trial: optuna.Trial, space: Mapping[str, Sequence[Value]], method: str
) -> dict[str, Value]:
    """One configuration's values, drawn by the trial's sampler.

    A grid chooses among the listed values. Random and TPE draw a kernel hyperparameter
    listed with distinct extremes from their range (α on a log scale) and choose the
    rest among the listed values.
    """
    params: dict[str, Value] = {}
    for name, values in space.items():
        numbers = [float(v) for v in values] if name in KERNEL_KEYS else []
        if method != "grid" and numbers and min(numbers) < max(numbers):
            low, high = min(numbers), max(numbers)
            params[name] = trial.suggest_float(name, low, high, log=name == "alpha")
        else:
            params[name] = cast(Value, trial.suggest_categorical(name, list(values)))
    return params


def train_config(base: TrainConfig, params: Mapping[str, Value], seed: int) -> TrainConfig:
    """The training configuration of one proposal: ``base`` with its values and seed.

    A sweep tunes SPEC A4's learner (its α, γ and ε schedule, and the reward weights),
    so its trials train with ``learner = q-learning`` whatever the base configuration's.
    """
    changes: dict[str, Any] = {k: float(params[k]) for k in KERNEL_KEYS}
    changes["epsilon_min"] = min(changes["epsilon_min"], changes["epsilon"])
    changes["meta_weights"] = MetaRewardWeights(*_numbers(params["meta_weights"]))
    changes["sizing_weights"] = SizingRewardWeights(*_numbers(params["sizing_weights"]))
    return replace(
        base, learner=Learner.Q_LEARNING, replay=replace(base.replay, seed=seed, **changes)
    )


def _numbers(text: Value) -> list[float]:
    return [float(x) for x in str(text).split(",")]


def group_key(config: TrainConfig) -> tuple[Any, ...]:
    """Configurations with equal keys share kernel inputs and train in one pass."""
    return tuple(getattr(config.replay, k) for k in WEIGHT_KEYS)


class Proposal(NamedTuple):
    """One configuration a study asks to be evaluated."""

    trial: int
    """The Optuna trial number."""
    config_index: int
    """The grid point's index in the product of the values, or the trial number."""
    seed: int
    """The configuration's seed, ``stream_seed(seed, config_index)``."""
    params: dict[str, Value]
    """The values of :data:`DIMENSIONS` (as Optuna records them)."""


def _grid_sampler(space: Mapping[str, Sequence[Value]], seed: int) -> optuna.samplers.BaseSampler:
    """Optuna's ``GridSampler`` over ``space``, for batches of asked trials."""
    from optuna.samplers import GridSampler

    class BatchGridSampler(GridSampler):
        """``GridSampler`` without its stop at the end of the grid.

        ``GridSampler`` stops ``study.optimize`` when the grid is used up, which raises
        outside ``optimize``; a sweep asks for exactly the points left: nothing to stop.
        """

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            """Nothing to do after a trial (see the class docstring)."""

    return BatchGridSampler({k: list(v) for k, v in space.items()}, seed=seed)


def open_study(
    sweep: SweepConfig, space: Mapping[str, Sequence[Value]], agent: str, seed: int
) -> optuna.Study:
    """The agent's study, created or (if named and stored) resumed, with the method's sampler.

    The sampler's seed mixes ``seed`` with the number of trials already stored, so a
    resumed random or TPE study draws new configurations.
    """
    import optuna

    name = f"{sweep.study or 'rlv2-sweep'}-{agent}"
    storage = sweep.storage if sweep.study else None
    stored = 0
    if storage is not None:
        try:
            stored = len(optuna.load_study(study_name=name, storage=storage).trials)
        except KeyError:  # no such study yet
            stored = 0
    sampler_seed = stream_seed(seed, stored) % 2**32
    sampler: optuna.samplers.BaseSampler
    if sweep.method == "grid":
        sampler = _grid_sampler(space, sampler_seed)
    elif sweep.method == "random":
        sampler = optuna.samplers.RandomSampler(seed=sampler_seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=sampler_seed)
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=sampler,
        load_if_exists=True,
    )


def requeue_interrupted(study: optuna.Study) -> int:
    """Fail the trials an interrupted run left running, and queue their values again.

    A study is run by one sweep at a time, so a running trial at the start of a run is
    one its predecessor never finished. Returns how many were queued.
    """
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(dict(trial.params))
    return sum(1 for t in stale if t.params)


def grid_points(space: Mapping[str, Sequence[Value]]) -> list[tuple[Value, ...]]:
    """The grid's points in product order (their index is their ``config_index``)."""
    return list(itertools.product(*space.values()))


def grid_todo(study: optuna.Study, space: Mapping[str, Sequence[Value]]) -> int:
    """How many trials a grid study still needs: queued ones, and points no trial finished.

    Raises ``ValueError`` if the study holds a grid over other values: Optuna's
    ``GridSampler`` would then skip or repeat points.
    """
    from optuna.trial import TrialState

    grid = {k: list(v) for k, v in sorted(space.items())}
    points = set(grid_points(space))
    finished = set()
    waiting = 0
    for trial in study.get_trials(deepcopy=False):
        stored_space = trial.system_attrs.get("search_space")
        point = tuple(trial.params.get(k) for k in space)
        if (stored_space is not None and stored_space != grid) or (
            trial.params and point not in points
        ):
            raise ValueError(
                f"study {study.study_name!r} holds a grid over other values; name another "
                "study to sweep this one"
            )
        if trial.state == TrialState.WAITING:
            waiting += 1
        elif trial.state.is_finished():
            finished.add(point)
    return waiting + len(points - finished)


Evaluate = Callable[[list[Proposal]], list[float]]
"""Scores of a batch of proposals (higher is better), in order."""


def run_study(
    study: optuna.Study,
    space: Mapping[str, Sequence[Value]],
    method: str,
    n_trials: int,
    seed: int,
    evaluate: Evaluate,
) -> list[tuple[Proposal, float]]:
    """Ask, evaluate and tell: a grid's remaining points, or ``n_trials`` random/TPE trials.

    Grid and random proposals are independent, so they are asked and evaluated as one
    batch (the caller trains them together); TPE learns from each score, so it goes one
    proposal at a time. Returns this run's proposals with their scores.
    """
    queued = requeue_interrupted(study)
    if queued:
        logging.getLogger(__name__).warning(
            "study %s: %d trials of an interrupted run queued again", study.study_name, queued
        )
    total = grid_todo(study, space) if method == "grid" else n_trials
    index = {point: i for i, point in enumerate(grid_points(space))}
    batch = total if method != "tpe" else 1
    out: list[tuple[Proposal, float]] = []
    while len(out) < total:
        trials = [study.ask() for _ in range(min(batch, total - len(out)))]
        proposals = []
        for trial in trials:
            params = suggest(trial, space, method)
            k = index[tuple(params.values())] if method == "grid" else trial.number
            proposals.append(Proposal(trial.number, k, stream_seed(seed, k), params))
            trial.set_user_attr("config_index", k)
            trial.set_user_attr("seed", proposals[-1].seed)
        scores = evaluate(proposals)
        for trial, proposal, score in zip(trials, proposals, scores, strict=True):
            study.tell(trial, score)
            out.append((proposal, score))
    return out
