"""Answers as distributions: head choice, joint requests, samples to HDF5, Pyro/ArviZ,
corner plots and the demo (on the tiny test model)."""

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from probstar import load_model
from probstar.cli import main
from probstar.demo import run_demo
from probstar.plots import corner_plot
from probstar.ppl import predictive_draws, to_inference_data
from probstar.samples import read_samples


@pytest.fixture(scope="module")
def model(tiny_run):
    return load_model(tiny_run)


def test_default_heads(model, test_stars):
    one = model.posterior(test_stars, "logg")
    assert not one.joint and model.default_head == "mixture"
    several = model.posterior(test_stars, ["logg", "teff"])  # any order in...
    assert several.joint and several.names == ["teff", "logg"]  # ...vocabulary order out
    independent = model.posterior(test_stars, ["teff", "logg"], head="gaussian")
    assert not independent.joint
    # names outside the flow's joint set fall back to 1-D PDFs, or refuse the flow
    assert not model.posterior(test_stars, ["teff", "bp_rp"]).joint
    with pytest.raises(ValueError, match="jointly"):
        model.posterior(test_stars, ["teff", "bp_rp"], head="flow")
    with pytest.raises(ValueError, match="no 'student' head"):
        model.posterior(test_stars, ["teff"], head="student")


def test_joint_answer_has_correlated_draws_and_consistent_summaries(model, test_stars):
    post = model.posterior(test_stars.select(slice(0, 20)), ["teff", "logg", "fe_h"])
    draws = post.sample(500, seed=3)
    assert draws.shape == (500, 20, 3) and np.isfinite(draws).all()
    np.testing.assert_array_equal(draws, post.sample(500, seed=3))
    state = torch.get_rng_state()
    post.sample(5, seed=4)
    assert torch.equal(state, torch.get_rng_state())  # a seed leaves the global state be
    assert not np.array_equal(post.sample(5), post.sample(5))  # unseeded: fresh draws
    assert post.log_prob(draws).shape == (500, 20)
    s = post.summary()
    assert np.all(s["teff_q16"] <= s["teff_median"]) and np.all(s["teff_median"] <= s["teff_q84"])
    assert len(post.modes("logg")) == 20


def test_predict_takes_a_head(model, test_stars):
    a = model.predict(test_stars.select(slice(0, 10)), ["teff"], head="gaussian")
    b = model.predict(test_stars.select(slice(0, 10)), ["teff"], head="mixture")
    assert a.keys() == b.keys() and not np.allclose(a["teff_median"], b["teff_median"])


def test_cli_sample_writes_joint_draws(tiny_run, tmp_path, capsys):
    csv = tmp_path / "teff_only.csv"
    pd.DataFrame({"teff": [3700.0, 4000.0, 5200.0]}).to_csv(csv, index=False)
    out, png = tmp_path / "draws.h5", tmp_path / "corner.png"
    args = ["sample", str(csv), "--request", "logg", "fe_h", "-n", "50", "--output", str(out),
            "--model", str(tiny_run), "--corner", str(png), "--star", "1"]
    assert main(args) == 0
    draws = read_samples(out)
    assert set(draws) == {"logg", "fe_h"}
    assert draws["logg"].shape == draws["fe_h"].shape == (3, 50)
    with h5py.File(out) as f:
        assert f.attrs["joint"] and f["logg"].attrs["unit"] == "dex (cgs)"
    assert png.stat().st_size > 10_000
    again = tmp_path / "again.h5"
    assert main(args[:8] + [str(again), "--model", str(tiny_run)]) == 0
    np.testing.assert_array_equal(read_samples(again)["logg"], draws["logg"])  # seeded


@pytest.mark.parametrize("extra, message", [(["-n", "0"], "-n must be"),
                                            (["--output", "x.csv"], "HDF5")])
def test_cli_sample_errors(tiny_run, tmp_path, capsys, extra, message):
    csv = tmp_path / "t.csv"
    pd.DataFrame({"teff": [4000.0]}).to_csv(csv, index=False)
    args = ["sample", str(csv), "--output", str(tmp_path / "o.h5"), "--model", str(tiny_run)]
    assert main(args + extra) == 2
    assert message in capsys.readouterr().err


def test_pyro_predictive_and_arviz(model):
    post = model.posterior({"teff": [4000.0, 4500.0]}, ["logg", "fe_h"])
    draws = predictive_draws(post, 64, seed=1)
    assert draws["logg"].shape == (64, 2)
    np.testing.assert_array_equal(draws["fe_h"], predictive_draws(post, 64, seed=1)["fe_h"])
    assert not np.array_equal(predictive_draws(post, 8)["fe_h"], predictive_draws(post, 8)["fe_h"])
    idata = to_inference_data(draws, star_ids=["a", "b"])
    assert idata.posterior["logg"].shape == (1, 64, 2)
    assert list(idata.posterior["logg"].coords["star"].values) == ["a", "b"]
    with pytest.raises(ValueError, match="shape"):
        to_inference_data({"logg": np.zeros(3)})


def test_corner_plot_labels_reference_and_truths(model, test_stars):
    post = model.posterior(test_stars.select(slice(0, 3)), ["teff", "logg"])
    fig = corner_plot(post, 2, n=500, reference=np.c_[test_stars.column("teff"),
                                                       test_stars.column("logg")],
                      truths=[4500.0, 2.5], title="a question")
    labels = {ax.get_xlabel() for ax in fig.axes}
    assert r"$T_\mathrm{eff}$ [K]" in labels and r"$\log g$ [dex (cgs)]" in labels
    assert fig._suptitle.get_text() == "a question"
    with pytest.raises(IndexError, match="out of range"):
        corner_plot(post, 3)
    one = corner_plot(model.posterior({"teff": [4000.0]}, "logg"), truths=[1.2])
    assert 1.2 in [line.get_xdata()[0] for line in one.axes[0].lines]  # the truth's line


def test_demo_writes_plots_and_summary(model, tmp_path):
    text = run_demo(tmp_path / "demo", model, star=5)
    for part in ("(a) Given only Teff = 4000 K", "(b)", "(c)", "weight", "APOGEE"):
        assert part in text
    for name in ("a_logg_given_teff.png", "b_logg_given_teff_no_extinction.png",
                 "c_joint_from_spectrum.png", "summary.md"):
        assert (tmp_path / "demo" / name).stat().st_size > 500
