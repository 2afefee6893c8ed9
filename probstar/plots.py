"""Plots of an answer: the corner plot of one star's scalar query (a reference
overplotted) and the predicted XP spectrum with its bands against an observed one.

The probstar PDF is drawn from joint samples with the ``corner`` package; for 1-D heads
the exact marginal density is drawn over each diagonal histogram. A reference (e.g.
held-out stars that satisfy the same condition) is overplotted in another colour, and
true values as lines.
"""

from __future__ import annotations

from typing import Sequence

import corner
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .posterior import Posterior
from .vocab import NAMES, VOCAB, XP_NAMES, XP_WAVELENGTHS

__all__ = ["axis_label", "condition_text", "corner_plot", "spectrum_plot"]

SYMBOLS = {"teff": r"$T_\mathrm{eff}$", "logg": r"$\log g$", "fe_h": "[Fe/H]",
           "alpha_m": r"[$\alpha$/M]", "ak": r"$A_K$", "bp_rp": r"$G_\mathrm{BP}-G_\mathrm{RP}$",
           "j_h": "$J-H$", "j_k": r"$J-K_s$", "g": "$G$", "bp": r"$G_\mathrm{BP}$",
           "rp": r"$G_\mathrm{RP}$", "j": "$J$", "h": "$H$", "k": "$K_s$",
           "parallax": r"$\varpi$"}
PDF_COLOUR, REFERENCE_COLOUR, TRUTH_COLOUR = "#1f5fa8", "#e07b00", "black"


def axis_label(name: str) -> str:
    """A quantity's symbol and unit, e.g. ``$T_\\mathrm{eff}$ [K]``."""
    unit = VOCAB[NAMES.index(name)].unit
    return f"{SYMBOLS.get(name, name)} [{unit}]"


def condition_text(name: str, value: float) -> str:
    """A given value with its symbol and unit, e.g. Teff = 4000 K in mathtext."""
    unit = VOCAB[NAMES.index(name)].unit.replace(" (cgs)", "")
    return f"{SYMBOLS.get(name, name)} = {value:g} {unit}"


def _ranges(*sets: np.ndarray | None) -> list[tuple[float, float]]:
    data = np.concatenate([np.atleast_2d(s) for s in sets if s is not None and len(s)])
    lo, hi = np.nanpercentile(data, 0.5, axis=0), np.nanpercentile(data, 99.5, axis=0)
    pad = 0.08 * (hi - lo) + 1e-6
    return list(zip(lo - pad, hi + pad))


def corner_plot(posterior: Posterior, star: int = 0, *, n: int = 5000, seed: int = 0,
                reference: np.ndarray | None = None, reference_label: str = "reference",
                truths: Sequence[float] | None = None, title: str | None = None) -> Figure:
    """Corner plot of ``posterior`` for star ``star``.

    ``reference`` (m, n_names) is overplotted as a second distribution (e.g. held-out
    stars satisfying the same condition); ``truths`` (n_names,) as lines (e.g. the star's
    APOGEE values). Axes carry symbols and units; ``title`` says the question.
    """
    if not 0 <= star < len(posterior):
        raise IndexError(f"star {star} is out of range: the posterior holds "
                         f"{len(posterior)} star(s)")
    names = posterior.names
    d = len(names)
    samples = posterior.sample(n, seed=seed)[:, star, :].astype(np.float64)
    if reference is not None:
        reference = np.asarray(reference, np.float64).reshape(-1, d)
        reference = reference[np.isfinite(reference).all(1)]
    if truths is not None:
        truths = np.asarray(truths, np.float64).reshape(d)
    ranges = _ranges(samples, reference, None if truths is None else truths[None])
    labels = [axis_label(name) for name in names]
    style = dict(range=ranges, bins=40, labels=labels, smooth=1.0 if d > 1 else None,
                 plot_datapoints=False, levels=(0.393, 0.865), fill_contours=False,
                 hist_kwargs={"density": True, "lw": 1.2}, label_kwargs={"fontsize": 11})
    fig = corner.corner(samples, color=PDF_COLOUR, **{**style, "hist_kwargs": {
        **style["hist_kwargs"], "color": PDF_COLOUR, "alpha": 0.6 if not posterior.joint
        else 1.0}})
    if d == 1:
        fig.set_size_inches(6.4, 4.4)
    axes = np.asarray(fig.axes).reshape(d, d)
    if not posterior.joint:  # exact 1-D densities over the sampled histograms
        for j, name in enumerate(names):
            x = np.linspace(*ranges[j], 400)
            axes[j, j].plot(x, posterior.pdf(name, x)[star], color=PDF_COLOUR, lw=2)
    handles = [Line2D([], [], color=PDF_COLOUR, lw=2, label="probstar PDF")]
    if reference is not None and len(reference):
        few = len(reference) < 200
        corner.corner(reference, fig=fig, color=REFERENCE_COLOUR,
                      **{**style, "bins": 20 if len(reference) < 100 else 40,
                         "plot_datapoints": few, "plot_density": False,
                         "plot_contours": not few, "data_kwargs": {"alpha": 0.8, "ms": 3},
                         "hist_kwargs": {**style["hist_kwargs"], "color": REFERENCE_COLOUR}})
        handles.append(Line2D([], [], color=REFERENCE_COLOUR, lw=2,
                              label=f"{reference_label} ({len(reference)})"))
    if truths is not None:
        if d > 1:
            corner.overplot_lines(fig, truths, color=TRUTH_COLOUR, ls="--", lw=1.2)
            corner.overplot_points(fig, truths[None], marker="*", color=TRUTH_COLOUR, ms=10)
        else:  # (corner's overplotting expects a grid of axes)
            axes[0, 0].axvline(truths[0], color=TRUTH_COLOUR, ls="--", lw=1.2)
        handles.append(Line2D([], [], color=TRUTH_COLOUR, ls="--", label="true value"))
    for j in range(d):
        axes[j, j].set_ylabel("" if d > 1 else "probability density")
        axes[j, j].set_ylim(bottom=0)
    if d == 1:
        axes[0, 0].legend(handles=handles, loc="best", frameon=False, fontsize=9)
    else:
        fig.legend(handles=handles, loc="upper right", frameon=False, fontsize=10,
                   bbox_to_anchor=(0.98, 0.98))
    if title:
        fig.suptitle(title, fontsize=12, y=1.02 if d > 1 else 1.0)
    return fig


def spectrum_plot(posterior: Posterior, star: int = 0, *, observed: np.ndarray | None = None,
                  observed_err: np.ndarray | None = None, ax=None, title: str | None = None,
                  label: str = "probstar"):
    """The predicted XP spectrum of star ``star`` (mean, 68% and 95% bands of the
    noise-free flux) against wavelength; ``observed`` (n_pixels,) with its errors is
    overplotted. Returns the axes."""
    import matplotlib.pyplot as plt

    if not 0 <= star < len(posterior):
        raise IndexError(f"star {star} is out of range: the posterior holds "
                         f"{len(posterior)} star(s)")
    if not all(n in XP_NAMES for n in posterior.names):
        raise ValueError("spectrum_plot needs a posterior over XP pixels (request 'xp')")
    wave = XP_WAVELENGTHS[[XP_NAMES.index(n) for n in posterior.names]]
    mean, std = posterior.mean()[star], posterior.std()[star]
    if ax is None:
        ax = plt.subplots(figsize=(7.5, 3.8))[1]
    ax.fill_between(wave, mean - 2 * std, mean + 2 * std, color=PDF_COLOUR, alpha=0.15,
                    lw=0, label=f"{label} 95%")
    ax.fill_between(wave, mean - std, mean + std, color=PDF_COLOUR, alpha=0.35, lw=0,
                    label=f"{label} 68%")
    ax.plot(wave, mean, color=PDF_COLOUR, lw=1.2, label=f"{label} mean")
    if observed is not None:
        err = None if observed_err is None else np.asarray(observed_err)
        ax.errorbar(wave, observed, yerr=err, fmt=".", ms=2.5, lw=0.6,
                    color=REFERENCE_COLOUR, label="observed (1 sigma)", zorder=3)
    ax.set_xlabel("wavelength [nm]")
    ax.set_ylabel("flux / median flux")
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax
