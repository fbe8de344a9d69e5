"""The windows a training run records, and the holdout the gate takes from them."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from rlv2.pipeline import HoldoutRefused, TrainingWindows, gate_holdout, walk_forward_split

SPLIT = walk_forward_split(datetime(2020, 1, 1), datetime(2020, 12, 31), datetime(2020, 10, 1))
WINDOWS = TrainingWindows.of_split(SPLIT)
NAME = "rlv2-meta-strategy v3"


def test_a_split_trains_up_to_its_holdout_and_records_both_as_tags():
    assert WINDOWS == (
        datetime(2020, 1, 1),
        datetime(2020, 10, 1),
        datetime(2020, 10, 1),
        datetime(2020, 12, 31, 0, 0, 0, 1),
    )
    tags = WINDOWS.tags()
    assert tags == {
        "train_start": "2020-01-01 00:00:00",
        "train_end": "2020-10-01 00:00:00",
        "holdout_start": "2020-10-01 00:00:00",
        "holdout_end": "2020-12-31 00:00:00.000001",
    }
    # the gate's figures write the holdout the same way: str() of the time
    assert tags["holdout_start"] == str(SPLIT.holdout_start)
    assert TrainingWindows.from_tags({**tags, "learner": "q-learning"}, NAME) == WINDOWS


def test_a_version_without_recorded_windows_is_named():
    with pytest.raises(ValueError, match=f"{NAME} records no training or holdout window"):
        TrainingWindows.from_tags({"learner": "q-learning", "q_sha256": "0" * 64}, NAME)
    partial = {k: v for k, v in WINDOWS.tags().items() if k != "train_end"}
    with pytest.raises(ValueError, match=f"{NAME}: tags train_end missing"):
        TrainingWindows.from_tags(partial, NAME)
    with pytest.raises(ValueError, match="tag holdout_end='soon' is not a time"):
        TrainingWindows.from_tags({**WINDOWS.tags(), "holdout_end": "soon"}, NAME)
    inside = {**WINDOWS.tags(), "holdout_start": "2020-06-01 00:00:00"}
    with pytest.raises(ValueError, match="starts at 2020-06-01 00:00:00, inside"):
        TrainingWindows.from_tags(inside, NAME)


def test_the_gate_uses_the_recorded_holdout():
    last = SPLIT.holdout_end - timedelta(microseconds=1)
    assert gate_holdout(WINDOWS, NAME, last) == (SPLIT.holdout_start, SPLIT.holdout_end)
    # a request that stays out of the training window is checked, and changes nothing
    later = datetime(2020, 11, 15)
    assert gate_holdout(WINDOWS, NAME, last, later, "holdout_fraction=0.1") == (
        SPLIT.holdout_start,
        SPLIT.holdout_end,
    )
    # a history that has not grown as far as the recorded end keeps the recorded end
    assert gate_holdout(WINDOWS, NAME, datetime(2020, 11, 1))[1] == SPLIT.holdout_end


def test_a_grown_history_extends_the_holdout_to_its_newest_decision():
    newest = datetime(2021, 3, 1, 12)
    assert gate_holdout(WINDOWS, NAME, newest) == (
        SPLIT.holdout_start,
        newest + timedelta(microseconds=1),
    )


def test_a_request_overlapping_the_training_window_is_refused_in_one_line():
    with pytest.raises(HoldoutRefused) as refused:
        gate_holdout(WINDOWS, NAME, None, datetime(2020, 7, 1), "holdout_fraction=0.5")
    message = str(refused.value)
    assert "\n" not in message and isinstance(refused.value, ValueError)
    assert message == (
        "rlv2-meta-strategy v3 was trained on 2020-01-01 00:00:00 .. 2020-10-01 00:00:00; "
        "the requested holdout (holdout_fraction=0.5) from 2020-07-01 00:00:00 overlaps it: "
        "refused (without it the gate uses the recorded holdout from 2020-10-01 00:00:00)"
    )
    # the training window ends where the holdout starts: a request starting there is fine
    assert gate_holdout(WINDOWS, NAME, None, SPLIT.holdout_start)[0] == SPLIT.holdout_start
