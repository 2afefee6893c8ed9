"""Predicted XP spectra scored against observed ones.

The spectrum head answers for the noise-free flux; an observed pixel is that flux plus
its measurement error. So every comparison here convolves the answer with the observed
flux errors (independent Gaussian pixel noise, as in training), the same way
``probstar.calibration`` convolves a scalar answer with the label's error.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm
from torch.distributions import LowRankMultivariateNormal

from .data.observations import Observations
from .posterior import Posterior
from .vocab import index_of

__all__ = ["SPECTRUM_INPUTS", "observed", "pixel_z", "spectrum_nll", "band_coverage"]

#: The stellar parameters that generate a spectrum (the parameters -> spectrum question).
SPECTRUM_INPUTS: tuple[str, ...] = ("teff", "logg", "fe_h", "alpha_m", "ak")


def observed(post: Posterior, obs: Observations) -> tuple[np.ndarray, np.ndarray]:
    """Observed flux and flux error (n_stars, n_pixels) of the posterior's pixels."""
    if len(obs) != len(post):
        raise ValueError(f"{len(obs)} observed stars for a posterior over {len(post)}")
    cols = index_of(post.names)
    return obs.values[:, cols], obs.errors[:, cols]


def pixel_z(post: Posterior, obs: Observations) -> np.ndarray:
    """(observed - predicted mean) / sqrt(predicted var + flux error^2) per star and
    pixel; NaN where a pixel was not observed. Calibrated answers give N(0, 1) values."""
    flux, err = observed(post, obs)
    var = post.std().astype(np.float64) ** 2 + np.nan_to_num(err, nan=0.0) ** 2
    return (flux - post.mean()) / np.sqrt(var)


def band_coverage(z: np.ndarray, level: float = 0.68) -> np.ndarray:
    """Fraction of observed pixels inside the central ``level`` predictive band, per
    pixel (over stars), from :func:`pixel_z` values."""
    inside = (np.abs(z) <= norm.ppf(0.5 + level / 2)).astype(float)
    return np.nanmean(np.where(np.isfinite(z), inside, np.nan), 0)


def spectrum_nll(post: Posterior, obs: Observations) -> np.ndarray:
    """Joint negative log-likelihood per pixel of each star's observed flux (flux noise
    convolved, pixel correlations kept), in physical units; NaN for a star missing
    any requested pixel."""
    base = post.dist.base_dist
    if not isinstance(base, LowRankMultivariateNormal):
        raise ValueError("spectrum_nll needs a spectrum posterior (request 'xp' pixels)")
    flux, err = observed(post, obs)
    complete = np.isfinite(flux).all(1)
    scale = post.scale.cpu().numpy()
    y = torch.as_tensor((np.nan_to_num(flux) - post.loc.cpu().numpy()) / scale)
    noise = torch.as_tensor(np.nan_to_num(err, nan=0.0) / scale) ** 2
    noisy = LowRankMultivariateNormal(base.loc, base.cov_factor, base.cov_diag + noise,
                                      validate_args=False)
    with torch.no_grad():
        nll = -noisy.log_prob(y.to(base.loc)).double().cpu().numpy() + np.log(scale).sum()
    return np.where(complete, nll / flux.shape[1], np.nan)
