"""Heads: decoder features in, a distribution over one (normalised) quantity out.

A head is a small ``nn.Module`` whose ``forward(h, noise_var)`` returns a
``torch.distributions.Distribution`` with batch shape ``h.shape[:-1]``. ``noise_var`` is
the variance of a measurement error on the quantity: the returned distribution is then
the predictive distribution *of the noisy measurement* (the true-value distribution
convolved with the noise), which is what the training loss scores a noisy label
against. With ``noise_var=None`` the head returns the distribution of the true value.
New heads subclass :class:`Head` and register themselves in ``HEADS``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Normal

__all__ = ["Head", "GaussianHead", "HEADS", "make_head"]

HEADS: dict[str, type["Head"]] = {}


class Head(nn.Module):
    """Base class: ``forward(h, noise_var=None) -> Distribution``."""

    name: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        HEADS[cls.name] = cls

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, h: Tensor, noise_var: Tensor | None = None) -> Distribution:
        raise NotImplementedError

    def loss(self, h: Tensor, y: Tensor, noise_var: Tensor) -> Tensor:
        """Negative log-likelihood of noisy labels ``y`` (same shape as ``h.shape[:-1]``)."""
        return -self(h, noise_var).log_prob(y)


class GaussianHead(Head):
    """Leung & Bovy (2023): one Gaussian, the label variance added in the likelihood."""

    name = "gaussian"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.out = nn.Linear(dim, 2)

    def forward(self, h: Tensor, noise_var: Tensor | None = None) -> Distribution:
        mean, log_var = self.out(h).unbind(-1)
        var = torch.exp(log_var.clamp(-14.0, 10.0))
        if noise_var is not None:
            var = var + noise_var
        return Normal(mean, var.sqrt(), validate_args=False)


def make_head(name: str, dim: int) -> Head:
    """The head registered as ``name``."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; available: {', '.join(sorted(HEADS))}")
    return HEADS[name](dim)
