"""rlv2.coverage: per-state training counts, their digest, and the fallback of each state."""

from __future__ import annotations

import numpy as np
import pytest

from rlv2.coverage import Coverage
from rlv2.domain import Learner
from rlv2.states import META_STATE_SPACE, SIZING_STATE_SPACE

LEVELS = (("regime",),)


def meta_coverage(states: list[int], learner: str = "full-information") -> Coverage:
    """Coverage of meta-strategy events in ``states``."""
    return Coverage.of_events(states, META_STATE_SPACE.n_states, learner, LEVELS)


def test_counts_are_the_events_per_state() -> None:
    coverage = meta_coverage([5, 5, 900])
    assert coverage.visits.dtype == np.int64 and coverage.visits.shape == (972,)
    assert (coverage.visits[5], coverage.visits[900], coverage.visits.sum()) == (2, 1, 3)
    assert coverage.learner is Learner.FULL_INFORMATION
    # SPEC A4's learner backs off to nothing, whatever levels it is given
    assert meta_coverage([5], "q-learning").backoff_levels == ()


def test_the_digest_covers_counts_learner_and_levels() -> None:
    base = meta_coverage([5, 5, 900])
    assert base.sha256() == meta_coverage([900, 5, 5]).sha256()
    others = [
        meta_coverage([5, 900]),
        meta_coverage([5, 5, 900], "q-learning"),
        Coverage(base.visits, Learner.FULL_INFORMATION, ()),
    ]
    assert len({base.sha256(), *(c.sha256() for c in others)}) == 4
    again = Coverage.from_config(base.visits, base.to_config())
    assert again.sha256() == base.sha256() and again.backoff_levels == LEVELS


def test_the_regime_answers_an_unvisited_state_of_a_visited_regime() -> None:
    regime_of = META_STATE_SPACE.decode(np.arange(972))["regime"]
    coverage = meta_coverage([5, 5, 6])  # both in regime 0
    fallback, behind = coverage.answers(META_STATE_SPACE)
    assert (fallback[5], behind[5], fallback[6], behind[6]) == ("none", 2, "none", 1)
    assert set(fallback[(regime_of == 0) & (coverage.visits == 0)]) == {"regime"}
    assert set(behind[(regime_of == 0) & (coverage.visits == 0)]) == {3}
    assert set(fallback[regime_of != 0]) == {"global"} and set(behind[regime_of != 0]) == {3}
    nothing = meta_coverage([]).answers(META_STATE_SPACE)
    assert set(nothing[0]) == {"initial"} and set(nothing[1]) == {0}


@pytest.mark.parametrize(
    ("visits", "message"),
    [
        (np.zeros(972, np.float64), "dtype float64"),
        (np.zeros(243, np.int64), r"shape \(243,\)"),
        (np.full(972, -1, np.int64), "negative"),
    ],
)
def test_counts_that_do_not_fit_the_space_are_refused(visits: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=f"v3: .*{message}"):
        Coverage(visits, Learner.FULL_INFORMATION, LEVELS).check(META_STATE_SPACE, "v3")


def test_a_back_off_level_the_space_lacks_is_refused() -> None:
    coverage = Coverage(np.zeros(243, np.int64), Learner.FULL_INFORMATION, LEVELS)
    with pytest.raises(ValueError, match="regime"):
        coverage.check(SIZING_STATE_SPACE, "v3")
