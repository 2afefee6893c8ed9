"""probstar: a probabilistic foundation model for stars."""

__version__ = "0.1.0"
