"""Calibration metrics against closed forms and known-calibrated / miscalibrated cases."""

import numpy as np
import pytest
from scipy import stats

from probstar.calibration import LEVELS, agreement, binomial_band, coverage, crps, \
    expected_agreement, log_score, pit, rank_uniformity, sbc_ranks

RNG = np.random.default_rng(0)
N_STARS, N_DRAWS = 4000, 400


def _case(width: float = 1.0, noise: float = 0.0):
    """Per star: true value ~ N(mu, 1), posterior draws ~ N(mu, width), truth measured
    with Gaussian noise."""
    mu = RNG.normal(size=N_STARS)
    truth = mu + RNG.normal(size=N_STARS) + noise * RNG.normal(size=N_STARS)
    draws = mu + width * RNG.normal(size=(N_DRAWS, N_STARS))
    return draws, truth


def test_calibrated_model_covers_nominal_levels():
    u = pit(*_case())
    lo, hi = binomial_band(N_STARS)
    assert np.all((coverage(u) >= lo) & (coverage(u) <= hi))


def test_overconfident_model_fails_coverage():
    u = pit(*_case(width=0.6))
    lo, _ = binomial_band(N_STARS)
    assert coverage(u, [0.68])[0] < lo[LEVELS == 0.68][0]


def test_label_noise_must_be_convolved():
    draws, truth = _case(noise=0.7)
    lo, hi = binomial_band(N_STARS)
    assert coverage(pit(draws, truth), [0.68])[0] < lo[LEVELS == 0.68][0]
    c = coverage(pit(draws, truth, noise=0.7))
    assert np.all((c >= lo) & (c <= hi))


def test_importance_weights_correct_a_wrong_proposal():
    """Draws from a posterior twice too wide over-cover; weighted by target / proposal
    density they cover as the target does, with and without label noise."""
    lo, hi = binomial_band(N_STARS)
    for noise in (None, 0.5):
        draws, truth = _case(width=2.0, noise=noise or 0.0)
        mu = draws.mean(0)
        weights = stats.norm.pdf(draws, mu, 1.0) / stats.norm.pdf(draws, mu, 2.0)
        assert coverage(pit(draws, truth, noise), [0.68])[0] > hi[LEVELS == 0.68][0]
        c = coverage(pit(draws, truth, noise, weights=weights))
        assert np.all((c >= lo) & (c <= hi))
    with pytest.raises(ValueError, match="weights must be finite"):
        pit(draws, truth, weights=-weights)
    with pytest.raises(ValueError, match="weights must broadcast"):
        pit(draws, truth, weights=weights[:, :5])


def test_crps_and_log_score_match_closed_forms():
    y = np.array([-1.5, 0.0, 0.8, 2.5])
    draws = RNG.normal(size=(200_000, 4))
    phi, cdf = stats.norm.pdf(y), stats.norm.cdf(y)
    exact = y * (2 * cdf - 1) + 2 * phi - 1 / np.sqrt(np.pi)  # N(0, 1), Gneiting 2005
    np.testing.assert_allclose(crps(draws, y), exact, atol=5e-3)
    np.testing.assert_allclose(log_score(draws, y, 0.5),
                               -stats.norm.logpdf(y, 0, np.sqrt(1.25)), atol=1e-2)


def test_sbc_ranks_detect_miscalibration():
    for width, calibrated in ((1.0, True), (0.7, False), (1.4, False)):
        draws, truth = _case(width)
        ranks = sbc_ranks(draws, truth)
        assert ranks.min() >= 0 and ranks.max() <= N_DRAWS
        assert (rank_uniformity(ranks, N_DRAWS) > 0.01) == calibrated
    draws, truth = _case(1.0)
    truth[:5] = np.nan  # no truth, no rank (it read as rank 0: "too low")
    ranks = sbc_ranks(draws, truth)
    assert np.isnan(ranks[:5]).all() and rank_uniformity(ranks, N_DRAWS) > 0.01


def test_expected_agreement_of_nested_calibrated_posteriors():
    """theta ~ N(0, 1) seen through two noisy measurements: the exact posterior given
    the first and the one given both agree as often as expected_agreement says; a
    posterior given an independent measurement disagrees more often."""
    n = 200_000
    theta = RNG.normal(size=n)
    x1, x2, x3 = (theta + s * RNG.normal(size=n) for s in (0.5, 0.8, 0.5))

    def posterior(*measured):  # conjugate normal: (mean, sd) given (x, noise sd) pairs
        precision = 1 + sum(s ** -2 for _, s in measured)
        return sum(x / s ** 2 for x, s in measured) / precision, np.full(n, precision ** -0.5)

    (m1, s1), (m12, s12), (m3, s3) = posterior((x1, 0.5)), \
        posterior((x1, 0.5), (x2, 0.8)), posterior((x3, 0.5))
    expected = expected_agreement(s1, s12)
    assert 0.9 < expected[0] < 1
    assert abs(np.mean(agreement(m1, s1, m12, s12) < 1) - expected[0]) < 0.005
    assert np.mean(agreement(m1, s1, m3, s3) < 1) < 0.8  # same widths, not nested: 0.736
    assert expected_agreement(1.0, 1.0) == 1 and abs(expected_agreement(2.0, 1.0) - 0.8033) < 1e-4


def test_missing_truths_and_bad_shapes():
    draws, truth = _case()
    truth[:10] = np.nan
    assert np.isnan(pit(draws, truth)[:10]).all() and np.isnan(crps(draws, truth)[:10]).all()
    assert np.isfinite(coverage(pit(draws, truth))).all()
    with pytest.raises(ValueError, match="draws must have shape"):
        pit(draws[:, :5], truth)
    with pytest.raises(ValueError, match="positive"):
        pit(draws, truth, noise=0.0)
