"""The compiled evaluation: ``simulate`` without learning, greedy Q-tables or the logged policy.

Same decisions, outcomes, account and rewards as ``simulate(..., learn=False)`` with
policy ``greedy`` / ``logged`` (a test proves them equal). The loop calls the same
compiled rules as the readable path: state vectors and encoding (``rlv2.states``),
action decoding (``rlv2.actions``), outcome and notional (``rlv2.outcomes``), the
trailing account features (``rlv2.account``); rewards are computed after the loop with
``rlv2.rewards``.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from rlv2 import account as account_kernels
from rlv2.actions import meta_action_parts, meta_space, sizing_action_parts, sizing_space
from rlv2.domain import LEVERAGES, SIZE_MULTIPLIERS
from rlv2.outcomes import (
    BUST_EQUITY,
    MARGIN_FRACTION,
    WEIGHT_SCALES,
    equity_after_close,
    position_notional,
    position_outcome,
)
from rlv2.replay.config import ReplayConfig
from rlv2.replay.inputs import SimulationInputs
from rlv2.replay.simulate import SimulationResult
from rlv2.rewards import (
    meta_strategy_reward,
    position_sizing_reward,
    regime_alignment,
    risk_penalty,
    volatility_adjustment,
)
from rlv2.states import encode_state, meta_state_vector, sizing_state_vector

_NAT = np.iinfo(np.int64).min
"""NaT as an int64 of nanoseconds."""


@numba.njit(cache=True, nogil=True)
def _heap_push(keys: Any, ids: Any, size: int, key: int, ident: int) -> int:
    i = size
    keys[i] = key
    ids[i] = ident
    while i > 0:
        parent = (i - 1) // 2
        if keys[parent] < keys[i] or (keys[parent] == keys[i] and ids[parent] <= ids[i]):
            break
        keys[i], keys[parent] = keys[parent], keys[i]
        ids[i], ids[parent] = ids[parent], ids[i]
        i = parent
    return size + 1


@numba.njit(cache=True, nogil=True)
def _heap_pop(keys: Any, ids: Any, size: int) -> int:
    size -= 1
    keys[0], ids[0] = keys[size], ids[size]
    i = 0
    while True:
        left, right, best = 2 * i + 1, 2 * i + 2, i
        if left < size and (
            keys[left] < keys[best] or (keys[left] == keys[best] and ids[left] < ids[best])
        ):
            best = left
        if right < size and (
            keys[right] < keys[best] or (keys[right] == keys[best] and ids[right] < ids[best])
        ):
            best = right
        if best == i:
            return size
        keys[i], keys[best] = keys[best], keys[i]
        ids[i], ids[best] = ids[best], ids[i]
        i = best


@numba.njit(cache=True, nogil=True)
def _evaluate_core(
    ts: Any,
    exit_ts: Any,
    regime: Any,
    volatility: Any,
    pressure: Any,
    confidence: Any,
    directions: Any,
    confidences: Any,
    ret: Any,
    mae: Any,
    logged_meta: Any,
    logged_sizing: Any,
    q_meta: Any,
    q_sizing: Any,
    meta_greedy: bool,
    sizing_greedy: bool,
    meta_sp: Any,
    sizing_sp: Any,
    weight_scales: Any,
    sizes: Any,
    leverages: Any,
    window: int,
    start_equity: float,
    start_peak: float,
    recent_pnl: Any,
    recent_equity: Any,
    open_close_ts: Any,
    open_notional: Any,
    open_pnl: Any,
    margin_fraction: float,
    bust_equity: float,
    out_int: Any,
    out_float: Any,
) -> None:
    n = ts.shape[0]
    n_recent = recent_pnl.shape[0]
    n_open = open_notional.shape[0]
    heap_keys = np.empty(n + n_open, np.int64)
    heap_ids = np.empty(n + n_open, np.int64)
    heap_size = 0
    pnls = np.empty(n_recent + n + n_open, np.float64)
    curve = np.empty(n_recent + n + n_open, np.float64)
    pnls[:n_recent] = recent_pnl
    curve[:n_recent] = recent_equity
    notional = np.zeros(n + n_open, np.float64)
    pnl_of = np.empty(n + n_open, np.float64)
    open_sum = 0.0
    for j in range(n_open):
        # positions open at the start: at risk until their logged close (never, if none)
        notional[n + j] = open_notional[j]
        pnl_of[n + j] = open_pnl[j]
        open_sum += open_notional[j]
        if open_close_ts[j] != _NAT:
            heap_size = _heap_push(heap_keys, heap_ids, heap_size, open_close_ts[j], n + j)
    equity = start_equity
    peak = start_peak
    n_closed = n_recent
    n_out = 0
    meta_values = np.empty(6, np.float64)
    sizing_values = np.empty(5, np.float64)
    path_of = np.empty(n, np.int64)
    exposure_total = np.empty(n, np.float64)
    dd_of = np.empty(n, np.float64)
    liq_of = np.empty(n, np.int64)
    m_state = np.empty(n, np.int64)
    m_action = np.empty(n, np.int64)
    s_state = np.empty(n, np.int64)
    s_action = np.empty(n, np.int64)
    for d in range(n + 1):
        while heap_size > 0 and (d == n or heap_keys[0] <= ts[d]):
            k = heap_ids[0]
            heap_size = _heap_pop(heap_keys, heap_ids, heap_size)
            open_sum -= notional[k]
            pnls[n_closed] = pnl_of[k]
            equity = equity_after_close(equity, float(pnl_of[k]), margin_fraction)
            curve[n_closed] = equity
            peak = max(peak, equity)
            n_closed += 1
            if k >= n:
                continue  # a position of the logged account: no record of its own
            sharpe = account_kernels.trailing_sharpe(pnls, max(0, n_closed - window), n_closed)
            row = n_out
            n_out += 1
            out_int[row, 0] = k
            out_int[row, 1] = m_state[k]
            out_int[row, 2] = m_action[k]
            out_int[row, 3] = s_state[k]
            out_int[row, 4] = s_action[k]
            out_int[row, 5] = path_of[k]
            out_int[row, 6] = liq_of[k]
            out_float[row, 0] = pnl_of[k]
            out_float[row, 1] = dd_of[k]
            out_float[row, 2] = equity
            out_float[row, 3] = exposure_total[k]
            out_float[row, 4] = sharpe
        if d == n:
            break
        if equity <= bust_equity:
            continue  # the account is bust: no later decision is traded
        winrate = account_kernels.trailing_winrate(pnls, max(0, n_closed - window), n_closed)
        slope = account_kernels.trailing_slope(curve, max(0, n_closed - window), n_closed)
        meta_state_vector(
            meta_values,
            regime[d],
            volatility[d],
            pressure[d],
            confidence[d],
            winrate,
            float(equity / peak),
        )
        ms = encode_state(meta_values, meta_sp[0], meta_sp[1], meta_sp[2], meta_sp[3])
        ma = int(np.argmax(q_meta[ms])) if meta_greedy else logged_meta[d]
        strategy, model, weight = meta_action_parts(ma)
        sizing_state_vector(
            sizing_values,
            confidences[d, model],
            float(open_sum / equity),
            winrate,
            volatility[d],
            slope,
        )
        ss = encode_state(sizing_values, sizing_sp[0], sizing_sp[1], sizing_sp[2], sizing_sp[3])
        sa = int(np.argmax(q_sizing[ss])) if sizing_greedy else logged_sizing[d]
        size_idx, lev_idx = sizing_action_parts(sa)
        size = sizes[size_idx]
        lev = leverages[lev_idx]
        w_scale = weight_scales[weight]
        path = strategy * 2 + (1 if directions[d, model] > 0 else 0)
        pnl, drawdown, liquidated = position_outcome(ret[d, path], mae[d, path], size, lev, w_scale)
        pnl_of[d] = pnl
        liq_of[d] = 1 if liquidated else 0
        dd_of[d] = drawdown
        notional[d] = position_notional(size, w_scale, lev, margin_fraction * equity)
        exposure_total[d] = (open_sum + notional[d]) / equity
        open_sum += notional[d]
        path_of[d] = path
        m_state[d] = ms
        m_action[d] = ma
        s_state[d] = ss
        s_action[d] = sa
        heap_size = _heap_push(heap_keys, heap_ids, heap_size, exit_ts[d, path], d)


def evaluate_policies(
    inputs: SimulationInputs,
    config: ReplayConfig,
    q_meta: NDArray[np.float64] | None,
    q_sizing: NDArray[np.float64] | None,
    winrate_window: int = 20,
) -> SimulationResult:
    """Compiled ``simulate`` without learning: greedy Q-tables, or ``None`` for logged."""
    n = len(inputs.rows)
    start = inputs.start
    empty_meta = np.zeros((1, meta_space.n))
    empty_sizing = np.zeros((1, sizing_space.n))
    out_int = np.full((n, 7), -1, np.int64)
    out_float = np.zeros((n, 5), np.float64)
    _evaluate_core(
        inputs.ts.astype("datetime64[ns]").astype(np.int64),
        np.ascontiguousarray(inputs.exit_ts.astype("datetime64[ns]").astype(np.int64)),
        inputs.regime.astype(np.float64),
        inputs.volatility,
        inputs.market_pressure,
        inputs.confidence,
        inputs.directions,
        inputs.confidences,
        inputs.ret,
        inputs.mae,
        inputs.logged_meta,
        inputs.logged_sizing,
        empty_meta if q_meta is None else np.ascontiguousarray(q_meta, np.float64),
        empty_sizing if q_sizing is None else np.ascontiguousarray(q_sizing, np.float64),
        q_meta is not None,
        q_sizing is not None,
        tuple(config.meta_space.kernel_arrays),
        tuple(config.sizing_space.kernel_arrays),
        WEIGHT_SCALES,
        np.asarray(SIZE_MULTIPLIERS, np.float64),
        np.asarray(LEVERAGES, np.int64),
        winrate_window,
        start.equity,
        start.peak,
        np.ascontiguousarray(start.recent_pnl, np.float64),
        np.ascontiguousarray(start.recent_equity, np.float64),
        start.open_close_ts.astype("datetime64[ns]").astype(np.int64),
        np.ascontiguousarray(start.open_notional, np.float64),
        np.ascontiguousarray(start.open_pnl, np.float64),
        MARGIN_FRACTION,
        BUST_EQUITY,
        out_int,
        out_float,
    )
    traded = out_int[:, 0] >= 0  # decisions after a bust are not traded
    out_int, out_float = out_int[traded], out_float[traded]
    d, path = out_int[:, 0], out_int[:, 5]
    _, model, _ = meta_space.decode_arrays(out_int[:, 2])
    alignment = regime_alignment(
        inputs.predicted[d, model], inputs.hold_regime[d, path], inputs.confidences[d, model]
    )
    pnl, dd, equity, exposure, sharpe = (out_float[:, i] for i in range(5))
    _, leverage = sizing_space.decode_arrays(out_int[:, 4])
    r_meta = meta_strategy_reward(pnl, dd, sharpe, alignment, config.meta_weights)
    r_sizing = position_sizing_reward(
        pnl,
        risk_penalty(leverage, exposure),
        volatility_adjustment(inputs.volatility[d]),
        config.sizing_weights,
    )
    return SimulationResult(
        decision=d,
        meta_state=out_int[:, 1],
        meta_action=out_int[:, 2],
        sizing_state=out_int[:, 3],
        sizing_action=out_int[:, 4],
        pnl_pct=pnl,
        max_drawdown_pct=dd,
        liquidated=out_int[:, 6].astype(bool),
        meta_reward=np.atleast_1d(np.asarray(r_meta, np.float64)),
        sizing_reward=np.atleast_1d(np.asarray(r_sizing, np.float64)),
        equity=equity,
    )
