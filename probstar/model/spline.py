"""The flow head's spline layer without host synchronisation.

A monotonic rational-quadratic spline on [-B, B] with identity (linear) tails (Durkan et
al. 2019, "Neural Spline Flows"), in the parametrisation of nflows'
``unconstrained_rational_quadratic_spline``: the same numbers, computed without
boolean-mask indexing, range checks or assertions. Each of those makes a GPU wait for
the host; in the flow head's training step they added up to ~300 waits and made it
2.5x slower than the other heads together (``benchmark/results/profile/``). Here every
element goes through the spline (values outside [-B, B] through a harmless stand-in)
and ``torch.where`` picks the tail's identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from nflows.transforms import MaskedPiecewiseRationalQuadraticAutoregressiveTransform
from torch import Tensor

__all__ = ["rational_quadratic_spline", "SplineAutoregressiveTransform"]

MIN_BIN, MIN_DERIVATIVE = 1e-3, 1e-3  # nflows' defaults


def _knots(unnormalised: Tensor, bound: float) -> tuple[Tensor, Tensor]:
    """Bin edges (..., K+1) from -bound to bound and bin sizes (..., K)."""
    k = unnormalised.shape[-1]
    sizes = MIN_BIN + (1 - MIN_BIN * k) * F.softmax(unnormalised, dim=-1)
    inner = 2 * bound * torch.cumsum(sizes, dim=-1)[..., :-1] - bound
    edges = torch.cat([torch.full_like(inner[..., :1], -bound), inner,
                       torch.full_like(inner[..., :1], bound)], dim=-1)
    return edges, edges[..., 1:] - edges[..., :-1]


def rational_quadratic_spline(x: Tensor, widths: Tensor, heights: Tensor,
                              derivatives: Tensor, inverse: bool = False,
                              bound: float = 1.0) -> tuple[Tensor, Tensor]:
    """Spline of ``x`` (...,) with unnormalised bin ``widths``, ``heights`` (..., K) and
    inner-knot ``derivatives`` (..., K-1); returns the output and log |dy/dx| (of the
    direction computed)."""
    inside = (x >= -bound) & (x <= bound)
    xs = torch.where(inside, x, torch.zeros_like(x))  # the tails' stand-in: any inside value
    tail_slope = math.log(math.expm1(1 - MIN_DERIVATIVE))  # softplus -> slope 1 at the ends
    slopes = MIN_DERIVATIVE + F.softplus(F.pad(derivatives, (1, 1), value=tail_slope))
    x_edges, x_sizes = _knots(widths, bound)
    y_edges, y_sizes = _knots(heights, bound)
    edges = y_edges if inverse else x_edges
    b = (xs[..., None] >= edges[..., 1:-1]).sum(-1, keepdim=True)  # bin of each value

    def at(t: Tensor) -> Tensor:
        return t.gather(-1, b)[..., 0]

    x0, w, y0, h = at(x_edges), at(x_sizes), at(y_edges), at(y_sizes)
    s, d0, d1 = h / w, at(slopes), at(slopes[..., 1:])
    curve = d0 + d1 - 2 * s
    if inverse:
        dy = xs - y0
        qa, qb, qc = dy * curve + h * (s - d0), h * d0 - dy * curve, -s * dy
        theta = 2 * qc / (-qb - torch.sqrt((qb * qb - 4 * qa * qc).clamp(min=0)))
        out = x0 + theta * w
        tt = theta * (1 - theta)
    else:
        theta = (xs - x0) / w
        tt = theta * (1 - theta)
        out = y0 + h * (s * theta ** 2 + d0 * tt) / (s + curve * tt)
    log_slope = torch.log(s ** 2 * (d1 * theta ** 2 + 2 * s * tt + d0 * (1 - theta) ** 2)) \
        - 2 * torch.log(s + curve * tt)
    log_det = -log_slope if inverse else log_slope
    return torch.where(inside, out, x), torch.where(inside, log_det, torch.zeros_like(x))


class SplineAutoregressiveTransform(MaskedPiecewiseRationalQuadraticAutoregressiveTransform):
    """nflows' masked rational-quadratic autoregressive transform (linear tails), same
    parameters and numbers, with :func:`rational_quadratic_spline` as its spline."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.tails != "linear":
            raise ValueError("SplineAutoregressiveTransform has linear tails only")

    def _elementwise(self, inputs: Tensor, autoregressive_params: Tensor,
                     inverse: bool = False) -> tuple[Tensor, Tensor]:
        # (nflows would divide widths and heights by sqrt(hidden) for a conditioner with a
        # ``hidden_features`` attribute; its MADE has none, so neither does this)
        k = self.num_bins
        params = autoregressive_params.view(*inputs.shape, 3 * k - 1)
        out, log_det = rational_quadratic_spline(
            inputs, params[..., :k], params[..., k:2 * k], params[..., 2 * k:], inverse,
            self.tail_bound)
        return out, log_det.sum(-1)
