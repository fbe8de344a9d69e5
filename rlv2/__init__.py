"""rlv2: the RL v2 tabular Q-learning agents and the batch pipeline that trains them."""

# The domain table first: it imports the state and action spaces, which import its enums.
import rlv2.domain  # noqa: F401  # pyright: ignore[reportUnusedImport]

__version__ = "0.1.0"
