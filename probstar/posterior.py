"""The public answer: a distribution over the requested quantities of each star.

``Posterior`` has batch shape ``(n_stars,)`` and event shape ``(n_names,)`` in physical
units. It wraps the head's distribution (in the model's normalised units) and the
per-name affine map back to physical units; summaries (median, quantiles, std) all
derive from it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.distributions import Distribution

__all__ = ["Posterior"]


class Posterior:
    """Independent 1-D marginals of ``names`` for a batch of stars (physical units)."""

    def __init__(self, base: Distribution, names: list[str], loc: torch.Tensor,
                 scale: torch.Tensor) -> None:
        self.base = base  # batch shape (n_stars, n_names), normalised units
        self.names = list(names)
        self.loc, self.scale = loc, scale  # (n_names,)

    @property
    def batch_shape(self) -> torch.Size:
        return self.base.batch_shape[:1]

    def __len__(self) -> int:
        return self.base.batch_shape[0]

    def __repr__(self) -> str:
        return f"Posterior(n_stars={len(self)}, names={self.names})"

    def sample(self, n: int = 1, seed: int | None = None) -> np.ndarray:
        """Draws of shape (n, n_stars, n_names); a seed makes them reproducible."""
        with torch.random.fork_rng(devices=[]), torch.no_grad():  # global RNG untouched
            if seed is not None:
                torch.manual_seed(seed)
            z = self.base.sample((n,))
        return (z * self.scale + self.loc).cpu().numpy()

    def log_prob(self, x) -> np.ndarray:
        """Log density of values x (..., n_stars, n_names), summed over names."""
        x = np.asarray(x, np.float32)
        expected = (len(self), len(self.names))
        if x.shape[-2:] != expected:
            raise ValueError(f"log_prob expects values of shape (..., n_stars, n_names) = "
                             f"(..., {expected[0]}, {expected[1]}) for {self.names}, got "
                             f"{x.shape}")
        x = torch.as_tensor(x, device=self.loc.device)
        with torch.no_grad():
            lp = self.base.log_prob((x - self.loc) / self.scale) - torch.log(self.scale)
        return lp.sum(-1).cpu().numpy()

    def quantile(self, q: float) -> np.ndarray:
        """The q-quantile of each 1-D marginal, (n_stars, n_names)."""
        if not 0 < q < 1:
            raise ValueError(f"quantile level must be in (0, 1), got {q}")
        with torch.no_grad():
            z = self.base.icdf(torch.full(self.base.batch_shape, float(q), device=self.loc.device))
        return (z * self.scale + self.loc).cpu().numpy()

    def median(self) -> np.ndarray:
        return self.quantile(0.5)

    def mean(self) -> np.ndarray:
        with torch.no_grad():
            return (self.base.mean * self.scale + self.loc).cpu().numpy()

    def std(self) -> np.ndarray:
        with torch.no_grad():
            return (self.base.stddev * self.scale).cpu().numpy()

    def summary(self) -> dict[str, np.ndarray]:
        """Columns ``<name>_median``, ``_mean``, ``_std``, ``_q16``, ``_q84`` for a table."""
        stats = {"median": self.median(), "mean": self.mean(), "std": self.std(),
                 "q16": self.quantile(0.16), "q84": self.quantile(0.84)}
        return {f"{name}_{stat}": values[:, j] for j, name in enumerate(self.names)
                for stat, values in stats.items()}
