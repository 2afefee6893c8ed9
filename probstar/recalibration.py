"""Recalibration: a monotone map of each 1-D answer's CDF, fitted on the validation split.

A network trained by maximum likelihood can still be over- or under-confident, and not
by the same amount everywhere (``validation/calibration.md`` shows its answers before
and after, per kind of context). The correction is
quantile recalibration (Kuleshov, Fenner & Ermon 2018): if ``u = F(y)``, the PIT
values of held-out labels under the predicted CDF ``F``, are not uniform, the
recalibrated CDF is ``R(F(y))`` with ``R`` the empirical CDF of those PIT values, so
that its PIT values are uniform. Its density is ``R'(F(y)) f(y)``; draws are
``F^-1(R^-1(u))``.

One map per requested name and kind of context (:data:`KINDS`: a spectrum is present;
else photometry or parallax; else only stellar parameters), because the
miscalibration differs between them. Each map is fitted on the
validation split (never the test split), with each label's error convolved into the
prediction (exact for Gaussian mixtures); ``R`` is a smooth kernel estimate (see
:class:`Recalibrated`), so recalibrated densities have no spurious peaks.
The maps live in the model folder's ``config.json`` (``"recalibration"``); :func:`fit`
and ``probstar recalibrate`` produce them. They apply to the 1-D (mixture) answers;
the flow's joint answers are not recalibrated (a CDF map is one-dimensional).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import special
from torch.distributions import Distribution, MixtureSameFamily, constraints

from .calibration import label_errors
from .data.observations import Observations
from .evaluate import INPUT_SETS
from .posterior import bisect_icdf
from .vocab import LABEL_NAMES, SCALAR_NAMES, XP_NAMES, index_of

__all__ = ["KINDS", "FIT_INPUTS", "Recalibration", "Recalibrated", "context_kind", "fit",
           "mixture_arrays", "mixture_pit", "normalised_label", "kernel_centers"]

KINDS: tuple[str, ...] = ("spectrum", "photometry", "parameters")
N_CENTERS = 100  # kernels per map: quantiles of the probit PIT values
BANDWIDTH = 0.3  # kernel width in probit space: the smooth map with the most validation
# rows within the bar (2-fold cross-validation, benchmark/recalibration_methods.py)
BLEND = 0.01  # weight of the identity in R: densities stay positive in the far tails
_PHOTOMETRY = index_of(["g", "bp", "rp", "j", "h", "k", "bp_rp", "j_h", "j_k", "parallax"])
_XP = index_of(list(XP_NAMES))
#: The validation questions each kind's maps are fitted on.
FIT_INPUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "spectrum": (INPUT_SETS["xp+colours"], INPUT_SETS["xp"]),
    "photometry": ((*INPUT_SETS["photometry"], "parallax"),),
    "parameters": (("teff",),),
}


def context_kind(values: np.ndarray | torch.Tensor) -> np.ndarray:
    """Index into :data:`KINDS` of each star's context; ``values`` (n_stars, n_names in
    vocabulary order), NaN = not observed."""
    present = np.isfinite(np.asarray(values, float))
    return np.where(present[:, _XP].any(1), 0, np.where(present[:, _PHOTOMETRY].any(1), 1, 2))


class Recalibrated(Distribution):
    """A 1-D distribution whose CDF ``F`` is passed through a smooth monotone map:
    ``cdf = R(F)``, ``density = R'(F) f``, ``draws = F^-1(R^-1(u))``.

    In probit space (``z = Phi^-1(p)``), ``R(p) = (1 - BLEND) mean_k Phi((z - c_k) / h)
    + BLEND p``: a kernel estimate of the CDF of the held-out labels' probit PIT values,
    ``centers[which]`` holding each element's ``c_k``. It is smooth, so the recalibrated
    density has no spurious peaks.
    """

    arg_constraints: dict = {}
    support = constraints.real
    MOMENT_Z, MOMENT_STEP = 8.0, 0.5  # nodes behind mean and stddev (_moments; checked
    # against the integrated density in tests/test_recalibration.py)
    CHUNK = 1 << 16  # elements per kernel evaluation (bounded memory)
    Z_GRID = torch.linspace(-9.0, 9.0, 1801, dtype=torch.float64)  # for R^-1

    def __init__(self, base: Distribution, centers: torch.Tensor, which: torch.Tensor,
                 bandwidth: float) -> None:
        device = base.mean.device  # the maps and the draws live where the answer does
        self.base, self.which, self.h = base, which.to(device), bandwidth
        self.fitted = torch.isfinite(centers).all(-1).to(device)  # the others: identity
        self.centers = torch.where(self.fitted[:, None], centers.to(device), 0.0).double()
        self._moment_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        super().__init__(base.batch_shape, validate_args=False)

    def _kernels(self, z: torch.Tensor, which: torch.Tensor, pdf: bool) -> torch.Tensor:
        """mean_k Phi((z - c_k) / h) (or its derivative in z), chunk by chunk."""
        z, which = z.reshape(-1), which.reshape(-1)
        out = torch.empty_like(z)
        for i in range(0, z.numel(), self.CHUNK):
            t = (z[i:i + self.CHUNK, None] - self.centers[which[i:i + self.CHUNK]]) / self.h
            out[i:i + self.CHUNK] = (torch.exp(-0.5 * t ** 2) / (self.h * math.sqrt(2 * math.pi))
                                     if pdf else torch.special.ndtr(t)).mean(1)
        return out

    def _map(self, p: torch.Tensor, derivative: bool) -> torch.Tensor:
        """R(p), or log R'(p)."""
        shape = p.shape
        z = torch.special.ndtri(p.double().clamp(1e-12, 1 - 1e-12))
        which = self.which.expand(shape)
        fitted = self.fitted[which]
        if not derivative:
            r = (1 - BLEND) * self._kernels(z, which, pdf=False).reshape(shape) + \
                BLEND * torch.special.ndtr(z)
            return torch.where(fitted, r.to(p.dtype), p)
        phi = torch.exp(-0.5 * z ** 2) / math.sqrt(2 * math.pi)
        dr = (1 - BLEND) * self._kernels(z, which, pdf=True).reshape(shape) / phi + BLEND
        return torch.where(fitted, torch.log(dr).to(p.dtype), 0.0)

    def _interpolated_map(self, p: torch.Tensor, inverse: bool) -> torch.Tensor:
        """R(p), or R^-1(p), by linear interpolation in R tabulated on a probit grid per
        map (fast: the kernels are evaluated on the grid only)."""
        out = p.double().clone()  # elements without a map: the identity
        which = self.which.expand(p.shape)
        grid = self.Z_GRID.to(self.centers.device)
        for t in self.which.unique():
            if not self.fitted[t]:
                continue
            mask = which == t
            r = (1 - BLEND) * self._kernels(grid, t.expand(grid.shape), pdf=False) + \
                BLEND * torch.special.ndtr(grid)
            q = p[mask].double()
            out[mask] = torch.special.ndtr(_interpolate(q, r, grid)) if inverse else \
                _interpolate(torch.special.ndtri(q.clamp(1e-12, 1 - 1e-12)), grid, r)
        return out.to(p.dtype)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        return self._map(self.base.cdf(value), derivative=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.base.log_prob(value) + self._map(self.base.cdf(value), derivative=True)

    def icdf(self, value) -> torch.Tensor:
        value = torch.as_tensor(value, dtype=torch.float32, device=self.centers.device)
        value = value.expand(torch.broadcast_shapes(value.shape, self.batch_shape))
        return bisect_icdf(self.base, self._interpolated_map(value, inverse=True))

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.icdf(torch.rand(self._extended_shape(sample_shape),
                                        device=self.centers.device))

    def _moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance, computed once, from the cdf G alone (smooth, unlike the
        quantile function between two peaks): with x0 below all the mass,
        E[X - x0] = int (1 - G) dx and E[(X - x0)^2] = int 2 (x - x0)(1 - G) dx, by the
        trapezoid rule on nodes every MOMENT_STEP component widths out to MOMENT_Z of
        them (the map may move mass a few widths out)."""
        if self._moment_cache is None:
            base = self.base
            if isinstance(base, MixtureSameFamily):
                loc = base.component_distribution.mean
                scale = base.component_distribution.stddev
            else:
                loc, scale = base.mean[..., None], base.stddev[..., None]
            z = torch.arange(-self.MOMENT_Z, self.MOMENT_Z + 1e-9, self.MOMENT_STEP,
                             dtype=torch.float64, device=self.centers.device)
            x = (loc.double()[..., None] + scale.double()[..., None] * z).flatten(-2)
            x = x.sort(-1).values.movedim(-1, 0)  # (nodes, *batch)
            tail = 1 - self._interpolated_map(self.base.cdf(x.float()), inverse=False)
            x0 = x[0]
            first = torch.trapezoid(tail, x, dim=0)
            second = torch.trapezoid(2 * (x - x0) * tail, x, dim=0)
            self._moment_cache = (x0 + first, (second - first ** 2).clamp_min(0))
        return self._moment_cache

    @property
    def mean(self) -> torch.Tensor:
        return self._moments()[0].float()

    @property
    def stddev(self) -> torch.Tensor:
        return self._moments()[1].sqrt().float()


def _interpolate(x: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """The piecewise-linear function through (xs, ys), xs increasing, at x (flat outside)."""
    k = torch.searchsorted(xs, x.contiguous()).clamp(1, xs.numel() - 1)
    frac = ((x - xs[k - 1]) / (xs[k] - xs[k - 1])).clamp(0, 1)
    return ys[k - 1] + frac * (ys[k] - ys[k - 1])


@dataclass(frozen=True)
class Recalibration:
    """The kernel centres of each (kind of context, scalar name)'s map; NaN centres =
    the identity."""

    centers: np.ndarray  # (len(KINDS), len(SCALAR_NAMES), N_CENTERS)
    note: str = ""

    @classmethod
    def identity(cls) -> "Recalibration":
        return cls(np.full((len(KINDS), len(SCALAR_NAMES), N_CENTERS), np.nan))

    @property
    def fitted(self) -> bool:
        """True when some map is not the identity."""
        return bool(np.isfinite(self.centers).any())

    def apply(self, base: Distribution, kinds: np.ndarray, query: list[int]) -> Distribution:
        """``base`` (batch (n_stars, len(query))) recalibrated for stars of the given
        context kinds (n_stars,); elements without a fitted map keep their
        distribution."""
        which = np.asarray(kinds)[:, None] * len(SCALAR_NAMES) + np.asarray(query)[None, :]
        centers = self.centers.reshape(-1, N_CENTERS)
        if not np.isfinite(centers[which]).all(-1).any():
            return base
        return Recalibrated(base, torch.as_tensor(centers), torch.as_tensor(which), BANDWIDTH)

    def to_dict(self) -> dict:
        maps: dict = {}
        for k, kind in enumerate(KINDS):
            for j, name in enumerate(SCALAR_NAMES):
                if np.isfinite(self.centers[k, j]).all():
                    maps.setdefault(kind, {})[name] = [round(float(v), 5)
                                                       for v in self.centers[k, j]]
        return {"method": "quantile recalibration, kernel map in probit space "
                          "(probstar.recalibration)",
                "bandwidth": BANDWIDTH, "maps": maps, "note": self.note}

    @classmethod
    def from_dict(cls, d: dict) -> "Recalibration":
        """The maps stored by :meth:`to_dict`; a clear ValueError for anything else."""
        out = cls.identity()
        if not isinstance(d, dict) or not isinstance(d.get("maps", {}), dict) or not all(
                isinstance(v, dict) for v in d.get("maps", {}).values()):
            raise ValueError("recalibration: expected {'maps': {kind: {name: centres}}}")
        if d.get("maps") and d.get("bandwidth") != BANDWIDTH:
            raise ValueError(f"recalibration: bandwidth {d.get('bandwidth')} != {BANDWIDTH}")
        for kind, by_name in d.get("maps", {}).items():
            for name, centers in by_name.items():
                if kind not in KINDS or name not in SCALAR_NAMES:
                    raise ValueError(f"recalibration: unknown entry {kind}/{name}")
                try:
                    c = np.asarray(centers, float)
                except (TypeError, ValueError):
                    c = np.array([])
                if c.shape != (N_CENTERS,) or not np.isfinite(c).all():
                    raise ValueError(f"recalibration: the map {kind}/{name} needs "
                                     f"{N_CENTERS} finite centres")
                out.centers[KINDS.index(kind), SCALAR_NAMES.index(name)] = c
        return cls(out.centers, d.get("note", ""))


def kernel_centers(pit_values: np.ndarray, bandwidth: float = BANDWIDTH) -> np.ndarray:
    """The map's kernel centres: :data:`N_CENTERS` quantiles of the probit PIT values,
    pulled towards their mean so that the kernels' width does not widen the map (the
    kernel estimate keeps the mean and variance of the probit PIT values)."""
    u = np.asarray(pit_values, np.float64)
    z = special.ndtri(np.clip(u[np.isfinite(u)], 1e-9, 1 - 1e-9))
    c = np.quantile(z, (np.arange(N_CENTERS) + 0.5) / N_CENTERS)
    shrink = np.sqrt(max(1 - bandwidth ** 2 / max(c.var(), 1e-12), 0.1))
    return c.mean() + shrink * (c - c.mean())


def mixture_pit(weights: np.ndarray, means: np.ndarray, sds: np.ndarray, truth: np.ndarray,
                noise: np.ndarray) -> np.ndarray:
    """PIT of ``truth`` under Gaussian mixtures (components on the last axis) convolved
    with the truth's Gaussian ``noise``: exact, no sampling."""
    sd = np.sqrt(sds ** 2 + noise[..., None] ** 2)
    return (weights * special.ndtr((truth[..., None] - means) / sd)).sum(-1)


def mixture_arrays(post) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and widths (n_stars, n_names, n_components) of an uncalibrated
    mixture posterior, in the model's normalised units."""
    mix = post.marginals
    return tuple(t.detach().cpu().numpy() for t in (
        mix.mixture_distribution.probs, mix.component_distribution.loc,
        mix.component_distribution.scale))


def normalised_label(model, obs: Observations, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Each star's label of ``name`` and its error (``label_errors``) in the model's
    normalised units, ready for :func:`mixture_pit`."""
    i = index_of(name)[0]
    loc, scale = model.normalization.loc[i], model.normalization.scale[i]
    return (obs.column(name) - loc) / scale, label_errors(obs.errors[:, i]) / scale


def fit(model, obs: Observations, min_stars: int = 200) -> Recalibration:
    """Maps fitted on ``obs`` (the validation split) for every kind of context, for each
    label name outside its inputs with at least ``min_stars`` labelled stars; the others
    stay the identity."""
    centers = Recalibration.identity().centers
    for k, kind in enumerate(KINDS):
        pits: dict[str, list[np.ndarray]] = {}
        for inputs in FIT_INPUTS[kind]:
            asked = obs.select(obs.has_any(inputs))
            shown = asked.only(inputs)  # (a star with none of the inputs: no question)
            of_kind = context_kind(shown.values) == k  # e.g. no spectra in simulated stars
            targets = [n for n in LABEL_NAMES if n not in inputs and n in model.trained_names]
            if not of_kind.any() or not targets:
                continue
            post = model.posterior(shown, targets, head="mixture", calibrated=False)
            w, mu, sd = mixture_arrays(post)
            for j, name in enumerate(post.names):
                truth, noise = normalised_label(model, asked, name)
                u = mixture_pit(w[:, j], mu[:, j], sd[:, j], truth, noise)
                pits.setdefault(name, []).append(u[np.isfinite(truth) & of_kind])
        for name, parts in pits.items():
            u = np.concatenate(parts)
            if u.size >= min_stars:
                centers[k, SCALAR_NAMES.index(name)] = kernel_centers(u)
    sets = ", ".join(f"{kind}: {len(v)} input set(s)" for kind, v in FIT_INPUTS.items())
    note = f"fitted on {len(obs)} stars by probstar.recalibration.fit ({sets})"
    return Recalibration(centers, note)
