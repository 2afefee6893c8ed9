"""The question: observations of stars in, a :class:`Posterior` over requested names out.

>>> import probstar
>>> model = probstar.load_model()                       # the shipped model
>>> post = model.posterior({"teff": [4000.0]}, ["logg"])  # Teff-only question
>>> post.median().shape
(1, 1)
"""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.distributions import LowRankMultivariateNormal, Normal

from .checkpoint import CheckpointError, load_checkpoint
from .data.observations import Observations, star_rows
from .evaluate import INPUT_SETS, predicted_medians, robust_scatter
from .model.heads import MARGINAL_HEADS
from .model.network import N_SCALARS, ProbStarNet
from .posterior import Posterior
from .recalibration import KINDS, Recalibration, context_kind
from .spectra import SPECTRUM_INPUTS, check_width_scales, spectrum_nll
from .train import LABEL_ERROR_MAX
from .vocab import COLOURS, LABEL_NAMES, NAMES, VOCAB, Normalization, index_of

__all__ = ["Model", "load_model", "predict", "DEFAULT_MODEL"]

DEFAULT_MODEL = "default"
_LABELS = index_of(list(LABEL_NAMES))


def shipped_model_path() -> Path:
    return Path(str(resources.files("probstar") / "models" / DEFAULT_MODEL))


def load_model(path: str | Path | None = None) -> "Model":
    """A trained model from a folder (``model.safetensors`` + ``config.json``); default:
    shipped."""
    folder = shipped_model_path() if path is None else Path(path)
    net, normalization, meta = load_checkpoint(folder)
    # answers need gradients for inputs at most (MCMC), never for the weights; fine-tuning
    # sets requires_grad itself (probstar.train)
    net.requires_grad_(False)
    try:
        return Model(net, normalization, meta)
    except ValueError as exc:  # a bad recalibration entry: name the file
        raise CheckpointError(f"{folder / 'config.json'}: {exc}") from None


def as_observations(data: Any) -> Observations:
    """Observations from anything a reader takes; a dict of scalars is one star."""
    from .data.tables import read_table

    if isinstance(data, Observations):
        return data.validate()
    if isinstance(data, dict):
        data = {k: np.atleast_1d(np.asarray(v)) if np.ndim(v) == 0 else v
                for k, v in data.items()}
    return read_table(data)


def _name_mask(names: Sequence[str]) -> torch.Tensor:
    """(n_names,) True at the vocabulary indices of ``names``."""
    mask = torch.zeros(len(NAMES), dtype=torch.bool)
    mask[index_of(list(names)) if len(names) else []] = True
    return mask


def _listed(mask: torch.Tensor) -> str:
    """The names where ``mask`` (n_names,) is True, XP pixels shortened to one range."""
    names = [NAMES[i] for i in mask.nonzero().flatten().tolist()]
    pixels = [n for n in names if n.startswith("xp_")]
    if len(pixels) > 1:
        names = [n for n in names if not n.startswith("xp_")] + \
            [f"XP pixels ({pixels[0]}-{pixels[-1].removeprefix('xp_')})"]
    return ", ".join(names)


def _hide(values: torch.Tensor, hidden: Sequence[int]) -> None:
    """Set the names ``hidden`` (vocabulary indices) to NaN in ``values`` (n_stars,
    n_names), in place, and where a star has a hidden magnitude, the colours made from
    it: they would give it back (bp_rp and rp say bp)."""
    for colour, magnitudes in COLOURS.items():
        from_hidden = [i for i in index_of(list(magnitudes)) if i in hidden]
        if from_hidden:
            values[torch.isfinite(values[:, from_hidden]).any(1), index_of(colour)[0]] = \
                torch.nan
    values[:, list(hidden)] = torch.nan


def _check_every_star_has_input(values: torch.Tensor, given: torch.Tensor) -> None:
    """Raise when a star has nothing left to condition on: the network's answer to an
    empty context is not the population's distribution (the shipped model's training
    drew its rare empty contexts mostly from hot stars without some labels, and it says
    Teff ~ 9,000 K)."""
    empty = ~torch.isfinite(values).any(1)
    if not empty.any():
        return
    why = ("their only values are of requested (or ignored) quantities, which are not "
           "used as inputs" if given[empty].all() else "every quantity is missing")
    raise ValueError(f"{star_rows(empty.numpy())} have no input to condition on: {why}; "
                     "drop those rows or give them an observation")


class Model:
    """A trained network with its normalisation: answers questions about stars."""

    def __init__(self, net: ProbStarNet, normalization: Normalization, meta: dict) -> None:
        self.net = net.eval()
        self.normalization = normalization
        self.meta = meta
        self.trained_names = tuple(meta.get("trained_names", NAMES[:N_SCALARS]))
        self.input_names = tuple(meta.get("input_names", self.trained_names))
        self.recalibration = Recalibration.from_dict(meta.get("recalibration", {}))
        self.spectrum_widths = check_width_scales(meta.get("spectrum_widths", {}))
        #: the spectrum likelihood's temperature (probstar.inverse.fit_temperature); 1 = none
        self.likelihood_temperature = meta.get("likelihood_temperature", 1.0)
        if not isinstance(self.likelihood_temperature, (int, float)) or \
                not np.isfinite(self.likelihood_temperature) or self.likelihood_temperature <= 0:
            raise ValueError(f"likelihood_temperature must be a positive number, got "
                             f"{self.likelihood_temperature!r}")
        self._untrained = torch.tensor(
            [n not in self.input_names and i < N_SCALARS for i, n in enumerate(NAMES)])
        train = meta.get("train", {})
        #: the smallest label error (x the label's scale) the network was trained to read;
        #: a smaller one counts as none (see :meth:`_inputs`)
        self.label_error_min = float(train.get("label_error_min", 0.02)) \
            if train.get("label_errors") else 0.0
        #: names the network saw always with an error / never with one (older checkpoints
        #: do not say: then neither; see :meth:`_inputs`; benchmark/errors_seen.py wrote
        #: them for the shipped models)
        self._errors_always, self._errors_never = (
            _name_mask(meta.get(key, [])) for key in ("errors_always", "errors_never"))

    def __repr__(self) -> str:
        c = self.net.config
        heads = self.heads + ("spectrum",) * self.has_spectrum
        return (f"Model(heads={heads}, dim={c.dim}, layers={c.encoder_layers}+"
                f"{c.decoder_layers}, epoch={self.meta.get('epoch')})")

    def _request(self, request: Sequence[str] | str) -> list[int]:
        idx = index_of([request] if isinstance(request, str) else list(request))
        pixels = [i for i in idx if i >= N_SCALARS]
        if pixels and not self.has_spectrum:
            raise ValueError(f"this model cannot predict XP pixels ({NAMES[pixels[0]]}...): "
                             "it has no spectrum head")
        if pixels and len(pixels) != len(idx):
            raise ValueError("ask for XP pixels and scalar quantities in separate questions: "
                             "the spectrum head answers pixels only")
        for i in idx:
            if i >= N_SCALARS or NAMES[i] in self.trained_names:
                continue
            if not (self.net.config.tied_queries and NAMES[i] in self.input_names):
                raise ValueError(f"this model cannot predict {NAMES[i]!r}: it was trained to "
                                 f"predict {', '.join(self.trained_names)}")
            warnings.warn(f"{NAMES[i]!r} was never a training target of this model: its "
                          "answer is an unseen request (query from its input embedding)",
                          stacklevel=3)
        if len(set(idx)) != len(idx):
            raise ValueError(f"the request names a quantity twice: {list(request)}")
        return idx

    def _inputs(self, obs: Observations,
                hidden: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised values and errors for the network, the names ``hidden`` (requested
        or ignored) taken out (:func:`_hide`), and which stars gave any value at all
        before that (n_stars,). A label error below the smallest
        the network was trained with counts as none: the network never saw one, and its
        answers to it are extrapolations that drift away from the error-free answer
        (Teff-only logg, shipped model: 10% dwarfs at 4000 K without an error, 3% at
        +- 2 K; ``benchmark/label_errors.py``). Likewise the errors of names trained
        without any are left out, with a warning, and names always trained with one are
        refused without it (``benchmark/input_errors.md``: read by the network, typical
        photometric errors took Teff from photometry from 208 K to 837 K scatter, and a
        spectrum without flux errors from 90 K to 801 K)."""
        v, s = map(torch.as_tensor, self.normalization.apply(obs.values, obs.errors))
        given = torch.isfinite(v).any(1)
        _hide(v, hidden)
        s[:, _LABELS] = torch.where(s[:, _LABELS] < self.label_error_min, torch.nan,
                                    s[:, _LABELS])
        shown = torch.isfinite(v)
        too_wide = shown & (s > LABEL_ERROR_MAX)
        if self.label_error_min and too_wide[:, _LABELS].any():
            wide = [i for i in _LABELS if too_wide[:, i].any()]
            largest = ", ".join(f"{NAMES[i]} {LABEL_ERROR_MAX * self.normalization.scale[i]:.3g}"
                                f" {VOCAB[i].unit}" for i in wide)
            warnings.warn(f"label errors above the largest the network was trained with "
                          f"({largest}): the answers to them are extrapolations",
                          stacklevel=3)
        unread = shown & torch.isfinite(s) & self._errors_never
        if unread.any():
            warnings.warn(f"this model was trained on {_listed(unread.any(0))} without "
                          "measurement errors (its answers carry the training data's own "
                          "noise): the given errors are not used", stacklevel=3)
            s[unread] = torch.nan
        lacking = shown & ~torch.isfinite(s) & self._errors_always
        if lacking.any():
            raise ValueError(
                f"this model was trained on {_listed(lacking.any(0))} always with its "
                f"measurement error, and {star_rows(lacking.any(1).numpy())} give "
                "it without one: its answer would be an extrapolation (for XP spectra, "
                "garbage). Give the errors (flux_error, xp_<nm>_err or <name>_err "
                "columns).")
        ignored = (torch.isfinite(v) & self._untrained).any(0)
        if ignored.any():
            names = [NAMES[i] for i in ignored.nonzero().flatten().tolist()]
            warnings.warn(f"this model was not trained with {', '.join(names)}; "
                          "ignoring those inputs", stacklevel=3)
            v[:, self._untrained] = torch.nan
        return v, s, given

    @property
    def heads(self) -> tuple[str, ...]:
        """The heads that answer scalar quantities (see also :attr:`has_spectrum`)."""
        return self.net.config.outputs

    @property
    def has_spectrum(self) -> bool:
        """True when the model answers XP pixels (its spectrum head)."""
        return self.net.spectrum is not None

    @property
    def default_head(self) -> str:
        """The 1-D head used when none is named: the mixture (best in
        validation/pdf_heads.md) when the model has one."""
        marginal = [h for h in self.heads if h in MARGINAL_HEADS] or list(self.heads)
        return "mixture" if "mixture" in marginal else marginal[0]

    def _head(self, head: str | None, names: list[str]) -> str:
        if names[0].startswith("xp_"):  # _request: all pixels or none
            if head not in (None, "spectrum"):
                raise ValueError(f"XP pixels are answered by the spectrum head, not {head!r}")
            return "spectrum"
        if head == "spectrum":
            raise ValueError("the spectrum head answers XP pixels only; request e.g. 'xp' "
                             "or 'xp_600-1020'")
        if head is None:  # several names: their joint PDF where the flow models them
            joint = "flow" in self.heads and len(names) > 1 and \
                set(names) <= set(self.net.config.joint_names)
            return "flow" if joint else self.default_head
        if head not in self.heads:
            raise ValueError(f"this model has no {head!r} head; it has {', '.join(self.heads)}")
        if head == "flow" and not set(names) <= set(self.net.config.joint_names):
            raise ValueError(f"the flow head models {', '.join(self.net.config.joint_names)} "
                             f"jointly; {names} is outside that set (use head="
                             f"{self.default_head!r} for independent 1-D PDFs)")
        return head

    def posterior(self, data: Any, request: Sequence[str] | str, head: str | None = None,
                  ignore: Sequence[str] | str = (), calibrated: bool = True,
                  batch_size: int = 2048) -> Posterior:
        """The distribution of ``request`` given the observations in ``data``, per star.

        ``head``: ``"flow"`` gives the joint PDF of the requested names (correlations
        kept), ``"mixture"`` / ``"gaussian"`` independent 1-D PDFs; by default several
        names get the joint and one name the best 1-D head. XP pixels (``"xp"``,
        ``"xp_600-1020"``...) are answered by the spectrum head: a joint normal over the
        noise-free median-normalised flux of the requested pixels. Requested quantities
        present in ``data`` (e.g. the APOGEE labels of a library table) are not used as
        inputs, nor are the names in ``ignore``, nor, with a hidden magnitude, the colours
        made from it (a table's colours may have been derived from it); a star left with
        no input at all is a ValueError (the network's answer to an empty context is not
        the population's). ``calibrated``: apply the model's recalibration
        (``probstar.recalibration``) to 1-D mixture answers, and its width scales
        (``probstar.spectra``) to spectrum answers, when it has them. Tables and
        dicts get absent colours derived from their magnitudes; ``Observations`` are used
        as they are (call ``derive_colours()`` on them for the same answers).
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        query = self._request(request)
        query.sort()  # vocabulary order: the order the flow was trained in
        names = [NAMES[i] for i in query]
        head = self._head(head, names)
        obs = as_observations(data)
        if len(obs) == 0:
            raise ValueError("no stars to answer for: the input holds 0 rows")
        ignore = [ignore] if isinstance(ignore, str) else list(ignore)
        v, s, given = self._inputs(obs, query + (index_of(ignore) if ignore else []))
        _check_every_star_has_input(v, given)
        device = next(self.net.parameters()).device
        loc = torch.as_tensor(self.normalization.loc[query], device=device)
        scale = torch.as_tensor(self.normalization.scale[query], device=device)
        batches = [(v[i:i + batch_size].to(device), s[i:i + batch_size].to(device))
                   for i in range(0, len(obs), batch_size)]
        if head == "spectrum":
            widths = [self.spectrum_widths.get(KINDS[k], 1.0) if calibrated else 1.0
                      for k in context_kind(v)]
            joint, marginals = self._pixels(batches, query, torch.tensor(widths))
            return Posterior(joint, names, loc, scale, marginals, joint=True)
        q = torch.tensor(query, device=device)
        with torch.inference_mode():
            h = torch.cat([self.net(*b, q) for b in batches])
        h = h.clone()  # a normal tensor: inference-mode ones refuse later autograd use
        dist = self.net.distribution(head, h)
        if calibrated and head == "mixture":
            dist = self.recalibration.apply(dist, context_kind(v), query)
        if head in MARGINAL_HEADS:
            return Posterior.independent(dist, names, loc, scale)
        return Posterior(dist, names, loc, scale)

    def _pixels(self, batches, query: list[int],
                widths: torch.Tensor) -> tuple[LowRankMultivariateNormal, Normal]:
        """The spectrum head's joint normal over the ``query`` pixels (normalised units),
        standard deviations scaled per star by ``widths``, and its exact 1-D marginals."""
        with torch.inference_mode():
            parts = [self.net.spectrum_distribution(*b) for b in batches]
        pixels = torch.tensor(query) - N_SCALARS
        loc, factor, diag = (torch.cat([getattr(p, k) for p in parts])[:, pixels].clone()
                             for k in ("loc", "cov_factor", "cov_diag"))
        widths = widths.to(loc)
        factor, diag = factor * widths[:, None, None], diag * widths[:, None] ** 2
        joint = LowRankMultivariateNormal(loc, factor, diag, validate_args=False)
        return joint, Normal(loc, joint.variance.sqrt(), validate_args=False)

    def predict(self, data: Any, request: Sequence[str] | str, head: str | None = None,
                ignore: Sequence[str] | str = ()) -> dict[str, np.ndarray]:
        """Summary columns (``<name>_median``, ``_std``, ``_q16``, ``_q84``...), input order.

        The default head is the model's best 1-D head (exact quantiles), or the spectrum
        head for XP pixels.
        """
        if head is None:
            pixels = max(index_of(request)) >= N_SCALARS  # (posterior() checks it)
            head = "spectrum" if pixels else self.default_head
        return self.posterior(data, request, head, ignore).summary()

    def spectrum_scores(self, obs: Observations,
                        inputs: Sequence[str] = SPECTRUM_INPUTS) -> dict[str, float]:
        """How well the spectrum head predicts the observed XP spectra of ``obs`` from
        ``inputs`` alone: NLL per pixel (flux noise convolved; lower is better)."""
        post = self.posterior(obs.only(inputs), "xp")
        return {"xp_nll": float(np.nanmean(spectrum_nll(post, obs)))}

    def scores(self, obs: Observations, inputs: Sequence[str] = INPUT_SETS["xp+colours"],
               targets: Sequence[str] = ("teff", "logg", "fe_h"),
               head: str | None = None) -> dict[str, float]:
        """Robust scatter of the posterior median (of ``head``; default: the model's
        default head) against the labels of ``obs``, for the targets the model was
        trained to predict (a model trained without [Fe/H] is scored on the others)."""
        targets = [name for name in targets if name in self.trained_names]
        medians = predicted_medians(self, obs, inputs, targets, head)
        return {name: robust_scatter(obs.column(name), m) for name, m in medians.items()}


def predict(data: Any, request: Sequence[str] | str, model: str | Path | Model | None = None,
            head: str | None = None, ignore: Sequence[str] | str = ()) -> dict[str, np.ndarray]:
    """One call: summary columns of ``request`` for each star of ``data``."""
    if not isinstance(model, Model):
        model = load_model(model)
    return model.predict(data, request, head, ignore)
