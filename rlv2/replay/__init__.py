"""SPEC A5 as a replay: the live event flow rebuilt from history, driving the agents.

Arrays in, arrays out: the inputs are ``rlv2.records.Transitions`` and ``Bars`` from
``rlv2.history``; the outputs Q-tables and per-trade records. The modules:

- ``config``: ``ReplayConfig`` (SPEC A4 hyperparameters, A1 weights, C episodes) and
  which decisions a replay uses, in which order;
- ``logged``: the logged mode, off-policy on the system's own actions, driven event by
  event through the live consumer's code (``train_logged_agents``);
- ``inputs``: each traded decision's features and counterfactual price paths;
- ``simulate``: the simulated mode, readable: the agents choose, outcomes come from
  the price path, the account is recomputed from the simulated trades;
- ``evaluate``: the compiled twin of ``simulate`` without learning (greedy or logged);
- ``counterfactual``: the kernels' inputs, logged or with every action's reward.

Episodes (SPEC C): by default one position lifecycle is one episode and nothing is
terminal; ``episode="day"`` or ``"trades:N"`` group closes instead. ε decays at each
episode end. The end of the data window truncates: its last transitions still
bootstrap.
"""

from rlv2.replay.config import ReplayConfig
from rlv2.replay.counterfactual import (
    KernelInputs,
    counterfactual_rewards,
    kernel_inputs,
    train_kernel,
)
from rlv2.replay.evaluate import evaluate_policies
from rlv2.replay.inputs import SimulationInputs, prepare_inputs
from rlv2.replay.logged import (
    LoggedTransitions,
    logged_transitions,
    make_agents,
    train_logged_agents,
)
from rlv2.replay.simulate import SimulationResult, simulate

__all__ = [
    "KernelInputs",
    "LoggedTransitions",
    "ReplayConfig",
    "SimulationInputs",
    "SimulationResult",
    "counterfactual_rewards",
    "evaluate_policies",
    "kernel_inputs",
    "logged_transitions",
    "make_agents",
    "prepare_inputs",
    "simulate",
    "train_kernel",
    "train_logged_agents",
]
