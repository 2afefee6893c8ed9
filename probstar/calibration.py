"""Calibration metrics for probabilistic answers: is a 68% interval right 68% of the time?

Every function works on plain arrays, so it scores any model's output, not only
probstar's: ``draws`` are samples of the predictive distribution, shape
(n_draws, n_stars), and ``truth`` the true (or labelled) values, shape (n_stars,).

- :func:`pit`: probability integral transform values; uniform when calibrated. When
  the "truth" is itself a measurement with a Gaussian error (an APOGEE label), the
  prediction must be convolved with that error first (``noise``), otherwise even a
  perfect model looks over-confident.
- :func:`coverage`: the fraction of truths inside the central credible interval at
  each level, from the PIT values (inside the central ``level`` interval exactly when
  ``|PIT - 0.5| <= level / 2``), and :func:`binomial_band`, the range a calibrated
  model's coverage falls in by chance.
- :func:`crps` (continuous ranked probability score) and :func:`log_score`: proper
  scores, lower is better.
- :func:`sbc_ranks` and :func:`rank_uniformity`: simulation-based calibration (Talts
  et al. 2018) for posteriors of simulated stars, with a Kolmogorov-Smirnov test.
- :func:`reliability_diagram`: observed against nominal coverage, with the band.
- :func:`agreement` of two answers for the same star (e.g. MCMC and amortised), and
  :func:`expected_agreement`, how often two calibrated answers of given widths agree by
  chance: answers that carry different information disagree even when both are right.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import special, stats

__all__ = ["pit", "label_errors", "coverage", "binomial_band", "coverage_check", "crps",
           "log_score", "sbc_ranks", "rank_uniformity", "reliability_diagram", "agreement",
           "expected_agreement", "LEVELS", "CHECKED"]

#: Central-interval levels of the coverage curves (5% to 99%).
LEVELS = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.68, 0.7, 0.8, 0.9, 0.95, 0.99])
#: The levels :func:`coverage_check` checks.
CHECKED = (0.5, 0.68, 0.9, 0.95, 0.99)


def _check(draws: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    draws, truth = np.asarray(draws, float), np.asarray(truth, float)
    if draws.ndim < 1 or draws.shape[1:] != truth.shape:
        raise ValueError(f"draws must have shape (n_draws, *truth.shape) = (n, "
                         f"{', '.join(map(str, truth.shape))}), got {draws.shape}")
    if not np.isfinite(draws).all():
        raise ValueError("draws must be finite")
    return draws, truth


def pit(draws: np.ndarray, truth: np.ndarray, noise: np.ndarray | float | None = None,
        seed: int = 0, weights: np.ndarray | None = None) -> np.ndarray:
    """P(X <= truth) under the draws' distribution, per star (NaN where truth is NaN).

    ``noise``: the standard deviation of a Gaussian error on ``truth``; the draws are
    then convolved with it, ``mean(Phi((truth - x) / noise))``. Without noise, ties are
    broken at random (``seed``), so that a discrete set of draws still gives uniform PIT.
    ``weights`` (non-negative, broadcastable to the draws' shape): importance weights of
    the draws, e.g. to score a reweighted posterior; the means above become weighted.
    """
    draws, truth = _check(draws, truth)
    weights = np.ones(()) if weights is None else np.asarray(weights, float)
    try:
        weights = np.broadcast_to(weights, draws.shape)
    except ValueError:
        raise ValueError(f"weights must broadcast to the draws' shape {draws.shape}, got "
                         f"shape {weights.shape}") from None
    if not np.isfinite(weights).all() or (weights < 0).any() or (weights.sum(0) <= 0).any():
        raise ValueError("weights must be finite, non-negative and not all zero for a star")
    weights = weights / weights.sum(0)
    if noise is not None:
        sd = np.broadcast_to(np.asarray(noise, float), truth.shape)
        if np.any(sd[np.isfinite(truth)] <= 0):
            raise ValueError("noise standard deviations must be positive")
        out = (weights * special.ndtr((truth - draws) / sd)).sum(0)
    else:
        below = (weights * (draws < truth)).sum(0)
        equal = (weights * (draws == truth)).sum(0)
        out = below + equal * np.random.default_rng(seed).uniform(size=truth.shape)
    return np.where(np.isfinite(truth), out, np.nan)


def label_errors(errors: np.ndarray) -> np.ndarray:
    """Label errors ready for ``noise=``: where an error is missing or not positive, the
    median of the positive ones (0 when there are none)."""
    errors = np.asarray(errors)  # its own precision: float32 labels stay float32
    ok = np.isfinite(errors) & (errors > 0)
    return np.where(ok, errors, np.median(errors[ok]) if ok.any() else 0.0)


def coverage(pit_values: np.ndarray, levels: Sequence[float] = LEVELS) -> np.ndarray:
    """Fraction of finite PIT values inside each central interval, shape (len(levels),)."""
    u = np.asarray(pit_values, float)
    u = u[np.isfinite(u)]
    if u.size == 0:
        raise ValueError("coverage: no finite PIT values")
    return np.array([np.mean(np.abs(u - 0.5) <= level / 2) for level in levels])


def binomial_band(n: int, levels: Sequence[float] = LEVELS,
                  confidence: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """The central ``confidence`` range of the coverage of a calibrated model on ``n``
    independent stars, per level: (low, high) fractions."""
    lo, hi = stats.binom.interval(confidence, n, np.asarray(levels, float))
    return lo / n, hi / n


def coverage_check(pit_values: np.ndarray, levels: Sequence[float] = CHECKED,
                   floor: float = 0.02) -> tuple[int, np.ndarray, bool]:
    """Number of finite PIT values, their coverage at ``levels``, and whether every
    coverage is within two binomial standard errors of nominal or within ``floor``,
    whichever is larger (the bar of probstar's calibration reports)."""
    u = np.asarray(pit_values, float)
    n = int(np.isfinite(u).sum())
    cov = coverage(u, levels)
    levels = np.asarray(levels, float)
    tol = np.maximum(2 * np.sqrt(levels * (1 - levels) / max(n, 1)), floor)
    return n, cov, bool(np.all(np.abs(cov - levels) <= tol))


def crps(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Continuous ranked probability score per star, ``E|X - y| - E|X - X'| / 2``, from
    the draws (the exact identity for their empirical distribution); units of ``truth``."""
    draws, truth = _check(draws, truth)
    x = np.sort(draws, 0)
    m = x.shape[0]
    spread = ((2 * np.arange(1, m + 1) - m - 1)[:, None] * x.reshape(m, -1)).sum(0) / m ** 2
    score = np.abs(draws - truth).mean(0) - spread.reshape(truth.shape)
    return np.where(np.isfinite(truth), score, np.nan)


def log_score(draws: np.ndarray, truth: np.ndarray, noise: np.ndarray | float) -> np.ndarray:
    """Negative log predictive density of ``truth`` measured with Gaussian ``noise``:
    ``-log mean(N(truth | x, noise))`` over the draws (Monte Carlo convolution)."""
    draws, truth = _check(draws, truth)
    sd = np.broadcast_to(np.asarray(noise, float), truth.shape)
    logp = stats.norm.logpdf(truth, draws, sd)
    out = -(special.logsumexp(logp, axis=0) - np.log(draws.shape[0]))
    return np.where(np.isfinite(truth), out, np.nan)


def sbc_ranks(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Rank of each true value among its L posterior draws: 0..L, uniform when the
    posterior is calibrated and the truths come from the prior it was trained on."""
    draws, truth = _check(draws, truth)
    return np.where(np.isnan(truth), np.nan, (draws < truth).sum(0))  # no truth: no rank


def rank_uniformity(ranks: np.ndarray, n_draws: int, seed: int = 0) -> float:
    """Kolmogorov-Smirnov p-value of SBC ranks (0..n_draws) against uniform; the ranks
    are spread over their bins with uniform jitter so the test is continuous."""
    r = np.asarray(ranks, float)
    r = r[np.isfinite(r)]  # (stars without a truth)
    u = (r + np.random.default_rng(seed).uniform(size=r.shape)) / (n_draws + 1)
    return float(stats.kstest(u.ravel(), "uniform").pvalue)


def agreement(median_a: np.ndarray, sd_a: np.ndarray, median_b: np.ndarray,
              sd_b: np.ndarray) -> np.ndarray:
    """|median_a - median_b| / sqrt(sd_a^2 + sd_b^2), elementwise: below 1, two answers
    "agree within their uncertainties"."""
    return np.abs(np.subtract(median_a, median_b)) / np.hypot(sd_a, sd_b)


def expected_agreement(sd_a: np.ndarray, sd_b: np.ndarray) -> np.ndarray:
    """P(:func:`agreement` < 1), elementwise, for two calibrated normal posteriors of
    widths ``sd_a`` and ``sd_b`` when one's information holds the other's (e.g. an
    amortised answer that reads more of the same spectrum than a likelihood does).

    The difference of their means is then normal with variance ``|sd_a^2 - sd_b^2|``
    (law of total variance), so answers of equal width always agree and a twice wider
    one agrees with probability 0.80 only.
    """
    var_a, var_b = np.square(sd_a), np.square(sd_b)
    z = np.sqrt((var_a + var_b) / np.maximum(np.abs(var_a - var_b), 1e-300))
    return 2 * special.ndtr(z) - 1


def reliability_diagram(pit_by_label: dict[str, np.ndarray], ax=None,
                        levels: Sequence[float] = LEVELS, confidence: float = 0.99,
                        legend: bool = True):
    """Observed coverage against nominal level, one line per entry, and the calibrated
    band for the smallest sample among them. Returns the matplotlib axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    levels = np.asarray(levels, float)
    n = min(int(np.isfinite(u).sum()) for u in pit_by_label.values())
    lo, hi = binomial_band(n, levels, confidence)
    ax.fill_between(levels, lo - levels, hi - levels, color="0.85",
                    label=f"{confidence:.0%} band, {n} stars")
    ax.axhline(0, color="0.4", lw=0.8)
    for label, u in pit_by_label.items():
        ax.plot(levels, coverage(u, levels) - levels, marker="o", ms=3, label=label)
    ax.set_xlabel("nominal level of the central interval")
    ax.set_ylabel("observed coverage - nominal")
    if legend:
        ax.legend(fontsize=8, frameon=False)
    return ax
