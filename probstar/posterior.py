"""The public answer: a distribution over the requested quantities of each star.

A :class:`Posterior` has batch shape ``(n_stars,)`` and event shape ``(n_names,)``, in
physical units. It is a product of exact 1-D marginals (Gaussian or mixture head:
quantiles, moments and modes in closed form or by bisection), a joint density with
exact 1-D marginals (the spectrum head's multivariate normal over pixels), or a joint
density without (flow head: 1-D summaries from ``n_mc`` seeded draws, so they are
reproducible; the density of a one-name flow answer is its exact ``log_prob``).
``sample`` and ``log_prob`` are always those of the joint. Every summary (median,
quantiles, modes, the table columns) derives from the distribution.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.distributions import AffineTransform, Distribution, Independent, \
    TransformedDistribution

from .vocab import resolve

__all__ = ["Posterior"]

GRID = 512  # points of the 1-D density grid behind modes and plots


@contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Within it, torch draws follow ``seed`` (on the CPU and on ``device``), and the
    global random state is restored afterwards; ``seed=None`` leaves the global state to
    run on as usual (draws differ from call to call)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


class Posterior:
    """The distribution of ``names`` for each star of a batch (physical units).

    ``base`` has event shape (n_names,) in the model's normalised units (the value minus
    ``loc``, divided by ``scale``); ``marginals``, when given, are its exact 1-D
    marginals, batch shape (n_stars, n_names): the whole distribution when
    ``joint=False``. Without them (a joint flow answer), summaries (quantiles, mean, std,
    1-D densities) come from ``n_mc`` seeded draws of the whole batch: reproducible for
    the same table, but a star's draws, and so its summaries (to their Monte Carlo error),
    depend on its row and on the other rows.
    """

    def __init__(self, base: Distribution, names: Sequence[str], loc: torch.Tensor,
                 scale: torch.Tensor, marginals: Distribution | None = None,
                 n_mc: int = 1000, joint: bool | None = None) -> None:
        self.names = list(names)
        self.loc, self.scale = loc, scale  # (n_names,)
        self.marginals = marginals
        self._joint = marginals is None if joint is None else joint
        self.n_mc = n_mc
        self.dist = TransformedDistribution(base, AffineTransform(loc, scale, event_dim=1),
                                            validate_args=False)
        self._mc: np.ndarray | None = None

    @classmethod
    def independent(cls, marginals: Distribution, names: Sequence[str], loc: torch.Tensor,
                    scale: torch.Tensor) -> "Posterior":
        """A product of 1-D distributions, batch shape (n_stars, n_names)."""
        return cls(Independent(marginals, 1, validate_args=False), names, loc, scale, marginals,
                   joint=False)

    @property
    def joint(self) -> bool:
        """True when the names are modelled jointly (correlations kept)."""
        return self._joint

    def __len__(self) -> int:
        return self.dist.batch_shape[0]

    def __repr__(self) -> str:
        kind = "joint" if self.joint else "independent marginals"
        names = self.names if len(self.names) <= 6 else \
            f"[{self.names[0]}, ..., {self.names[-1]}] ({len(self.names)})"
        return f"Posterior(n_stars={len(self)}, names={names}, {kind})"

    def _column(self, name: str) -> int:
        name = resolve(name) or name  # an alias ("TEFF", "m_h") names the same column
        if name not in self.names:
            raise KeyError(f"{name!r} was not requested; this posterior is over {self.names}")
        return self.names.index(name)

    # -- the joint ----------------------------------------------------------------------

    def sample(self, n: int = 1, seed: int | None = None) -> np.ndarray:
        """``n`` joint draws per star, shape (n, n_stars, n_names). A seed makes them
        reproducible and leaves torch's global random state untouched; without one they
        come from (and advance) the global state, so successive calls differ."""
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"number of samples must be an integer >= 1, got {n!r}")
        with seeded(seed, self.loc.device), torch.no_grad():
            return self.dist.sample((n,)).cpu().numpy()

    def log_prob(self, x) -> np.ndarray:
        """Joint log density of values ``x`` of shape (..., n_stars, n_names)."""
        x = np.asarray(x, np.float32)
        expected = (len(self), len(self.names))
        if x.shape[-2:] != expected:
            raise ValueError(f"log_prob expects values of shape (..., n_stars, n_names) = "
                             f"(..., {expected[0]}, {expected[1]}) for {self.names}, got "
                             f"{x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("log_prob: values must be finite (NaN or inf given)")
        with torch.no_grad():
            return self.dist.log_prob(torch.as_tensor(x, device=self.loc.device)).cpu().numpy()

    # -- 1-D marginals --------------------------------------------------------------------

    def _draws(self) -> np.ndarray:
        """The seeded draws (n_mc, n_stars, n_names) behind a joint posterior's summaries."""
        if self._mc is None:
            self._mc = self.sample(self.n_mc, seed=0)
        return self._mc

    def _physical(self, z: torch.Tensor) -> np.ndarray:
        return (z * self.scale + self.loc).cpu().numpy()

    def quantile(self, q: float | Sequence[float]) -> np.ndarray:
        """The q-quantile of each 1-D marginal, (n_stars, n_names); several levels give
        (n_levels, n_stars, n_names)."""
        if np.ndim(q) > 0:
            return np.stack([self.quantile(float(level)) for level in np.ravel(q)])
        if not 0 < q < 1:
            raise ValueError(f"quantile level must be in (0, 1), got {q}")
        if self.marginals is None:
            return np.quantile(self._draws(), q, axis=0).astype(np.float32)
        m = self.marginals
        with torch.no_grad():
            try:
                return self._physical(m.icdf(torch.full(m.batch_shape, float(q),
                                                        device=self.loc.device)))
            except NotImplementedError:  # mixtures: bisection on the cdf
                return self._physical(bisect_icdf(m, float(q)))

    def median(self) -> np.ndarray:
        return self.quantile(0.5)

    def mean(self) -> np.ndarray:
        if self.marginals is None:
            return self._draws().mean(0)
        with torch.no_grad():
            return self._physical(self.marginals.mean)

    def std(self) -> np.ndarray:
        if self.marginals is None:
            return self._draws().std(0)
        with torch.no_grad():
            return (self.marginals.stddev * self.scale).cpu().numpy()

    def grid(self, name: str, n: int = GRID) -> np.ndarray:
        """A grid (n_stars, n) spanning the 0.05%-99.95% range of ``name``'s marginal."""
        j = self._column(name)
        lo, hi = self.quantile(0.0005)[:, j], self.quantile(0.9995)[:, j]
        pad = 0.1 * (hi - lo) + 1e-6
        return np.linspace(lo - pad, hi + pad, n, axis=1)

    def pdf(self, name: str, x) -> np.ndarray:
        """Marginal density of ``name`` at ``x`` (n_stars, n_points) or (n_points,).

        Exact where the marginals are known, and for a flow answer over ``name`` alone
        (its joint is its marginal); for a flow answer over several names a Gaussian
        kernel density estimate of its ``n_mc`` draws (Scott's bandwidth, which fills in
        the dip between two close peaks: at Teff = 5200 K it merged the shipped flow's
        giant and dwarf peaks of logg into one).
        """
        j = self._column(name)
        x = np.atleast_1d(np.asarray(x, np.float64))
        if x.ndim > 2 or (x.ndim == 2 and x.shape[0] not in (1, len(self))):
            raise ValueError(f"pdf: x must be (n_points,) or (n_stars = {len(self)}, "
                             f"n_points), got shape {x.shape}")
        x = np.broadcast_to(x, (len(self), x.shape[-1]))
        if self.marginals is None and len(self.names) == 1:  # 64 grid points at a time
            return np.concatenate([np.exp(self.log_prob(x[:, i:i + 64].T[..., None])).T
                                   for i in range(0, x.shape[1], 64)], axis=1)
        if self.marginals is None:
            return np.concatenate([_kde(self._draws()[:, i:i + 64, j].T, x[i:i + 64])
                                   for i in range(0, len(self), 64)])  # bounded memory
        scale = float(self.scale[j])
        z = torch.as_tensor((x - float(self.loc[j])) / scale, dtype=torch.float32,
                            device=self.loc.device)
        with torch.no_grad():
            lp = self.marginals.log_prob(z.T.unsqueeze(-1).expand(-1, -1, len(self.names)))
        return (lp[..., j].T.exp() / scale).double().cpu().numpy()

    def modes(self, name: str, min_weight: float = 0.03) -> list[list[tuple[float, float]]]:
        """For each star, the peaks of ``name``'s marginal as (value, weight), heaviest first.

        A peak's weight is the probability mass of its basin (between the density minima
        either side); peaks lighter than ``min_weight`` merge into their neighbour.
        """
        x = self.grid(name)
        p = self.pdf(name, x)
        return [_peaks(xi, pi, min_weight) for xi, pi in zip(x, p)]

    def summary(self) -> dict[str, np.ndarray]:
        """Columns ``<name>_median``, ``_mean``, ``_std``, ``_q16``, ``_q84`` for a table."""
        stats = {"median": self.median(), "mean": self.mean(), "std": self.std(),
                 "q16": self.quantile(0.16), "q84": self.quantile(0.84)}
        return {f"{name}_{stat}": values[:, j] for j, name in enumerate(self.names)
                for stat, values in stats.items()}


def _kde(draws: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gaussian kernel density (Scott's bandwidth) of draws (n, m) at x (n, k), per row."""
    draws = draws.astype(np.float64)
    bw = 1.06 * draws.std(1, keepdims=True) * draws.shape[1] ** -0.2 + 1e-9
    u = (x[:, :, None] - draws[:, None, :]) / bw[:, :, None]
    return np.exp(-0.5 * u ** 2).mean(-1) / (bw * np.sqrt(2 * np.pi))


def bisect_icdf(dist: Distribution, q: float | torch.Tensor, steps: int = 16,
                newton: int = 3) -> torch.Tensor:
    """Quantile of a 1-D distribution with a cdf and a density: batch-wise bisection to
    1e-5 of the bracket, then Newton steps kept inside it (a tensor ``q`` may carry
    leading sample dimensions)."""
    mean, std = dist.mean, dist.stddev
    lo, hi = mean - 40 * std - 1, mean + 40 * std + 1
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        below = dist.cdf(mid) < q
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    x = 0.5 * (lo + hi)
    for _ in range(newton):
        step = (dist.cdf(x) - q) / dist.log_prob(x).exp().clamp_min(1e-30)
        x = torch.minimum(torch.maximum(x - step, lo), hi)
    return x


def _peaks(x: np.ndarray, p: np.ndarray, min_weight: float) -> list[tuple[float, float]]:
    """Local maxima of a density on a grid and the mass of their basins."""
    inner = np.flatnonzero((p[1:-1] >= p[:-2]) & (p[1:-1] > p[2:])) + 1
    peaks = list(inner) if len(inner) else [int(np.argmax(p))]
    cell = np.gradient(x) * p  # mass per grid cell
    total = cell.sum()
    while True:
        # basin edges: the lowest density point between neighbouring peaks
        edges = [0] + [a + int(np.argmin(p[a:b + 1])) for a, b in zip(peaks, peaks[1:])] \
            + [len(x)]
        weights = np.array([cell[a:b].sum() for a, b in zip(edges, edges[1:])]) / total
        light = int(np.argmin(weights))
        if len(peaks) == 1 or weights[light] >= min_weight:
            break
        peaks.pop(light)
    order = np.argsort(-weights)
    return [(float(x[peaks[i]]), float(weights[i])) for i in order]
