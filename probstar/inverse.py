"""Bayesian inverse problems: p(theta | observed XP spectrum), with the model's
generative direction as the likelihood.

``theta`` = (teff, logg, fe_h, ak) by default. The likelihood of an observed spectrum
is the spectrum head's answer given theta (a low-rank normal over the noise-free
pixels) convolved with the observed flux errors; the prior is a box of independent
uniforms (:data:`DEFAULT_PRIOR`). Two samplers draw from the product: Pyro's NUTS (the
likelihood is differentiable through the network) and ``emcee`` (vectorised over
walkers). Both return ArviZ ``InferenceData``; ``arviz.summary`` gives R-hat and ESS.

This is the slow, classical route: thousands of network passes per star. The direct
answer, ``model.posterior(spectrum, ["teff", "logg", "fe_h", "ak"])``, needs one
(``validation/inverse.py`` compares the two).
"""

from __future__ import annotations

from typing import Sequence

import arviz as az
import numpy as np
import torch
from torch.distributions import LowRankMultivariateNormal

from .model.spectrum import with_noise
from .query import Model
from .vocab import NAMES, index_of

__all__ = ["PARAMETERS", "DEFAULT_PRIOR", "SpectrumLikelihood", "run_emcee", "run_nuts"]

PARAMETERS: tuple[str, ...] = ("teff", "logg", "fe_h", "ak")
#: Uniform prior bounds (physical units) of each parameter.
DEFAULT_PRIOR: dict[str, tuple[float, float]] = {
    "teff": (3000.0, 8000.0), "logg": (-0.5, 5.5), "fe_h": (-2.5, 0.7), "ak": (-0.1, 1.5)}


class SpectrumLikelihood:
    """log p(observed spectrum | theta) for one star, batched over theta (..., d).

    ``flux`` and ``flux_err`` are the star's 343 median-normalised XP pixels and their
    errors (NaN = not observed, left out of the likelihood).
    """

    def __init__(self, model: Model, flux: np.ndarray, flux_err: np.ndarray,
                 parameters: Sequence[str] = PARAMETERS) -> None:
        if not model.has_spectrum:
            raise ValueError("this model has no spectrum head: it gives no likelihood for "
                             "a spectrum")
        self.model, self.parameters = model, tuple(parameters)
        self.columns = index_of(list(self.parameters))
        pixels = index_of("xp")
        flux, flux_err = np.asarray(flux, np.float64), np.asarray(flux_err, np.float64)
        if flux.shape != (len(pixels),) or flux_err.shape != flux.shape:
            raise ValueError(f"flux and flux_err must hold the {len(pixels)} XP pixels, got "
                             f"shapes {flux.shape} and {flux_err.shape}")
        observed = np.isfinite(flux) & np.isfinite(flux_err) & (flux_err > 0)
        if not observed.any():
            raise ValueError("the spectrum has no pixel with a finite flux and error")
        norm = model.normalization
        loc, scale = norm.loc[pixels][observed], norm.scale[pixels][observed]
        self.y = torch.as_tensor((flux[observed] - loc) / scale, dtype=torch.float32)
        self.noise_var = torch.as_tensor((flux_err[observed] / scale) ** 2,
                                         dtype=torch.float32)
        self.log_jacobian = float(np.log(scale).sum())
        self.keep = torch.as_tensor(observed)  # the pixels in the likelihood
        self.theta_loc = torch.as_tensor(norm.loc[self.columns], dtype=torch.float32)
        self.theta_scale = torch.as_tensor(norm.scale[self.columns], dtype=torch.float32)
        self.device = next(model.net.parameters()).device  # where the network runs
        for name in ("y", "noise_var", "keep", "theta_loc", "theta_scale"):
            setattr(self, name, getattr(self, name).to(self.device))

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """log-likelihood of the spectrum for each theta (..., d) -> (...), on theta's
        device (the network runs on its own)."""
        shape, where = theta.shape[:-1], theta.device
        theta = theta.reshape(-1, len(self.parameters)).to(self.device, torch.float32)
        values = torch.full((theta.shape[0], len(NAMES)), torch.nan, device=self.device)
        values[:, self.columns] = (theta - self.theta_loc) / self.theta_scale
        pdf = self.model.net.spectrum_distribution(values, torch.full_like(values, torch.nan))
        kept = LowRankMultivariateNormal(pdf.loc[:, self.keep], pdf.cov_factor[:, self.keep],
                                         pdf.cov_diag[:, self.keep], validate_args=False)
        return (with_noise(kept, self.noise_var).log_prob(self.y)
                - self.log_jacobian).reshape(shape).to(where)


def _bounds(parameters: Sequence[str], prior: dict | None) -> np.ndarray:
    prior = {**DEFAULT_PRIOR, **(prior or {})}
    missing = [p for p in parameters if p not in prior]
    if missing:
        raise ValueError(f"no prior bounds for {missing}; pass prior={{name: (low, high)}}")
    return np.array([prior[p] for p in parameters], np.float64)


def run_emcee(likelihood: SpectrumLikelihood, prior: dict | None = None,
              n_walkers: int = 32, n_steps: int = 1300, burn: int = 300,
              seed: int = 0, progress: bool = False) -> az.InferenceData:
    """Affine-invariant ensemble sampling (emcee) of likelihood x box prior; the first
    ``burn`` steps are dropped, each walker is one ArviZ chain."""
    import emcee

    bounds = _bounds(likelihood.parameters, prior)
    rng = np.random.default_rng(seed)

    def log_prob(theta: np.ndarray) -> np.ndarray:
        inside = ((theta > bounds[:, 0]) & (theta < bounds[:, 1])).all(1)
        out = np.full(theta.shape[0], -np.inf)
        if inside.any():
            with torch.no_grad():
                out[inside] = likelihood(torch.as_tensor(theta[inside])).double().numpy()
        return out

    start = _start(likelihood, bounds, n_walkers, rng)
    sampler = emcee.EnsembleSampler(n_walkers, len(bounds), log_prob, vectorize=True)
    sampler.random_state = np.random.RandomState(seed).get_state()  # its proposals
    sampler.run_mcmc(start, n_steps, progress=progress)
    return az.from_emcee(sampler, var_names=list(likelihood.parameters)) \
        .sel(draw=slice(burn, None))


def _start(likelihood: SpectrumLikelihood, bounds: np.ndarray, n: int,
           rng: np.random.Generator, spread: float = 2.0) -> np.ndarray:
    """``n`` over-dispersed starting points around the likelihood's mode.

    The best of 2,000 prior draws (one network pass) is refined by L-BFGS (the
    likelihood is differentiable); the points are drawn from the Laplace approximation
    there, its standard deviations times ``spread``, kept inside the prior. Starting
    over-dispersed around the mode keeps burn-in short and lets R-hat see a chain stuck
    elsewhere.
    """
    lo, width = bounds[:, 0], bounds[:, 1] - bounds[:, 0]
    draws = rng.uniform(0, 1, (2000, len(bounds)))
    with torch.no_grad():
        best = draws[int(likelihood(torch.as_tensor(lo + draws * width)).argmax())]

    def log_like(u: torch.Tensor) -> torch.Tensor:  # u: the prior box mapped to [0, 1]^d
        return likelihood(torch.as_tensor(lo) + u * torch.as_tensor(width))

    u = torch.tensor(best, requires_grad=True)
    opt = torch.optim.LBFGS([u], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -log_like(u.clamp(0, 1))
        loss.backward()
        return loss

    opt.step(closure)
    mode = u.detach().clamp(1e-3, 1 - 1e-3)
    step = 1e-3 * torch.eye(len(bounds), dtype=mode.dtype)  # central differences of the
    points = torch.cat([mode + step, mode - step]).requires_grad_()  # gradient, one pass
    log_like(points).sum().backward()
    hessian = ((points.grad[:len(bounds)] - points.grad[len(bounds):]) / 2e-3).double().numpy()
    eigval, eigvec = np.linalg.eigh(-(hessian + hessian.T) / 2)
    cov = (eigvec / np.clip(eigval, 1e2, None)) @ eigvec.T  # sd <= 10% of the box
    points = rng.multivariate_normal(mode.double().numpy(), spread ** 2 * cov, size=n)
    return lo + np.clip(points, 1e-6, 1 - 1e-6) * width


def run_nuts(likelihood: SpectrumLikelihood, prior: dict | None = None,
             n_samples: int = 1000, warmup: int = 500, chains: int = 2, seed: int = 0,
             progress: bool = False) -> az.InferenceData:
    """Pyro NUTS of likelihood x box prior; ``chains`` independent chains, run one
    after the other from the same starting region, each seeded."""
    import pyro
    import pyro.distributions as dist
    from pyro.infer import MCMC, NUTS

    bounds = _bounds(likelihood.parameters, prior)
    names = likelihood.parameters

    def model():
        theta = torch.stack([pyro.sample(n, dist.Uniform(float(lo), float(hi)))
                             for n, (lo, hi) in zip(names, bounds)])
        pyro.factor("spectrum", likelihood(theta))

    rng = np.random.default_rng(seed)
    start = _start(likelihood, bounds, chains, rng)
    draws = {n: [] for n in names}
    for c in range(chains):
        pyro.set_rng_seed(seed + c)
        init = {n: torch.tensor(float(v)) for n, v in zip(names, start[c])}
        kernel = NUTS(model, init_strategy=pyro.infer.autoguide.init_to_value(values=init))
        mcmc = MCMC(kernel, num_samples=n_samples, warmup_steps=warmup,
                    disable_progbar=not progress)
        mcmc.run()
        for n, v in mcmc.get_samples().items():
            draws[n].append(v.numpy())
    return az.from_dict(posterior={n: np.stack(v) for n, v in draws.items()})
