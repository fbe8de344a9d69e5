"""rlv2: the RL v2 tabular Q-learning agents and the batch pipeline that trains them."""

__version__ = "0.1.0"
