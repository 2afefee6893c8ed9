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
  (d <= ``max_dims``) into one d-dimensional distribution, a conditional neural spline
  flow (nflows). See its docstring for how the varying set of names and label noise
  are handled.

Heads register themselves in ``HEADS`` by ``name``; ``make_head(name, config)`` builds one.
"""

from __future__ import annotations

import math

import pyro.distributions as pdist
import torch
from nflows.distributions import StandardNormal
from nflows.flows import Flow
from nflows.transforms import CompositeTransform, InverseTransform, \
    MaskedAffineAutoregressiveTransform, MaskedPiecewiseRationalQuadraticAutoregressiveTransform, \
    ReversePermutation
from torch import Tensor, nn
from torch.distributions import Distribution, Normal, constraints

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
    """A conditional flow bound to one context per star: batch (n_stars,), event (d,)."""

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, flow: Flow, context: Tensor, d: int, chunk: int = 2 ** 18) -> None:
        self.flow, self.context, self.chunk = flow, context, chunk
        super().__init__(context.shape[:1], torch.Size([d]), validate_args=False)

    def sample(self, sample_shape: torch.Size | tuple = ()) -> Tensor:
        """Draws of shape ``sample_shape + (n_stars, d)``; one flow pass per draw."""
        n = math.prod(sample_shape)
        stars = max(1, self.chunk // max(n, 1))  # bound the rows per flow call
        with torch.no_grad():
            parts = [self.flow.sample(n, self.context[i:i + stars])  # (stars, n, d)
                     for i in range(0, self.context.shape[0], stars)]
        x = torch.cat(parts).transpose(0, 1)  # (n, n_stars, d)
        return x.reshape(*sample_shape, *self.batch_shape, *self.event_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        """Joint log density of ``value`` (..., n_stars, d) -> (..., n_stars)."""
        shape = value.shape[:-1]
        b, d = self.batch_shape[0], self.event_shape[0]
        flat = value.reshape(-1, b, d)
        context = self.context.unsqueeze(0).expand(flat.shape[0], -1, -1)
        lp = self.flow.log_prob(flat.reshape(-1, d), context.reshape(-1, context.shape[-1]))
        return lp.reshape(shape)


class FlowHead(nn.Module):
    """Joint PDF of d <= ``max_dims`` requested names: a conditional neural spline flow.

    *Varying targets.* One flow per dimensionality d (small: most parameters live in the
    shared decoder). The names are put in vocabulary order and the flow for d is
    conditioned on the concatenated decoder features of those d names, so the features
    say which names they are and what is known of the star; any subset of the trained
    joint names can be asked. Each flow is a conditional masked affine autoregressive
    layer (it standardises: conditional shift, scale and linear correlations) and a
    rational-quadratic spline autoregressive layer (multimodality, skewness), nflows'
    implementation, on a standard-normal base.

    *Label noise.* A flow has no closed-form convolution with the label error, so this
    head is fitted to the noisy labels: its PDF is that of an APOGEE-like *measurement*,
    slightly wider than the true-value PDF. ``validation/pdf_heads.py`` measures the
    effect against the exactly deconvolved mixture head.
    """

    name = "flow"

    def __init__(self, dim: int, max_dims: int = 4, context: int = 64, hidden: int = 32,
                 bins: int = 8, tail_bound: float = 5.0) -> None:
        super().__init__()
        self.max_dims = max_dims
        self.flows = nn.ModuleList(self._flow(d, dim, context, hidden, bins, tail_bound)
                                   for d in range(1, max_dims + 1))

    @classmethod
    def from_config(cls, config) -> "FlowHead":
        return cls(config.dim, len(config.joint_names))

    @staticmethod
    def _flow(d: int, dim: int, context: int, hidden: int, bins: int,
              tail_bound: float) -> Flow:
        # Inverse-autoregressive orientation: sampling is one pass per layer (the d
        # sequential passes fall on log_prob, which training evaluates on small batches).
        # One affine and one spline layer: 1,000 draws for 4,000 stars in ~10 s on 2 cores.
        affine = MaskedAffineAutoregressiveTransform(d, hidden, context, num_blocks=1)
        spline = MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
            d, hidden, context, num_bins=bins, tails="linear", tail_bound=tail_bound,
            num_blocks=1)
        layers = [InverseTransform(affine), ReversePermutation(d), InverseTransform(spline)]
        embed = nn.Sequential(nn.Linear(d * dim, context), nn.GELU())
        return Flow(CompositeTransform(layers), StandardNormal([d]), embedding_net=embed)

    def forward(self, h: Tensor) -> FlowDistribution:
        """Features (n_stars, d, dim) of d names in vocabulary order -> joint distribution."""
        d = h.shape[1]
        if not 1 <= d <= self.max_dims:
            raise ValueError(f"the flow head models 1 to {self.max_dims} names jointly, "
                             f"got {d}")
        return FlowDistribution(self.flows[d - 1], h.flatten(1), d)

    def loss(self, h: Tensor, y: Tensor) -> Tensor:
        """Negative log-likelihood (n_stars,) of labels ``y`` (n_stars, d)."""
        return -self(h).log_prob(y)


HEADS[FlowHead.name] = FlowHead


def make_head(name: str, config) -> nn.Module:
    """The head registered as ``name``, sized by a ``ModelConfig``."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; available: {', '.join(sorted(HEADS))}")
    return HEADS[name].from_config(config)
