"""Predicted XP spectra scored against observed ones.

The spectrum head answers for the noise-free flux; an observed pixel is that flux plus
its measurement error. So every comparison here convolves the answer with the observed
flux errors (independent Gaussian pixel noise, as in training), the same way
``probstar.calibration`` convolves a scalar answer with the label's error.

The answer's Gaussian widths are fitted by likelihood; the pixel residuals have heavier
tails than a Gaussian, so its 68% band holds more than 68% of observed pixels.
:func:`fit_width_scales` finds, per kind of context, the factor on the standard
deviations (the covariance scaled by its square) whose band holds 68% on the
validation split; the model stores it and applies it unless ``calibrated=False``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm
from torch.distributions import LowRankMultivariateNormal

from .data.observations import Observations
from .model.spectrum import with_noise
from .evaluate import INPUT_SETS
from .posterior import Posterior
from .recalibration import KINDS
from .vocab import index_of

__all__ = ["SPECTRUM_INPUTS", "WIDTH_QUESTIONS", "observed", "pixel_z", "spectrum_nll",
           "band_coverage", "fit_width_scales", "check_width_scales"]

#: The stellar parameters that generate a spectrum (the parameters -> spectrum question).
SPECTRUM_INPUTS: tuple[str, ...] = ("teff", "logg", "fe_h", "alpha_m", "ak")
#: Per kind of context (``probstar.recalibration.KINDS``), the (inputs, requested pixels)
#: questions its width scale is fitted on.
WIDTH_QUESTIONS: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    "spectrum": ((("xp_336-598",), "xp_600-1020"), (("xp_600-1020",), "xp_336-598")),
    "photometry": ((INPUT_SETS["photometry"], "xp"),),
    "parameters": ((SPECTRUM_INPUTS, "xp"),),
}


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


def band_coverage(z: np.ndarray, level: float = 0.68, axis: int | None = 0) -> np.ndarray:
    """Fraction of observed pixels inside the central ``level`` predictive band, from
    :func:`pixel_z` values: per pixel (over stars; ``axis=0``) or of all (``None``)."""
    inside = (np.abs(z) <= norm.ppf(0.5 + level / 2)).astype(float)
    return np.nanmean(np.where(np.isfinite(z), inside, np.nan), axis)


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
    y = torch.as_tensor((np.nan_to_num(flux) - post.loc.cpu().numpy()) / scale).to(base.loc)
    noise = (torch.as_tensor(np.nan_to_num(err, nan=0.0) / scale) ** 2).to(base.loc)
    with torch.no_grad():
        nll = -with_noise(base, noise).log_prob(y).double().cpu().numpy()
    nll += np.log(scale).sum()
    return np.where(complete, nll / flux.shape[1], np.nan)


def fit_width_scales(model, obs: Observations, level: float = 0.68) -> dict[str, float]:
    """Per context kind, the factor on the spectrum answer's standard deviations whose
    central ``level`` band (flux errors convolved) holds ``level`` of the observed
    pixels of ``obs`` (the validation split), asked :data:`WIDTH_QUESTIONS`."""
    scales = {}
    for kind, questions in WIDTH_QUESTIONS.items():
        parts = []
        for inputs, request in questions:
            asked = obs.select(obs.has_any(inputs))
            post = model.posterior(asked.only(inputs), request, calibrated=False)
            flux, err = observed(post, asked)
            parts.append(np.stack([flux - post.mean(), post.std(),
                                   np.nan_to_num(err, nan=0.0)]).reshape(3, -1))
        resid, std, err = np.concatenate(parts, 1)
        ok = np.isfinite(resid)
        resid, std, err = np.abs(resid[ok]), std[ok], err[ok]
        k = norm.ppf(0.5 + level / 2)
        lo, hi = -3.0, 3.0  # log scale: bisection on the coverage, increasing in it
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            inside = np.mean(resid <= k * np.sqrt(np.exp(2 * mid) * std ** 2 + err ** 2))
            lo, hi = (mid, hi) if inside < level else (lo, mid)
        scales[kind] = round(float(np.exp(0.5 * (lo + hi))), 4)
    return scales


def check_width_scales(scales) -> dict[str, float]:
    """The stored width scales, checked: a dict of context kinds to positive numbers."""
    if not isinstance(scales, dict) or not all(
            k in KINDS and isinstance(v, (int, float)) and np.isfinite(v) and v > 0
            for k, v in scales.items()):
        raise ValueError(f"spectrum_widths must map context kinds ({', '.join(KINDS)}) to "
                         f"positive numbers, got {scales!r}")
    return {k: float(v) for k, v in scales.items()}
