"""Bayesian inverse problems: p(theta | observed XP spectrum [, photometry]), with the
model's generative direction as the likelihood.

``theta`` = (teff, logg, fe_h, alpha_m, ak) by default (alpha_m shapes the spectrum
too; left out, its effect is forced onto the others). The likelihood of an observed
spectrum is the spectrum head's answer given theta (a low-rank normal over the
noise-free pixels) convolved with the observed flux errors, optionally tempered
(``temperature``, below). Photometry measured apart from the spectrum (2MASS colours,
Gaia G) adds :class:`PhotometryLikelihood`: the mixture head's answer for each name
given theta, convolved with its error; likelihoods of independent data add up
(``spectrum_likelihood + photometry_likelihood``). The :class:`Prior` is a box,
uniform or weighted by the training population (a kernel density estimate of its
labels: the prior the amortised answer learned). Two samplers draw from the product:
Pyro's NUTS (the likelihood is differentiable through the network) and ``emcee``
(vectorised over walkers, differential-evolution moves). Both return ArviZ
``InferenceData``; ``arviz.summary`` gives R-hat and ESS.

The likelihood is misspecified: at the labels of held-out stars the whole spectrum fits
within its covariance, but the head's mean spectrum has errors along the directions the
parameters move it, so the untempered posterior is too narrow and often far from the
truth (``validation/inverse.md``, ``benchmark/likelihood_discrepancy.md``; shared
covariance directions, :func:`fit_discrepancy`, help a little). The standard remedy is
a tempered (coarsened) likelihood, p(data | theta)^(1/T) (Miller & Dunson 2019, "Robust
Bayesian inference via coarsening"), with T chosen so that the posterior's intervals
hold the truth as often as they claim: :func:`fit_temperature`, on validation stars
only.

This is the slow, classical route: thousands of network passes per star. The direct
answer, ``model.posterior(spectrum, list(PARAMETERS))``, needs one
(``validation/inverse.py`` compares the two).
"""

from __future__ import annotations

from typing import Callable, Sequence

import arviz as az
import numpy as np
import torch
from scipy.stats import norm as std_normal
from torch.distributions import LowRankMultivariateNormal

from .data.observations import Observations
from .model.network import N_SCALARS
from .model.spectrum import with_noise
from .query import Model
from .vocab import NAMES, VOCAB, index_of

__all__ = ["PARAMETERS", "DEFAULT_BOUNDS", "Prior", "Likelihood", "SpectrumLikelihood",
           "PhotometryLikelihood", "JointLikelihood", "laplace",
           "fully_labelled", "spectrum_answers", "spectrum_residuals", "fit_discrepancy",
           "fit_temperature", "run_emcee", "run_nuts"]

PARAMETERS: tuple[str, ...] = ("teff", "logg", "fe_h", "alpha_m", "ak")
#: The box of the prior (physical units) of each parameter.
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "teff": (3000.0, 8000.0), "logg": (-0.5, 5.5), "fe_h": (-2.5, 0.7),
    "alpha_m": (-0.3, 0.6), "ak": (-0.1, 1.5)}


class Prior:
    """p(theta): a box, uniform inside or weighted by a population of stars.

    ``population`` (n, d) holds the parameters of example stars (physical units, rows
    with a NaN are dropped): the density is then their Gaussian kernel density
    estimate, kernel covariance = Scott's factor^2 x the population's covariance,
    truncated to the box. Differentiable (NUTS uses its gradient).
    """

    def __init__(self, parameters: Sequence[str] = PARAMETERS,
                 bounds: dict[str, tuple[float, float]] | None = None,
                 population: np.ndarray | None = None) -> None:
        self.parameters = tuple(parameters)
        bounds = {**DEFAULT_BOUNDS, **(bounds or {})}
        missing = [p for p in self.parameters if p not in bounds]
        if missing:
            raise ValueError(f"no prior bounds for {missing}; pass bounds={{name: (low, "
                             "high)}}")
        self.bounds = np.array([bounds[p] for p in self.parameters], np.float64)
        if not (self.bounds[:, 0] < self.bounds[:, 1]).all():
            raise ValueError(f"prior bounds must have low < high, got {bounds}")
        self.population = None
        if population is not None:
            population = np.asarray(population, np.float64)
            if population.ndim != 2 or population.shape[1] != len(self.parameters):
                raise ValueError(f"population must be (n_stars, {len(self.parameters)}), "
                                 f"got shape {population.shape}")
            inside = np.isfinite(population).all(1) & self.contains(population)
            if inside.sum() < 10:
                raise ValueError(f"the population has {inside.sum()} stars with every "
                                 "parameter inside the bounds; a density needs more")
            x = torch.as_tensor(population[inside])
            factor = len(x) ** (-1 / (len(self.parameters) + 4))  # Scott's rule
            self._kernel = torch.linalg.cholesky(torch.cov(x.T) * factor ** 2)
            self.population = self._whiten(x)
            self._log_norm = float(np.log(len(x)) + self._kernel.diagonal().log().sum()
                                   + len(self.parameters) / 2 * np.log(2 * np.pi))

    @classmethod
    def training_population(cls, parameters: Sequence[str] = PARAMETERS,
                            bounds: dict[str, tuple[float, float]] | None = None) -> "Prior":
        """The kernel density of the library's train-split labels: the population the
        shipped model learned, hence the prior its direct answers carry."""
        from .data import load_split

        train = load_split("train")
        return cls(parameters, bounds, train.values[:, index_of(list(parameters))])

    def _whiten(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve_triangular(self._kernel, theta.T, upper=False).T

    def contains(self, theta: np.ndarray) -> np.ndarray:
        """Whether each theta (..., d) lies strictly inside the box."""
        return ((theta > self.bounds[:, 0]) & (theta < self.bounds[:, 1])).all(-1)

    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        """log p(theta) for theta (..., d) -> (...), up to the box's normalisation; -inf
        outside the box."""
        shape = theta.shape[:-1]
        flat = theta.reshape(-1, len(self.parameters)).double()
        lo, hi = (torch.as_tensor(b, device=flat.device) for b in self.bounds.T)
        inside = ((flat > lo) & (flat < hi)).all(-1)
        if self.population is None:
            out = torch.zeros(len(flat), dtype=flat.dtype, device=flat.device)
        else:
            d2 = torch.cdist(self._whiten(flat), self.population.to(flat.device)) ** 2
            out = torch.logsumexp(-0.5 * d2, -1) - self._log_norm
        out = torch.where(inside, out, torch.full_like(out, -torch.inf))
        return out.reshape(shape).to(theta.dtype)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws (n, d), inside the box."""
        lo, width = self.bounds[:, 0], self.bounds[:, 1] - self.bounds[:, 0]
        if self.population is None:
            return lo + rng.uniform(0, 1, (n, len(lo))) * width
        rows = rng.integers(0, len(self.population), n)
        white = self.population[rows] + torch.as_tensor(rng.standard_normal((n, len(lo))))
        draws = (white @ self._kernel.T).numpy()
        return np.clip(draws, lo + 1e-6 * width, lo + (1 - 1e-6) * width)


class Likelihood:
    """log p(data | theta), batched over theta (..., d) -> (...), for the parameters
    ``parameters``. Likelihoods of independent data about the same star add up:
    ``a + b`` is their :class:`JointLikelihood`."""

    parameters: tuple[str, ...]

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __add__(self, other: "Likelihood") -> "JointLikelihood":
        return JointLikelihood(self, other)


class _NetworkLikelihood(Likelihood):
    """A likelihood the model's network computes from theta: it holds the model, the
    device the network runs on and theta's normalisation, computed once (not on every
    sampler step)."""

    def __init__(self, model: Model, parameters: Sequence[str]) -> None:
        self.model, self.parameters = model, tuple(parameters)
        self.device = next(model.net.parameters()).device  # where the network runs
        self._columns = index_of(list(self.parameters))
        norm = model.normalization
        self._theta_loc, self._theta_scale = (
            torch.as_tensor(a[self._columns], dtype=torch.float32, device=self.device)
            for a in (norm.loc, norm.scale))

    def _network_inputs(self, theta: torch.Tensor) -> torch.Tensor:
        """theta (..., d), physical units -> the network's input values (n, n_names),
        NaN for every name but the parameters."""
        theta = theta.reshape(-1, len(self.parameters)).to(self.device, torch.float32)
        values = torch.full((theta.shape[0], len(NAMES)), torch.nan, device=self.device)
        values[:, self._columns] = (theta - self._theta_loc) / self._theta_scale
        return values


class SpectrumLikelihood(_NetworkLikelihood):
    """log p(observed spectrum | theta) / temperature for one star, batched over theta
    (..., d).

    ``flux`` and ``flux_err`` are the star's 343 median-normalised XP pixels and their
    errors (NaN = not observed, left out of the likelihood). ``temperature`` > 1 tempers
    the likelihood (module docstring); 1 is the model's likelihood as it is; default: the
    temperature stored with the model (``model.likelihood_temperature``).
    ``discrepancy`` (343, k), normalised flux units: k more directions of pixel
    covariance, shared by every star, that the spectrum head's own misses (a model
    discrepancy term, :func:`fit_discrepancy`); None: none.
    """

    def __init__(self, model: Model, flux: np.ndarray, flux_err: np.ndarray,
                 parameters: Sequence[str] = PARAMETERS,
                 temperature: float | None = None,
                 discrepancy: np.ndarray | None = None) -> None:
        if not model.has_spectrum:
            raise ValueError("this model has no spectrum head: it gives no likelihood for "
                             "a spectrum")
        if temperature is None:
            temperature = model.likelihood_temperature
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be a positive number, got {temperature}")
        super().__init__(model, parameters)
        self.temperature = float(temperature)
        pixels = index_of("xp")
        flux, flux_err = np.asarray(flux, np.float64), np.asarray(flux_err, np.float64)
        if flux.shape != (len(pixels),) or flux_err.shape != flux.shape:
            raise ValueError(f"flux and flux_err must hold the {len(pixels)} XP pixels, got "
                             f"shapes {flux.shape} and {flux_err.shape}")
        observed = np.isfinite(flux) & np.isfinite(flux_err) & (flux_err > 0)
        if not observed.any():
            raise ValueError("the spectrum has no pixel with a finite flux and error")
        if observed.all() and abs(np.median(flux) - 1) > 1e-3:  # (raw Gaia units gave a
            raise ValueError(  # confident posterior at the prior box's edges)
                f"flux must be divided by its median over the 343 pixels, as the model's "
                f"training spectra were (its median is {np.median(flux):.4g}): divide flux "
                "and flux_err by it")
        norm = model.normalization
        loc, scale = norm.loc[pixels][observed], norm.scale[pixels][observed]
        self.y = torch.as_tensor((flux[observed] - loc) / scale, dtype=torch.float32)
        self.noise_var = torch.as_tensor((flux_err[observed] / scale) ** 2,
                                         dtype=torch.float32)
        self.log_jacobian = float(np.log(scale).sum())
        self.keep = torch.as_tensor(observed)  # the pixels in the likelihood
        if discrepancy is not None:
            discrepancy = np.asarray(discrepancy, np.float32)
            if discrepancy.ndim != 2 or discrepancy.shape[0] != len(pixels) or \
                    not np.isfinite(discrepancy).all():
                raise ValueError(f"discrepancy must be a finite ({len(pixels)}, k) array, got "
                                 f"shape {discrepancy.shape}")
            discrepancy = torch.as_tensor(discrepancy[observed])
        self.discrepancy = discrepancy
        for name in ("y", "noise_var", "keep", "discrepancy"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(self.device))

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """log-likelihood of the spectrum for each theta (..., d) -> (...), on theta's
        device (the network runs on its own)."""
        shape, where = theta.shape[:-1], theta.device
        values = self._network_inputs(theta)
        pdf = self.model.net.spectrum_distribution(values, torch.full_like(values, torch.nan))
        kept = LowRankMultivariateNormal(pdf.loc[:, self.keep], pdf.cov_factor[:, self.keep],
                                         pdf.cov_diag[:, self.keep], validate_args=False)
        observed = with_noise(kept, self.noise_var, self.discrepancy)
        log_like = observed.log_prob(self.y) - self.log_jacobian
        return (log_like / self.temperature).reshape(shape).to(where)


#: Photometry derived from the BP/RP spectra themselves: with the spectrum in the
#: likelihood, it would count the same photons twice.
FROM_XP_SPECTRA: tuple[str, ...] = ("bp", "rp", "bp_rp")


class PhotometryLikelihood(_NetworkLikelihood):
    """log p(observed photometry | theta) for one star, batched over theta (..., d).

    ``photometry`` maps names (magnitudes, colours: any scalar the model was trained to
    predict that is not a parameter) to a value or (value, error), physical units; a NaN
    value is not observed and left out. Each name's likelihood is the mixture head's
    answer given theta convolved with the error (exact for a Gaussian error), and the
    names are treated as independent given theta.

    The error is the noise *in excess of* the training data's. The embedded data set
    carries no photometric errors, so the model learned the distribution of the
    *observed* 2MASS and Gaia photometry of APOGEE stars, its noise included: photometry
    like that (2MASS for stars of APOGEE's brightness) takes error 0, the default.
    Magnitudes depend on the distance, which is not a parameter: their answer spreads
    over the training population's distances, so colours say more. Untempered: given
    the labels of validation stars, the j_h and j_k answers are a little too wide
    (``benchmark/results/inverse_photometry.md``).
    """

    def __init__(self, model: Model, photometry: dict[str, float | tuple[float, float]],
                 parameters: Sequence[str] = PARAMETERS) -> None:
        if "mixture" not in model.heads:
            raise ValueError("this model has no mixture head: it gives no photometry "
                             "likelihood")
        super().__init__(model, parameters)
        if not isinstance(photometry, dict):
            raise TypeError("photometry must be a dict {name: (value, error)}, got "
                            f"{type(photometry).__name__}")
        names, observed = [], []
        for name, given in photometry.items():
            pair = (given, 0.0) if np.ndim(given) == 0 else given
            try:
                value, error = (float(x) for x in pair)
            except (TypeError, ValueError):
                raise ValueError(f"photometry[{name!r}] must be a value or (value, error), "
                                 f"got {given!r}") from None
            if np.isnan(value):
                continue  # not observed
            if not np.isfinite(value):
                raise ValueError(f"photometry[{name!r}]: value {value} is not finite")
            if not np.isfinite(error) or error < 0:
                raise ValueError(f"photometry[{name!r}]: the error must be a number >= 0, "
                                 f"got {error}")
            index = index_of(name)
            if len(index) != 1 or index[0] >= N_SCALARS:
                raise ValueError(f"photometry takes scalar names (magnitudes, colours), got "
                                 f"{name!r}; a spectrum goes into SpectrumLikelihood")
            token = VOCAB[index[0]]
            if not token.low <= value <= token.high:
                raise ValueError(f"photometry[{name!r}] = {value:g} {token.unit} is outside "
                                 f"the valid range [{token.low:g}, {token.high:g}]; check "
                                 "its units")
            names.append(NAMES[index[0]])
            observed.append((value, error))
        if not names:
            raise ValueError("photometry has no observed value: nothing to condition on")
        clash = sorted(set(names) & set(self.parameters))
        if clash or len(set(names)) != len(names):
            raise ValueError(f"photometry names a parameter or a quantity twice: {names}")
        self.names = tuple(names)
        query = model._request(names)
        self.query = torch.as_tensor(query, device=self.device)
        value, error = (np.array(v) for v in zip(*observed))
        loc, scale = model.normalization.loc[query], model.normalization.scale[query]
        self.y = torch.as_tensor((value - loc) / scale, dtype=torch.float32,
                                 device=self.device)
        self.noise_var = torch.as_tensor((error / scale) ** 2, dtype=torch.float32,
                                         device=self.device)
        self.log_jacobian = float(np.log(scale).sum())

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """log-likelihood of the photometry for each theta (..., d) -> (...)."""
        shape, where = theta.shape[:-1], theta.device
        values = self._network_inputs(theta)
        features = self.model.net(values, torch.full_like(values, torch.nan), self.query)
        # the mixture head adds the noise variance to every component: the convolution
        observed = self.model.net.outputs["mixture"](features, self.noise_var)
        log_like = observed.log_prob(self.y).sum(-1) - self.log_jacobian
        return log_like.reshape(shape).to(where)


class JointLikelihood(Likelihood):
    """The sum of likelihoods of independent data about one star (``a + b``)."""

    def __init__(self, *parts: Likelihood) -> None:
        for p in parts:
            if not isinstance(p, Likelihood):
                raise TypeError(f"a likelihood adds only to a likelihood, not to "
                                f"{type(p).__name__}")
        flat = [q for p in parts for q in (p.parts if isinstance(p, JointLikelihood) else [p])]
        self.parameters = flat[0].parameters
        if any(p.parameters != self.parameters for p in flat):
            raise ValueError("the likelihoods are over different parameters: "
                             f"{[p.parameters for p in flat]}")
        if any(isinstance(p, SpectrumLikelihood) for p in flat):
            twice = sorted({n for p in flat for n in getattr(p, "names", ())
                            if n in FROM_XP_SPECTRA})
            if twice:
                raise ValueError(f"{', '.join(twice)} is measured from the BP/RP spectra: "
                                 "with the XP spectrum in the likelihood it counts the same "
                                 "photons twice; leave it out of the photometry")
        self.parts = tuple(flat)

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return sum(p(theta) for p in self.parts)


def _prior_for(likelihood: Likelihood, prior: Prior | None) -> Prior:
    prior = prior or Prior(likelihood.parameters)
    if prior.parameters != likelihood.parameters:
        raise ValueError(f"the prior is over {prior.parameters}, the likelihood over "
                         f"{likelihood.parameters}")
    return prior


def _log_posterior(likelihood: Likelihood,
                   prior: Prior) -> Callable[[torch.Tensor], torch.Tensor]:
    """theta (..., d) -> log likelihood + log prior (-inf outside the box, where the
    network is not run)."""
    def log_posterior(theta: torch.Tensor) -> torch.Tensor:
        log_prior = prior.log_prob(theta)
        inside = torch.isfinite(log_prior)
        out = torch.full_like(log_prior, -torch.inf)
        if inside.any():
            out[inside] = log_prior[inside] + likelihood(theta[inside]).to(out.dtype)
        return out
    return log_posterior


def laplace(likelihood: Likelihood, prior: Prior | None = None,
            rng: np.random.Generator | None = None,
            start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The posterior's mode and the covariance of the normal fitted there (inverse
    Hessian of -log posterior), physical units.

    The search starts at ``start`` or at the best of 2,000 prior draws (one network
    pass) and is refined by L-BFGS in the box rescaled to [0, 1]^d; the Hessian comes
    from central differences of the gradient. Standard deviations are capped at 10% of
    the box.
    """
    prior = _prior_for(likelihood, prior)
    rng = rng or np.random.default_rng(0)
    lo, width = prior.bounds[:, 0], prior.bounds[:, 1] - prior.bounds[:, 0]
    log_posterior = _log_posterior(likelihood, prior)

    def log_post(u: torch.Tensor) -> torch.Tensor:  # u: the box mapped to [0, 1]^d
        return log_posterior(torch.as_tensor(lo) + u * torch.as_tensor(width))

    if start is None:
        draws = (prior.sample(2000, rng) - lo) / width
        with torch.no_grad():
            start_u = draws[int(log_post(torch.as_tensor(draws)).argmax())]
    else:
        start_u = (np.asarray(start, np.float64) - lo) / width
    u = torch.tensor(np.clip(start_u, 1e-3, 1 - 1e-3), requires_grad=True)
    opt = torch.optim.LBFGS([u], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -log_post(u.clamp(1e-6, 1 - 1e-6))
        loss.backward()
        return loss

    opt.step(closure)
    mode = u.detach().clamp(1e-3, 1 - 1e-3)
    step = 1e-3 * torch.eye(len(lo), dtype=mode.dtype)  # central differences of the
    points = torch.cat([mode + step, mode - step]).requires_grad_()  # gradient, one pass
    log_post(points).sum().backward()
    grad = points.grad.nan_to_num(0.0)
    hessian = ((grad[:len(lo)] - grad[len(lo):]) / 2e-3).double().numpy()
    eigval, eigvec = np.linalg.eigh(-(hessian + hessian.T) / 2)
    cov = (eigvec / np.clip(eigval, 1e2, None)) @ eigvec.T  # sd <= 10% of the box
    return lo + mode.double().numpy() * width, cov * np.outer(width, width)


def fully_labelled(stars: Observations, parameters: Sequence[str] = PARAMETERS
                   ) -> Observations:
    """The stars with every one of ``parameters`` labelled and every XP pixel observed
    (with a positive error), in their order: the ones :func:`spectrum_residuals`
    scores."""
    complete = stars.complete([*parameters, "xp"])
    return complete.select((complete.errors[:, index_of("xp")] > 0).all(1))


def spectrum_answers(model: Model, stars: Observations,
                     parameters: Sequence[str] = PARAMETERS, shift: np.ndarray | float = 0.0,
                     batch: int = 512) -> LowRankMultivariateNormal:
    """The spectrum head's answers (normalised flux, batch (n,)) given only the stars'
    ``parameters`` labels, moved by ``shift`` (normalised units, per parameter)."""
    cols, norm = index_of(list(parameters)), model.normalization
    values = np.full_like(stars.values, np.nan)
    values[:, cols] = (stars.values[:, cols] - norm.loc[cols]) / norm.scale[cols] + shift
    device = next(model.net.parameters()).device  # where the network runs; answers on
    with torch.no_grad():  # the CPU, next to the observed spectra
        parts = [model.net.spectrum_distribution(v, torch.full_like(v, torch.nan))
                 for v in torch.as_tensor(values, device=device).split(batch)]
    loc, factor, diag = (torch.cat([getattr(a, k) for a in parts]).cpu()
                         for k in ("loc", "cov_factor", "cov_diag"))
    return LowRankMultivariateNormal(loc, factor, diag, validate_args=False)


def spectrum_residuals(model: Model, stars: Observations,
                       parameters: Sequence[str] = PARAMETERS, batch: int = 512
                       ) -> tuple[LowRankMultivariateNormal, torch.Tensor, torch.Tensor]:
    """The spectrum head's answers at the stars' labels, with their observed spectra:
    (answers, normalised flux (n, 343), its noise variance (n, 343)), for the stars with
    every one of ``parameters`` labelled and every pixel observed."""
    stars = fully_labelled(stars, parameters)
    if not len(stars):
        raise ValueError("no star has every parameter labelled and a full XP spectrum")
    answers = spectrum_answers(model, stars, parameters, batch=batch)
    xp, norm = index_of("xp"), model.normalization
    flux = torch.as_tensor((stars.values[:, xp] - norm.loc[xp]) / norm.scale[xp])
    noise_var = torch.as_tensor((stars.errors[:, xp] / norm.scale[xp]) ** 2)
    return answers, flux.float(), noise_var.float()


def fit_discrepancy(model: Model, stars: Observations, rank: int = 8, steps: int = 400,
                    seed: int = 0, progress: bool = False) -> np.ndarray:
    """A model-discrepancy term for :class:`SpectrumLikelihood`: ``rank`` directions of
    pixel covariance G (343, rank), shared by every star, that maximise the likelihood of
    ``stars``' observed spectra at their labels under N(mu, F F^T + G G^T + diag(d +
    sigma^2)) (full-batch Adam). Fit it on stars the model was not trained on (the
    validation split); the spectrum head's own factor F misses what they hold."""
    from tqdm.auto import trange

    answers, flux, noise_var = spectrum_residuals(model, stars)
    gen = torch.Generator().manual_seed(seed)
    g = (0.01 * torch.randn(flux.shape[1], rank, generator=gen)).requires_grad_()
    opt = torch.optim.Adam([g], lr=0.01)
    for _ in trange(steps, desc="discrepancy", disable=not progress):
        opt.zero_grad()
        loss = -with_noise(answers, noise_var, g).log_prob(flux).mean()
        loss.backward()
        opt.step()
    return g.detach().numpy()


def fit_temperature(model: Model, stars: Observations, prior: Prior | None = None,
                    temperatures: Sequence[float] = (1, 2, 4, 8, 16, 32, 64),
                    level: float = 0.68, progress: bool = False,
                    discrepancy: np.ndarray | None = None
                    ) -> tuple[float, dict[float, float]]:
    """The likelihood temperature whose posteriors cover ``stars``' labels as often as
    claimed: the one (of ``temperatures``) whose Laplace-approximate central ``level``
    intervals hold the labels (their errors added) closest to ``level`` of the time,
    pooled over the prior's parameters. Fit it on stars the model was not trained on
    (the validation split) and use it on others. Returns the temperature and the
    coverage of each one tried.
    """
    from tqdm.auto import tqdm

    prior = prior or Prior()
    cols, xp = index_of(list(prior.parameters)), index_of("xp")
    half = std_normal.ppf(0.5 + level / 2)
    rng = np.random.default_rng(0)
    covered: dict[float, list[np.ndarray]] = {t: [] for t in temperatures}
    for i in tqdm(range(len(stars)), desc="temperature", unit="star", disable=not progress):
        truth, error = stars.values[i, cols], np.nan_to_num(stars.errors[i, cols])
        if not np.isfinite(truth).all():
            continue
        like, mode = SpectrumLikelihood(model, stars.values[i, xp], stars.errors[i, xp],
                                        prior.parameters, discrepancy=discrepancy), None
        for t in sorted(temperatures):  # each search starts at the last mode
            like.temperature = float(t)
            mode, cov = laplace(like, prior, rng, start=mode)
            sd = np.sqrt(np.diag(cov) + error ** 2)
            covered[t].append(np.abs(truth - mode) < half * sd)
    if not covered[temperatures[0]]:
        raise ValueError("no star has every parameter of the prior: nothing to fit on")
    coverage = {t: float(np.mean(c)) for t, c in covered.items()}
    best = min(coverage, key=lambda t: abs(coverage[t] - level))
    return float(best), coverage


def run_emcee(likelihood: Likelihood, prior: Prior | None = None,
              n_walkers: int = 32, n_steps: int = 1300, burn: int = 300,
              seed: int = 0, moves: str = "differential", progress: bool = False
              ) -> az.InferenceData:
    """Ensemble sampling (emcee) of likelihood x prior; the first ``burn`` steps are
    dropped, each walker is one ArviZ chain.

    ``moves``: "differential" (default), emcee's differential-evolution move (80%) with
    its snooker variant (20%), which mixes faster than the stretch move on these skewed
    posteriors (``benchmark/emcee_moves.md`` compares the two); "stretch", the
    affine-invariant stretch move of Goodman & Weare (2010), emcee's own default.
    """
    import emcee

    prior = _prior_for(likelihood, prior)
    d = len(prior.parameters)
    if n_walkers < 2 * d:
        raise ValueError(f"n_walkers must be at least twice the {d} parameters (an "
                         f"ensemble move needs them), got {n_walkers}")
    if not 0 <= burn < n_steps:
        raise ValueError(f"burn must be in [0, n_steps = {n_steps}), got {burn}: no draw "
                         "would be left")
    log_posterior = _log_posterior(likelihood, prior)
    proposals = {"differential": lambda: [(emcee.moves.DEMove(), 0.8),
                                          (emcee.moves.DESnookerMove(), 0.2)],
                 "stretch": lambda: [(emcee.moves.StretchMove(), 1.0)]}
    if moves not in proposals:
        raise ValueError(f"moves must be one of {sorted(proposals)}, got {moves!r}")

    def log_prob(theta: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return log_posterior(torch.as_tensor(theta)).double().numpy()

    start = _start(likelihood, prior, n_walkers, np.random.default_rng(seed))
    sampler = emcee.EnsembleSampler(n_walkers, d, log_prob,
                                    vectorize=True, moves=proposals[moves]())
    sampler.random_state = np.random.RandomState(seed).get_state()  # its proposals
    sampler.run_mcmc(start, n_steps, progress=progress)
    return az.from_emcee(sampler, var_names=list(likelihood.parameters)) \
        .sel(draw=slice(burn, None))


def _start(likelihood: Likelihood, prior: Prior, n: int,
           rng: np.random.Generator, spread: float = 2.0) -> np.ndarray:
    """``n`` over-dispersed starting points: draws from the Laplace approximation at
    the posterior's mode, standard deviations times ``spread``, kept inside the box.
    Starting over-dispersed keeps burn-in short and lets R-hat see a chain stuck
    elsewhere."""
    mode, cov = laplace(likelihood, prior, rng)
    points = rng.multivariate_normal(mode, spread ** 2 * cov, size=n)
    lo, width = prior.bounds[:, 0], prior.bounds[:, 1] - prior.bounds[:, 0]
    return np.clip(points, lo + 1e-6 * width, lo + (1 - 1e-6) * width)


def run_nuts(likelihood: Likelihood, prior: Prior | None = None,
             n_samples: int = 1000, warmup: int = 500, chains: int = 2, seed: int = 0,
             dense_mass: bool = False, progress: bool = False) -> az.InferenceData:
    """Pyro NUTS of likelihood x prior; ``chains`` independent chains, run one after
    the other from the same starting region, each seeded. ``dense_mass`` adapts a full
    mass matrix during warm-up (a diagonal one otherwise): correlated parameters then
    need shorter trajectories."""
    import pyro
    import pyro.distributions as dist
    from pyro.infer import MCMC, NUTS

    prior = _prior_for(likelihood, prior)
    names = likelihood.parameters

    def model():
        theta = torch.stack([pyro.sample(n, dist.Uniform(float(lo), float(hi)))
                             for n, (lo, hi) in zip(names, prior.bounds)])
        if prior.population is not None:
            pyro.factor("population", prior.log_prob(theta))
        pyro.factor("spectrum", likelihood(theta))

    start = _start(likelihood, prior, chains, np.random.default_rng(seed))
    draws = {n: [] for n in names}
    for c in range(chains):
        pyro.set_rng_seed(seed + c)
        init = {n: torch.tensor(float(v)) for n, v in zip(names, start[c])}
        kernel = NUTS(model, full_mass=dense_mass,
                      init_strategy=pyro.infer.autoguide.init_to_value(values=init))
        mcmc = MCMC(kernel, num_samples=n_samples, warmup_steps=warmup,
                    disable_progbar=not progress)
        mcmc.run()
        for n, v in mcmc.get_samples().items():
            draws[n].append(v.numpy())
    return az.from_dict(posterior={n: np.stack(v) for n, v in draws.items()})
