"""The spectrum head: the XP spectrum as an output, a distribution over all 343 pixels.

One learned query per spectral region (the same contiguous regions the input side
reads) cross-attends to the encoded star with its own decoder blocks; each region's
feature vector gives its pixels' mean, a diagonal variance and their rows of a rank-r
covariance factor. The answer is a low-rank multivariate normal over the pixels,
``N(mu, F F^T + diag(d))``: the r shared directions carry what varies coherently across
the spectrum (an uncertain Teff tilts every pixel at once), the diagonal the rest. Any
subset of pixels is its exact marginal (the rows of ``mu``, ``F`` and ``d``).

Flux noise is deconvolved as label noise is for scalars: the training loss scores the
observed flux under ``N(mu, F F^T + diag(d + sigma_flux^2))`` (independent pixel noise,
the per-pixel errors of the data), so ``N(mu, F F^T + diag(d))`` is the PDF of the
noise-free spectrum. The loss adds to that joint likelihood the sum of the pixels' own
1-D likelihoods (both are proper scores): with the joint term alone, training found a
degenerate answer, the population's mean spectrum with wide low-rank directions that
hold every star, cheap in joint likelihood (8 large variances) and useless pixel by
pixel. The head reads the encoder's memory, not the scalar decoder, so
training it with the rest of the network frozen leaves every scalar answer unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import LowRankMultivariateNormal

from .blocks import CrossBlock, region_index

__all__ = ["SpectrumHead", "with_noise"]

LOG_VAR_RANGE = (-14.0, 6.0)  # normalised flux units


def with_noise(pdf: LowRankMultivariateNormal, noise_var: Tensor,
               discrepancy: Tensor | None = None) -> LowRankMultivariateNormal:
    """The distribution of the observed flux: ``pdf`` with independent pixel noise of
    variance ``noise_var`` added, and covariance directions ``discrepancy`` (pixels, k)
    shared by every star (``probstar.inverse.fit_discrepancy``) if given."""
    factor = pdf.cov_factor
    if discrepancy is not None:
        factor = torch.cat([factor, discrepancy.expand(*factor.shape[:-2], -1, -1)], -1)
    return LowRankMultivariateNormal(pdf.loc, factor, pdf.cov_diag + noise_var,
                                     validate_args=False)


class SpectrumHead(nn.Module):
    """Memory of the encoded star -> low-rank normal over the 343 normalised XP pixels."""

    def __init__(self, dim: int, heads: int, hidden: int, n_regions: int, layers: int,
                 rank: int, n_pixels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.rank, self.n_pixels = rank, n_pixels
        index = region_index(n_regions, n_pixels)  # (R, W), padded with n_pixels
        self.register_buffer("index", index, persistent=False)
        width = index.shape[1]
        self.queries = nn.Parameter(torch.randn(n_regions, dim) * 0.1)
        self.blocks = nn.ModuleList(CrossBlock(dim, heads, hidden, dropout)
                                    for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.out = nn.Parameter(torch.randn(n_regions, dim, width * (2 + rank))
                                / math.sqrt(dim) * 0.1)
        self.bias = nn.Parameter(torch.zeros(n_regions, width * (2 + rank)))

    def forward(self, memory: Tensor, absent: Tensor) -> LowRankMultivariateNormal:
        """Memory (B, T, dim) and its padding mask -> PDF of the noise-free spectrum
        (batch (B,), event (343,), normalised units)."""
        b = memory.shape[0]
        q = self.queries.unsqueeze(0).expand(b, -1, -1)
        for block in self.blocks:
            q = block(q, memory, absent)
        params = torch.einsum("brd,rdo->bro", self.ln(q), self.out) + self.bias
        params = params.unflatten(-1, (self.index.shape[1], 2 + self.rank))  # B R W 2+r
        pixels = torch.zeros(b, self.n_pixels + 1, 2 + self.rank, device=memory.device,
                             dtype=params.dtype)
        pixels[:, self.index.flatten()] = params.flatten(1, 2)  # region layout -> pixels
        pixels = pixels[:, :self.n_pixels]
        mean, log_var, factor = pixels[..., 0], pixels[..., 1], pixels[..., 2:]
        return LowRankMultivariateNormal(mean, factor, log_var.clamp(*LOG_VAR_RANGE).exp(),
                                         validate_args=False)

    @staticmethod
    def loss(pdf: LowRankMultivariateNormal, flux: Tensor, noise_var: Tensor,
             scored: Tensor) -> Tensor:
        """Negative log-likelihood of the observed ``flux`` (B, P) at the ``scored``
        pixels, the flux noise convolved in, per star (B,): the joint one plus the sum
        of the pixels' 1-D ones; 0 where none is scored.

        In the joint term, unscored pixels get a zero residual, unit variance and no
        factor row, so they add only the constant ``0.5 log 2 pi`` each, removed.
        """
        s = scored.to(flux.dtype)
        noisy = LowRankMultivariateNormal(
            torch.where(scored, pdf.loc, 0.0), pdf.cov_factor * s.unsqueeze(-1),
            torch.where(scored, pdf.cov_diag + noise_var, 1.0), validate_args=False)
        unscored = (1 - s).sum(-1)
        joint = -noisy.log_prob(torch.where(scored, flux, 0.0)) \
            - 0.5 * math.log(2 * math.pi) * unscored
        var = pdf.variance + noise_var
        pixels = 0.5 * (math.log(2 * math.pi) + var.log() + (flux - pdf.loc) ** 2 / var)
        return torch.where(scored.any(-1), joint + (pixels * s).sum(-1), 0.0)
