"""The probstar network: a star is an unordered set of tokens, queried by name.

Tokens. A scalar observation (Teff, a magnitude, a colour...) becomes
``GELU(W_name @ [v, log sigma, known] + b_name)``: the Leung & Bovy (2023) embedding
``f(w v + b)`` extended with the value's uncertainty (``known`` = 0 when no error is
given). The 343-pixel XP spectrum becomes ``xp_regions`` tokens, one per contiguous
wavelength region: a small MLP with per-region first-layer weights reads the region's
pixels (value, log error, present flag each), so a partial spectrum is a set of partly
filled regions. A learned "star" token is always present, so the encoder never runs
on an empty set (an empty context still has an answer; the question API refuses one,
:mod:`probstar.query`).

Encoder: pre-LN self-attention over the present tokens, no positional encoding (the
set is permutation invariant). Decoder: one query per requested name cross-attends to
the encoded set; queries never see each other, so the answer for a name does not depend
on which other names are asked. A query is a learned vector per name, or
(``tied_queries``) a learned map of the name's own input-embedding weights, so that a
name only ever given as an input can still be asked for (an "unseen request"). Heads
turn the decoder outputs into distributions: 1-D per name (Gaussian, Gaussian mixture)
or joint over several names (a normalizing flow); all share the network, and a model
can carry several.
The spectrum head (``model/spectrum.py``) reads the encoded set with its own region
queries and returns a distribution over the XP pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, LowRankMultivariateNormal

from ..vocab import LABEL_NAMES, NAMES, SCALAR_NAMES, XP_NAMES
from .blocks import CrossBlock, region_index
from .heads import HEADS, make_head
from .spectrum import SpectrumHead

__all__ = ["ModelConfig", "ProbStarNet"]

N_SCALARS = len(SCALAR_NAMES)
N_PIXELS = len(XP_NAMES)
assert NAMES[:N_SCALARS] == SCALAR_NAMES and NAMES[N_SCALARS:] == XP_NAMES


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a probstar network (everything needed to rebuild it)."""

    dim: int = 128  # token / model width
    heads: int = 4  # attention heads
    encoder_layers: int = 3  # self-attention blocks over the observed tokens
    decoder_layers: int = 2  # cross-attention blocks of the queries
    ff_mult: int = 4  # feed-forward hidden width = ff_mult * dim
    xp_regions: int = 14  # spectral tokens: contiguous regions of the 343 XP pixels
    region_hidden: int = 256  # hidden width of the per-region pixel encoder
    use_errors: bool = True  # feed input uncertainties to the embedding
    dropout: float = 0.0
    outputs: tuple[str, ...] = ("gaussian", "mixture", "flow")  # heads (see heads.HEADS)
    components: int = 6  # Gaussians per mixture-head PDF
    joint_names: tuple[str, ...] = LABEL_NAMES  # what the flow head models jointly
    spectrum_layers: int = 0  # decoder blocks of the spectrum head; 0 = no spectrum head
    spectrum_rank: int = 8  # rank of the spectrum head's pixel covariance factor
    tied_queries: bool = False  # queries derived from the names' input embeddings
    value_frequencies: int = 0  # periodic features of each scalar value (ScalarEmbedding)

    def __post_init__(self) -> None:
        for f in ("dim", "heads", "encoder_layers", "decoder_layers", "ff_mult",
                  "xp_regions", "region_hidden"):
            if getattr(self, f) < 1:
                raise ValueError(f"ModelConfig.{f} must be >= 1, got {getattr(self, f)}")
        if self.dim % self.heads:
            raise ValueError(f"ModelConfig.dim ({self.dim}) must be divisible by heads "
                             f"({self.heads})")
        if self.xp_regions > N_PIXELS:
            raise ValueError(f"ModelConfig.xp_regions must be <= {N_PIXELS}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        unknown = [h for h in self.outputs if h not in HEADS]
        if unknown or not self.outputs:
            raise ValueError(f"ModelConfig.outputs: unknown head(s) {unknown} or none given; "
                             f"available: {', '.join(sorted(HEADS))}")
        needs = {getattr(HEADS[h], "base_head", None) for h in self.outputs} - {None}
        if not needs <= set(self.outputs):
            raise ValueError(f"ModelConfig.outputs {self.outputs}: the flow head needs the "
                             f"{', '.join(sorted(needs))} head (its base distribution)")
        if self.value_frequencies < 0:
            raise ValueError("ModelConfig.value_frequencies must be >= 0, got "
                             f"{self.value_frequencies}")
        if self.spectrum_layers < 0 or self.spectrum_rank < 1:
            raise ValueError("ModelConfig.spectrum_layers must be >= 0 and spectrum_rank >= 1")
        if not set(self.joint_names) <= set(SCALAR_NAMES) or \
                len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"ModelConfig.joint_names must be distinct scalar names, got "
                             f"{self.joint_names}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        if "head" in d:  # checkpoints before the PDF heads: one head named "head"
            d["outputs"] = [d.pop("head")]
        for f in ("outputs", "joint_names"):
            if f in d:
                d[f] = tuple(d[f])
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config field(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def _features(v: Tensor, sigma: Tensor, use_errors: bool) -> tuple[Tensor, Tensor]:
    """Per-value features [v, log sigma, sigma known] (zero where absent) and presence."""
    present = torch.isfinite(v)
    known = torch.isfinite(sigma) & present & use_errors
    log_sigma = torch.log(torch.where(known, sigma, 1.0).clamp(1e-4, 1e2))
    feats = torch.stack([torch.where(present, v, 0.0), torch.where(known, log_sigma, 0.0),
                         known.float()], -1)
    return feats, present


class ScalarEmbedding(nn.Module):
    """``GELU(W_name [v, log sigma, known] + P_name periodic(v) + b_name)``, one weight row
    per name.

    With ``frequencies`` > 0, ``periodic(v)`` is the sine and cosine of the normalised
    value at that many fixed frequencies, log-spaced from 1/4 to 8 cycles per unit (a
    unit is the name's population scatter): a sharp dependence on a value, such as the
    dwarf fraction's dip at the red clump's Teff, is then one linear map away instead of
    being left to the transformer to build from three plain features (Gorishniy et al.
    2022, periodic embeddings of numerical features). ``P`` starts at zero, so a model
    fine-tuned from one without it starts from the same answers. (An absent value's
    token is masked out of attention, so its features need not vanish.)
    """

    def __init__(self, n_names: int, dim: int, frequencies: int = 0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_names, 3, dim) / math.sqrt(3))
        self.bias = nn.Parameter(torch.randn(n_names, dim) * 0.1)
        self.periodic = nn.Parameter(torch.zeros(n_names, 2 * frequencies, dim)) \
            if frequencies else None
        self.register_buffer("angular", 2 * math.pi * torch.logspace(
            -2, 3, frequencies, base=2.0), persistent=False)

    def forward(self, feats: Tensor) -> Tensor:  # (B, S, 3) -> (B, S, dim)
        x = torch.einsum("bsf,sfd->bsd", feats, self.weight) + self.bias
        if self.periodic is not None:
            angle = feats[..., :1] * self.angular  # (B, S, F)
            periodic = torch.cat([angle.sin(), angle.cos()], -1)
            x = x + torch.einsum("bsf,sfd->bsd", periodic, self.periodic)
        return nn.functional.gelu(x)


class RegionEncoder(nn.Module):
    """One token per contiguous XP region: per-region linear layer, GELU, shared linear."""

    def __init__(self, n_regions: int, hidden: int, dim: int) -> None:
        super().__init__()
        index = region_index(n_regions, N_PIXELS)  # (R, W), padded with N_PIXELS
        width = index.shape[1]
        self.register_buffer("index", index, persistent=False)
        self.w1 = nn.Parameter(torch.randn(n_regions, 3 * width, hidden) / math.sqrt(3 * width))
        self.b1 = nn.Parameter(torch.zeros(n_regions, hidden))
        self.w2 = nn.Linear(hidden, dim)
        self.region = nn.Parameter(torch.randn(n_regions, dim) * 0.1)

    def forward(self, feats: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        """feats (B, 343, 3), present (B, 343) -> tokens (B, R, dim), token present (B, R)."""
        b = feats.shape[0]
        feats = torch.cat([feats, feats.new_zeros(b, 1, 3)], 1)[:, self.index]  # B R W 3
        present = torch.cat([present, present.new_zeros(b, 1)], 1)[:, self.index]
        x = feats.flatten(2)  # B R 3W
        h = nn.functional.gelu(torch.einsum("brf,rfh->brh", x, self.w1) + self.b1)
        return self.w2(h) + self.region, present.any(-1)


class ProbStarNet(nn.Module):
    """Observed set in, one feature vector per requested name out; ``outputs`` make PDFs."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = c = config
        self.scalars = ScalarEmbedding(N_SCALARS, c.dim, c.value_frequencies)
        self.regions = RegionEncoder(c.xp_regions, c.region_hidden, c.dim)
        self.star = nn.Parameter(torch.randn(1, 1, c.dim) * 0.1)
        layer = nn.TransformerEncoderLayer(c.dim, c.heads, c.ff_mult * c.dim, c.dropout,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.encoder_layers,
                                             enable_nested_tensor=False)
        self.ln_memory = nn.LayerNorm(c.dim)
        if c.tied_queries:  # [bias, weight rows] of a name's embedding -> its query
            self.query_map = nn.Sequential(nn.Linear(4 * c.dim, c.dim), nn.GELU(),
                                           nn.Linear(c.dim, c.dim))
        else:
            self.queries = nn.Parameter(torch.randn(N_SCALARS, c.dim) * 0.1)
        self.decoder = nn.ModuleList(CrossBlock(c.dim, c.heads, c.ff_mult * c.dim, c.dropout)
                                     for _ in range(c.decoder_layers))
        self.ln_out = nn.LayerNorm(c.dim)
        self.outputs = nn.ModuleDict({name: make_head(name, c) for name in c.outputs})
        self.spectrum = SpectrumHead(c.dim, c.heads, c.ff_mult * c.dim, c.xp_regions,
                                     c.spectrum_layers, c.spectrum_rank, N_PIXELS,
                                     c.dropout) if c.spectrum_layers else None

    def embed(self, values: Tensor, sigmas: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised values / errors (B, V), NaN = absent -> tokens (B, T, dim), absent (B, T)."""
        feats, present = _features(values, sigmas, self.config.use_errors)
        scalar_tokens = self.scalars(feats[:, :N_SCALARS])
        region_tokens, region_present = self.regions(feats[:, N_SCALARS:],
                                                     present[:, N_SCALARS:])
        b = values.shape[0]
        tokens = torch.cat([self.star.expand(b, -1, -1), scalar_tokens, region_tokens], 1)
        present = torch.cat([present.new_ones(b, 1), present[:, :N_SCALARS], region_present],
                            1)
        return tokens, ~present

    def encode(self, tokens: Tensor, absent: Tensor) -> Tensor:
        """Self-attention over the present tokens (order does not matter) -> memory."""
        return self.ln_memory(self.encoder(tokens, src_key_padding_mask=absent))

    def decode(self, memory: Tensor, absent: Tensor, query: Tensor) -> Tensor:
        """Query scalar indices (Q,) -> features (B, Q, dim)."""
        q = self.query_vectors(query).unsqueeze(0).expand(memory.shape[0], -1, -1)
        for block in self.decoder:
            q = block(q, memory, absent)
        return self.ln_out(q)

    def query_vectors(self, query: Tensor) -> Tensor:
        """Scalar indices (Q,) -> the decoder's query vectors (Q, dim)."""
        if not self.config.tied_queries:
            return self.queries[query]
        emb = self.scalars
        return self.query_map(torch.cat([emb.bias[query], emb.weight[query].flatten(1)], 1))

    def memory(self, values: Tensor, sigmas: Tensor,
               drop_absent: bool | None = None) -> tuple[Tensor, Tensor]:
        """Normalised values / errors (B, V) -> encoded set (B, T, dim), absent (B, T).

        Tokens that no star of the batch has are dropped (``drop_absent``; by default on
        a CPU, where it makes short contexts cheap). The answer is the same either way:
        on a GPU the mask would make the host wait for the device, which costs more."""
        tokens, absent = self.embed(values, sigmas)
        if drop_absent is None:
            drop_absent = not tokens.is_cuda
        if drop_absent:
            used = ~absent.all(0)
            tokens, absent = tokens[:, used], absent[:, used]
        return self.encode(tokens, absent), absent

    def forward(self, values: Tensor, sigmas: Tensor, query: Tensor) -> Tensor:
        """Features (B, Q, dim) of the requested scalar names ``query`` (Q,)."""
        return self.decode(*self.memory(values, sigmas), query)

    def spectrum_distribution(self, values: Tensor,
                              sigmas: Tensor) -> LowRankMultivariateNormal:
        """PDF of the noise-free XP spectrum (batch (B,), event (343,), normalised)."""
        if self.spectrum is None:
            raise ValueError("this model has no spectrum head (ModelConfig.spectrum_layers "
                             "= 0): it cannot predict XP pixels")
        return self.spectrum(*self.memory(values, sigmas))

    def distribution(self, head: str, h: Tensor) -> Distribution:
        """Features (B, Q, dim) -> the PDF of the Q names (normalised units) by ``head``:
        independent 1-D PDFs (batch (B, Q)) or, for the flow, their joint (batch (B,))."""
        out = self.outputs[head]
        if not hasattr(out, "base_head"):
            return out(h)
        with torch.no_grad():  # the base is fixed in the flow's loss: the mixture head is
            base = self.outputs[out.base_head](h)  # trained by its own (deconvolved) loss
        return out(h, base)
