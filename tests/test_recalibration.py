"""Quantile recalibration: the map makes miscalibrated answers calibrated, stays a proper
distribution (cdf, density, quantiles and draws agree), and round-trips through JSON."""

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, Normal

from probstar.calibration import coverage_check
from probstar.recalibration import (BANDWIDTH, KINDS, N_CENTERS, Recalibrated,
                                    Recalibration, context_kind, kernel_centers)
from probstar.vocab import NAMES, SCALAR_NAMES, index_of


def recalibrated(base, z):
    """``base`` recalibrated with a map fitted on held-out truths that lie ``z`` standard
    deviations of a Gaussian answer away from its mean."""
    pit_values = Normal(0.0, 1.0).cdf(torch.as_tensor(z)).numpy()
    centers = torch.as_tensor(kernel_centers(pit_values))[None]
    which = torch.zeros(base.batch_shape, dtype=torch.long)
    return Recalibrated(base, centers, which, BANDWIDTH)


def test_overconfident_answers_become_calibrated():
    rng = np.random.default_rng(0)
    base = Normal(torch.zeros(4000), torch.ones(4000))  # the truth is N(0, 2^2)
    fitted = recalibrated(base, rng.normal(0, 2, 4000))  # the validation split
    fresh = torch.as_tensor(rng.normal(0, 2, 4000), dtype=torch.float32)
    assert not coverage_check(base.cdf(fresh).numpy())[2]
    assert coverage_check(fitted.cdf(fresh).numpy())[2]
    assert float(fitted.stddev[0]) == pytest.approx(2.0, rel=0.1)


def test_calibrated_answers_stay_nearly_unchanged():
    rng = np.random.default_rng(1)
    base = Normal(torch.zeros(3), torch.ones(3))
    fitted = recalibrated(base, rng.normal(0, 1, 20000))
    x = torch.linspace(-3, 3, 13)[:, None].expand(-1, 3)
    assert torch.allclose(fitted.cdf(x), base.cdf(x), atol=0.02)


def test_cdf_density_quantiles_and_draws_agree():
    rng = np.random.default_rng(2)
    base = Normal(torch.tensor([0.0, 5.0]), torch.tensor([1.0, 0.5]))
    fitted = recalibrated(base, rng.normal(0.3, 1.5, 3000))
    x = torch.linspace(-12, 17, 20001)[:, None].expand(-1, 2)
    density = fitted.log_prob(x).exp()
    mass = torch.trapezoid(density, x, dim=0)
    assert torch.allclose(mass, torch.ones(2), atol=2e-3)
    q = torch.tensor([0.05, 0.5, 0.95])[:, None]
    assert torch.allclose(fitted.cdf(fitted.icdf(q)), q.expand(-1, 2), atol=1e-3)
    torch.manual_seed(0)
    draws = fitted.sample((20000,))
    assert draws.shape == (20000, 2)
    median = fitted.icdf(torch.tensor(0.5))
    assert torch.allclose(draws.median(0).values, median, atol=0.05)


def test_mean_and_stddev_are_those_of_the_density():
    """Of a two-peaked answer too, where the quantile function jumps between the peaks
    (evenly spaced quantiles made the stddev 0.4-0.6% short)."""
    rng = np.random.default_rng(4)
    mix = MixtureSameFamily(Categorical(torch.tensor([[0.9, 0.1]])),
                            Normal(torch.tensor([[1.0, 4.6]]), torch.tensor([[0.3, 0.15]])))
    fitted = recalibrated(mix, rng.normal(0.2, 1.3, 3000))
    x = torch.linspace(-8, 14, 44001, dtype=torch.float64)[:, None]
    density = fitted.log_prob(x.float()).exp().double()
    mean = torch.trapezoid(x * density, x, dim=0)
    std = torch.trapezoid((x - mean) ** 2 * density, x, dim=0).sqrt()
    assert torch.allclose(fitted.mean.double(), mean, rtol=1e-3)
    assert torch.allclose(fitted.stddev.double(), std, rtol=2e-3)


def test_maps_follow_the_answer_to_its_device():
    """A network on a GPU gives answers there; the maps must not stay on the CPU
    (``meta`` stands in for a GPU here)."""
    base = Normal(torch.zeros(3, device="meta"), torch.ones(3, device="meta"),
                  validate_args=False)
    fitted = recalibrated(base, np.random.default_rng(5).normal(0, 2, 500))
    x = torch.zeros(3, device="meta")
    assert fitted.cdf(x).device.type == fitted.log_prob(x).device.type == "meta"


def test_elements_without_a_map_keep_their_distribution():
    base = Normal(torch.zeros(2, 2), torch.ones(2, 2))
    centers = torch.full((2, N_CENTERS), float("nan"))
    centers[1] = torch.linspace(-3, 3, N_CENTERS)
    fitted = Recalibrated(base, centers, torch.tensor([[0, 1], [0, 1]]), BANDWIDTH)
    x = torch.tensor([[0.7, 0.7], [-0.2, -0.2]])
    assert torch.equal(fitted.cdf(x)[:, 0], base.cdf(x)[:, 0])
    assert torch.equal(fitted.log_prob(x)[:, 0], base.log_prob(x)[:, 0])


def test_round_trip_and_bad_entries():
    rng = np.random.default_rng(3)
    cal = Recalibration.identity()
    cal.centers[0, SCALAR_NAMES.index("logg")] = np.sort(rng.normal(size=N_CENTERS))
    back = Recalibration.from_dict(cal.to_dict())
    assert back.fitted and not Recalibration.identity().fitted
    np.testing.assert_allclose(back.centers[0, 1], cal.centers[0, 1], atol=1e-5)
    assert np.isnan(back.centers[1:]).all() and np.isnan(back.centers[0, 0]).all()
    good = cal.to_dict()
    with pytest.raises(ValueError, match="unknown entry"):
        Recalibration.from_dict({**good, "maps": {"radio": good["maps"][KINDS[0]]}})
    with pytest.raises(ValueError, match="finite centres"):
        Recalibration.from_dict({**good, "maps": {KINDS[0]: {"logg": [0.0]}}})
    with pytest.raises(ValueError, match="bandwidth"):
        Recalibration.from_dict({**good, "bandwidth": 0.5})


def test_context_kind():
    values = np.full((4, len(NAMES)), np.nan)
    values[0, index_of("xp_500")] = 1.0
    values[1, index_of("bp_rp")] = 1.0
    values[2, index_of("teff")] = 4000.0
    assert context_kind(values).tolist() == [0, 1, 2, 2]  # nothing observed: parameters


def test_a_corrupt_recalibration_names_the_file(tmp_path):
    import shutil

    from probstar.checkpoint import CheckpointError, update_config
    from probstar.query import load_model, shipped_model_path

    folder = tmp_path / "model"
    shutil.copytree(shipped_model_path(), folder)
    update_config(folder, recalibration={"maps": {"spectrum": {"teff": "not numbers"}},
                                         "bandwidth": BANDWIDTH})
    with pytest.raises(CheckpointError, match="config.json.*spectrum/teff"):
        load_model(folder)
    update_config(folder, recalibration={"maps": [1, 2]})
    with pytest.raises(CheckpointError, match="recalibration: expected"):
        load_model(folder)


def test_fit_skips_stars_without_the_inputs_of_a_question(tiny_run, test_stars):
    """A validation star without Teff has no Teff-only question: it is left out of that
    map's fit (it made the whole fit fail)."""
    from probstar.query import load_model
    from probstar.recalibration import fit

    stars = test_stars.select(np.arange(len(test_stars)))  # (a copy)
    stars.values[:3, index_of("teff")[0]] = np.nan
    cal = fit(load_model(tiny_run), stars, min_stars=100)
    assert np.isfinite(cal.centers[KINDS.index("parameters"), SCALAR_NAMES.index("logg")]).all()
