"""The public question (Python and CLI) and its answers to bad input."""

import numpy as np
import pandas as pd
import pytest

from probstar import load_model, predict
from probstar.cli import main
from probstar.data import InvalidValueError, Observations, TableError
from probstar.vocab import NAMES, UnknownNameError, index_of


@pytest.fixture(scope="module")
def model(tiny_run):
    return load_model(tiny_run)


def frame(stars: Observations, names=("teff", "bp_rp", "j_h", "j_k", "g")) -> pd.DataFrame:
    return pd.DataFrame({n: stars.column(n) for n in names})


def test_predict_columns_in_input_order(model, test_stars):
    out = model.predict(test_stars, ["teff", "logg", "fe_h"])
    for name in ("teff", "logg", "fe_h"):
        for stat in ("median", "std", "q16", "q84"):
            assert out[f"{name}_{stat}"].shape == (len(test_stars),)
        assert np.all(out[f"{name}_q16"] < out[f"{name}_median"])
        assert np.all(out[f"{name}_median"] < out[f"{name}_q84"])
    # input order: predicting a reversed table reverses the answer
    rev = model.predict(test_stars.select(slice(None, None, -1)), ["teff", "logg", "fe_h"])
    np.testing.assert_allclose(rev["teff_median"][::-1], out["teff_median"], rtol=1e-5)


def test_shuffled_columns_change_nothing(model, test_stars):
    df = frame(test_stars.select(slice(0, 50)))
    shuffled = df[list(np.random.default_rng(0).permutation(df.columns))]
    a = model.predict(df, ["logg", "fe_h"])
    b = model.predict(shuffled, ["logg", "fe_h"])
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5)


def test_nan_and_inf_are_missing(model, test_stars):
    df = frame(test_stars.select(slice(0, 20)))
    without = model.predict(df.drop(columns=["g"]), ["logg"])
    df["g"] = np.where(np.arange(20) % 2, np.nan, np.inf)
    with_missing = model.predict(df, ["logg"])
    np.testing.assert_allclose(with_missing["logg_median"], without["logg_median"], rtol=1e-5)


def test_a_dict_of_scalars_is_one_star(model):
    post = model.posterior({"teff": 4000.0}, ["logg"])
    assert post.median().shape == (1, 1)
    draws = post.sample(100, seed=0)
    assert draws.shape == (100, 1, 1) and np.isfinite(draws).all()
    assert np.isfinite(post.log_prob(np.array([[2.0]]))).all()


def test_unknown_request_lists_close_matches(model, test_stars):
    with pytest.raises(UnknownNameError, match="did you mean.*'logg'"):
        model.predict(test_stars, ["logq"])
    with pytest.raises(ValueError, match="empty"):
        model.predict(test_stars, [])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.posterior(test_stars, "logg", batch_size=0)
    with pytest.raises(ValueError, match="cannot predict XP pixels.*no spectrum head"):
        model.predict(test_stars, ["xp_500"])


def test_a_star_with_nothing_to_condition_on_is_an_error(model):
    with pytest.raises(ValueError, match=r"1 star\(s\) \(row\(s\) 1\) have no input to "
                                         r"condition on: every quantity is missing"):
        model.posterior({"teff": [4000.0, np.nan]}, "logg")
    with pytest.raises(ValueError, match="only values are of requested"):
        model.posterior({"teff": [4000.0]}, "teff")  # requested names are not inputs
    with pytest.raises(ValueError, match="only values are of requested"):
        model.posterior({"teff": [4000.0]}, "logg", ignore=["teff"])
    assert model.posterior({"teff": [4000.0], "logg": [2.0]}, "teff").median().shape == (1, 1)


def test_out_of_range_values_name_row_and_field(model):
    with pytest.raises(InvalidValueError, match=r"row 1: teff = -5"):
        model.predict({"teff": [4000.0, -5.0]}, ["logg"])
    with pytest.raises(InvalidValueError, match=r"row 0: logg = 40"):
        model.predict({"logg": [40.0]}, ["teff"])


def test_empty_and_useless_tables(model):
    with pytest.raises(TableError, match="0 rows"):
        model.predict(pd.DataFrame({"teff": []}), ["logg"])
    with pytest.warns(UserWarning, match="colour_of_hat"):
        with pytest.raises(ValueError, match="no usable value"):
            model.predict(pd.DataFrame({"colour_of_hat": [1.0, 2.0]}), ["logg"])


def test_untrained_input_is_ignored_with_a_warning(model):
    with pytest.warns(UserWarning, match="not trained with parallax"):
        model.predict({"teff": [5000.0], "parallax": [1.0]}, ["logg"])


def test_python_one_call(tiny_run, test_stars):
    out = predict(test_stars.select(slice(0, 5)), "teff", model=tiny_run)
    assert out["teff_median"].shape == (5,)


def test_cli_predict_round_trip(tiny_run, tmp_path, capsys):
    table = tmp_path / "test.fits"
    assert main(["data", "export", "--split", "test", "--output", str(table)]) == 0
    out = tmp_path / "pred.csv"
    assert main(["predict", str(table), "--request", "teff", "logg", "--output", str(out),
                 "--model", str(tiny_run)]) == 0
    result = pd.read_csv(out)
    assert len(result) > 3000
    assert {"source_id", "teff_median", "teff_std", "teff_q16", "logg_q84"} <= set(result)


@pytest.mark.parametrize("content, message", [
    (b"\x89garbage\x00" * 20, "cannot be read"),
    (None, "no such file"),
])
def test_cli_bad_input_file(tiny_run, tmp_path, capsys, content, message):
    path = tmp_path / "stars.fits"
    if content is not None:
        path.write_bytes(content)
    code = main(["predict", str(path), "--output", str(tmp_path / "o.csv"),
                 "--model", str(tiny_run)])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_bad_model_and_request(tiny_run, tmp_path, capsys):
    csv = tmp_path / "s.csv"
    pd.DataFrame({"teff": [4500.0]}).to_csv(csv, index=False)
    assert main(["predict", str(csv), "--output", str(tmp_path / "o.csv"),
                 "--model", str(tmp_path)]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["predict", str(csv), "--request", "tef", "--output",
                 str(tmp_path / "o.csv"), "--model", str(tiny_run)]) == 2
    assert "did you mean" in capsys.readouterr().err
    (tmp_path / "d.csv").mkdir()
    for output, message in ((tmp_path / "d.csv", "is a folder"),
                            (tmp_path / "no" / "o.csv", "does not exist")):
        assert main(["predict", str(csv), "--output", str(output), "--model",
                     str(tiny_run)]) == 2
        assert message in capsys.readouterr().err


def test_spectrum_of_wrong_length(model):
    with pytest.raises(TableError, match="343"):
        model.predict({"flux": np.ones((2, 300))}, ["teff"])


def test_request_indices_are_vocabulary_names():
    assert [NAMES[i] for i in index_of(["TEFF", "m_h"])] == ["teff", "fe_h"]


def test_robust_scatter_is_astropy_mad_std():
    from astropy.stats import mad_std

    from probstar.evaluate import robust_scatter

    x = np.random.default_rng(0).standard_t(3, 1001)
    assert robust_scatter(np.zeros_like(x), x) == pytest.approx(mad_std(x), rel=1e-6)


def test_scatter_ratio_and_its_interval():
    """Half the errors give a ratio of 0.5, and the paired interval holds it tightly; two
    independent predictions of equal quality give an interval around 1."""
    from probstar.evaluate import scatter_ratio

    rng = np.random.default_rng(1)
    truth, err = rng.normal(size=2000), rng.normal(size=2000)
    ratio, lo, hi = scatter_ratio(truth, truth + 0.5 * err, truth + err, n_boot=500)
    assert ratio == pytest.approx(0.5) and lo == pytest.approx(0.5) == hi
    ratio, lo, hi = scatter_ratio(truth, truth + err, truth + rng.normal(size=2000),
                                  n_boot=500)
    assert lo < ratio < hi and lo < 1 < hi and hi - lo < 0.2


def test_requested_and_ignored_names_are_not_inputs(model, test_stars):
    """A library table with its labels present answers from the observables alone."""
    stars = test_stars.select(slice(0, 30))
    observables = stars.only(["bp_rp", "j_h", "j_k", "g", "xp_500", "xp_700"])
    with_labels = stars.only(["bp_rp", "j_h", "j_k", "g", "xp_500", "xp_700", "teff",
                              "logg", "alpha_m"])
    a = model.predict(observables, ["teff", "logg"])
    b = model.predict(with_labels, ["teff", "logg"], ignore=["alpha_m"])
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5)
    c = model.predict(with_labels, ["teff", "logg"])  # alpha_m used: a different answer
    assert not np.allclose(a["teff_median"], c["teff_median"])


def test_a_hidden_magnitude_hides_the_colours_made_from_it(model):
    """Asked for bp with bp and rp in a table, the bp_rp derived from them would give bp
    back; an ignored magnitude (one name as a plain string) hides its colours too."""
    rest = {"rp": [11.8, 11.8], "teff": [4500.0, 4500.0]}
    a = model.predict({**rest, "bp": [11.0, 14.0]}, "bp")
    b = model.predict(rest, "bp")
    np.testing.assert_allclose(a["bp_median"], b["bp_median"], rtol=1e-6)
    c = model.predict({**rest, "bp": [11.0, 14.0]}, "logg", ignore="bp")
    np.testing.assert_allclose(c["logg_median"], model.predict(rest, "logg")["logg_median"],
                               rtol=1e-6)


def test_posterior_shapes_and_reproducible_samples(model, test_stars):
    post = model.posterior(test_stars.select(slice(0, 4)), ["teff", "logg"])
    a, b = post.sample(50, seed=7), post.sample(50, seed=7)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 4, 2)
    assert post.log_prob(a).shape == (50, 4)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4, 2\)"):
        post.log_prob(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="an integer >= 1, got 2.5"):
        post.sample(2.5)
    one = model.posterior(test_stars.select(slice(0, 4)), "logg")
    np.testing.assert_array_equal(one.quantile([0.16, 0.84])[1], one.quantile(0.84))
    assert one.pdf("LOGG", 2.0).shape == (4, 1)  # an alias, and one point
    with pytest.raises(ValueError, match="n_stars = 4"):
        one.pdf("logg", np.zeros((3, 5)))


def test_cli_set_parses_each_field_type():
    """--set key=value: booleans, numbers, strings and comma-separated tuples."""
    from probstar.train import PRESETS

    cfg = PRESETS["smoke"].with_settings(["tied_queries=true", "outputs=gaussian,mixture",
                                          "lr=2e-4", "epochs=3", "drop_names=alpha_m"])
    assert cfg.model.tied_queries is True and cfg.model.outputs == ("gaussian", "mixture")
    assert (cfg.lr, cfg.epochs, cfg.drop_names) == (2e-4, 3, "alpha_m")
    with pytest.raises(ValueError, match="unknown setting 'depth'"):
        PRESETS["smoke"].with_settings(["depth=3"])
    with pytest.raises(ValueError, match="--set dim: expected int, got 'abc'"):
        PRESETS["smoke"].with_settings(["dim=abc"])


def test_answer_scores_leave_out_stars_without_the_inputs(model, test_stars):
    from probstar.evaluate import answer_scores

    stars = test_stars.select(slice(0, 30))
    values = stars.values.copy()
    values[:3, index_of(["j_h", "j_k", "ak"])] = np.nan  # three stars with none of them
    stars = Observations(values, stars.errors.copy())
    s = answer_scores(model, stars, ["j_h", "j_k", "ak"], "teff", n_draws=50)
    assert np.isnan(s["median"][:3]).all() and np.isfinite(s["median"][3:]).all()
    assert 0 <= s["c68"] <= 1 and s["width"] > 0
