"""Building blocks shared by the network and the spectrum head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CrossBlock", "region_index"]


def region_index(n_regions: int, n_pixels: int) -> torch.Tensor:
    """Pixel indices of ``n_regions`` contiguous regions, (n_regions, max width); short
    regions are padded with ``n_pixels`` (an extra, empty column)."""
    bounds = torch.linspace(0, n_pixels, n_regions + 1).round().long()
    width = int((bounds[1:] - bounds[:-1]).max())
    index = torch.full((n_regions, width), n_pixels, dtype=torch.long)
    for r in range(n_regions):
        span = torch.arange(bounds[r], bounds[r + 1])
        index[r, : span.numel()] = span
    return index


class CrossBlock(nn.Module):
    """Pre-LN cross-attention block: queries read the encoded set, then a feed-forward."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.ln_q = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ln_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, q: Tensor, memory: Tensor, absent: Tensor) -> Tensor:
        q = q + self.attn(self.ln_q(q), memory, memory, key_padding_mask=absent,
                          need_weights=False)[0]
        return q + self.ff(self.ln_ff(q))
