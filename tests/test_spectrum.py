"""The spectrum head: its loss, training it alone, spectrum requests, samples on disk,
the inverse-problem likelihood."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.distributions import LowRankMultivariateNormal, Normal

from probstar.checkpoint import load_checkpoint
from probstar.inverse import SpectrumLikelihood, fit_discrepancy, spectrum_residuals
from probstar.model.network import N_PIXELS, N_SCALARS
from probstar.model.spectrum import SpectrumHead, with_noise
from probstar.query import load_model
from probstar.samples import read_samples, write_samples
from probstar.spectra import pixel_z, spectrum_nll
from probstar.train import CHUNK, PRESETS, sample_context, train
from probstar.vocab import SCALAR_NAMES, XP_WAVELENGTHS, index_of


def test_loss_is_the_joint_plus_the_pixel_likelihoods_of_the_scored_pixels():
    g = torch.Generator().manual_seed(0)
    b, p, r = 3, 20, 2
    pdf = LowRankMultivariateNormal(torch.randn(b, p, generator=g),
                                    torch.randn(b, p, r, generator=g),
                                    torch.rand(b, p, generator=g) + 0.1)
    flux, noise = torch.randn(b, p, generator=g), torch.rand(b, p, generator=g) * 0.1
    scored = torch.rand(b, p, generator=g) < 0.5
    scored[2] = False  # a star with nothing hidden scores 0
    nll = SpectrumHead.loss(pdf, flux, noise, scored)
    for i in range(2):
        m = scored[i]
        direct = LowRankMultivariateNormal(pdf.loc[i, m], pdf.cov_factor[i, m],
                                           pdf.cov_diag[i, m] + noise[i, m])
        pixels = Normal(direct.loc, direct.variance.sqrt()).log_prob(flux[i, m]).sum()
        torch.testing.assert_close(nll[i], -direct.log_prob(flux[i, m]) - pixels,
                                   rtol=1e-4, atol=1e-4)
    assert nll[2] == 0


def test_window_contexts_show_one_contiguous_run_of_chunks():
    cfg = replace(PRESETS["smoke"], p_full_spectrum=0.0, p_no_spectrum=0.0, p_window=1.0)
    v = torch.randn(500, N_SCALARS + N_PIXELS)
    shown, _ = sample_context(v, torch.rand_like(v), cfg, torch.Generator().manual_seed(1))
    chunks = torch.isfinite(shown[:, N_SCALARS:]).view(500, -1, CHUNK)
    assert (chunks.all(-1) == chunks.any(-1)).all()  # whole chunks
    runs = (chunks[:, :, 0].int().diff(dim=1) == 1).sum(1) + chunks[:, 0, 0].int()
    assert (runs == 1).all()  # exactly one window per star
    assert chunks[:, :, 0].sum(1).unique().numel() > 10  # of varied lengths


@pytest.fixture(scope="module")
def spectrum_run(tiny_run, train_stars, test_stars, tmp_path_factory):
    """The tiny model with a spectrum head trained alone for 2 epochs."""
    cfg = replace(PRESETS["smoke"], epochs=2, batch_size=128, init_from=str(tiny_run),
                  train_only="spectrum", p_full_spectrum=0.0, p_window=0.5,
                  model=replace(PRESETS["smoke"].model, spectrum_layers=1, spectrum_rank=3))
    return train(cfg, train_stars, test_stars.select(slice(0, 50)),
                 tmp_path_factory.mktemp("spectrum"), progress=False)


def test_training_the_spectrum_head_leaves_every_other_weight(tiny_run, spectrum_run):
    before = load_checkpoint(tiny_run)[0].state_dict()
    after = load_checkpoint(spectrum_run)[0].state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert any(n.startswith("spectrum.") for n in after)


def test_spectrum_request_is_a_joint_normal_with_exact_marginals(spectrum_run, test_stars):
    model = load_model(spectrum_run)
    stars = test_stars.select(slice(0, 4))
    post = model.posterior(stars, "xp_600-1020")  # the given pixels there are not used
    assert post.joint and len(post.names) == 211 and post.names[0] == "xp_600"
    same = model.posterior(stars.only(["xp_336-598", *SCALAR_NAMES]), "xp_600-1020")
    np.testing.assert_allclose(post.mean(), same.mean(), rtol=1e-5)
    draws = post.sample(4000, seed=0)
    assert draws.shape == (4000, 4, 211)
    np.testing.assert_allclose(draws.std(0), post.std(), rtol=0.1)
    np.testing.assert_allclose(np.median(draws, 0), post.median(), atol=4 * post.std().max()
                               / np.sqrt(4000) * 1.3)
    z = pixel_z(post, stars)
    assert z.shape == (4, 211) and np.isfinite(z).all()
    assert np.isfinite(spectrum_nll(post, stars)).all()


def test_spectrum_requests_refused_where_they_make_no_sense(tiny_run, spectrum_run,
                                                            test_stars):
    with pytest.raises(ValueError, match="separate questions"):
        load_model(spectrum_run).posterior(test_stars, ["teff", "xp_500"])
    with pytest.raises(ValueError, match="not 'flow'"):
        load_model(spectrum_run).posterior(test_stars, "xp", head="flow")
    with pytest.raises(ValueError, match="no spectrum head"):
        load_model(tiny_run).posterior(test_stars, "xp")
    with pytest.raises(ValueError, match="holds no XP pixel"):
        load_model(spectrum_run).posterior(test_stars, "xp_1100-1200")


def test_spectrum_samples_on_disk_have_a_pixel_axis(spectrum_run, test_stars, tmp_path):
    post = load_model(spectrum_run).posterior(test_stars.select(slice(0, 3)), "xp_900-1020")
    draws = post.sample(5, seed=1)
    out = read_samples(write_samples(tmp_path / "s.h5", post, draws))
    assert out["xp"].shape == (3, 5, 61)
    np.testing.assert_array_equal(out["xp_wavelength"], XP_WAVELENGTHS[-61:])
    np.testing.assert_array_equal(out["xp"][1, 2], draws[2, 1])


def test_inverse_likelihood_agrees_with_the_spectrum_answer(spectrum_run, test_stars):
    """log p(spectrum | theta) of the inverse problem = the spectrum answer's NLL."""
    model = load_model(spectrum_run)
    star = test_stars.select(slice(0, 1))
    xp = index_of("xp")
    like = SpectrumLikelihood(model, star.values[0, xp], star.errors[0, xp])
    theta = torch.tensor([[4800.0, 2.5, -0.2, 0.1, 0.05]], requires_grad=True)
    lp = like(theta)
    lp.sum().backward()
    assert theta.grad is not None and torch.isfinite(theta.grad).all()
    assert all(p.grad is None for p in model.net.parameters())  # a loaded model is frozen
    given = {n: [v] for n, v in zip(like.parameters, theta[0].tolist())}
    post = model.posterior(given, "xp")
    nll = spectrum_nll(post, star)[0] * len(xp)
    np.testing.assert_allclose(-lp.item(), nll, rtol=1e-4)
    tempered = SpectrumLikelihood(model, star.values[0, xp], star.errors[0, xp],
                                  temperature=4.0)
    torch.testing.assert_close(tempered(theta.detach()), lp.detach() / 4)
    with pytest.raises(ValueError, match="343 XP pixels"):
        SpectrumLikelihood(model, star.values[0, xp][:10], star.errors[0, xp][:10])
    with pytest.raises(ValueError, match="divided by its median"):  # raw flux units
        SpectrumLikelihood(model, 3e-17 * star.values[0, xp], 3e-17 * star.errors[0, xp])
    with pytest.raises(ValueError, match="temperature"):
        SpectrumLikelihood(model, star.values[0, xp], star.errors[0, xp], temperature=0)


def test_discrepancy_directions_add_covariance_and_are_fitted_by_likelihood(spectrum_run,
                                                                            test_stars):
    """Zero discrepancy directions leave the likelihood as it is; the fitted ones raise
    the likelihood of the spectra they were fitted on; a wrong shape is refused."""
    model, xp = load_model(spectrum_run), index_of("xp")
    star, theta = test_stars.select(slice(0, 1)), torch.tensor([[4800.0, 2.5, -0.2, 0.1, 0.05]])
    plain = SpectrumLikelihood(model, star.values[0, xp], star.errors[0, xp])(theta)
    zero = SpectrumLikelihood(model, star.values[0, xp], star.errors[0, xp],
                              discrepancy=np.zeros((len(xp), 2)))(theta)
    torch.testing.assert_close(zero, plain)
    stars = test_stars.select(slice(0, 60))
    g = fit_discrepancy(model, stars, rank=2, steps=60)
    assert g.shape == (len(xp), 2) and np.isfinite(g).all()
    answers, flux, noise_var = spectrum_residuals(model, stars)
    before, after = (with_noise(answers, noise_var, d).log_prob(flux).mean()
                     for d in (None, torch.as_tensor(g)))
    assert after > before
    with pytest.raises(ValueError, match="discrepancy"):
        SpectrumLikelihood(model, star.values[0, xp], star.errors[0, xp],
                           discrepancy=np.zeros((10, 2)))


def test_population_prior_is_scipys_kernel_density_inside_the_box():
    from scipy.stats import gaussian_kde

    from probstar.inverse import Prior

    rng = np.random.default_rng(0)
    population = rng.normal([4800, 2.5], [300, 0.6], (300, 2))
    bounds = {"teff": (3000.0, 8000.0), "logg": (-0.5, 5.5)}
    prior = Prior(("teff", "logg"), bounds, population)
    assert prior.contains(population).all()  # (stars outside the box are left out)
    theta = np.array([[4500.0, 2.0], [6000.0, 4.4], [4800.0, 6.0]])  # the last is outside
    lp = prior.log_prob(torch.as_tensor(theta)).numpy()
    np.testing.assert_allclose(lp[:2], gaussian_kde(population.T).logpdf(theta[:2].T),
                               rtol=1e-6)
    assert lp[2] == -np.inf
    draws = prior.sample(500, rng)
    assert prior.contains(draws).all()
    np.testing.assert_allclose(draws.mean(0), population.mean(0), rtol=0.05)
    assert (Prior(("teff",), bounds).log_prob(torch.tensor([[5000.0]])) == 0).all()
    with pytest.raises(ValueError, match="no prior bounds"):
        Prior(("teff", "mass"))
    with pytest.raises(ValueError, match="population must be"):
        Prior(("teff", "logg"), bounds, population[:, :1])


def test_temperature_is_fitted_stored_and_used_by_default(spectrum_run, test_stars,
                                                           tmp_path):
    import shutil

    from probstar.checkpoint import CheckpointError, update_config
    from probstar.inverse import Prior, fit_temperature

    model = load_model(spectrum_run)
    prior = Prior(("teff", "logg", "fe_h"))
    best, coverage = fit_temperature(model, test_stars.select(slice(0, 3)), prior,
                                     temperatures=(1, 8))
    assert best in (1, 8) and set(coverage) == {1, 8}
    assert all(0 <= c <= 1 for c in coverage.values())
    assert best == min(coverage, key=lambda t: abs(coverage[t] - 0.68))
    folder = tmp_path / "tempered"
    shutil.copytree(spectrum_run, folder)
    update_config(folder, likelihood_temperature=8.0)
    xp = index_of("xp")
    like = SpectrumLikelihood(load_model(folder), test_stars.values[0, xp],
                              test_stars.errors[0, xp])
    assert like.temperature == 8.0
    update_config(folder, likelihood_temperature=-1)
    with pytest.raises(CheckpointError, match="likelihood_temperature"):
        load_model(folder)


def test_width_scales_are_fitted_stored_and_applied(spectrum_run, test_stars, tmp_path):
    import shutil

    from probstar.checkpoint import CheckpointError, update_config
    from probstar.spectra import WIDTH_QUESTIONS, band_coverage, fit_width_scales

    model = load_model(spectrum_run)
    stars = test_stars.select(slice(0, 100))
    scales = fit_width_scales(model, stars)
    assert set(scales) == set(WIDTH_QUESTIONS) and all(s > 0 for s in scales.values())
    folder = tmp_path / "scaled"
    shutil.copytree(spectrum_run, folder)
    update_config(folder, spectrum_widths=scales)
    scaled = load_model(folder)
    inputs, request = WIDTH_QUESTIONS["parameters"][0]
    raw = scaled.posterior(stars.only(inputs), request, calibrated=False)
    post = scaled.posterior(stars.only(inputs), request)
    np.testing.assert_allclose(post.std(), raw.std() * scales["parameters"], rtol=1e-5)
    np.testing.assert_allclose(post.mean(), raw.mean())
    covered = np.nanmean(band_coverage(pixel_z(post, stars)))  # fitted on these stars
    assert abs(covered - 0.68) < 0.02
    update_config(folder, spectrum_widths={"parameters": -1.0})
    with pytest.raises(CheckpointError, match="spectrum_widths"):
        load_model(folder)


def test_samplers_return_seeded_arviz_draws_inside_the_prior(spectrum_run, test_stars):
    from probstar.inverse import DEFAULT_BOUNDS, PARAMETERS, Prior, run_emcee, run_nuts

    model = load_model(spectrum_run)
    xp = index_of("xp")
    like = SpectrumLikelihood(model, test_stars.values[0, xp], test_stars.errors[0, xp])
    population = Prior(PARAMETERS, population=test_stars.values[:, index_of(list(PARAMETERS))])
    runs = [run_emcee(like, population, n_walkers=12, n_steps=25, burn=5, seed=3,
                      moves=moves) for moves in ("differential", "differential", "stretch")]
    nuts = run_nuts(like, population, n_samples=5, warmup=5, chains=2, seed=3)
    # the mass matrix is adapted only after a warm-up of 20 steps or more (Pyro)
    diagonal, dense = (run_nuts(like, population, n_samples=5, warmup=25, chains=1, seed=3,
                                dense_mass=full) for full in (False, True))
    with pytest.raises(ValueError, match="the prior is over"):
        run_emcee(like, Prior(("teff",)))
    with pytest.raises(ValueError, match="moves must be one of"):
        run_emcee(like, population, moves="walk")
    for name in PARAMETERS:
        lo, hi = DEFAULT_BOUNDS[name]
        for run in runs:
            draws = run.posterior[name].values
            assert draws.shape == (12, 20) and ((draws > lo) & (draws < hi)).all()
        np.testing.assert_array_equal(runs[0].posterior[name].values,  # seeded
                                      runs[1].posterior[name].values)
        assert not np.array_equal(runs[0].posterior[name].values,  # the moves differ
                                  runs[2].posterior[name].values)
        assert nuts.posterior[name].values.shape == (2, 5)
        assert dense.posterior[name].values.shape == (1, 5)
        assert not np.array_equal(dense.posterior[name].values,  # the mass matrix
                                  diagonal.posterior[name].values)  # differs, not the seed
        assert ((dense.posterior[name].values > lo) & (dense.posterior[name].values < hi)).all()


def test_photometry_likelihood_is_the_mixture_answer_convolved_with_the_error(spectrum_run,
                                                                              test_stars):
    """log p(colours | theta) = the mixture head's answer given theta, its error added to
    every component; it adds to the spectrum's likelihood."""
    from probstar.inverse import JointLikelihood, PhotometryLikelihood, run_nuts

    model = load_model(spectrum_run)
    theta = torch.tensor([[4800.0, 2.5, -0.2, 0.1, 0.05], [5600.0, 4.4, 0.1, 0.0, 0.02]],
                         requires_grad=True)
    given = {n: theta[:, i].tolist() for i, n in enumerate(("teff", "logg", "fe_h", "alpha_m",
                                                            "ak"))}
    answer = model.posterior(given, ["j_h", "j_k"], head="mixture", calibrated=False)
    colours = {"j_h": (0.55, 0.03), "j_k": (0.68, 0.02), "h": (np.nan, 0.1)}  # h unobserved
    like = PhotometryLikelihood(model, colours)
    lp = like(theta)
    lp.sum().backward()
    assert like.names == ("j_h", "j_k") and torch.isfinite(theta.grad).all()
    # the convolution, by quadrature over the answer's density
    grid = np.linspace(-1.0, 2.5, 20001)
    expected = np.zeros(2)
    for j, (name, (value, error)) in enumerate(list(colours.items())[:2]):
        density = answer.pdf(name, grid)  # (2, grid)
        kernel = np.exp(-0.5 * ((value - grid) / error) ** 2) / (error * np.sqrt(2 * np.pi))
        expected += np.log((density * kernel).sum(1) * (grid[1] - grid[0]))
    np.testing.assert_allclose(lp.detach().numpy(), expected, rtol=1e-4, atol=1e-4)
    # no error in excess of the training data's: the answer's own density at the value
    sharp = PhotometryLikelihood(model, {"j_k": 0.68})(theta.detach())
    np.testing.assert_allclose(sharp.numpy(), np.log(answer.pdf("j_k", np.array([0.68])))[:, 0],
                               rtol=1e-4)
    xp = index_of("xp")
    spectrum = SpectrumLikelihood(model, test_stars.values[0, xp], test_stars.errors[0, xp])
    joint = spectrum + like
    assert isinstance(joint, JointLikelihood) and joint.parameters == like.parameters
    torch.testing.assert_close(joint(theta.detach()),
                               spectrum(theta.detach()) + like(theta.detach()))
    nuts = run_nuts(joint, n_samples=4, warmup=4, chains=1, seed=0)  # gradients flow
    assert np.isfinite(nuts.posterior["teff"].values).all()
    bad = [({"j_k": (0.7, -0.1)}, ">= 0"), ({"j_k": (np.inf, 0.1)}, "not finite"),
           ({"teff": (4000.0, 50.0)}, "names a parameter"),
           ({"j_k": (np.nan, 0.1)}, "no observed value"), ({"j_k": (0.7, 0.1, 2)}, "value, error"),
           ({"xp_500": (0.7, 0.1)}, "scalar names"), ({"j_h": 610.0}, "outside the valid")]
    for photometry, message in bad:
        with pytest.raises(ValueError, match=message):
            PhotometryLikelihood(model, photometry)
    with pytest.raises(KeyError, match="unknown quantity 'j_x'"):
        PhotometryLikelihood(model, {"j_x": (0.7, 0.1)})
    with pytest.raises(ValueError, match="same photons twice"):
        spectrum + PhotometryLikelihood(model, {"bp_rp": (1.2, 0.01)})
    with pytest.raises(TypeError, match="adds only to a likelihood"):
        spectrum + 1.0
    with pytest.raises(ValueError, match="different parameters"):
        spectrum + PhotometryLikelihood(model, {"j_k": (0.7, 0.1)}, parameters=("teff", "logg"))
