"""Accuracy of point estimates against held-out labels: robust scatter and bias.

Robust scatter is astropy's ``mad_std`` of (prediction - truth), i.e. 1.4826 times the
median absolute deviation; bias is the median of (prediction - truth). Both are
reported over all stars with a label and inside a Teff window (selected on the label).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .data.observations import Observations
from .vocab import XP_NAMES, resolve

MAD_TO_STD = 1.482602218505602  # 1 / Phi^-1(3/4), as astropy.stats.mad_std

__all__ = ["robust_scatter", "scatter_ratio", "median_bias", "predicted_medians",
           "posterior_medians", "answer_scores", "accuracy_rows", "INPUT_SETS", "format_table",
           "joint_log_density"]

#: Named input sets for reduced-input evaluations.
INPUT_SETS: dict[str, tuple[str, ...]] = {
    "xp+colours": (*XP_NAMES, "bp_rp", "j_h", "j_k"),
    "xp": XP_NAMES,
    "blue xp": tuple(n for n in XP_NAMES if int(n[3:]) < 680),  # 336-678 nm
    "photometry": ("g", "bp", "rp", "j", "h", "k", "bp_rp", "j_h", "j_k"),
}


def _mad(d: np.ndarray) -> np.ndarray:
    """Median absolute deviation along the last axis."""
    return np.median(np.abs(d - np.median(d, -1, keepdims=True)), -1)


def robust_scatter(truth: np.ndarray, pred: np.ndarray) -> float:
    """astropy mad_std of pred - truth (NaN pairs ignored), without needing astropy."""
    d = np.asarray(pred, float) - np.asarray(truth, float)
    d = d[np.isfinite(d)]
    return float(MAD_TO_STD * _mad(d)) if d.size else float("nan")


def scatter_ratio(truth: np.ndarray, pred: np.ndarray, reference: np.ndarray,
                  n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Robust scatter of ``pred`` over that of ``reference`` (same stars), and its 95%
    paired-bootstrap interval: both resampled with the same stars, so that what the two
    share (a hard star is hard for both) cancels. Below 1: ``pred`` is more accurate."""
    d = np.stack([np.asarray(pred, float) - truth, np.asarray(reference, float) - truth])
    d = d[:, np.isfinite(d).all(0)]
    idx = np.random.default_rng(seed).integers(0, d.shape[1], (n_boot, d.shape[1]))
    lo, hi = np.quantile(_mad(d[0][idx]) / _mad(d[1][idx]), [0.025, 0.975])
    return float(_mad(d[0]) / _mad(d[1])), float(lo), float(hi)


def median_bias(truth: np.ndarray, pred: np.ndarray) -> float:
    d = np.asarray(pred, float) - np.asarray(truth, float)
    return float(np.nanmedian(d)) if np.isfinite(d).any() else float("nan")


def predicted_medians(model, obs: Observations, inputs: Sequence[str],
                      targets: Sequence[str], head: str | None = None) -> dict[str, np.ndarray]:
    """Posterior median of each target for every star, seeing only ``inputs``.

    ``head`` defaults to the model's best 1-D head; "flow" gives joint-draw medians.
    """
    medians = posterior_medians(model.posterior(obs.only(inputs), targets,
                                                head or model.default_head))
    return {name: medians[resolve(name) or name] for name in targets}  # (aliases too)


def posterior_medians(post) -> dict[str, np.ndarray]:
    """The median of each name of a posterior, for every star (name -> (n_stars,))."""
    median = post.median()
    return {name: median[:, j] for j, name in enumerate(post.names)}


def joint_log_density(model, obs: Observations, head: str,
                      inputs: Sequence[str] = INPUT_SETS["xp+colours"],
                      targets: Sequence[str] = ("teff", "logg", "fe_h")) -> float:
    """Mean log density of ``head``'s answer at the labels of the stars of ``obs`` that
    have every target, seeing only ``inputs``: a 1-D head as the product of its
    marginals, the flow as its joint. Higher is better (a proper score, unlike the
    medians' scatter, and the only one here that sees the dependence between names)."""
    ok = np.all([np.isfinite(obs.column(n)) for n in targets], axis=0)
    subset = obs.select(np.flatnonzero(ok))
    post = model.posterior(subset.only(inputs), list(targets), head=head)
    labels = np.stack([subset.column(n) for n in post.names], -1)
    return float(np.mean(post.log_prob(labels)))


def answer_scores(model, obs: Observations, inputs: Sequence[str], name: str,
                  noise: np.ndarray | None = None, n_draws: int = 500) -> dict:
    """The raw (not recalibrated) mixture answer for ``name`` seeing only ``inputs``,
    scored against the labels of ``obs``: median per star, robust scatter and bias of
    it, coverage of the central 68% interval (``noise``: label errors to convolve
    with), and the median half-width of that interval. Stars with none of ``inputs``
    have no question to answer: their median is NaN and they are not scored."""
    from .calibration import coverage, pit

    asked = obs.has_any(inputs)
    truth = np.where(asked, obs.column(name), np.nan)
    post = model.posterior(obs.select(asked).only(inputs), name, head="mixture",
                           calibrated=False)
    if noise is not None and np.ndim(noise):
        noise = np.asarray(noise)[asked]
    u = pit(post.sample(n_draws, seed=0)[..., 0], truth[asked], noise)
    median = np.full(len(obs), np.nan, np.float32)
    median[asked] = post.median()[:, 0]
    return {"median": median, "scatter": robust_scatter(truth, median),
            "bias": median_bias(truth, median), "c68": float(coverage(u, [0.68])[0]),
            "width": float(np.nanmedian(post.quantile(0.84) - post.quantile(0.16)) / 2)}


def accuracy_rows(label: str, obs: Observations, predictions: dict[str, np.ndarray],
                  teff_window: tuple[float, float] = (3500.0, 6500.0)) -> list[dict]:
    """One row per predicted name: scatter and bias over all stars and in the Teff window."""
    teff = obs.column("teff")
    window = (teff > teff_window[0]) & (teff < teff_window[1])
    rows = []
    for name, pred in predictions.items():
        truth = obs.column(name)
        rows.append({"model": label, "name": name, "n": int(np.isfinite(truth).sum()),
                     "scatter": robust_scatter(truth, pred), "bias": median_bias(truth, pred),
                     "scatter_window": robust_scatter(truth[window], pred[window]),
                     "bias_window": median_bias(truth[window], pred[window])})
    return rows


def format_table(rows: Sequence[dict], teff_window=(3500, 6500)) -> str:
    """Markdown table of accuracy rows."""
    lo, hi = teff_window
    head = (f"| model | quantity | stars | robust scatter | bias | scatter {lo}<Teff<{hi} | "
            f"bias {lo}<Teff<{hi} |\n|---|---|---|---|---|---|---|\n")
    fmt = {"teff": "{:.1f}", "logg": "{:.3f}", "fe_h": "{:.3f}"}
    body = ""
    for r in rows:
        f = fmt.get(r["name"], "{:.3f}")
        body += (f"| {r['model']} | {r['name']} | {r['n']} | {f.format(r['scatter'])} | "
                 f"{f.format(r['bias'])} | {f.format(r['scatter_window'])} | "
                 f"{f.format(r['bias_window'])} |\n")
    return head + body
