"""probstar: a probabilistic foundation model for stars.

Give it whatever was observed of a star (a Gaia XP spectrum, photometry, a few labels,
any subset, with uncertainties) and ask for anything else: the answer is a
distribution (:class:`probstar.posterior.Posterior`).
"""

__version__ = "0.1.0"

from .query import Model, load_model, predict  # noqa: E402

__all__ = ["Model", "load_model", "predict", "__version__"]
