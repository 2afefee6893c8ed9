"""Pyro and ArviZ: an answer as a Pyro model, its draws as an ArviZ ``InferenceData``.

>>> post = probstar.load_model().posterior({"teff": [4000.0]}, ["logg", "fe_h"])
>>> draws = predictive_draws(post, 1000, seed=0)   # pyro.infer.Predictive underneath
>>> idata = to_inference_data(draws)               # arviz.summary(idata), az.plot_pair...

The Pyro model has one latent site, ``"stars"``: the joint vector of the requested
names for every star (a ``pyro.plate`` over stars), plus one deterministic site per
name, so the answer can be combined with other Pyro code (e.g. a likelihood of new data
downstream).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pyro
import pyro.distributions as pdist
import torch
from pyro.infer import Predictive
from torch.distributions import constraints

from .posterior import Posterior, seeded

__all__ = ["PosteriorDistribution", "pyro_model", "predictive_draws", "to_inference_data"]


class PosteriorDistribution(pdist.TorchDistribution):
    """A :class:`Posterior`'s joint as a Pyro distribution (physical units)."""

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, posterior: Posterior) -> None:
        self.posterior = posterior
        dist = posterior.dist
        super().__init__(dist.batch_shape, dist.event_shape, validate_args=False)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self.posterior.dist.sample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.posterior.dist.log_prob(value)


def pyro_model(posterior: Posterior) -> Callable[[], torch.Tensor]:
    """A Pyro model drawing each star's requested names from ``posterior``."""

    def model() -> torch.Tensor:
        with pyro.plate("star", len(posterior)):
            x = pyro.sample("stars", PosteriorDistribution(posterior))
        for j, name in enumerate(posterior.names):
            pyro.deterministic(name, x[..., j])
        return x

    return model


def predictive_draws(posterior: Posterior, n: int,
                     seed: int | None = None) -> dict[str, np.ndarray]:
    """``n`` joint draws per star through ``pyro.infer.Predictive``: {name: (n, n_stars)}.

    A seed makes them reproducible and leaves the global random state untouched;
    without one, successive calls differ.
    """
    if n < 1:
        raise ValueError(f"number of samples must be >= 1, got {n}")
    predictive = Predictive(pyro_model(posterior), num_samples=n,
                            return_sites=list(posterior.names))
    with seeded(seed, posterior.loc.device), torch.no_grad():
        out = predictive()
    return {name: out[name].reshape(n, len(posterior)).cpu().numpy()
            for name in posterior.names}


def to_inference_data(draws: dict[str, np.ndarray], star_ids: Sequence | None = None):
    """ArviZ ``InferenceData`` (one chain) from {name: (n_draws, n_stars)} draws."""
    import arviz as az

    if not draws:
        raise ValueError("no draws to convert")
    shapes = {np.shape(v) for v in draws.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"draws must all have shape (n_draws, n_stars), got {shapes}")
    n_stars = next(iter(shapes))[1]
    ids = np.arange(n_stars) if star_ids is None else np.asarray(star_ids)
    if len(ids) != n_stars:
        raise ValueError(f"{len(ids)} star ids for {n_stars} stars")
    return az.from_dict(posterior={k: np.asarray(v)[None] for k, v in draws.items()},
                        coords={"star": ids}, dims={k: ["star"] for k in draws})
