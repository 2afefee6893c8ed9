"""Training: random observed subsets in, every hidden quantity out.

Each step, every star in the batch shows the network a random context and is asked
for *all* of its hidden scalar quantities at once (several targets per star per step;
the queries are independent, so this is the paper's one-target objective evaluated
for every target). The context recipe:

- the spectrum is shown whole (``p_full_spectrum``), not at all (``p_no_spectrum``) or as
  a random subset of 7-pixel chunks (the rest; with probability ``p_window`` one random
  contiguous window of chunks instead, the inpainting question);
- each scalar is kept with a per-star probability u ~ U(0, 1) (so very short contexts,
  a single token included, are common), and with probability ``p_hide_labels`` all of
  Teff, logg, [Fe/H], [alpha/M] are hidden (the main use: labels from observables),
  and with probability ``p_hide_magnitudes`` all six magnitudes are (colours without the
  magnitudes they come from are otherwise a rare context; with it the simulated model
  reads Teff + colours + parallax as well as the exact answer, benchmark/NOTES.md);
- with probability ``p_labels_only`` the context is a random subset of the labels and
  A_K only, no spectrum and no photometry ("given Teff = 4000 K, what is logg?"): each
  kept with the star's probability u, or (``labels_only_max``) 1 to that many of those
  the star has (picking among all five gave empty contexts, mostly of hot stars without
  some labels: the shipped real model, trained so, says Teff ~ 9,000 K to one);
- with probability ``p_few_scalars`` the context is 1 to ``few_scalars_max`` random
  scalars of any kind (labels, magnitudes, colours, parallax), no spectrum: "Teff and
  two colours" is otherwise a rare context (benchmark/input_information.md);
- ``drop_names`` are removed from the training data altogether (a model pre-trained
  without a quantity, to fine-tune on later) and ``input_only`` names are shown but
  never scored (with ``tied_queries``, a test of requests never trained); fine-tuning
  with ``new_tokens`` then trains only those names' embedding rows (with tied queries,
  their query too) on a pre-trained model;
- with ``label_errors``, a label shown as an input never carries its APOGEE error: that
  error says what kind of star it is (ASPCAP errors differ between giants and dwarfs),
  a shortcut that turns "Teff = 4000 +- 30 K" into a different question from
  "Teff = 4000 +- 10 K". Instead half the shown labels come without an error and half
  with a synthetic measurement error sigma (log-uniform, ``label_error_min`` to 0.5 of
  the label's scale) that is also added to the value as Gaussian noise: the model learns
  to read an input error as measurement uncertainty only. An error below the trained
  range is an extrapolation: with the first recipe's 0.02 (22 K in Teff), a Teff-only
  answer at +- 5 K differed from the one at +- 30 K by more than the exact answers do
  (benchmark/NOTES.md); a small ``label_error_min`` trains the limit of a negligible
  error, which must join the error-free answer.

The loss sums the heads' negative log-likelihoods of the noisy labels: each marginal
head scores every hidden label (the label's variance convolved in); the flow head
scores one random subset (1 to 4 names) of each star's hidden labels jointly, on the
mixture head's PDFs of those names as its (fixed) base. The 1-D heads weigh each
target but the labels and A_K (magnitudes, colours, parallax) by ``photometry_weight``:
at full weight, learning them smooths the Teff-only answer for logg, whose giant branch
then ends too high (benchmark/NOTES.md). A model with a spectrum head also scores every
hidden observed pixel (``SpectrumHead.loss``, flux noise convolved in; a trunk frozen
with ``train_only="spectrum"`` trains that head alone). AdamW, linear warm-up then
cosine decay; with ``ema`` the weights evaluated and saved are an exponential moving
average of the trained ones (the optimizer steps the raw weights). ``init_from`` starts
from the weights (those whose names and shapes match) and the normalisation of a
trained model: fine-tuning. Every ``checkpoint_every`` epochs the
run folder gets, each file written atomically: the model (safetensors + config JSON),
the best-on-validation model in ``best/``, the learning curve, and ``train_state.pt``
(weights, optimizer and RNG state of the same epoch, loaded with ``weights_only=True``),
from which ``resume=True`` continues an interrupted run exactly.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from .checkpoint import CONFIG, load_checkpoint, load_train_state, read_checkpoint, \
    save_checkpoint, save_train_state
from .data.observations import Observations
from .evaluate import joint_log_density
from .model.heads import MARGINAL_HEADS
from .model.network import N_PIXELS, N_SCALARS, ModelConfig, ProbStarNet
from .model.spectrum import SpectrumHead
from .vocab import LABEL_NAMES, NAMES, Normalization, index_of

__all__ = ["TrainConfig", "PRESETS", "train", "sample_context", "errors_seen", "joint_subsets",
           "head_losses", "moving_average", "training_targets", "TrainingTargets"]

CHUNK = 7  # pixels per masking chunk (343 = 49 x 7)
LABELS = index_of(LABEL_NAMES)  # vocabulary columns of teff, logg, fe_h, alpha_m
LABEL_ERROR_MAX = 0.5  # largest synthetic label error (label_errors), x the label's scale
ENCODER_PARTS = ("scalars.", "regions.", "star", "encoder.", "ln_memory.")  # freeze_encoder
PARAMETERS = LABELS + index_of(["ak"])  # what labels-only contexts show
MAGNITUDES = index_of(["g", "bp", "rp", "j", "h", "k"])  # hidden together (p_hide_magnitudes)
PARAMETER_MASK = torch.zeros(len(NAMES), dtype=torch.bool)
PARAMETER_MASK[PARAMETERS] = True


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the architecture is in ``model``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 100
    batch_size: int = 512
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.01
    warmup: float = 0.03  # fraction of steps with a linear warm-up
    p_full_spectrum: float = 0.5
    p_no_spectrum: float = 0.15
    p_window: float = 0.0  # partial spectra shown as one contiguous window of chunks
    p_hide_labels: float = 0.5
    p_hide_magnitudes: float = 0.0  # contexts with colours but none of the six magnitudes
    p_labels_only: float = 0.0
    labels_only_max: int = 0  # labels-only contexts show 1..this many parameters (0: each
    # parameter kept with the star's keep probability u)
    photometry_weight: float = 1.0  # loss weight of every target but the labels and A_K
    # (magnitudes, colours, parallax) against their 1 (see the recipe)
    p_few_scalars: float = 0.0  # contexts of 1..few_scalars_max random scalars only
    few_scalars_max: int = 4
    label_errors: bool = False  # labels as inputs: synthetic errors or none (see recipe)
    label_error_min: float = 0.02  # smallest synthetic label error, x the label's scale
    init_from: str = ""  # a model folder to start from (fine-tuning); "" = from scratch
    freeze_encoder: bool = False  # train only the decoder and heads (token embedding and
    # encoder fixed): fine-tuning new heads at ~2x the speed
    train_only: str = ""  # comma-separated parameter-name prefixes that train ("" = all)
    reinit: str = ""  # comma-separated parameter-name prefixes that start afresh, not from
    # init_from (a head retrained from its initialisation)
    drop_names: str = ""  # comma-separated names removed from the training data (never seen)
    input_only: str = ""  # comma-separated names shown as inputs, never trained as targets
    new_tokens: str = ""  # comma-separated names whose embedding rows alone train (a new
    # token added to a trained model: every other weight stays as it is)
    ema: float = 0.0  # decay per step of a moving average of the trained weights, which
    # is what is evaluated and saved (0 = the raw weights); see moving_average
    seed: int = 0
    checkpoint_every: int = 5  # epochs
    device: str = "auto"  # "cpu", "cuda" or "auto"
    threads: int = 0  # torch CPU threads; 0 = torch default

    def __post_init__(self) -> None:
        for f in ("epochs", "batch_size", "checkpoint_every"):
            if getattr(self, f) < 1:
                raise ValueError(f"TrainConfig.{f} must be >= 1, got {getattr(self, f)}")
        for f in ("p_full_spectrum", "p_no_spectrum", "p_window", "p_hide_labels",
                  "p_hide_magnitudes", "p_labels_only", "warmup"):
            if not 0 <= getattr(self, f) <= 1:
                raise ValueError(f"TrainConfig.{f} must be a probability, got "
                                 f"{getattr(self, f)}")
        if self.new_tokens and (self.train_only or self.freeze_encoder):
            raise ValueError("TrainConfig.new_tokens trains those names' embedding rows "
                             "only: it cannot be combined with train_only / freeze_encoder")
        if self.p_full_spectrum + self.p_no_spectrum > 1:
            raise ValueError("TrainConfig.p_full_spectrum + p_no_spectrum must be <= 1")
        if not 0 <= self.p_few_scalars <= 1 or self.few_scalars_max < 1:
            raise ValueError("TrainConfig.p_few_scalars must be in [0, 1] and "
                             f"few_scalars_max >= 1, got {self.p_few_scalars}, "
                             f"{self.few_scalars_max}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"TrainConfig.ema must be in [0, 1), got {self.ema}")
        if self.photometry_weight < 0:
            raise ValueError("TrainConfig.photometry_weight must be >= 0, got "
                             f"{self.photometry_weight}")
        if not 0 < self.label_error_min < 0.5:
            raise ValueError("TrainConfig.label_error_min must be in (0, 0.5), got "
                             f"{self.label_error_min}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        return cls(model=ModelConfig.from_dict(d.pop("model")), **d)

    def with_settings(self, pairs: list[str]) -> "TrainConfig":
        """A copy with ``key=value`` settings applied (model fields included; tuples
        comma-separated), as ``probstar train --set`` takes them."""
        model_fields = {f.name for f in fields(self.model)}
        train_fields = {f.name for f in fields(self)} - {"model"}
        model_kw, train_kw = {}, {}
        for pair in pairs:
            key, sep, text = pair.partition("=")
            if not sep:
                raise ValueError(f"--set expects key=value, got {pair!r}")
            if key not in model_fields | train_fields:
                raise ValueError(f"--set: unknown setting {key!r}; settings: "
                                 f"{', '.join(sorted(model_fields | train_fields))}")
            kind = type(getattr(self.model if key in model_fields else self, key))
            try:
                value = text.lower() in ("1", "true", "yes") if kind is bool else \
                    tuple(filter(None, text.split(","))) if kind is tuple else kind(text)
            except ValueError:
                raise ValueError(f"--set {key}: expected {kind.__name__}, got {text!r}") \
                    from None
            (model_kw if key in model_fields else train_kw)[key] = value
        return replace(self, model=replace(self.model, **model_kw), **train_kw)


PRESETS: dict[str, TrainConfig] = {
    # 2 CPU cores: few tokens (4 XP regions), shallow and narrow, trained mostly on the
    # full-spectrum task; ~1,600 training stars/s (benchmark/cpu_throughput.py).
    "cpu": TrainConfig(ModelConfig(dim=128, heads=4, encoder_layers=2, decoder_layers=1,
                                   ff_mult=2, xp_regions=4, region_hidden=512),
                       epochs=160, batch_size=512, lr=1e-3, p_full_spectrum=0.6,
                       p_hide_labels=0.6, threads=2),
    # One GPU: the shipped model.
    "gpu": TrainConfig(ModelConfig(dim=192, heads=6, encoder_layers=4, decoder_layers=2,
                                   region_hidden=384, dropout=0.05),
                       epochs=600, batch_size=1024, lr=5e-4),
    # The simulated population (scalars only, no spectra; validation/simulation.py).
    "sim": TrainConfig(ModelConfig(dim=96, heads=4, encoder_layers=2, decoder_layers=1,
                                   ff_mult=2, xp_regions=1, region_hidden=16),
                       epochs=8, batch_size=512, lr=1e-3, p_full_spectrum=0.0,
                       p_no_spectrum=1.0, p_labels_only=0.5, labels_only_max=2,
                       label_errors=True, checkpoint_every=1, threads=2),
    # The simulated population on one GPU (benchmark/gpu_simulated.py): wider and deeper,
    # larger batches, millions of stars. One epoch on an H100 did not yet beat the `sim`
    # model that ships (benchmark/NOTES.md, "GPU session 4").
    "sim_gpu": TrainConfig(ModelConfig(dim=192, heads=6, encoder_layers=4, decoder_layers=2,
                                       xp_regions=1, region_hidden=16),
                           epochs=20, batch_size=2048, lr=1e-3, p_full_spectrum=0.0,
                           p_no_spectrum=1.0, p_labels_only=0.5, labels_only_max=2,
                           label_errors=True, checkpoint_every=1),
    # Seconds: for tests and a first look.
    "smoke": TrainConfig(ModelConfig(dim=32, heads=2, encoder_layers=1, decoder_layers=1,
                                     region_hidden=32), epochs=2, batch_size=256,
                         checkpoint_every=1),
}


def sample_context(values: torch.Tensor, sigmas: torch.Tensor, cfg: TrainConfig,
                   g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide a random part of each star (values, sigmas (B, V), NaN = absent) following the
    recipe; returns the shown values and their errors."""
    b, dev = values.shape[0], values.device

    def rand(*shape):
        return torch.rand(*shape, generator=g, device=dev)

    keep_prob = rand(b, 1)
    keep_scalar = rand(b, N_SCALARS) < keep_prob
    hide = rand(b, 1) < cfg.p_hide_labels
    keep_scalar[:, LABELS] &= ~hide
    if cfg.p_hide_magnitudes:  # (no extra draws otherwise: older recipes replay exactly)
        keep_scalar[:, MAGNITUDES] &= ~(rand(b, 1) < cfg.p_hide_magnitudes)
    mode = rand(b, 1)
    chunk_keep = rand(b, N_PIXELS // CHUNK) < rand(b, 1)
    if cfg.p_window:  # (no extra draws otherwise: older recipes replay exactly)
        n_chunks, chunk = N_PIXELS // CHUNK, torch.arange(N_PIXELS // CHUNK, device=dev)
        length = 1 + (rand(b, 1) * (n_chunks - 1)).long()
        start = (rand(b, 1) * (n_chunks - length + 1)).long()
        window = (chunk >= start) & (chunk < start + length)
        chunk_keep = torch.where(rand(b, 1) < cfg.p_window, window, chunk_keep)
    keep_pixel = torch.where(mode < cfg.p_full_spectrum, True,
                             torch.where(mode < cfg.p_full_spectrum + cfg.p_no_spectrum,
                                         False, chunk_keep.repeat_interleave(CHUNK, 1)))
    keep = torch.cat([keep_scalar, keep_pixel], 1)
    labels_only = rand(b, 1) < cfg.p_labels_only
    if cfg.labels_only_max:
        absent = ~torch.isfinite(values[:, PARAMETERS])  # a random order of them, the
        rank = (rand(b, len(PARAMETERS)) + absent).argsort(1).argsort(1)  # star's own first
        count = 1 + (rand(b, 1) * cfg.labels_only_max).long()
        few = torch.zeros_like(keep)
        few[:, PARAMETERS] = rank < count
    else:
        few = PARAMETER_MASK.to(dev) & (rand(*keep.shape) < keep_prob)
    keep = torch.where(labels_only, few, keep)
    if cfg.p_few_scalars:  # (no extra draws otherwise: older recipes replay exactly)
        rank = rand(b, N_SCALARS).argsort(1).argsort(1)
        count = 1 + (rand(b, 1) * cfg.few_scalars_max).long()
        few_scalars = torch.zeros_like(keep)
        few_scalars[:, :N_SCALARS] = rank < count
        keep = torch.where(rand(b, 1) < cfg.p_few_scalars, few_scalars, keep)
    values = torch.where(keep, values, torch.nan)
    if cfg.label_errors:
        low = math.log(cfg.label_error_min)
        synthetic = torch.exp(low + rand(b, len(LABELS)) * (math.log(LABEL_ERROR_MAX) - low))
        with_error = rand(b, len(LABELS)) < 0.5
        noise = torch.randn(b, len(LABELS), generator=g, device=dev) * synthetic
        values, sigmas = values.clone(), sigmas.clone()
        values[:, LABELS] += torch.where(with_error, noise, 0.0)
        sigmas[:, LABELS] = torch.where(with_error, synthetic, torch.nan)
    return values, sigmas


def errors_seen(values: torch.Tensor, sigmas: torch.Tensor,
                cfg: TrainConfig) -> dict[str, list[str]]:
    """The names the network saw always with a measurement error, and never with one
    (every XP pixel as one ``"xp"``), for the checkpoint: the question API refuses the
    first without an error and leaves out the given errors of the second, answers to
    either being extrapolations (``probstar.query.Model._inputs``). Under
    ``label_errors`` the labels are shown with and without errors; without it a label
    given without one is still taken (the common question), so labels are neither."""
    if not cfg.model.use_errors:
        return {"errors_always": [], "errors_never": []}
    present = torch.isfinite(values)
    with_error = (present & torch.isfinite(sigmas)).sum(0)
    used = present.sum(0) > 0
    status = {"errors_always": used & (with_error == present.sum(0)),
              "errors_never": used & (with_error == 0)}
    out = {}
    for key, mask in status.items():
        mask[LABELS] = False
        names = [NAMES[i] for i in mask.nonzero().flatten().tolist()]
        pixels = [n for n in names if n.startswith("xp_")]
        if len(pixels) == len(index_of("xp")):
            names = [n for n in names if not n.startswith("xp_")] + ["xp"]
        out[key] = names
    return out


def joint_subsets(eligible: torch.Tensor, max_dims: int,
                  g: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A random non-empty subset of each star's eligible columns, grouped by size.

    ``eligible`` (B, Q) bool. The subset size is uniform in 1..min(n_eligible, max_dims);
    returns ``[(rows (n,), cols (n, d) in increasing order), ...]`` for d = 1..max_dims.
    """
    b, dev = eligible.shape[0], eligible.device
    n = eligible.sum(1)
    size = (torch.rand(b, generator=g, device=dev) * n.clamp(max=max_dims)).long() + 1
    score = torch.rand(eligible.shape, generator=g, device=dev) + eligible.float()
    order = score.argsort(1, descending=True)  # eligible columns first, shuffled
    groups = []
    for d in range(1, max_dims + 1):
        rows = ((size == d) & (n > 0)).nonzero().flatten()
        if rows.numel():
            groups.append((rows, order[rows, :d].sort(1).values))
    return groups


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def moving_average(net: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``net``'s weights (torch's ``AveragedModel``):
    after update t, ``w <- d w + (1 - d) p`` with d = min(decay, (1 + t) / (10 + t)), so
    that the start does not weigh on the average for long.

    The raw weights of the last steps wander around the optimum with the gradient noise
    (a flow's validation medians moved by ~1 K from one epoch to the next at the end of
    a cosine schedule); their average sits nearer to it.
    """
    def ramped(averaged: list, current: list, updates: torch.Tensor) -> None:
        t = int(updates)
        torch._foreach_lerp_(averaged, current, 1 - min(decay, (1 + t) / (10 + t)))

    average = AveragedModel(net, multi_avg_fn=ramped)
    average.update_parameters(net)  # the start: a copy
    return average


def _lr_factor(step: int, total: int, warmup: float) -> float:
    w = max(1, int(warmup * total))
    if step < w:
        return (step + 1) / w
    progress = (step - w) / max(1, total - w)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def normalized_tensors(obs: Observations, norm: Normalization,
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised values and errors as float32 tensors (NaN = absent)."""
    v, s = norm.apply(obs.values, obs.errors)
    return torch.as_tensor(v, device=device), torch.as_tensor(s, device=device)


def forward_grouped(fn, values: torch.Tensor, sigmas: torch.Tensor,
                    *rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``fn(values, sigmas, *rows)`` (a tuple of tensors per star), contexts without a
    spectrum run as their own batch.

    On a CPU the network drops tokens that no star of a batch has, so a batch of short
    contexts (a few labels) costs a fraction of one with spectra; the result is the same.
    """
    short = ~torch.isfinite(values[:, N_SCALARS:]).any(1)
    if short.all() or not short.any():
        return fn(values, sigmas, *rows)
    parts = [fn(values[g], sigmas[g], *(r[g] for r in rows)) for g in (short, ~short)]
    merged = []
    for a, b in zip(*parts):
        out = a.new_empty(values.shape[0], *a.shape[1:])
        out[short], out[~short] = a, b
        merged.append(out)
    return tuple(merged)


def encoded_outputs(net: ProbStarNet, context: torch.Tensor, context_sigmas: torch.Tensor,
                    values: torch.Tensor, sigmas: torch.Tensor,
                    query: torch.Tensor | None = None, spectrum: bool = False,
                    grouped: bool | None = None
                    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Both kinds of training output from one encoder pass: the decoder features
    (B, Q, dim) of the ``query`` names (None without a query), and, with ``spectrum``,
    the spectrum head's mean negative log-likelihood per hidden observed XP pixel, flux
    noise convolved (else None). ``values``/``sigmas``: the whole stars, of which
    ``context`` shows a part. ``grouped`` (default: on a CPU) runs contexts without a
    spectrum apart (:func:`forward_grouped`); on a GPU, where a step's time is the
    host's, one pass over the whole batch is faster."""
    pixels = ()  # per star: flux, flux noise variance, scored (hidden and observed)
    if spectrum:
        flux = values[:, N_SCALARS:]
        scored = torch.isfinite(flux) & ~torch.isfinite(context[:, N_SCALARS:])
        pixels = (torch.nan_to_num(flux), torch.nan_to_num(sigmas[:, N_SCALARS:]) ** 2,
                  scored)

    def outputs(v, s, *pixels):
        memory, absent = net.memory(v, s)
        h = net.decode(memory, absent, query) if query is not None else v[:, :0]
        nll = SpectrumHead.loss(net.spectrum(memory, absent), *pixels) if spectrum \
            else v.new_zeros(v.shape[0])
        return h, nll

    if grouped is None:
        grouped = not context.is_cuda
    if grouped:
        h, per_star = forward_grouped(outputs, context, context_sigmas, *pixels)
    else:
        h, per_star = outputs(context, context_sigmas, *pixels)
    return (h if query is not None else None,
            per_star.sum() / scored.sum().clamp(min=1) if spectrum else None)


def head_losses(net: ProbStarNet, h: torch.Tensor, y: torch.Tensor, var: torch.Tensor,
                hidden: torch.Tensor, joint: torch.Tensor, g: torch.Generator,
                missing: torch.Tensor | None = None,
                weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Mean negative log-likelihood per label dimension of each head, on hidden labels.

    ``h`` (B, Q, dim) decoder features of the target columns, ``y``/``var`` their labels
    and label variances, ``hidden`` which labels count, ``joint`` the columns the flow
    head models. ``weight`` (Q,): each column's weight in the marginal heads' mean (1 by
    default). ``missing``: labels the data lacks. The flow scores them too, as a draw
    from the mixture's answer: without them a flow over (teff, logg, fe_h) would never
    see a star that has no [Fe/H] label (ASPCAP gives none above ~7000 K) and would
    extrapolate there; with them it learns, for such stars, no dependence beyond the
    model's own marginals.
    """
    losses = {}
    for name, head in net.outputs.items():
        if name in MARGINAL_HEADS:
            nll = head.loss(h, y, var)
            weighted = hidden if weight is None else hidden * weight
            losses[name] = (nll * weighted).sum() / hidden.sum().clamp(min=1)
            continue
        scored, eligible = y, hidden
        if missing is not None and missing.any():  # (no draw, no change to the generator's
            # stream, where every label exists: a simulated population)
            scored = torch.where(missing, _draw(net.outputs[head.base_head], h, g), y)
            eligible = hidden | missing
        total, dims = h.new_zeros(()), 0
        for rows, cols in joint_subsets(eligible[:, joint], head.max_dims, g):
            cols = joint[cols]
            joint_pdf = net.distribution(name, h[rows[:, None], cols])
            total = total - joint_pdf.log_prob(scored[rows[:, None], cols]).sum()
            dims += cols.numel()
        losses[name] = total / max(dims, 1)
    return losses


@torch.no_grad()
def _draw(mixture: torch.nn.Module, h: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One draw from the mixture head's 1-D answers for features ``h`` (B, Q, dim),
    using the training generator ``g`` (reproducible, resumable)."""
    pdf = mixture(h)
    weights = pdf.mixture_distribution.probs
    k = torch.multinomial(weights.flatten(0, -2), 1, generator=g).view(*weights.shape[:-1], 1)
    comp = pdf.component_distribution
    loc, scale = comp.loc.gather(-1, k)[..., 0], comp.scale.gather(-1, k)[..., 0]
    return loc + scale * torch.randn(loc.shape, generator=g, device=loc.device)


def _quality(scores: dict[str, float], norm: Normalization, scalars: bool,
             spectrum: bool) -> float:
    """What picks the best checkpoint: the mean scaled scatter of the scalar scores (or,
    for a flow training alone, minus its joint log density) and/or the spectrum's
    validation NLL per pixel, whichever parts train."""
    quality = 0.0
    if "joint_log_density" in scores:
        quality -= scores["joint_log_density"]
    elif scalars:
        quality += float(np.mean([v / norm.scale[index_of(k)[0]] for k, v in scores.items()
                                  if not k.startswith("xp_")]))
    if spectrum:
        quality += scores["xp_nll"]
    return quality


def _names(names: str) -> list[int]:
    """Vocabulary columns of a comma-separated list of scalar names."""
    listed = [n for n in names.split(",") if n]
    idx = index_of(listed) if listed else []
    if any(i >= N_SCALARS for i in idx):
        raise ValueError(f"drop_names / input_only / new_tokens take scalar names, got "
                         f"{names!r}")
    return idx


def _scored_head(net: ProbStarNet) -> str | None:
    """The head whose validation answers pick the best checkpoint: the one head that
    trains when it is the only scalar part training (say, a flow retrained on a fixed
    network, whose answers alone can change), else None (the model's default answer)."""
    parts = {name.split(".")[1] if name.startswith("outputs.") else name
             for name, p in net.named_parameters()
             if p.requires_grad and not name.startswith("spectrum.")}
    return next(iter(parts)) if len(parts) == 1 and parts <= set(net.outputs) else None


def _prefixes(names: str) -> tuple[str, ...]:
    """A comma-separated setting (``train_only``, ``reinit``) as a tuple of prefixes."""
    return tuple(filter(None, names.split(",")))


def _init_from(net: ProbStarNet, folder: str, reinit: tuple[str, ...] = ()) -> Normalization:
    """Copy the matching weights of a trained model into ``net``, except those named by
    a prefix in ``reinit`` (they keep ``net``'s initialisation); its normalisation."""
    _, theirs, norm = read_checkpoint(folder)  # whatever its architecture
    mine = net.state_dict()
    if reinit and not any(k.startswith(reinit) for k in mine):
        raise ValueError(f"reinit={','.join(reinit)!r} matches no parameter")
    shared = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape
              and not k.startswith(reinit)}
    if not shared:
        raise ValueError(f"{folder}: no weights in common with this architecture")
    net.load_state_dict(shared, strict=False)
    return norm


class TrainingTargets(NamedTuple):
    """What a training run scores, from its normalised data (see :func:`training_targets`)."""

    shown: torch.Tensor  # (N_SCALARS,) bool: the scalar names the data has
    trained: torch.Tensor  # vocabulary columns scored as targets (shown, not input_only)
    y: torch.Tensor  # (n_stars, len(trained)) their labels (NaN = absent)
    var: torch.Tensor  # their label variances (0 = unknown)
    weight: torch.Tensor | None  # per target column (photometry_weight); None = all 1
    joint: torch.Tensor  # positions in ``trained`` of the flow head's joint names


def training_targets(values: torch.Tensor, sigmas: torch.Tensor,
                     cfg: TrainConfig) -> TrainingTargets:
    """The targets of a run on ``values``/``sigmas`` (normalised, drop_names removed):
    every scalar the data has but the ``input_only`` ones, weighted as the recipe says."""
    shown = torch.isfinite(values[:, :N_SCALARS]).any(0)
    targets = shown.clone()
    targets[_names(cfg.input_only)] = False
    trained = targets.nonzero().flatten()
    weight = None if cfg.photometry_weight == 1 else torch.where(
        PARAMETER_MASK.to(values.device)[trained], 1.0, cfg.photometry_weight)
    joint = torch.tensor([i for i, t in enumerate(trained.tolist())
                          if NAMES[t] in cfg.model.joint_names], device=values.device)
    return TrainingTargets(shown, trained, values[:, trained],
                           torch.nan_to_num(sigmas[:, trained]) ** 2, weight, joint)


def train(cfg: TrainConfig, train_obs: Observations, val_obs: Observations, run_dir: str | Path,
          resume: bool = False, data_hash: str = "", progress: bool = True,
          stop_after: int | None = None) -> Path:
    """Train a network on ``train_obs``; checkpoints and a learning curve go to ``run_dir``.

    ``stop_after`` ends this call after that many epochs (a checkpoint is written), as an
    interruption would; ``resume=True`` later continues the same schedule.
    """
    from .query import Model  # evaluation uses the public question API

    run_dir = Path(run_dir)
    device = _device(cfg.device)
    # TF32 matmuls (CUDA only) are fast but too coarse for the spectrum head's Cholesky
    # factor: a from-scratch GPU run with it failed as "not positive-definite".
    torch.backends.cuda.matmul.allow_tf32 = not cfg.model.spectrum_layers
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    state_path, curve_path = run_dir / "train_state.pt", run_dir / "learning_curve.jsonl"

    if resume and (run_dir / CONFIG).exists():
        net, norm, meta = load_checkpoint(run_dir)
        saved = TrainConfig.from_dict(meta["train"])
        if replace(saved, device=cfg.device, threads=cfg.threads) != \
                replace(cfg, device=cfg.device, threads=cfg.threads):
            raise ValueError(f"{run_dir}: --resume needs the same training settings as the "
                             "interrupted run (see its config.json)")
        state = load_train_state(state_path)  # weights, optimizer and RNG of one epoch
        net.load_state_dict(state["model"])
        start_epoch = int(state["epoch"])
    else:
        if (run_dir / CONFIG).exists() and not resume:
            raise FileExistsError(f"{run_dir} already holds a run; use --resume to continue it "
                                  "or choose another --output")
        run_dir.mkdir(parents=True, exist_ok=True)
        curve_path.unlink(missing_ok=True)
        net, state, start_epoch = ProbStarNet(cfg.model), None, 0
        if cfg.init_from:
            norm = _init_from(net, cfg.init_from, _prefixes(cfg.reinit))
        else:
            norm = Normalization.fit(train_obs.values)
    net.to(device)
    only = _prefixes(cfg.train_only)
    new = torch.zeros(N_SCALARS, dtype=torch.bool, device=device)
    new[_names(cfg.new_tokens)] = True
    tune_new = bool(new.any())
    for name, p in net.named_parameters():
        if tune_new:  # only the new names' rows of the scalar embedding get gradients
            p.requires_grad_(name.startswith("scalars."))
            if p.requires_grad:
                p.register_hook(lambda grad: grad * new.view(-1, *(1,) * (grad.dim() - 1)))
        else:
            p.requires_grad_(not (cfg.freeze_encoder and name.startswith(ENCODER_PARTS))
                             and (not only or name.startswith(only)))
    if not any(p.requires_grad for p in net.parameters()):
        raise ValueError(f"train_only={cfg.train_only!r} matches no parameter")
    scalars_train = any(p.requires_grad for name, p in net.named_parameters()
                        if not name.startswith("spectrum."))
    scored_head = _scored_head(net)
    spectrum_trains = net.spectrum is not None and \
        any(p.requires_grad for p in net.spectrum.parameters())

    values, sigmas = normalized_tensors(train_obs, norm, device)
    values[:, _names(cfg.drop_names)] = torch.nan
    shown, trained, targets_y, targets_var, target_weight, joint = \
        training_targets(values, sigmas, cfg)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=0.0 if tune_new else cfg.weight_decay)  # (decay
    # would shrink the frozen rows of a partly trained embedding)
    average = moving_average(net, cfg.ema) if cfg.ema else None
    g = torch.Generator(device=device)
    g.manual_seed(cfg.seed)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        g.set_state(state["generator"].cpu())
        if "torch_rng" in state:  # dropout's draws (states saved before it lack them)
            torch.set_rng_state(state["torch_rng"])
            if device.type == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"], device)
        if average is not None:
            average.load_state_dict(state["average"])
    n = values.shape[0]
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    meta = {"train": cfg.to_dict(), "data_hash": data_hash,
            **errors_seen(values, sigmas, cfg),
            "trained_names": [NAMES[i] for i in trained.tolist()],
            "input_names": [NAMES[i] for i in shown.nonzero().flatten().tolist()]}

    best = state["best"] if state is not None else float("inf")
    bar = tqdm(total=total, initial=start_epoch * steps_per_epoch, disable=not progress,
               desc="training", unit="step", dynamic_ncols=True)
    end_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    for epoch in range(start_epoch, end_epoch):
        net.train()
        t0, stars_done = time.perf_counter(), 0
        order = torch.randperm(n, generator=g, device=device)
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = cfg.lr * _lr_factor(step, total, cfg.warmup)
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            context, context_sigmas = sample_context(values[idx], sigmas[idx], cfg, g)
            h, spectrum = encoded_outputs(net, context, context_sigmas, values[idx],
                                          sigmas[idx], trained if scalars_train else None,
                                          spectrum_trains)
            losses = {}
            if scalars_train:
                y, var = targets_y[idx], targets_var[idx]
                hidden = torch.isfinite(y) & ~torch.isfinite(context[:, trained])
                losses = head_losses(net, h, torch.nan_to_num(y), var, hidden, joint, g,
                                     ~torch.isfinite(y), target_weight)
            if spectrum_trains:
                losses["spectrum"] = spectrum
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad],
                                           1.0)
            opt.step()
            if average is not None:
                average.update_parameters(net)
            stars_done += idx.numel()
            bar.update(1)
            if i % 10 == 0:
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}",
                                stars_s=f"{stars_done / (time.perf_counter() - t0):.0f}")
        elapsed = time.perf_counter() - t0
        if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == end_epoch:
            scored = net if average is None else average.module  # what is scored and saved
            scored.eval()
            model = Model(scored, norm, meta)
            scores = model.scores(val_obs, head=scored_head)
            if scored_head == "flow":  # medians cannot see what a joint head is for
                scores["joint_log_density"] = joint_log_density(model, val_obs, "flow")
            if net.spectrum is not None:
                scores.update(model.spectrum_scores(val_obs))
            record = {"epoch": epoch + 1, "train_loss": loss.item(),
                      **{f"loss_{k}": v.item() for k, v in losses.items()},
                      "epoch_seconds": elapsed,
                      "stars_per_second": stars_done / elapsed, **scores}
            with open(curve_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            bar.set_postfix(epoch=epoch + 1, **{k: f"{v:.3g}" for k, v in scores.items()})
            save_checkpoint(run_dir, scored, norm, epoch=epoch + 1, **meta)
            quality = _quality(scores, norm, scalars_train, spectrum_trains)
            if quality < best:  # the best validation checkpoint is the one to ship
                best = quality
                save_checkpoint(run_dir / "best", scored, norm, epoch=epoch + 1, **meta)
            save_train_state(state_path, {"epoch": epoch + 1, "model": net.state_dict(),
                                          "optimizer": opt.state_dict(),
                                          "generator": g.get_state(), "best": best,
                                          "torch_rng": torch.get_rng_state(),
                                          "cuda_rng": torch.cuda.get_rng_state(device)
                                          if device.type == "cuda" else torch.empty(0),
                                          "average": {} if average is None
                                          else average.state_dict()})
    bar.close()
    return run_dir
