"""The charts a person judges a run by: one function per chart, each returning a Figure.

Pure: numpy and matplotlib's object API only (``matplotlib.figure.Figure``, never
``pyplot``), so drawing needs no display, no global state and is safe on worker threads;
saving a figure as PNG uses matplotlib's Agg renderer. The data comes in as arrays and
the small records below (``rlv2.evidence`` builds them from a run's windows and
results); ``rlv2.tracking.log_figure`` logs a figure on its MLflow run.

Every chart has a title saying what it shows, axis labels with units and a legend (or a
colour bar); states a policy has not seen are marked as such, never drawn as if learned.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from matplotlib.colors import BoundaryNorm, ListedColormap, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from numpy.typing import NDArray

from rlv2.actions import meta_space, sizing_space
from rlv2.domain import LEVERAGES, SIZE_MULTIPLIERS, Agent, Model, Strategy, WeightAction
from rlv2.qlearning import ReplayStats
from rlv2.states import Feature, StateSpace

__all__ = [
    "EquityCurve",
    "GateEvidence",
    "gate",
    "holdout_equity",
    "learning",
    "meta_policy_map",
    "policy_changes",
    "q_values",
    "sizing_policy_map",
    "sweep_scores",
]

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
BLUE, ORANGE, GREEN, PURPLE = "#0072B2", "#E69F00", "#009E73", "#CC79A7"
VERMILION, SKY, YELLOW, GREY = "#D55E00", "#56B4E9", "#F0E442", "#7f7f7f"
MODEL_COLOURS = (BLUE, ORANGE, GREEN, PURPLE)
"""Colour of each model (``rlv2.domain.Model`` code order) in the meta policy map."""
UNSEEN = "#e6e6e6"
"""Fill of a state with nothing learned."""
BACKED_OFF = "no training event: value from a coarser state (backed off)"
NOT_LEARNED = "no training event, nothing learned"
HATCH, HATCH_PATTERN = (1.0, 1.0, 1.0, 0.7), "///"
"""The stripes over a backed-off state: white, so the colour under them still reads."""
WEIGHT_MARKS = {WeightAction.WEIGHT_UP: "+", WeightAction.WEIGHT_DOWN: "−"}
"""How a cell shows the meta action's weight (nothing: hold)."""
SERIES_COLOURS = {"candidate": BLUE, "production": ORANGE, "logged": GREY}
"""The policies' colours, the same in every chart."""
DPI = 110
"""Resolution of the saved PNGs: a 10-inch-wide chart is 1,100 pixels."""


class EquityCurve(NamedTuple):
    """A policy's account over a window: equity after each close, in time order."""

    label: str
    ts: NDArray[Any]
    """Time of each point (datetime64); the first point is the window's start."""
    equity: NDArray[np.float64]
    """Account equity at each point (the first: the starting equity)."""
    liquidated: NDArray[np.bool_]
    """Whether the close at each point was a liquidation (the first point: False)."""


class GateEvidence(NamedTuple):
    """What the promotion gate decided on, for its chart."""

    differences: NDArray[np.float64]
    """Candidate minus champion, per decision both traded, in decision order."""
    bootstrap_means: NDArray[np.float64]
    """The bootstrap's resampled means of ``differences`` (the interval's percentiles)."""
    decision: Mapping[str, Any]
    """The gate's figures: promote, metric, difference, ci_low, ci_high, margin, n,
    champion, reason and, where the gate has them, the guardrails' tolerances."""
    candidate: Mapping[str, float]
    """``policy_metrics`` of the candidate's holdout run."""
    champion: Mapping[str, float]
    """``policy_metrics`` of the champion's holdout run."""


# --- helpers ------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _smooth(values: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """Trailing moving average (shorter at the start), so a curve's first point is real."""
    if values.size == 0 or window <= 1:
        return values.astype(np.float64)
    cumsum = np.cumsum(np.r_[0.0, values])
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[lo]) / (idx - lo)


def _short_bin(feature: Feature, b: int) -> str:
    """A bin's range without the feature's name: ``<0.01``, ``0.01–0.03``, ``≥0.03``."""
    if feature.categories:
        return feature.categories[b]
    lo = feature.edges[b - 1] if b > 0 else None
    hi = feature.edges[b] if b < len(feature.edges) else None
    if lo is None:
        return f"<{hi:g}"
    if hi is None:
        return f"≥{lo:g}"
    return f"{lo:g}–{hi:g}"


FEATURE_NAMES = {
    "regime": "regime",
    "volatility": "volatility",
    "market_pressure": "pressure",
    "confidence": "confidence",
    "previous_winrate": "win rate",
    "account_health": "health",
    "signal_confidence": "confidence",
    "portfolio_exposure": "exposure",
    "recent_winrate": "win rate",
    "equity_curve_slope": "equity slope",
}
"""Short names of the state features for axis labels."""


def state_label(space: StateSpace, state: int) -> str:
    """A state's bins in short form: ``TREND · vol 0.01–0.03 · pressure <-0.33 · ...``."""
    bins = space.decode(state)
    parts = []
    for f in space.features:
        text = _short_bin(f, int(bins[f.name]))
        parts.append(text if f.categories else f"{FEATURE_NAMES.get(f.name, f.name)} {text}")
    return " · ".join(parts)


def _state_grid(space: StateSpace, rows: Sequence[str], cols: Sequence[str]) -> NDArray[np.int64]:
    """State indices laid out on a grid: ``rows`` features nested outermost first, so the
    last feature of each varies fastest; every feature of the space appears once."""
    by_name = {f.name: f for f in space.features}
    if sorted([*rows, *cols]) != sorted(by_name):
        raise ValueError(f"grid {rows} x {cols} must use each feature of {space.name} once")
    row_sizes = [by_name[n].n_bins for n in rows]
    col_sizes = [by_name[n].n_bins for n in cols]
    r_idx = np.indices(row_sizes).reshape(len(rows), -1)
    c_idx = np.indices(col_sizes).reshape(len(cols), -1)
    bins: dict[str, NDArray[np.int64]] = {}
    for i, name in enumerate(rows):
        bins[name] = np.repeat(r_idx[i][:, None], c_idx.shape[1], axis=1)
    for j, name in enumerate(cols):
        bins[name] = np.repeat(c_idx[j][None, :], r_idx.shape[1], axis=0)
    return np.asarray(space.encode_bins(bins), dtype=np.int64)


def _grid_ticks(ax: Axes, space: StateSpace, rows: Sequence[str], cols: Sequence[str]) -> None:
    """Label a state grid: the innermost features on the ticks, the outer ones as panel
    headers, panels separated by white lines."""
    by_name = {f.name: f for f in space.features}
    inner_r, inner_c = by_name[rows[-1]], by_name[cols[-1]]
    n_rows = int(np.prod([by_name[n].n_bins for n in rows]))
    n_cols = int(np.prod([by_name[n].n_bins for n in cols]))
    row_labels = [_tick(inner_r, i % inner_r.n_bins) for i in range(n_rows)]
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(row_labels, fontsize=6)
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels(
        [_tick(inner_c, j % inner_c.n_bins) for j in range(n_cols)], fontsize=6, rotation=90
    )
    ax.tick_params(length=0)
    for k in range(inner_r.n_bins, n_rows, inner_r.n_bins):
        ax.axhline(k - 0.5, color="white", lw=2.5)
    for k in range(inner_c.n_bins, n_cols, inner_c.n_bins):
        ax.axvline(k - 0.5, color="white", lw=2.5)
    offset = 6 + 3.4 * max(len(t) for t in row_labels)  # points: clear of the tick labels
    _outer_headers(ax, [by_name[n] for n in rows[:-1]], inner_r.n_bins, "y", offset)
    _outer_headers(ax, [by_name[n] for n in cols[:-1]], inner_c.n_bins, "x", 4)


def _tick(feature: Feature, b: int) -> str:
    """A tick label: a category's name, or a bin's range after the feature's short name."""
    text = _short_bin(feature, b)
    return text if feature.categories else f"{FEATURE_NAMES.get(feature.name, feature.name)} {text}"


def _outer_headers(ax: Axes, outer: list[Feature], block: int, axis: str, offset: float) -> None:
    """Write each panel's outer bins beside (rows) or above (columns) the grid."""
    if not outer:
        return
    sizes = [f.n_bins for f in outer]
    combos = np.indices(sizes).reshape(len(outer), -1).T
    for k, combo in enumerate(combos):
        text = "\n".join(
            f"{FEATURE_NAMES.get(f.name, f.name)} {_short_bin(f, int(b))}"
            for f, b in zip(outer, combo, strict=True)
        )
        centre = k * block + (block - 1) / 2
        if axis == "y":
            ax.annotate(
                text.replace("\n", ", "),
                xy=(0, centre),
                xycoords=("axes fraction", "data"),
                xytext=(-offset, 0),
                textcoords="offset points",
                ha="right",
                va="center",
                fontsize=6.5,
            )
        else:
            ax.annotate(
                text,
                xy=(centre, 1),
                xycoords=("data", "axes fraction"),
                xytext=(0, offset),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=6.5,
            )


def _unvisited_overlay(
    ax: Axes, grid: NDArray[np.int64], visits: NDArray[np.int64], learned: NDArray[np.bool_]
) -> None:
    """Hatch the cells of states with a value but no training event (backed off)."""
    cells = np.argwhere((visits[grid] == 0) & learned[grid])
    hatches = PatchCollection(
        [Rectangle((c - 0.5, r - 0.5), 1, 1) for r, c in cells],
        facecolor="none",
        edgecolor=HATCH,
        hatch=HATCH_PATTERN,
        linewidth=0,
    )
    hatches.set_in_layout(False)
    ax.add_collection(hatches)


def _cell_text(ax: Axes, col: int, row: int, text: str, colour: str) -> None:
    """Write a cell's value; kept out of the layout computation (thousands of them)."""
    label = ax.text(col, row, text, ha="center", va="center", fontsize=6.5, color=colour)
    label.set_in_layout(False)


# --- learning -----------------------------------------------------------------------------


def learning(trainings: Mapping[str, Sequence[ReplayStats]], learner: str) -> Figure:
    """Learning curves per agent: mean reward, mean |TD error| and ε, per epoch and
    smoothed per episode.

    ``trainings`` maps each agent to its per-epoch ``ReplayStats``
    (``AgentTraining.epochs``). The x axis counts epochs; an epoch's episodes are spread
    evenly over it, so the smoothed per-episode curve and the per-epoch means share it.
    """
    fig = _figure(11, 7.5)
    axes = fig.subplots(3, len(trainings), squeeze=False, sharex="col")
    for col, (agent, epochs) in enumerate(trainings.items()):
        _learning_column(list(axes[:, col]), agent, epochs)
    axes[0, 0].legend(loc="best", fontsize=8)
    axes[1, 0].legend(loc="best", fontsize=8)
    fig.suptitle(f"Learning ({learner} learner): reward, TD error and exploration per epoch")
    return fig


def _learning_column(axes: Sequence[Axes], agent: str, epochs: Sequence[ReplayStats]) -> None:
    n_epochs = len(epochs)
    middle = np.arange(n_epochs) + 0.5
    episode_x = np.concatenate(
        [e + (np.arange(s.n_episodes) + 1) / max(s.n_episodes, 1) for e, s in enumerate(epochs)]
    )
    reward = np.concatenate([s.episode_reward for s in epochs])
    td = np.concatenate([s.episode_mean_abs_td for s in epochs])
    eps = np.concatenate([s.episode_epsilon for s in epochs])
    window = max(reward.size // 60, 1)
    smooth_label = f"per episode, moving mean of {window}" if window > 1 else "per episode"
    mean_reward = [s.total_reward / max(s.n_updates, 1) for s in epochs]
    mean_td = [s.mean_abs_td_error for s in epochs]
    ax_r, ax_td, ax_eps = axes
    ax_r.plot(episode_x, _smooth(reward, window), color=SKY, lw=1, label=smooth_label)
    ax_r.plot(middle, mean_reward, "o-", color=BLUE, label="mean per event over the epoch")
    ax_r.axhline(0.0, color="black", lw=0.6)
    ax_r.set_title(f"{agent}: {epochs[0].n_updates:,} training events per epoch", fontsize=10)
    ax_r.set_ylabel("reward (SPEC A1, per event)")
    ax_td.plot(episode_x, _smooth(td, window), color="#e8a87c", lw=1, label=smooth_label)
    ax_td.plot(middle, mean_td, "o-", color=VERMILION, label="mean per event over the epoch")
    ax_td.set_ylabel("mean |TD error| (reward units)")
    ax_td.set_ylim(bottom=0)
    ax_eps.plot(episode_x, eps, color=GREEN, lw=1.2, label="ε of each episode")
    ax_eps.set_ylabel("ε (probability of a random action)")
    top = float(eps.max()) if eps.size and eps.any() else 1.0
    ax_eps.set_ylim(-0.03 * top, 1.1 * top)
    if not eps.any():
        ax_eps.text(
            0.5,
            0.5,
            "ε = 0: this learner does not explore",
            transform=ax_eps.transAxes,
            ha="center",
            va="center",
            fontsize=9,
            color=GREY,
        )
    ax_eps.set_xlabel("epoch (passes over the training window)")
    ax_eps.set_xlim(0, n_epochs)
    ax_eps.legend(loc="best", fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
        for boundary in range(1, n_epochs):
            ax.axvline(boundary, color=GREY, lw=0.6, ls=":")


# --- policy maps --------------------------------------------------------------------------

META_GRID = (
    ("market_pressure", "confidence", "regime"),
    ("previous_winrate", "account_health", "volatility"),
)
"""The meta map's layout: panels of regime × volatility, the other features as panels."""
SIZING_GRID = (
    ("portfolio_exposure", "signal_confidence"),
    ("volatility", "equity_curve_slope", "recent_winrate"),
)
"""The sizing map's layout: panels of confidence × win rate."""
STRATEGY_LETTERS = {
    Strategy.TREND: "T",
    Strategy.RANGE: "R",
    Strategy.BREAKOUT: "B",
    Strategy.MEAN_REVERSION: "M",
}


def _greedy(q: NDArray[np.float64]) -> NDArray[np.int64]:
    """Greedy action per state (the first of ties, as ``rlv2.qlearning.greedy_policy``)."""
    return np.argmax(q, axis=1).astype(np.int64)


def meta_policy_map(q: NDArray[np.float64], space: StateSpace, visits: NDArray[np.int64]) -> Figure:
    """The meta agent's greedy action in every state: colour the model it follows, the
    letter its strategy, + / − its weight action; hatched: no training event.

    ``visits`` counts the training events of each state.
    """
    rows, cols = META_GRID
    grid = _state_grid(space, rows, cols)
    greedy = _greedy(q)
    strategy, model, weight = meta_space.decode_arrays(greedy)
    learned = np.any(q != 0.0, axis=1)
    colour_index = np.where(learned, model, len(Model))[grid]
    fig = _figure(15, 13.5)
    ax = fig.add_subplot()
    ax.imshow(
        colour_index,
        cmap=ListedColormap([*MODEL_COLOURS, UNSEEN]),
        norm=BoundaryNorm(np.arange(len(Model) + 2) - 0.5, len(Model) + 1),
        aspect="auto",
        interpolation="nearest",
    )
    for (r, c), state in np.ndenumerate(grid):
        if not learned[state]:
            continue
        mark = WEIGHT_MARKS.get(WeightAction(int(weight[state])), "")
        letter = STRATEGY_LETTERS[Strategy(int(strategy[state]))]
        _cell_text(ax, c, r, letter + mark, "white" if visits[state] else "black")
    _unvisited_overlay(ax, grid, visits, learned)
    _grid_ticks(ax, space, rows, cols)
    ax.set_xlabel(
        "panels: market pressure × confidence (rows), win rate × account health (columns); "
        "cells: regime × volatility (std of bar returns)",
        fontsize=8,
    )
    handles = [
        Patch(color=c, label=f"follows {m.name}") for m, c in zip(Model, MODEL_COLOURS, strict=True)
    ]
    _state_legend(
        fig,
        handles,
        "letter: strategy (T trend, R range, B breakout, M mean reversion); "
        "+ weight up, − weight down, none: hold",
    )
    n_visited = int(np.count_nonzero(visits))
    fig.suptitle(
        f"Meta-strategy policy: greedy action per state ({n_visited} of {space.n_states} states "
        "seen in training); each panel: regime × volatility"
    )
    return fig


def sizing_policy_map(
    q: NDArray[np.float64], space: StateSpace, visits: NDArray[np.int64]
) -> Figure:
    """The sizing agent's greedy size multiplier and leverage in every state; hatched: no
    training event, grey: nothing learned. ``visits`` counts training events per state."""
    rows, cols = SIZING_GRID
    grid = _state_grid(space, rows, cols)
    size, leverage = sizing_space.decode_arrays(_greedy(q))
    learned = np.any(q != 0.0, axis=1)
    fig = _figure(15, 10)
    axes = fig.subplots(2, 1)
    panels = [
        ("size multiplier (× base position)", size, np.asarray(SIZE_MULTIPLIERS), "Blues", "{:g}"),
        (
            "leverage (×)",
            leverage.astype(np.float64),
            np.asarray(LEVERAGES, np.float64),
            "Oranges",
            "{:.0f}",
        ),
    ]
    for ax, (label, values, levels, cmap, fmt) in zip(axes, panels, strict=True):
        shown = np.where(learned, values, np.nan)[grid]
        edges = np.r_[
            levels[0] - 0.5 * (levels[1] - levels[0]),
            (levels[1:] + levels[:-1]) / 2,
            levels[-1] + 0.5 * (levels[-1] - levels[-2]),
        ]
        colours = ListedColormap(_ramp(cmap, levels.size)).with_extremes(bad=UNSEEN)
        image = ax.imshow(
            shown,
            cmap=colours,
            norm=BoundaryNorm(edges, levels.size),
            aspect="auto",
            interpolation="nearest",
        )
        for (r, c), state in np.ndenumerate(grid):
            if learned[state]:
                high = values[state] >= levels[levels.size // 2]
                _cell_text(ax, c, r, fmt.format(values[state]), "white" if high else "black")
        _unvisited_overlay(ax, grid, visits, learned)
        _grid_ticks(ax, space, rows, cols)
        bar = fig.colorbar(image, ax=ax, ticks=levels, shrink=0.9, pad=0.01)
        bar.set_label(label)
        ax.set_title(f"greedy {label}", fontsize=10, loc="left", pad=30)
    axes[-1].set_xlabel(
        "panels: exposure (open notional / equity) × volatility (std of bar returns) × equity "
        "slope (per trade, / mean equity); cells: signal confidence × recent win rate",
        fontsize=8,
    )
    _state_legend(fig, [], None)
    n_visited = int(np.count_nonzero(visits))
    fig.suptitle(
        f"Position-sizing policy: greedy size and leverage per state "
        f"({n_visited} of {space.n_states} states seen in training)"
    )
    return fig


def _state_legend(fig: Figure, handles: list[Any], title: str | None) -> None:
    """The policy maps' legend below the grid: ``handles``, then how unseen states look."""
    handles = [
        *handles,
        Patch(facecolor=GREY, edgecolor=HATCH, hatch=HATCH_PATTERN, label=BACKED_OFF),
        Patch(color=UNSEEN, label=NOT_LEARNED),
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=len(handles),
        fontsize=8,
        title=title,
        title_fontsize=8,
    )


def _ramp(cmap: str, n: int) -> list[Any]:
    """``n`` colours of a sequential colormap, skipping its palest end."""
    return [colormaps[cmap](x) for x in np.linspace(0.25, 0.95, n)]


# --- Q-values and visits ------------------------------------------------------------------


def _action_labels(agent: Agent) -> list[str]:
    """Compact action labels: ``T·XGB·+`` (strategy, model, weight) or ``1.3×·lev 5``."""
    if agent is Agent.META_STRATEGY:
        s, m, w = meta_space.decode_arrays(np.arange(meta_space.n))
        return [
            f"{STRATEGY_LETTERS[Strategy(int(a))]}·{Model(int(b)).name}·"
            f"{WEIGHT_MARKS.get(WeightAction(int(c)), '=') or '='}"
            for a, b, c in zip(s, m, w, strict=True)
        ]
    size, lev = sizing_space.decode_arrays(np.arange(sizing_space.n))
    return [f"{a:g}×·lev {b}" for a, b in zip(size, lev, strict=True)]


def q_values(
    agent: Agent | str,
    q: NDArray[np.float64],
    space: StateSpace,
    visits: NDArray[np.int64],
    top: int = 40,
) -> Figure:
    """Q-values of the ``top`` most visited states (rows) for every action (columns), the
    greedy action ringed, with each state's training visits beside."""
    agent = Agent(agent)
    order = np.argsort(-visits, kind="stable")[:top]
    order = order[visits[order] > 0] if np.any(visits[order] > 0) else order
    values = q[order]
    fig = _figure(16, 3.5 + 0.24 * len(order))
    grid = fig.add_gridspec(1, 2, width_ratios=(5, 1))
    ax = fig.add_subplot(grid[0])
    ax_visits = fig.add_subplot(grid[1], sharey=ax)
    # a robust colour range: a few extreme values must not wash out the rest
    bound = float(np.quantile(np.abs(values), 0.99)) if values.size else 0.0
    bound = bound or float(np.max(np.abs(values), initial=0.0)) or 1.0
    image = ax.imshow(
        values,
        cmap="RdBu",
        norm=TwoSlopeNorm(0.0, -bound, bound),
        aspect="auto",
        interpolation="nearest",
    )
    greedy = _greedy(values)
    ax.scatter(
        greedy,
        np.arange(len(order)),
        s=22,
        facecolors="none",
        edgecolors="black",
        linewidths=1.0,
        label="greedy action",
    )
    labels = _action_labels(agent)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=6.5)
    group = len(Model) * len(WeightAction) if agent is Agent.META_STRATEGY else len(LEVERAGES)
    for k in range(group, len(labels), group):
        ax.axvline(k - 0.5, color="black", lw=0.6)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([f"{s}: {state_label(space, int(s))}" for s in order], fontsize=6.5)
    ax.set_xlabel(
        "action (strategy·model·weight: + up, − down, = hold)"
        if agent is Agent.META_STRATEGY
        else "action (size multiplier × leverage)"
    )
    ax.set_ylabel("state (index: bins)")
    ax.legend(
        loc="upper right", bbox_to_anchor=(1.0, 1.0 + 1.2 / len(order)), fontsize=8, frameon=False
    )
    bar = fig.colorbar(image, ax=ax, location="top", shrink=0.35, pad=0.02, extend="both")
    bar.set_label("Q-value (expected reward per event, SPEC A1 units)", fontsize=9)
    ax_visits.barh(np.arange(len(order)), visits[order], color=GREY, label="training events")
    ax_visits.set_xlabel("visits (events)")
    ax_visits.tick_params(labelleft=False)
    ax_visits.legend(loc="lower right", fontsize=8)
    ax_visits.grid(axis="x", alpha=0.3)
    covered = float(visits[order].sum()) / max(float(visits.sum()), 1.0)
    fig.suptitle(
        f"{agent}: Q-values of the {len(order)} most visited of {space.n_states} states "
        f"({covered:.0%} of training events)"
    )
    return fig


# --- holdout equity -----------------------------------------------------------------------


def _drawdown_pct(equity: NDArray[np.float64]) -> NDArray[np.float64]:
    peak = np.maximum.accumulate(equity)
    return (peak - equity) / peak * 100.0


def holdout_equity(
    policies: Sequence[EquityCurve], benchmarks: Sequence[EquityCurve], window: str
) -> Figure:
    """Account equity of each policy on the holdout, buy-and-hold beside them; the first
    policy's drawdown shaded, liquidations marked, drawdowns below.

    ``policies``: the candidate first, then production (when any) and the logged
    behaviour; ``benchmarks``: buy-and-hold of each underlying from the same start.
    """
    fig = _figure(12, 7)
    ax, ax_dd = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.2))
    for curve in benchmarks:
        ax.plot(
            curve.ts,
            curve.equity,
            ls="--",
            lw=1.1,
            color=GREEN if "SPX" in curve.label else PURPLE,
            alpha=0.8,
            label=curve.label,
        )
    liquidation_label = "liquidation"
    for k, curve in enumerate(policies):
        colour = SERIES_COLOURS.get(curve.label.split(" ")[0], [BLUE, ORANGE, GREY][k % 3])
        ax.step(
            curve.ts,
            curve.equity,
            where="post",
            color=colour,
            lw=1.6 if k == 0 else 1.2,
            label=f"{curve.label}: final {curve.equity[-1]:.1f}",
            zorder=3 + (k == 0),
        )
        dd = _drawdown_pct(curve.equity)
        ax_dd.step(curve.ts, -dd, where="post", color=colour, lw=1.0, label=curve.label)
        if k == 0:
            peak = np.maximum.accumulate(curve.equity)
            ax.fill_between(
                curve.ts,
                curve.equity,
                peak,
                step="post",
                color=colour,
                alpha=0.18,
                lw=0,
                label=f"{curve.label}: drawdown from peak",
            )
            ax_dd.fill_between(curve.ts, -dd, 0, step="post", color=colour, alpha=0.25, lw=0)
        hit = np.flatnonzero(curve.liquidated)
        if hit.size:
            ax.scatter(
                curve.ts[hit],
                curve.equity[hit],
                marker="X",
                s=60,
                color=VERMILION,
                edgecolors="black",
                linewidths=0.5,
                zorder=6,
                label=liquidation_label,
            )
            liquidation_label = "_nolegend_"
    start = policies[0].equity[0] if policies else 0.0
    ax.set_ylabel(f"account equity (model units; {start:.1f} at the start, as logged)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    ax_dd.set_ylabel("drawdown (% below peak)")
    ax_dd.set_xlabel("time (UTC; each step is a position's close)")
    ax_dd.grid(alpha=0.3)
    ax_dd.legend(loc="lower left", fontsize=7, ncol=3)
    fig.suptitle(f"Holdout {window}: account equity of each policy, and buy-and-hold")
    return fig


# --- the gate -----------------------------------------------------------------------------

METRIC_UNITS = {
    "pnl_pct": "pnl per trade, % of margin",
    "meta_reward": "meta reward per trade, SPEC A1",
    "sizing_reward": "sizing reward per trade, SPEC A1",
}
GUARDRAILS = (
    ("mean_pnl_pct", "mean pnl per trade", "% of margin", "pnl_tolerance", -1.0),
    ("max_drawdown_pct", "max drawdown", "% below peak", "drawdown_tolerance", 1.0),
    ("sharpe", "Sharpe per trade", "mean / std of pnl", None, 0.0),
    ("win_rate", "win rate", "share of trades", None, 0.0),
)
"""The figures set side by side: key, name, unit, the gate's tolerance (if any) and its
direction (-1: the candidate may be that much lower, +1: that much higher)."""


def gate(evidence: GateEvidence) -> Figure:
    """The gate's evidence: the resampled distribution of the mean difference with its
    interval, the margin and zero; the guardrail figures of both policies side by side."""
    d = evidence.decision
    fig = _figure(13, 5.5)
    outer = fig.add_gridspec(1, 2, width_ratios=(1.5, 1))
    ax = fig.add_subplot(outer[0])
    means = evidence.bootstrap_means
    metric = str(d.get("metric", ""))
    champion = str(d.get("champion", "champion"))
    if means.size:
        ax.hist(
            means,
            bins=min(60, max(10, means.size // 30)),
            color=SKY,
            alpha=0.8,
            label=(
                # newey-west reads no resamples: these show the spread its variance stands for
                f"circular block bootstrap at its bandwidth ({means.size:,} resamples)"
                if d.get("bootstrap") == "newey-west"
                else "circular block bootstrap of the symbol-weighted differences at its "
                f"bandwidth ({means.size:,} resamples)"
                if d.get("bootstrap") == "newey-west-symbols"
                else f"bootstrap means ({means.size:,} resamples)"
            ),
        )
    low, high = float(d.get("ci_low", 0.0)), float(d.get("ci_high", 0.0))
    ax.axvspan(low, high, color=BLUE, alpha=0.12, label=f"interval [{low:.4g}, {high:.4g}]")
    ax.axvline(0.0, color="black", lw=1.2, label="zero: no difference")
    ax.axvline(
        float(d.get("margin", 0.0)),
        color=ORANGE,
        lw=1.5,
        ls="--",
        label=f"margin {float(d.get('margin', 0.0)):g}",
    )
    ax.axvline(
        float(d.get("difference", 0.0)),
        color=BLUE,
        lw=2,
        label=f"observed difference {float(d.get('difference', 0.0)):.4g}",
    )
    if d.get("bootstrap") == "newey-west-symbols" and "estimate" in d:
        ax.axvline(  # the interval is centred on this one, not on the plain mean
            float(d["estimate"]),
            color=BLUE,
            lw=1.5,
            ls="-.",
            label=f"symbol-weighted difference {float(d['estimate']):.4g}",
        )
    ax.set_xlabel(f"mean difference, candidate − {champion} ({METRIC_UNITS.get(metric, metric)})")
    ax.set_ylabel("resamples (count)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    verdict = "PROMOTED" if d.get("promote") else "REFUSED"
    ax.set_title(  # a guardrail's reason is long: wrapped, it stays over its own panel
        textwrap.fill(f"{verdict}: {d.get('reason', '')}", width=95),
        fontsize=9,
        color=GREEN if d.get("promote") else VERMILION,
    )
    right = outer[1].subgridspec(2, 2)
    for k, (key, name, unit, tolerance_key, direction) in enumerate(GUARDRAILS):
        bar_ax = fig.add_subplot(right[k // 2, k % 2])
        values = [float(evidence.candidate.get(key, 0.0)), float(evidence.champion.get(key, 0.0))]
        bars = bar_ax.bar(
            ["candidate", champion],
            values,
            color=[BLUE, ORANGE if "production" in champion else GREY],
        )
        bar_ax.bar_label(bars, fmt="%.3g", fontsize=7)
        tolerance = float(d.get(tolerance_key, np.inf)) if tolerance_key else np.inf
        if np.isfinite(tolerance):
            bar_ax.axhline(
                values[1] + direction * tolerance,
                color=VERMILION,
                ls=":",
                lw=1.2,
                label=f"guardrail (tolerance {tolerance:g})",
            )
            bar_ax.legend(fontsize=6, loc="lower center")
        bar_ax.axhline(0.0, color="black", lw=0.6)
        bar_ax.margins(y=0.15)
        bar_ax.set_title(f"{name} (whole run)", fontsize=9)
        bar_ax.set_ylabel(unit, fontsize=8)
        bar_ax.tick_params(labelsize=7)
    n = int(d.get("n", evidence.differences.size))
    fig.suptitle(
        f"Promotion gate on {METRIC_UNITS.get(metric, metric)}: candidate vs {champion}, "
        f"{n} common holdout trades"
    )
    return fig


# --- what changed -------------------------------------------------------------------------


def policy_changes(
    agent: Agent | str,
    candidate_q: NDArray[np.float64],
    production_q: NDArray[np.float64],
    space: StateSpace,
    holdout_visits: NDArray[np.int64],
    top: int = 25,
) -> Figure:
    """The states whose greedy action the candidate changes from production's, longest
    bar: the state the holdout visits most."""
    agent = Agent(agent)
    labels = _action_labels(agent)
    cand, prod = _greedy(candidate_q), _greedy(production_q)
    changed = np.flatnonzero((cand != prod) & (holdout_visits > 0))
    changed = changed[np.argsort(-holdout_visits[changed], kind="stable")]
    shown = changed[:top]
    total = int(holdout_visits.sum())
    moved = int(holdout_visits[changed].sum())
    fig = _figure(12, 2.5 + 0.28 * max(len(shown), 3))
    ax = fig.add_subplot()
    y = np.arange(len(shown))
    ax.barh(y, holdout_visits[shown], color=BLUE, label="holdout decisions in the state")
    for yy, s in zip(y.tolist(), shown.tolist(), strict=True):
        ax.text(
            float(holdout_visits[s]),
            yy,
            f"  {labels[prod[s]]} → {labels[cand[s]]}",
            va="center",
            fontsize=7.5,
        )
    ax.set_yticks(y)
    ax.set_yticklabels([f"{s}: {state_label(space, int(s))}" for s in shown], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(
        "holdout decisions in the state (count; label: production's action → the candidate's)"
    )
    ax.set_ylabel("state (index: bins)")
    ax.set_xlim(0, max(float(holdout_visits[shown].max()) if len(shown) else 1.0, 1.0) * 1.45)
    ax.grid(axis="x", alpha=0.3)
    if not len(shown):
        ax.text(
            0.5,
            0.5,
            "no holdout state changes its greedy action",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color=GREY,
        )
    else:
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(
        f"{agent}: greedy action changed in {len(changed)} holdout states, "
        f"{moved} of {total} holdout decisions ({moved / max(total, 1):.0%})"
        + (f"; the {len(shown)} most visited shown" if len(changed) > len(shown) else "")
    )
    return fig


# --- sweeps -------------------------------------------------------------------------------


def sweep_scores(
    agent: str,
    parameters: Mapping[str, Sequence[Any]],
    scores: Sequence[float],
    chosen: int,
    score_label: str,
) -> Figure:
    """Each configuration's validation score against each hyperparameter that varied,
    the chosen configuration starred."""
    varied = {k: list(v) for k, v in parameters.items() if len({str(x) for x in v}) > 1}
    if not varied:
        varied = dict(list({k: list(v) for k, v in parameters.items()}.items())[:1])
    n = max(len(varied), 1)
    fig = _figure(min(4.0 * n, 16.0), 4.2)
    axes = fig.subplots(1, n, squeeze=False, sharey=True)[0]
    y = np.asarray(scores, dtype=np.float64)
    for ax, (name, values) in zip(axes, varied.items(), strict=False):
        numeric = all(isinstance(v, int | float | np.number) for v in values)
        if numeric:
            x = np.asarray(values, dtype=np.float64)
            if name == "alpha" and np.all(x > 0) and x.max() / x.min() >= 10:
                ax.set_xscale("log")
        else:
            cats = sorted({str(v) for v in values})
            x = np.asarray([cats.index(str(v)) for v in values], dtype=np.float64)
            ax.set_xticks(range(len(cats)))
            ax.set_xticklabels(cats, rotation=30, fontsize=7)
        ax.scatter(x, y, color=BLUE, alpha=0.7, label="configuration")
        ax.scatter(
            [x[chosen]],
            [y[chosen]],
            marker="*",
            s=260,
            color=ORANGE,
            edgecolors="black",
            zorder=5,
            label="chosen (best score)",
        )
        ax.set_xlabel(f"{name} ({HYPER_UNITS.get(name, 'value')})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(score_label)
    axes[0].legend(loc="best", fontsize=8)
    fig.suptitle(f"Sweep of {agent}: validation score of {len(y)} configurations")
    return fig


HYPER_UNITS = {
    "alpha": "learning rate",
    "gamma": "discount per step",
    "epsilon": "initial exploration probability",
    "epsilon_decay": "ε factor per episode",
    "epsilon_min": "exploration floor",
    "meta_weights": "drawdown,sharpe,regime weights",
    "sizing_weights": "risk,volatility weights",
}


def sweep_learning(
    agent: str, runs: Mapping[str, Sequence[ReplayStats]], best: str | None = None
) -> Figure:
    """A sweep's learning curves, one line per configuration: smoothed reward and mean
    |TD error| per episode over the epochs; ``best`` drawn thick."""
    fig = _figure(12, 6.5)
    ax_r, ax_td = fig.subplots(2, 1, sharex=True)
    colours = _ramp("viridis", max(len(runs), 2))
    for k, (label, epochs) in enumerate(runs.items()):
        x = np.concatenate(
            [e + (np.arange(s.n_episodes) + 1) / max(s.n_episodes, 1) for e, s in enumerate(epochs)]
        )
        reward = np.concatenate([s.episode_reward for s in epochs])
        td = np.concatenate([s.episode_mean_abs_td for s in epochs])
        window = max(reward.size // 60, 1)
        chosen = label == best
        style = {"color": ORANGE if chosen else colours[k], "lw": 2.2 if chosen else 0.9}
        shown = f"{label} (chosen)" if chosen else label
        ax_r.plot(x, _smooth(reward, window), label=shown, zorder=3 if chosen else 2, **style)
        ax_td.plot(x, _smooth(td, window), zorder=3 if chosen else 2, **style)
        n_epochs = len(epochs)
        ax_td.set_xlim(0, n_epochs)
    ax_r.axhline(0.0, color="black", lw=0.6)
    ax_r.set_ylabel("reward per episode (SPEC A1, moving mean)")
    ax_td.set_ylabel("mean |TD error| (reward units)")
    ax_td.set_ylim(bottom=0)
    ax_td.set_xlabel("epoch (passes over the sweep's fit window)")
    ax_r.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, title="configuration")
    for ax in (ax_r, ax_td):
        ax.grid(alpha=0.3)
    fig.suptitle(f"Sweep of {agent}: learning curves of {len(runs)} configurations")
    return fig
