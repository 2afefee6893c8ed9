"""The shipped model: present, loadable, accurate on held-out stars, bimodal where it should."""

import numpy as np
import pytest

import probstar
from probstar.evaluate import INPUT_SETS, robust_scatter
from probstar.vocab import index_of


@pytest.fixture(scope="module")
def shipped():
    return probstar.load_model()


@pytest.mark.parametrize("head", ["mixture", "flow", "gaussian"])
def test_shipped_model_answers_held_out_stars(shipped, test_stars, head):
    post = shipped.posterior(test_stars.only(INPUT_SETS["xp+colours"]), ["teff", "logg", "fe_h"],
                             head=head)
    median = post.median()
    # loose bounds (the full-split figures are in validation/): a broken or mismatched
    # model misses these by far
    assert robust_scatter(test_stars.column("teff"), median[:, 0]) < 150
    assert robust_scatter(test_stars.column("logg"), median[:, 1]) < 0.35
    assert robust_scatter(test_stars.column("fe_h"), median[:, 2]) < 0.25
    assert np.all(post.std() > 0)


@pytest.mark.parametrize("request_", [["logg"], ["logg", "fe_h"]])
def test_teff_only_question_has_giant_and_dwarf_peaks(shipped, request_):
    """Given only Teff = 4000 K: mostly giants (logg ~ 1.5), a minority of dwarfs (~4.6);
    alone (mixture head) and jointly with [Fe/H] (flow head)."""
    assert shipped.heads == ("gaussian", "mixture", "flow") and shipped.has_spectrum
    post = shipped.posterior({"teff": [4000.0]}, request_)
    assert post.joint == (len(request_) > 1)
    peaks = post.modes("logg", min_weight=0.02)[0]
    assert len(peaks) >= 2
    (giant, w_giant), (dwarf, w_dwarf) = peaks[:2]
    assert giant < 2.5 and dwarf > 4.0 and 0.6 < w_giant and 0.02 < w_dwarf < 0.3


def test_shipped_recalibration_keeps_teff_only_answers_calibrated(shipped):
    """The shipped model carries maps fitted on the validation split; on the held-out
    test split, Teff-only logg intervals (the APOGEE Teff error given) hold close to 68%
    with them; the joint flow is left as it is."""
    from probstar.calibration import coverage, pit
    from probstar.data import load_split

    assert shipped.recalibration.fitted
    test = load_split("test")
    stars, truth = test.only(["teff"]), test.column("logg")
    draws = shipped.posterior(stars, "logg").sample(400, seed=0)
    assert abs(coverage(pit(draws[:, :, 0], truth, noise=0.05), [0.68])[0] - 0.68) < 0.025
    few = stars.select(slice(0, 5))
    flow = {c: shipped.posterior(few, ["logg", "fe_h"], calibrated=c).sample(10, seed=0)
            for c in (False, True)}
    assert np.array_equal(flow[False], flow[True])  # the joint flow is not recalibrated


def test_label_errors_below_the_trained_minimum_count_as_none(shipped):
    """The network never saw a label error below label_error_min x the label's scale
    (2 K in Teff for the shipped model): such an error is answered as none, an error
    inside the trained range is read (benchmark/label_errors.md)."""
    question = {"teff": [4000.0]}
    none = shipped.posterior(question, "logg").sample(2000, seed=0)
    small = shipped.posterior({**question, "teff_err": [1.0]}, "logg").sample(2000, seed=0)
    read = shipped.posterior({**question, "teff_err": [300.0]}, "logg").sample(2000, seed=0)
    assert np.array_equal(none, small) and not np.array_equal(none, read)
    with pytest.warns(UserWarning, match=r"trained with \(teff 491 K\): the answers"):
        shipped.posterior({**question, "teff_err": [600.0]}, "logg")  # above the range


def test_errors_the_network_never_or_always_saw(shipped, test_stars):
    """The real model learnt photometry without errors and spectra always with theirs:
    given photometric errors are left out with a warning (read, they made Teff from
    photometry scatter 837 K instead of 208 K), a spectrum without errors is refused."""
    stars = test_stars.select(slice(0, 5)).only(["g", "bp", "rp", "j", "h", "k"])
    plain = shipped.posterior(stars, "teff").median()
    stars.errors[:, index_of(["g", "j", "k"])] = 0.02
    with pytest.warns(UserWarning, match="trained on g, j, k without measurement errors"):
        np.testing.assert_array_equal(shipped.posterior(stars, "teff").median(), plain)
    spectra = test_stars.select(slice(0, 3)).only(["xp"])
    spectra.errors[1] = np.nan
    with pytest.raises(ValueError, match=r"XP pixels \(xp_336-1020\) always with its "
                                         r"measurement error, and 1 star\(s\) \(row\(s\) 1\)"):
        shipped.posterior(spectra, "teff")


def test_shipped_simulated_model_loads_and_is_recalibrated():
    """The simulated-population model behind validation/simulation.md."""
    from probstar.query import shipped_model_path

    sim = probstar.load_model(shipped_model_path().with_name("simulated"))
    assert sim.recalibration.fitted
    star = {"g": [12.0], "bp_rp": [1.5], "parallax": [1.0]}
    errors = {"g_err": [0.003], "bp_rp_err": [0.014], "parallax_err": [0.02]}
    post = sim.posterior({**star, **errors}, "logg")
    assert np.isfinite(post.median()).all() and post.std()[0, 0] > 0
    with pytest.raises(ValueError, match="g, bp_rp, parallax always with its measurement"):
        sim.posterior(star, "logg")  # it never saw photometry without its errors
    assert np.isfinite(sim.posterior({"g": [12.0], "teff": [4000.0]}, "g").median()).all()
    # (a requested name is no input: its missing error is no matter)


def test_shipped_spectrum_from_parameters(shipped, test_stars):
    """Parameters -> spectrum on held-out stars: near the observed spectra, and the
    width-scaled 68% bands hold about 68% of the observed pixels (loose bounds; the
    full-split figures are in validation/spectra.md)."""
    from probstar.spectra import SPECTRUM_INPUTS, band_coverage, pixel_z

    assert set(shipped.spectrum_widths) == {"spectrum", "photometry", "parameters"}
    post = shipped.posterior(test_stars.only(SPECTRUM_INPUTS), "xp")
    z = pixel_z(post, test_stars)
    assert 0.6 < np.nanmean(band_coverage(z)) < 0.76
    flux = test_stars.values[:, -343:]
    assert np.nanmedian(np.abs(flux - post.mean())) < 0.06  # 0.036; the population: 0.16
