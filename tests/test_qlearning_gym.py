"""QLearner against Gymnasium's toy-text environments, an outside reference for Q-learning.

Each test computes Q* by value iteration from the environment's own transition table
(``env.unwrapped.P``), trains a ``QLearner`` by stepping the real environment, and
compares. The environments are deterministic, so the learner uses α = 1, and Q starts
at an upper bound of Q* (optimism in the face of uncertainty: it drives exploration).
With α = 1 on deterministic transitions each update is an exact Bellman backup, so
Q ≥ Q* holds throughout and Q = Q* on the pairs the greedy policy visits proves that
policy optimal; the tolerance ``TOL`` only absorbs rounding in ``Q + (target − Q)``.
Pairs off the greedy path need not have converged and are not compared.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np
import pytest

from rlv2.qlearning import QLearner, discounted_return, greedy_policy, replay

TOL = 1e-9

pytestmark = pytest.mark.slow


def make_env(*ids: str, **kwargs: object) -> gym.Env:
    """The first of ``ids`` the installed Gymnasium registers (versions move: v0/v1, v3/v4)."""
    for env_id in ids:
        if env_id in gym.registry:
            return gym.make(env_id, **kwargs)
    raise LookupError(f"none of {ids} is registered in gymnasium {gym.__version__}")


def optimal_q(env: gym.Env, gamma: float) -> np.ndarray:
    """Q* by value iteration over ``env.unwrapped.P``; terminal transitions do not bootstrap."""
    table = env.unwrapped.P
    n_states, n_actions = env.observation_space.n, env.action_space.n
    pair, prob, next_state, reward, bootstrap = [], [], [], [], []
    for s in range(n_states):
        for a in range(n_actions):
            for p, s_next, r, terminated in table[s][a]:
                pair.append(s * n_actions + a)
                prob.append(p)
                next_state.append(s_next)
                reward.append(r)
                bootstrap.append(0.0 if terminated else 1.0)
    pair, prob, next_state = np.array(pair), np.array(prob), np.array(next_state)
    reward, bootstrap = np.array(reward, dtype=float), np.array(bootstrap)
    q = np.zeros(n_states * n_actions)
    for _ in range(100_000):
        v = q.reshape(n_states, n_actions).max(axis=1)
        backup = prob * (reward + gamma * bootstrap * v[next_state])
        new_q = np.bincount(pair, weights=backup, minlength=q.size)
        if np.max(np.abs(new_q - q)) <= 1e-13:
            return new_q.reshape(n_states, n_actions)
        q = new_q
    raise AssertionError("value iteration did not converge")


class Transitions(NamedTuple):
    """Every transition the learner saw, in order, for an off-policy replay."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_states: np.ndarray
    dones: np.ndarray
    terminals: np.ndarray


def train(env: gym.Env, learner: QLearner, episodes: int, seed: int) -> Transitions:
    """Q-learning by interaction: ``terminated`` stops bootstrapping, ``truncated`` does not."""
    log: list[tuple[int, int, float, int, bool, bool]] = []
    env.reset(seed=seed)
    for _ in range(episodes):
        state, _ = env.reset()
        done = False
        while not done:
            action = learner.select_action(state)
            next_state, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            learner.update(state, action, float(reward), next_state, done, terminal=terminated)
            log.append((state, action, float(reward), next_state, done, terminated))
            state = next_state
        learner.end_episode()
    columns = list(zip(*log, strict=True))
    dtypes = (np.int64, np.int64, np.float64, np.int64, bool, bool)
    return Transitions(*(np.array(c, dtype=d) for c, d in zip(columns, dtypes, strict=True)))


def greedy_rollout(env: gym.Env, q: np.ndarray, start: int, max_steps: int = 500):
    """Follow the greedy policy in the (deterministic) transition table from ``start``."""
    policy = greedy_policy(q)
    pairs, rewards, state = [], [], start
    for _ in range(max_steps):
        action = int(policy[state])
        ((p, next_state, reward, terminated),) = env.unwrapped.P[state][action]
        assert p == 1.0
        pairs.append((state, action))
        rewards.append(float(reward))
        state = next_state
        if terminated:
            return pairs, rewards, True
    return pairs, rewards, False


def check_against_optimum(
    env: gym.Env, learner: QLearner, q_star: np.ndarray, starts: np.ndarray
) -> None:
    """Assert optimism kept, Q = Q* on the greedy paths, and those paths optimal."""
    assert np.all(learner.q >= q_star - TOL), "an α=1 backup from an upper bound went below Q*"
    for start in starts:
        pairs, rewards, reached = greedy_rollout(env, learner.q, int(start))
        assert reached, f"greedy policy from state {start} never terminates"
        s, a = np.array(pairs).T
        np.testing.assert_allclose(learner.q[s, a], q_star[s, a], rtol=0, atol=TOL)
        optimal = q_star[s, a] >= q_star[s].max(axis=1) - TOL
        assert optimal.all(), f"non-optimal greedy actions at states {s[~optimal]}"
        assert discounted_return(rewards, learner.gamma) == pytest.approx(
            q_star[start].max(), abs=TOL
        )


def check_kernel_replays_the_log(q0: np.ndarray, learner: QLearner, log: Transitions) -> None:
    """The compiled off-policy replay of the logged transitions reproduces the learner."""
    q = q0.copy()
    replay(
        q,
        log.states,
        log.rewards,
        log.next_states,
        log.dones,
        actions=log.actions,
        terminals=log.terminals,
        alpha=learner.alpha,
        gamma=learner.gamma,
    )
    assert q.tobytes() == learner.q.tobytes()


def test_frozen_lake() -> None:
    env = make_env("FrozenLake-v1", is_slippery=False)
    gamma = 0.95
    q_star = optimal_q(env, gamma)
    # Q* <= 1 (one reward of 1 at the goal), so 1 is an upper bound.
    learner = QLearner(16, 4, alpha=1.0, gamma=gamma, epsilon=0.1, epsilon_decay=1.0, seed=3)
    learner.q[:] = 1.0
    q0 = learner.q.copy()
    log = train(env, learner, episodes=300, seed=0)
    check_against_optimum(env, learner, q_star, starts=np.array([0]))
    check_kernel_replays_the_log(q0, learner, log)


def test_cliff_walking_learns_the_13_step_path() -> None:
    env = make_env("CliffWalking-v1", "CliffWalking-v0")
    q_star = optimal_q(env, gamma=1.0)
    # Every reward is negative, so Q* <= 0 and the zeros QLearner starts from are optimistic.
    learner = QLearner(48, 4, alpha=1.0, gamma=1.0, epsilon=0.1, epsilon_decay=1.0, seed=5)
    q0 = learner.q.copy()
    log = train(env, learner, episodes=300, seed=1)
    start = 36  # bottom-left corner of the 4 x 12 grid; the goal is 47, the cliff between
    check_against_optimum(env, learner, q_star, starts=np.array([start]))
    check_kernel_replays_the_log(q0, learner, log)
    # Sutton & Barto, Example 6.6: Q-learning's greedy path runs along the cliff edge.
    pairs, rewards, reached = greedy_rollout(env, learner.q, start)
    up, right, down = 0, 1, 2
    assert reached
    assert [a for _, a in pairs] == [up] + [right] * 11 + [down]
    assert [s for s, _ in pairs] == [36] + list(range(24, 36))
    assert sum(rewards) == -13.0
    assert q_star[start].max() == -13.0


def test_taxi() -> None:
    env = make_env("Taxi-v3", "Taxi-v4")
    gamma = 0.99
    q_star = optimal_q(env, gamma)
    # Rewards are -1 per step, -10 for an illegal move and +20 (terminal) for a delivery,
    # so Q* <= 20. Episodes that hit the 200-step limit are truncated, not terminal.
    learner = QLearner(500, 6, alpha=1.0, gamma=gamma, epsilon=0.1, epsilon_decay=1.0, seed=7)
    learner.q[:] = 20.0
    q0 = learner.q.copy()
    log = train(env, learner, episodes=6000, seed=2)
    starts = np.flatnonzero(env.unwrapped.initial_state_distrib)
    assert len(starts) == 300
    check_against_optimum(env, learner, q_star, starts)
    check_kernel_replays_the_log(q0, learner, log)
