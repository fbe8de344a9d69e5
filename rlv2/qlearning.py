"""SPEC A4: tabular Q-learning, the readable ``QLearner`` and the compiled replay kernels.

Learning (SPEC A4)
    Discounted return of an episode: ``G_0 = Σ_k γ^k r_k`` (:func:`discounted_return`).
    Update: ``Q(s, a) ← Q(s, a) + α [target − Q(s, a)]`` with
    ``target = r`` on a terminal transition and ``target = r + γ max_a' Q(s', a')``
    otherwise. Defaults α = 0.01, γ = 0.99; ε starts at 0.1 and after each episode
    becomes ``max(ε · 0.995, 0.01)``.

Episodes, terminals, truncation (SPEC C)
    A *terminal* transition stops bootstrapping; an *episode end* (``done``) only
    decays ε and closes the episode's statistics; events after the last ``done``
    form a *truncated* partial episode whose transitions still bootstrap. ``dones``
    marks terminals too unless a separate ``terminals`` array is given.

Randomness
    One explicit splitmix64 generator (``rlv2.rng``) whose whole state is a 1-element
    ``uint64`` array, never numpy's global RNG. ``QLearner`` and the kernels use the
    same generator and the same ε-greedy draw sequence (:func:`epsilon_greedy`), so with
    the same seed they make the same draws and produce bit-identical Q-tables (fastmath
    stays off). Exploiting, a learner breaks ties among the maxima of a row with that
    stream, never toward action 0: a fresh all-zero row is explored uniformly.

Kernels
    :func:`replay` drives one Q-table through N events in compiled code;
    :func:`replay_sweep` drives K Q-tables (one hyperparameter configuration each)
    in parallel over configurations, configuration k on its own random stream
    ``stream_seed(seed, k)`` (``rlv2.rng``), so that it equals a single :func:`replay`
    with that seed whatever the thread count. They follow the readable learner below,
    with their validators; their hand-written LLVM IR is in ``rlv2._intrinsics``.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlv2._intrinsics import prefetch_row, row_max, row_ties
from rlv2.rng import check_seed, make_rng, randint_step, stream_seed, uniform_step

# fastmath stays off everywhere: the kernels must match QLearner bit for bit.
_jit = numba.njit(cache=True, nogil=True)
# The kernels' helpers are inlined by numba itself: LLVM left them as calls, whose register
# spills (and reference counts of the arrays passed) cost more than the helpers' work.
_jit_inline = numba.njit(cache=True, nogil=True, inline="always")


# --- SPEC A4: the readable learner -------------------------------------------------------


def discounted_return(rewards: ArrayLike, gamma: float) -> float:
    """Discounted return of an episode from its start: ``G_0 = Σ_k γ^k r_k`` (SPEC A4)."""
    _check_interval("gamma", gamma)
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(r)):
        i = int(np.flatnonzero(~np.isfinite(r))[0])
        raise ValueError(f"rewards[{i}]={float(r[i])!r} is not finite")
    g = 0.0
    # Horner's scheme from the last reward: no powers of γ, one rounding per step.
    for reward in r[::-1]:
        g = float(reward) + gamma * g
    return g


class QLearner:
    """One tabular Q-learning agent, step by step (SPEC A4); the kernels' reference.

    Drive it as the event flow of SPEC A5 does: ``select_action(s)``, then
    ``update(s, a, r, s_next, done)`` when the reward is known, then ``end_episode()``
    when the episode ends (``update`` never decays ε by itself).
    """

    def __init__(
        self,
        n_states: int,
        n_actions: int,
        alpha: float = 0.01,
        gamma: float = 0.99,
        epsilon: float = 0.1,
        epsilon_decay: float = 0.995,
        epsilon_min: float = 0.01,
        seed: int | None = None,
    ) -> None:
        for name, n in (("n_states", n_states), ("n_actions", n_actions)):
            # callers from plain Python may pass anything: check what the hints promise
            if not isinstance(n, int | np.integer) or n < 1:  # pyright: ignore[reportUnnecessaryIsInstance]
                raise ValueError(f"{name}={n!r} must be a positive integer")
        _check_hyperparameters(alpha, gamma, epsilon, epsilon_decay, epsilon_min)
        self.n_states = int(n_states)
        self.n_actions = int(n_actions)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        self.epsilon_decay = float(epsilon_decay)
        self.epsilon_min = float(epsilon_min)
        self.seed = check_seed(seed)
        """The seed actually used (drawn from OS entropy when none was given)."""
        self.q = np.zeros((self.n_states, self.n_actions), dtype=np.float64)
        self._rng = make_rng(self.seed)

    def select_action(self, state: int) -> int:
        """Choose an action in ``state`` ε-greedily (see :func:`epsilon_greedy`)."""
        s = _check_index("state", state, self.n_states)
        return int(epsilon_greedy(self.q[s], self.epsilon, self._rng))

    def greedy_action(self, state: int) -> int:
        """Best known action in ``state``, without exploring or drawing.

        The first argmax, as :func:`greedy_policy`: unlike :meth:`select_action`, which
        breaks ties with the generator, a finished table's greedy action is deterministic.
        """
        s = _check_index("state", state, self.n_states)
        return int(np.argmax(self.q[s]))

    def update(
        self,
        state: int,
        action: int,
        reward: float,
        next_state: int,
        done: bool,
        terminal: bool | None = None,
    ) -> float:
        """Apply one Q-learning update and return its TD error (target − old Q)."""
        s = _check_index("state", state, self.n_states)
        a = _check_index("action", action, self.n_actions)
        s_next = _check_index("next_state", next_state, self.n_states)
        r = float(reward)
        if not np.isfinite(r):
            raise ValueError(f"reward={r!r} is not finite")
        # SPEC C: an episode end is also terminal unless the caller says otherwise.
        is_terminal = bool(done) if terminal is None else bool(terminal)
        target = r if is_terminal else r + self.gamma * float(np.max(self.q[s_next]))
        td_error = target - float(self.q[s, a])
        self.q[s, a] = self.q[s, a] + self.alpha * td_error
        return td_error

    @staticmethod
    def discounted_return(rewards: ArrayLike, gamma: float) -> float:
        """Discounted return of an episode (SPEC A4); see the module's ``discounted_return``."""
        return discounted_return(rewards, gamma)

    def end_episode(self) -> None:
        """Close an episode: decay ε to ``max(ε · epsilon_decay, epsilon_min)``."""
        self.epsilon = max(self.epsilon * self.epsilon_decay, self.epsilon_min)


def greedy_policy(q: NDArray[np.float64]) -> NDArray[np.int64]:
    """Greedy action of every state: the first argmax of each row of ``q``.

    What serving and evaluation act on, with no generator at hand: ties go to the lowest
    action code. Learning breaks them differently: :func:`epsilon_greedy`'s exploit step
    picks one of the tied maxima with a draw, so that an untried all-zero row does not
    always pick action 0. The two agree wherever a row has a single maximum.
    """
    return np.argmax(q, axis=-1).astype(np.int64)


# --- action selection: one ε-greedy draw sequence for QLearner and the kernels -----------


@_jit
def epsilon_greedy(q_row: NDArray[np.float64], epsilon: float, rng: NDArray[np.uint64]) -> int:
    """Choose an action from one state's Q-values; the one ε-greedy draw sequence.

    Draw ``u = uniform(rng)`` (``rlv2.rng``). If ``u < epsilon``, explore: return
    ``randint(rng, n_actions)`` (a second draw). Otherwise exploit: the maxima of the
    row are the actions whose Q equals its largest value (NaN never is one); with k of
    them, k = 1 returns that action with no second draw, and k > 1 draws
    ``j = randint(rng, k)`` and returns the j-th of them in code order (from 0), so ties
    never favour action 0. ``QLearner`` and both kernels select actions only through this
    sequence (:func:`_explore_draw`, then :func:`_exploit_draw`).
    """
    state = rng[0]
    action, state = _explore_draw(epsilon, q_row.shape[0], state)
    if action < 0:
        q = q_row.astype(np.float64).reshape((1, q_row.shape[0]))
        action, state = _exploit_draw(q, 0, state)
    rng[0] = state
    return action


@_jit_inline
def _explore_draw(epsilon: float, n_actions: int, state: np.uint64) -> tuple[int, np.uint64]:
    """The draws of :func:`epsilon_greedy`: (explored action, or -1 to exploit; new state).

    The draw sequence lives here once; the caller exploits on -1 (:func:`_exploit_draw`).
    The generator state is passed by value: the kernels keep it in a local variable, as
    reading and writing it through the 1-element array on every draw made them about 40%
    slower (the store and reload sit on every event's critical path). No array passes
    through here: an inlined function taking the Q-table cost the kernel a reference count
    call per event.
    """
    u, state = uniform_step(state)
    if u < epsilon:
        return randint_step(state, n_actions)  # type: ignore[return-value]
    return -1, state


@_jit_inline
def _exploit_draw(q: NDArray[np.float64], s: int, state: np.uint64) -> tuple[int, np.uint64]:
    """The exploit step of :func:`epsilon_greedy` on row ``q[s]``: (action, new state).

    The maxima are the entries equal to the row's largest non-NaN value (vector max
    instructions); one vector pass counts them and finds the first (``row_ties``), and
    only a tie (k > 1) draws ``j = randint(k)`` and scans for the j-th. A row with no
    maximum (all NaN) gives action 0. -0.0 == 0.0: signed zeros tie.
    """
    n = q.shape[1]
    best = row_max(q, s)
    first, k = row_ties(q, s, best)
    if k <= 1:
        return (first if first < n else 0), state
    j, state = randint_step(state, k)
    for i in range(first, n):
        if q[s, i] == best:
            if j == 0:
                return i, state
            j -= 1
    return first, state  # not reached: j < k maxima


@_jit_inline
def _argmax(q: NDArray[np.float64], s: int) -> int:
    """Index of the first maximum of row ``q[s]``: np.argmax's tie rule, vectorised.

    The TD target's ``max Q(s')`` is read there (a value needs no tie rule). Equal to the
    sequential scan ``if q[s, i] > best: best, a = q[s, i], i`` bit for bit, NaN
    included: that scan keeps a NaN first value and skips later NaNs. The row's maximum
    comes from vector max instructions, then the first index holding it from one vector
    compare per 8 entries (``row_ties``); -0.0 == 0.0, so the order of the lanes cannot
    change the index. About 2x faster than the scan at A = 48.
    """
    if q[s, 0] != q[s, 0]:
        return 0
    first, _ = row_ties(q, s, row_max(q, s))
    return first if first < q.shape[1] else 0


# --- the compiled kernels ----------------------------------------------------------------


class ReplayStats(NamedTuple):
    """What one :func:`replay` reports, for metrics and learning curves.

    Episodes are the completed ones, each closed by a ``done``. Events after the last
    ``done`` form a truncated partial episode: they are reported only in the
    ``partial_*`` fields and in the run totals, never as an episode.
    """

    epsilon: float
    """ε after the last completed episode's decay (the starting ε if none completed)."""
    n_updates: int
    """Number of Q-learning updates, one per event."""
    n_episodes: int
    """Number of completed episodes (the number of ``done`` events)."""
    total_reward: float
    """Sum of the rewards of all events (the chosen column in exploring mode)."""
    mean_abs_td_error: float
    """Mean |TD error| over all events (0.0 when there are none)."""
    episode_reward: NDArray[np.float64]
    """Per completed episode: the sum of its rewards, shape (n_episodes,)."""
    episode_mean_abs_td: NDArray[np.float64]
    """Per completed episode: its mean |TD error|, shape (n_episodes,)."""
    episode_epsilon: NDArray[np.float64]
    """Per completed episode: the ε it was played with (before its end-of-episode decay)."""
    actions: NDArray[np.int64]
    """Action of every event, shape (N,): chosen (exploring mode) or logged (off-policy)."""
    partial_events: int
    """Number of events after the last ``done`` (the truncated partial episode)."""
    partial_reward: float
    """Sum of the rewards of the truncated partial episode."""
    seed: int
    """Seed of the random stream used (drawn from OS entropy when none was given)."""


class SweepStats(NamedTuple):
    """What :func:`replay_sweep` reports: ReplayStats' fields with a leading K axis.

    With ``record_curves=False`` the per-episode arrays have shape (K, 0) and ``actions``
    has shape (K, 0) in exploring mode; in off-policy mode ``actions`` is a read-only
    (K, N) view of the logged actions.
    """

    epsilon: NDArray[np.float64]
    n_updates: int
    n_episodes: int
    total_reward: NDArray[np.float64]
    mean_abs_td_error: NDArray[np.float64]
    episode_reward: NDArray[np.float64]
    episode_mean_abs_td: NDArray[np.float64]
    episode_epsilon: NDArray[np.float64]
    actions: NDArray[np.int64]
    partial_events: int
    partial_reward: NDArray[np.float64]
    seeds: NDArray[np.uint64]
    """Configuration k's stream seed, ``stream_seed(seed, k)``."""

    def for_config(self, k: int) -> ReplayStats:
        """Configuration k's statistics, shaped as a single :func:`replay` reports them."""
        return ReplayStats(
            epsilon=float(self.epsilon[k]),
            n_updates=self.n_updates,
            n_episodes=self.n_episodes,
            total_reward=float(self.total_reward[k]),
            mean_abs_td_error=float(self.mean_abs_td_error[k]),
            episode_reward=self.episode_reward[k],
            episode_mean_abs_td=self.episode_mean_abs_td[k],
            episode_epsilon=self.episode_epsilon[k],
            actions=self.actions[k],
            partial_events=self.partial_events,
            partial_reward=float(self.partial_reward[k]),
            seed=int(self.seeds[k]),
        )


def replay(
    q: NDArray[np.float64],
    states: ArrayLike,
    rewards: ArrayLike,
    next_states: ArrayLike,
    dones: ArrayLike,
    *,
    alpha: float = 0.01,
    gamma: float = 0.99,
    epsilon: float = 0.1,
    epsilon_decay: float = 0.995,
    epsilon_min: float = 0.01,
    seed: int | None = None,
    actions: ArrayLike | None = None,
    terminals: ArrayLike | None = None,
) -> ReplayStats:
    """Replay N events through the Q-table ``q`` (S, A), updating it in place, compiled.

    Event t is the transition ``states[t] → next_states[t]``. Exploring mode
    (``actions`` None, ``rewards`` (N, A)): the action is chosen by
    :func:`epsilon_greedy` and earns ``rewards[t, a]``. Off-policy mode (``actions``
    (N,), ``rewards`` (N,)): the logged action and reward are replayed, with no
    random draws. ``terminals`` (default: ``dones``) stops bootstrapping; each
    ``done`` ends an episode and decays ε. Equal, bit for bit, to the same events
    fed to a ``QLearner`` with the same hyperparameters and seed. int64 indices,
    float64 rewards and bool flags are used without copying. A non-finite reward the
    replay reads raises ``ValueError`` naming it, with ``q`` restored; exploring mode
    checks only the rewards it reads (checking the whole (N, A) matrix would cost more
    than the replay).
    """
    _check_q("q", q, 2)
    n_states, n_actions = q.shape
    ev = _check_events(
        n_states, n_actions, states, rewards, next_states, dones, actions, terminals, False
    )
    _check_hyperparameters(alpha, gamma, epsilon, epsilon_decay, epsilon_min)
    seed = check_seed(seed)
    n = ev.states.shape[0]
    n_episodes = int(np.count_nonzero(ev.dones))
    backup = q.copy() if ev.explore else q
    actions_out, episode_reward, episode_mean_abs_td, episode_epsilon = _replay_outputs(
        n if ev.explore else 0, n_episodes
    )
    final_epsilon, total_reward, total_abs_td, partial_events, partial_reward, bad = _replay_core(
        q,
        ev.states,
        ev.rewards,
        ev.next_states,
        ev.dones,
        ev.terminals,
        ev.actions,
        ev.explore,
        float(alpha),
        float(gamma),
        float(epsilon),
        float(epsilon_decay),
        float(epsilon_min),
        make_rng(seed),
        True,
        actions_out,
        episode_reward,
        episode_mean_abs_td,
        episode_epsilon,
    )
    if bad >= 0:
        q[...] = backup  # no half-replayed table
        t, a = divmod(int(bad), n_actions)
        raise ValueError(f"rewards[{t}, {a}]={float(ev.rewards[t, a])!r} is not finite")
    return ReplayStats(
        epsilon=float(final_epsilon),
        n_updates=n,
        n_episodes=n_episodes,
        total_reward=float(total_reward),
        mean_abs_td_error=float(total_abs_td / n) if n else 0.0,
        episode_reward=episode_reward,
        episode_mean_abs_td=episode_mean_abs_td,
        episode_epsilon=episode_epsilon,
        actions=actions_out if ev.explore else ev.actions,
        partial_events=int(partial_events),
        partial_reward=float(partial_reward),
        seed=seed,
    )


def replay_sweep(
    qs: NDArray[np.float64],
    states: ArrayLike,
    rewards: ArrayLike,
    next_states: ArrayLike,
    dones: ArrayLike,
    *,
    alpha: ArrayLike = 0.01,
    gamma: ArrayLike = 0.99,
    epsilon: ArrayLike = 0.1,
    epsilon_decay: ArrayLike = 0.995,
    epsilon_min: ArrayLike = 0.01,
    seed: int | None = None,
    actions: ArrayLike | None = None,
    terminals: ArrayLike | None = None,
    record_curves: bool = False,
    seeds: ArrayLike | None = None,
) -> SweepStats:
    """Replay the same events through K Q-tables ``qs`` (K, S, A) in parallel, in place.

    Each hyperparameter is a scalar or a length-K array. Configuration k equals
    ``replay(qs[k], ..., seed=stream_seed(seed, k))`` exactly, whatever the number
    of threads; ``seeds`` (length K) gives each configuration's seed explicitly
    instead, so that a sweep's child equals ``replay(..., seed=seeds[k])``. The events
    are shared, never copied per configuration; per-episode curves and chosen actions
    are kept only with ``record_curves=True``.
    """
    _check_q("qs", qs, 3)
    n_configs, n_states, n_actions = qs.shape
    ev = _check_events(n_states, n_actions, states, rewards, next_states, dones, actions, terminals)
    names = ("alpha", "gamma", "epsilon", "epsilon_decay", "epsilon_min")
    values = (alpha, gamma, epsilon, epsilon_decay, epsilon_min)
    hyper = np.stack([_per_config(nm, v, n_configs) for nm, v in zip(names, values, strict=True)])
    _check_hyperparameters(*hyper)
    hyper = np.ascontiguousarray(hyper.T)
    if seeds is None:
        seed = check_seed(seed)
        seeds = np.array([stream_seed(seed, k) for k in range(n_configs)], dtype=np.uint64)
    else:
        # dtype=object: a list of Python ints above 2**63 would otherwise become float64.
        listed = np.asarray(seeds, dtype=object).reshape(-1).tolist()
        given = [check_seed(int(s)) for s in listed]
        if len(given) != n_configs:
            raise ValueError(f"seeds has {len(given)} entries, expected K={n_configs}")
        seeds = np.array(given, dtype=np.uint64)
    rngs = seeds.reshape(n_configs, 1).copy()
    n = ev.states.shape[0]
    n_episodes = int(np.count_nonzero(ev.dones))
    n_curve = n_episodes if record_curves else 0
    actions_out = np.empty((n_configs, n if record_curves and ev.explore else 0), dtype=np.int64)
    episode_reward = np.empty((n_configs, n_curve), dtype=np.float64)
    episode_mean_abs_td = np.empty((n_configs, n_curve), dtype=np.float64)
    episode_epsilon = np.empty((n_configs, n_curve), dtype=np.float64)
    scalars = np.empty((n_configs, 5), dtype=np.float64)
    _sweep_core(
        qs,
        ev.states,
        ev.rewards,
        ev.next_states,
        ev.dones,
        ev.terminals,
        ev.actions,
        ev.explore,
        hyper,
        rngs,
        bool(record_curves),
        actions_out,
        episode_reward,
        episode_mean_abs_td,
        episode_epsilon,
        scalars,
    )
    return SweepStats(
        epsilon=scalars[:, 0].copy(),
        n_updates=n,
        n_episodes=n_episodes,
        total_reward=scalars[:, 1].copy(),
        mean_abs_td_error=scalars[:, 2] / n if n else np.zeros(n_configs),
        episode_reward=episode_reward,
        episode_mean_abs_td=episode_mean_abs_td,
        episode_epsilon=episode_epsilon,
        actions=actions_out if ev.explore else np.broadcast_to(ev.actions, (n_configs, n)),
        partial_events=int(scalars[0, 3]),
        partial_reward=scalars[:, 4].copy(),
        seeds=seeds,
    )


# Exploring mode reads one reward per (N, A) row at a column known only after the
# argmax, so without a hint every event waits for memory (measured ~3x slower at A=48).
_PREFETCH_ROWS_AHEAD = 8


@_jit_inline
def _td_update(
    q: NDArray[np.float64],
    s: int,
    a: int,
    r: float,
    s_next: int,
    terminal: bool,
    alpha: float,
    gamma: float,
) -> float:
    """Compiled twin of ``QLearner.update``'s arithmetic, in the same order."""
    target = r
    if not terminal:
        # the value at the first argmax: even its sign of zero is the sequential max's
        target = r + gamma * q[s_next, _argmax(q, s_next)]
    td_error = target - q[s, a]
    q[s, a] = q[s, a] + alpha * td_error
    return td_error


@_jit
def _replay_core(
    q: NDArray[np.float64],
    states: NDArray[np.int64],
    rewards: NDArray[np.float64],
    next_states: NDArray[np.int64],
    dones: NDArray[np.bool_],
    terminals: NDArray[np.bool_],
    logged_actions: NDArray[np.int64],
    explore: bool,
    alpha: float,
    gamma: float,
    epsilon: float,
    epsilon_decay: float,
    epsilon_min: float,
    rng: NDArray[np.uint64],
    record: bool,
    actions_out: NDArray[np.int64],
    episode_reward: NDArray[np.float64],
    episode_mean_abs_td: NDArray[np.float64],
    episode_epsilon: NDArray[np.float64],
) -> tuple[float, float, float, int, float, int]:
    """Replay every event through ``q`` in place; return the run's scalar statistics.

    The last value is -1, or ``t * A + a`` when the exploring replay read a non-finite
    ``rewards[t, a]`` and stopped there (only the rewards it reads are checked).
    """
    total_reward = 0.0
    total_abs_td = 0.0
    ep_reward = 0.0
    ep_abs_td = 0.0
    ep_len = 0
    e = 0
    n = states.shape[0]
    state = rng[0]
    for t in range(n):
        s = states[t]
        if explore:
            if t + _PREFETCH_ROWS_AHEAD < n:
                prefetch_row(rewards, t + _PREFETCH_ROWS_AHEAD)
            a, state = _explore_draw(epsilon, q.shape[1], state)  # epsilon_greedy, inlined
            if a < 0:
                a, state = _exploit_draw(q, s, state)
            r = rewards[t, a]
            if not np.isfinite(r):
                # stop before using it: the caller restores q and names the reward
                return epsilon, total_reward, total_abs_td, ep_len, ep_reward, t * q.shape[1] + a
            if record:
                actions_out[t] = a
        else:
            a = logged_actions[t]
            r = rewards[t, 0]
        abs_td = abs(_td_update(q, s, a, r, next_states[t], terminals[t], alpha, gamma))
        total_reward += r
        total_abs_td += abs_td
        ep_reward += r
        ep_abs_td += abs_td
        ep_len += 1
        if dones[t]:
            if record:
                episode_reward[e] = ep_reward
                episode_mean_abs_td[e] = ep_abs_td / ep_len
                episode_epsilon[e] = epsilon
            e += 1
            epsilon = max(epsilon * epsilon_decay, epsilon_min)
            ep_reward = 0.0
            ep_abs_td = 0.0
            ep_len = 0
    rng[0] = state
    return epsilon, total_reward, total_abs_td, ep_len, ep_reward, -1


@numba.njit(cache=True, nogil=True, parallel=True)
def _sweep_core(
    qs: NDArray[np.float64],
    states: NDArray[np.int64],
    rewards: NDArray[np.float64],
    next_states: NDArray[np.int64],
    dones: NDArray[np.bool_],
    terminals: NDArray[np.bool_],
    logged_actions: NDArray[np.int64],
    explore: bool,
    hyper: NDArray[np.float64],
    rngs: NDArray[np.uint64],
    record: bool,
    actions_out: NDArray[np.int64],
    episode_reward: NDArray[np.float64],
    episode_mean_abs_td: NDArray[np.float64],
    episode_epsilon: NDArray[np.float64],
    scalars_out: NDArray[np.float64],
) -> None:
    """Run ``_replay_core`` for every configuration k, configurations in parallel.

    ``hyper[k]`` is (alpha, gamma, epsilon, epsilon_decay, epsilon_min) and
    ``rngs[k]`` configuration k's generator; ``scalars_out[k]`` receives
    (epsilon, total_reward, total_abs_td, partial_events, partial_reward).
    """
    for k in numba.prange(qs.shape[0]):
        final_epsilon, total_reward, total_abs_td, partial_events, partial_reward, _ = _replay_core(
            qs[k],
            states,
            rewards,
            next_states,
            dones,
            terminals,
            logged_actions,
            explore,
            hyper[k, 0],
            hyper[k, 1],
            hyper[k, 2],
            hyper[k, 3],
            hyper[k, 4],
            rngs[k],
            record,
            actions_out[k],
            episode_reward[k],
            episode_mean_abs_td[k],
            episode_epsilon[k],
        )
        scalars_out[k, 0] = final_epsilon
        scalars_out[k, 1] = total_reward
        scalars_out[k, 2] = total_abs_td
        scalars_out[k, 3] = partial_events
        scalars_out[k, 4] = partial_reward


# --- validation --------------------------------------------------------------------------


def _check_interval(name: str, value: ArrayLike, *, open_low: bool = False) -> None:
    """Raise ValueError naming ``name`` unless every value lies in [0, 1] (or (0, 1])."""
    arr = np.asarray(value, dtype=np.float64)
    ok = ((arr > 0.0) if open_low else (arr >= 0.0)) & (arr <= 1.0)
    if not np.all(ok):
        flat = arr.reshape(-1)
        i = int(np.flatnonzero(~ok.reshape(-1))[0])
        where = f"{name}[{i}]" if arr.ndim else name
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{where}={float(flat[i])!r} not in {interval}")


def _check_hyperparameters(
    alpha: ArrayLike,
    gamma: ArrayLike,
    epsilon: ArrayLike,
    epsilon_decay: ArrayLike,
    epsilon_min: ArrayLike,
) -> None:
    """Raise ValueError naming the first hyperparameter outside its range."""
    _check_interval("alpha", alpha, open_low=True)
    _check_interval("gamma", gamma)
    _check_interval("epsilon", epsilon)
    _check_interval("epsilon_decay", epsilon_decay, open_low=True)
    _check_interval("epsilon_min", epsilon_min)
    eps = np.asarray(epsilon, dtype=np.float64)
    eps_min = np.asarray(epsilon_min, dtype=np.float64)
    too_high = eps_min > eps
    if np.any(too_high):
        i = int(np.flatnonzero(too_high.reshape(-1))[0])
        where = f"[{i}]" if too_high.ndim else ""
        low = np.broadcast_to(eps_min, too_high.shape).reshape(-1)[i]
        high = np.broadcast_to(eps, too_high.shape).reshape(-1)[i]
        raise ValueError(
            f"epsilon_min{where}={float(low)!r} exceeds epsilon{where}={float(high)!r}"
        )


def _check_index(name: str, value: int, n: int) -> int:
    """Return ``value`` as an int, raising ValueError naming ``name`` unless in [0, n)."""
    try:
        i = operator.index(value)
    except TypeError:
        raise ValueError(f"{name}={value!r} is not an integer") from None
    if not 0 <= i < n:
        raise ValueError(f"{name}={i} out of range [0, {n})")
    return i


class _Events(NamedTuple):
    """Validated, contiguous event arrays in the dtypes the kernels are compiled for."""

    states: NDArray[np.int64]
    rewards: NDArray[np.float64]
    """Always 2-D: (N, A) in exploring mode, (N, 1) in off-policy mode."""
    next_states: NDArray[np.int64]
    dones: NDArray[np.bool_]
    terminals: NDArray[np.bool_]
    actions: NDArray[np.int64]
    """Logged actions (N,) in off-policy mode, empty in exploring mode."""
    explore: bool


def _check_q(name: str, q: NDArray[np.float64], ndim: int) -> None:
    """Raise ValueError unless ``q`` is a writeable C-contiguous float64 table to update."""
    # callers from plain Python may pass anything: check what the hints promise
    if not isinstance(q, np.ndarray) or q.dtype != np.float64 or q.ndim != ndim:  # pyright: ignore[reportUnnecessaryIsInstance]
        got = f"{q.dtype} array of shape {q.shape}" if isinstance(q, np.ndarray) else type(q)  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError(f"{name} must be a {ndim}-D float64 array, got {got}")
    if not (q.flags.c_contiguous and q.flags.writeable):
        raise ValueError(f"{name} must be C-contiguous and writeable (it is updated in place)")
    if min(q.shape) < 1:
        raise ValueError(f"{name} has an empty dimension: shape {q.shape}")
    # A finite sum proves every entry finite without a bool temporary of q's size
    # (K x S x A bytes for a sweep's tables); overflow falls back to the exact test.
    if not np.isfinite(np.sum(q)) and not np.all(np.isfinite(q)):
        raise ValueError(f"{name} holds NaN or inf")


def _index_array(name: str, values: ArrayLike, n_events: int | None, n: int) -> NDArray[np.int64]:
    """Return ``values`` as a contiguous int64 (N,) array of indices in [0, n)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.ndim != 1 or (n_events is not None and arr.shape[0] != n_events):
        expected = "(N,)" if n_events is None else f"({n_events},)"
        raise ValueError(f"{name} has shape {arr.shape}, expected {expected}")
    # One pass and no N-sized temporary: seen as unsigned, a negative index wraps above
    # every valid one, so the maximum alone checks both bounds. Locate only on failure.
    as_unsigned = arr.view(np.dtype(f"u{arr.dtype.itemsize}"))
    if arr.size and int(as_unsigned.max()) >= n:
        i = int(np.flatnonzero((arr < 0) | (arr >= n))[0])
        raise ValueError(f"{name}[{i}]={arr[i]} out of range [0, {n})")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _flag_array(name: str, values: ArrayLike, n_events: int) -> NDArray[np.bool_]:
    """Return ``values`` as a contiguous bool (N,) array."""
    arr = np.asarray(values)
    if arr.dtype != np.bool_:
        raise ValueError(f"{name} must be a bool array, got dtype {arr.dtype}")
    if arr.shape != (n_events,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n_events},)")
    return np.ascontiguousarray(arr)


def _reward_array(
    rewards: ArrayLike, shape: tuple[int, ...], check_finite: bool = True
) -> NDArray[np.float64]:
    """Return ``rewards`` as a contiguous float64 array of ``shape`` with finite values."""
    arr = np.asarray(rewards)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"rewards must be a numeric array, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"rewards has shape {arr.shape}, expected {shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    # A finite sum proves every reward finite at a fraction of an element-wise pass.
    if not check_finite or np.isfinite(np.sum(arr)):
        return arr
    finite = np.isfinite(arr)
    if not np.all(finite):
        where = np.unravel_index(int(np.flatnonzero(~finite.reshape(-1))[0]), shape)
        index = ", ".join(str(int(i)) for i in where)
        raise ValueError(f"rewards[{index}]={float(arr[where])!r} is not finite")
    return arr


def _check_events(
    n_states: int,
    n_actions: int,
    states: ArrayLike,
    rewards: ArrayLike,
    next_states: ArrayLike,
    dones: ArrayLike,
    actions: ArrayLike | None,
    terminals: ArrayLike | None,
    check_finite: bool = True,
) -> _Events:
    """Validate the event arrays against a (n_states, n_actions) table.

    ``check_finite=False`` leaves an exploring replay's reward matrix to the kernel,
    which checks each reward it reads (a full pass costs more than the replay itself).
    """
    s = _index_array("states", states, None, n_states)
    n = s.shape[0]
    s_next = _index_array("next_states", next_states, n, n_states)
    d = _flag_array("dones", dones, n)
    term = d if terminals is None else _flag_array("terminals", terminals, n)
    if actions is None:
        r = _reward_array(rewards, (n, n_actions), check_finite)
        a = np.empty(0, dtype=np.int64)
    else:
        a = _index_array("actions", actions, n, n_actions)
        r = _reward_array(rewards, (n,)).reshape(n, 1)
    return _Events(s, r, s_next, d, term, a, actions is None)


def _replay_outputs(
    n_actions_out: int, n_episodes: int
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Allocate replay()'s outputs as views of one block: the chosen actions, then 3 curves.

    One block, not four: four fresh 8 MB arrays of a 1M-event call were mapped and faulted
    in anew on every call (~4 ms of page faults), while glibc keeps one freed block
    below its 32 MiB mmap ceiling for the next call, and larger ones fault in fewer pages.
    """
    block = np.empty(n_actions_out + 3 * n_episodes, dtype=np.float64)
    actions_out = block[:n_actions_out].view(np.int64)
    curves = block[n_actions_out:].reshape(3, n_episodes)
    return actions_out, curves[0], curves[1], curves[2]


def _per_config(name: str, value: ArrayLike, k: int) -> NDArray[np.float64]:
    """Broadcast one hyperparameter (scalar or length-K) to a float64 (K,) array."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != k):
        raise ValueError(f"{name} has shape {arr.shape}, expected a scalar or ({k},)")
    return np.broadcast_to(arr, (k,))
