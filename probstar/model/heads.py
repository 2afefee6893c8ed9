"""Heads: decoder features in, a distribution over (normalised) quantities out.

Two kinds of head share the decoder:

- *Marginal* heads (:class:`GaussianHead`, :class:`MixtureHead`) turn each requested
  name's feature vector into a 1-D distribution: ``forward(h, noise_var)`` with ``h`` of
  shape (..., dim) returns a distribution of batch shape ``h.shape[:-1]``. ``noise_var``
  is the variance of a measurement error on the quantity: the returned distribution is
  then that of the *noisy measurement* (the true-value PDF convolved with the noise, exact
  for Gaussian components), which is what the training loss scores a noisy label against.
  With ``noise_var=None`` it is the PDF of the true value.
- The *joint* head (:class:`FlowHead`) turns the feature vectors of d requested names
  (d <= ``max_dims``) and the mixture head's 1-D PDFs of those names into one
  d-dimensional distribution, a conditional neural spline flow (nflows) on the mixture
  as base. See its docstring for how the varying set of names and label noise are
  handled; ``ProbStarNet.distribution`` wires the base in.

Heads register themselves in ``HEADS`` by ``name``; ``make_head(name, config)`` builds one.
"""

from __future__ import annotations

import math

import pyro.distributions as pdist
import torch
from nflows.transforms import CompositeTransform, InverseTransform, \
    MaskedAffineAutoregressiveTransform, ReversePermutation, Transform
from nflows.transforms.autoregressive import AutoregressiveTransform
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, constraints

from .spline import SplineAutoregressiveTransform

__all__ = ["Head", "GaussianHead", "MixtureHead", "FlowHead", "FlowDistribution", "HEADS",
           "MARGINAL_HEADS", "make_head"]

HEADS: dict[str, type[nn.Module]] = {}
MARGINAL_HEADS: tuple[str, ...] = ("gaussian", "mixture")
LOG_VAR_RANGE = (-14.0, 10.0)  # normalised units: sigma from 1e-3 to 150


class Head(nn.Module):
    """Base class of the marginal heads: ``forward(h, noise_var=None) -> Distribution``."""

    name: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        HEADS[cls.name] = cls

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    @classmethod
    def from_config(cls, config) -> "Head":
        return cls(config.dim)

    def forward(self, h: Tensor, noise_var: Tensor | None = None) -> Distribution:
        raise NotImplementedError

    def loss(self, h: Tensor, y: Tensor, noise_var: Tensor) -> Tensor:
        """Negative log-likelihood of noisy labels ``y`` (same shape as ``h.shape[:-1]``)."""
        return -self(h, noise_var).log_prob(y)


def _variance(log_var: Tensor, noise_var: Tensor | None) -> Tensor:
    var = torch.exp(log_var.clamp(*LOG_VAR_RANGE))
    return var if noise_var is None else var + noise_var


class GaussianHead(Head):
    """Leung & Bovy (2023): one Gaussian, the label variance added in the likelihood."""

    name = "gaussian"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.out = nn.Linear(dim, 2)

    def forward(self, h: Tensor, noise_var: Tensor | None = None) -> Distribution:
        mean, log_var = self.out(h).unbind(-1)
        return Normal(mean, _variance(log_var, noise_var).sqrt(), validate_args=False)


class MixtureHead(Head):
    """A K-component Gaussian mixture (Pyro ``MixtureSameFamily``) per requested name.

    Label noise is deconvolved exactly: the noise variance is added to every component,
    so training fits the mixture of the *true* value while scoring the noisy label.
    """

    name = "mixture"

    def __init__(self, dim: int, components: int = 6) -> None:
        super().__init__(dim)
        self.components = components
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 3 * components))
        with torch.no_grad():  # spread the initial means so the components differ
            self.net[-1].bias[components:2 * components] = torch.linspace(-1.5, 1.5, components)

    @classmethod
    def from_config(cls, config) -> "MixtureHead":
        return cls(config.dim, config.components)

    def forward(self, h: Tensor, noise_var: Tensor | None = None) -> Distribution:
        logits, mean, log_var = self.net(h).unflatten(-1, (3, self.components)).unbind(-2)
        nv = None if noise_var is None else noise_var.unsqueeze(-1)
        return pdist.MixtureSameFamily(
            pdist.Categorical(logits=logits, validate_args=False),
            pdist.Normal(mean, _variance(log_var, nv).sqrt(), validate_args=False),
            validate_args=False)


class FlowDistribution(Distribution):
    """A conditional flow bound to one context per star: batch (n_stars,), event (d,).

    ``x = T^{-1}(z; context)`` with ``z`` drawn from ``base`` (batch (n_stars,), event
    (d,)); the context is embedded once per star, not once per draw.
    """

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, transform: Transform, context: Tensor, base: Distribution,
                 chunk: int = 2 ** 18) -> None:
        self.transform, self.context, self.base, self.chunk = transform, context, base, chunk
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    def _rows(self, n: int) -> int:
        return max(1, self.chunk // max(n, 1))  # stars per transform call: bounded memory

    def sample(self, sample_shape: torch.Size | tuple = ()) -> Tensor:
        """Draws of shape ``sample_shape + (n_stars, d)``; one pass per flow layer."""
        n, (b, d) = math.prod(sample_shape), (*self.batch_shape, *self.event_shape)
        with torch.no_grad():
            z = self.base.sample((n,))  # (n, n_stars, d)
            x = torch.empty_like(z)
            for i in range(0, b, step := self._rows(n)):
                zi = z[:, i:i + step].transpose(0, 1).reshape(-1, d)
                ci = self.context[i:i + step].repeat_interleave(n, 0)
                x[:, i:i + step] = self.transform.inverse(zi, ci)[0].view(-1, n, d) \
                    .transpose(0, 1)
        return x.reshape(*sample_shape, b, d)

    def log_prob(self, value: Tensor) -> Tensor:
        """Joint log density of ``value`` (..., n_stars, d) -> (..., n_stars)."""
        b, d = self.batch_shape[0], self.event_shape[0]
        flat = value.reshape(-1, b, d)
        m = flat.shape[0]
        z, log_det = self.transform(flat.reshape(-1, d),
                                    self.context.repeat(m, 1))  # draw-major, like ``flat``
        lp = self.base.log_prob(z.view(m, b, d)) + log_det.view(m, b)
        return lp.reshape(value.shape[:-1])


class _SquashedInputs(nn.Module):
    """An autoregressive network that reads ``asinh`` of its inputs: a hot star's
    normalised Teff of 15 reaches it as 3.4, so conditioning on it never extrapolates far.
    Elementwise, so the autoregressive masks still hold; the variables themselves are
    not transformed."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, inputs: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(torch.asinh(inputs), context)


def _prepare(transform: AutoregressiveTransform, d: int, unit_slot: slice) -> None:
    """Squash the conditioner's inputs, and zero its last layer so that the transform
    starts as the identity for any context.

    ``unit_slot``: the parameters (per feature) whose unconstrained value must give a
    slope of 1 (affine scale, spline knot derivatives: ``softplus(u) + 1e-3 = 1``); the
    others (shift, bin widths and heights) are 0: no shift, equal bins.
    """
    final = transform.autoregressive_net.final_layer
    transform.autoregressive_net = _SquashedInputs(transform.autoregressive_net)
    nn.init.zeros_(final.weight)
    with torch.no_grad():
        bias = final.bias.view(d, -1)
        bias.zero_()
        bias[:, unit_slot] = math.log(math.expm1(1 - 1e-3))


class FlowHead(nn.Module):
    """Joint PDF of d <= ``max_dims`` requested names: the mixture head's marginals,
    coupled and reshaped by a conditional neural spline flow (nflows transforms).

    *Base.* The flow's base distribution is not a standard normal but the product of the
    mixture head's 1-D PDFs of the same names (held fixed in the flow's loss), and every
    layer starts as the identity: an untrained flow *is* the independent mixture, with
    its exact, label-deconvolved marginals (two peaks where the question is ambiguous).
    The flow learns what independent marginals cannot say: how the names depend on each
    other (Teff-logg along the giant branch, [Fe/H]-[alpha/M]...).

    *Varying targets.* One small flow per dimensionality d. The names are put in
    vocabulary order and the flow for d is conditioned on an embedding of the
    concatenated decoder features of those d names, so the context says which names
    they are and what is known of the star; any subset of the joint names can be asked.
    Training scores a label a star lacks as a draw from the mixture's answer (see
    ``probstar.train.head_losses``), so every flow sees every kind of star.
    Layers: a masked affine autoregressive transform (linear dependence), a reversal,
    and a rational-quadratic spline autoregressive transform (non-linear dependence),
    both in inverse-autoregressive orientation so that sampling is one pass per layer;
    their conditioners read ``asinh`` of the values (no far extrapolation for a hot
    star's Teff), and the spline is the identity beyond +-``tail_bound``.

    *Label noise.* The base is the deconvolved (true-value) mixture, but a flow has no
    closed-form convolution with the label error, so the coupling layers are fitted to
    the noisy labels and may widen the answer by about the label error (5-15% of the
    width, ``validation/pdf_heads.py`` section 3). Training them on a base convolved with
    each label's error instead made no measurable difference (benchmark/NOTES.md, "Label
    noise in the flow's base").
    """

    name = "flow"
    base_head = "mixture"  # the head whose 1-D PDFs are the flow's base distribution

    def __init__(self, dim: int, max_dims: int = 4, context: int = 64, hidden: int = 32,
                 bins: int = 8, tail_bound: float = 5.0) -> None:
        super().__init__()
        self.max_dims = max_dims
        self.transforms = nn.ModuleList(self._transform(d, context, hidden, bins, tail_bound)
                                        for d in range(1, max_dims + 1))
        self.embeddings = nn.ModuleList(nn.Sequential(nn.Linear(d * dim, context), nn.GELU())
                                        for d in range(1, max_dims + 1))

    @classmethod
    def from_config(cls, config) -> "FlowHead":
        return cls(config.dim, len(config.joint_names))

    @staticmethod
    def _transform(d: int, context: int, hidden: int, bins: int,
                   tail_bound: float) -> Transform:
        affine = MaskedAffineAutoregressiveTransform(d, hidden, context, num_blocks=1)
        spline = SplineAutoregressiveTransform(
            d, hidden, context, num_bins=bins, tails="linear", tail_bound=tail_bound,
            num_blocks=1)
        _prepare(affine, d, slice(0, 1))
        _prepare(spline, d, slice(2 * bins, None))
        return CompositeTransform([InverseTransform(affine), ReversePermutation(d),
                                   InverseTransform(spline), ReversePermutation(d)])

    def forward(self, h: Tensor, base: Distribution) -> FlowDistribution:
        """Features (n_stars, d, dim) of d names in vocabulary order and their 1-D base
        PDFs (batch (n_stars, d)) -> joint distribution, batch (n_stars,), event (d,)."""
        d = h.shape[1]
        if not 1 <= d <= self.max_dims:
            raise ValueError(f"the flow head models 1 to {self.max_dims} names jointly, "
                             f"got {d}")
        context = self.embeddings[d - 1](h.flatten(1))
        return FlowDistribution(self.transforms[d - 1], context, Independent(base, 1))


HEADS[FlowHead.name] = FlowHead


def make_head(name: str, config) -> nn.Module:
    """The head registered as ``name``, sized by a ``ModelConfig``."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; available: {', '.join(sorted(HEADS))}")
    return HEADS[name].from_config(config)
