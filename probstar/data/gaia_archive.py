"""Read Gaia DR3 archive XP *continuous* spectra (``xp_continuous_mean_spectrum``).

Each band's 55 basis-function coefficients, with their errors, correlations and
standard deviation, are sampled by the ``gaiaxpy`` calibrator onto the probstar grid
(336-1020 nm in 2 nm steps), the flux errors propagated from the coefficient
covariance. The sampled spectra and any other columns (magnitudes, parallax, ...) then
go through :func:`~probstar.data.tables.from_columns` like any other table. A row with
no XP data gets a missing spectrum; so does a row with only one band, with a warning
(a partial spectrum does not define the normalisation, :mod:`probstar.data.tables`).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import re
import warnings
from typing import Any

import numpy as np

from ..vocab import XP_WAVELENGTHS
from .observations import Observations
from .tables import MISSING_TEXT, TableError, _columns, _row_count, from_columns

__all__ = ["read_gaia_xp_continuous"]

N_COEFFICIENTS = 55  # per band in Gaia DR3
N_CORRELATIONS = N_COEFFICIENTS * (N_COEFFICIENTS - 1) // 2  # strict lower triangle
BANDS = ("bp", "rp")
REQUIRED = ("coefficients", "coefficient_errors", "coefficient_correlations",
            "standard_deviation")
# Every per-band column of the archive table; all are consumed here, none passed on.
_XP_SUFFIXES = REQUIRED + (
    "n_parameters", "basis_function_id", "degrees_of_freedom", "n_measurements",
    "n_rejected_measurements", "chi_squared", "n_relevant_bases", "relative_shrinking",
    "coefficient_covariances")
XP_COLUMNS = frozenset({f"{b}_{s}" for b in BANDS for s in _XP_SUFFIXES} | {"solution_id"})


def read_gaia_xp_continuous(source: Any) -> Observations:
    """Observations from a Gaia DR3 XP continuous table (file path, DataFrame, astropy Table).

    Raises :class:`~probstar.data.tables.TableError` naming the column (and row) for a
    missing coefficient column, an array of the wrong length or an unreadable file.
    """
    columns = _columns(source)
    n_rows = _row_count(columns)
    lower = {name.lower(): name for name in columns}
    missing = [f"{b}_{p}" for b in BANDS for p in REQUIRED if f"{b}_{p}" not in lower]
    if missing:
        raise TableError(f"not a Gaia XP continuous table: missing column(s) "
                         f"{', '.join(missing)}")
    bands = {b: _parse_band(b, columns, lower, n_rows) for b in BANDS}
    flux, flux_error = _sample(bands, n_rows)
    out = {name: col for name, col in columns.items() if name.lower() not in XP_COLUMNS}
    out["flux"], out["flux_error"] = flux, flux_error
    return from_columns(out)  # a star without XP data: an all-NaN (missing) spectrum


def _parse_band(band: str, columns: dict, lower: dict, n_rows: int) -> list[dict | None]:
    """Per row: the band's parsed arrays, or None where the row has no data for the band."""
    names = {p: lower[f"{band}_{p}"] for p in REQUIRED}
    rows: list[dict | None] = []
    for i in range(n_rows):
        coef = _array(columns[names["coefficients"]][i], i, names["coefficients"])
        if coef is None:
            rows.append(None)
            continue
        _check_size(coef, (N_COEFFICIENTS,), i, names["coefficients"])
        err = _array(columns[names["coefficient_errors"]][i], i, names["coefficient_errors"])
        _check_size(err, (N_COEFFICIENTS,), i, names["coefficient_errors"])
        corr = _array(columns[names["coefficient_correlations"]][i], i,
                      names["coefficient_correlations"])
        _check_size(corr, (N_CORRELATIONS, N_COEFFICIENTS ** 2), i,
                    names["coefficient_correlations"])
        sd = _array(columns[names["standard_deviation"]][i], i, names["standard_deviation"])
        if sd is None or sd.size != 1 or not sd.item() > 0:
            raise TableError(f"row {i}: column {names['standard_deviation']!r} must be one "
                             f"positive number where {band.upper()} coefficients are given")
        if corr.size == N_COEFFICIENTS ** 2:
            corr = corr.reshape(N_COEFFICIENTS, N_COEFFICIENTS)
        rows.append({"coefficients": coef, "coefficient_errors": err,
                     "coefficient_correlations": corr, "standard_deviation": sd.item()})
    return rows


def _array(value: Any, row: int, name: str) -> np.ndarray | None:
    """One cell as a float array; None when the cell is empty (no data)."""
    try:
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, str):  # archive CSV: "(1.0, 2.0, ...)" or "[...]"
            text = re.sub(r"[()\[\]]", " ", value).strip()
            if text.lower() in MISSING_TEXT:
                return None
            tokens = [t for t in re.split(r"[,\s]+", text) if t]
            arr = np.array([np.nan if t.lower() in MISSING_TEXT else float(t)
                            for t in tokens])
        else:
            arr = np.ma.filled(np.ma.asarray(value, dtype=np.float64), np.nan)
    except (TypeError, ValueError):
        raise TableError(f"row {row}: column {name!r} holds {str(value)[:60]!r}, "
                         "not an array of numbers") from None
    arr = np.asarray(arr, np.float64).ravel()
    if arr.size == 0 or np.isnan(arr).all():
        return None
    if not np.isfinite(arr).all():
        raise TableError(f"row {row}: column {name!r} holds non-finite values among "
                         "finite ones")
    return arr


def _check_size(arr: np.ndarray | None, sizes: tuple[int, ...], row: int, name: str) -> None:
    if arr is None:
        raise TableError(f"row {row}: column {name!r} is empty but the band's "
                         "coefficients are given")
    if arr.size not in sizes:
        raise TableError(f"row {row}: column {name!r} holds {arr.size} values; Gaia DR3 XP "
                         f"needs {' or '.join(map(str, sizes))} "
                         f"({N_COEFFICIENTS} coefficients per band)")


def _sample(bands: dict[str, list], n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Sampled flux and flux error (n_rows, 343), NaN where a row has no XP data."""
    flux = np.full((n_rows, XP_WAVELENGTHS.size), np.nan)
    flux_error = flux.copy()
    rows = [i for i in range(n_rows) if any(bands[b][i] is not None for b in BANDS)]
    if not rows:
        return flux, flux_error
    import pandas as pd

    records = []
    for i in rows:
        record: dict[str, Any] = {"source_id": i}  # the row number, to match the output
        for b in BANDS:
            data = bands[b][i]
            record[f"{b}_n_parameters"] = N_COEFFICIENTS if data else np.nan
            for part in REQUIRED:
                record[f"{b}_{part}"] = data[part] if data else np.nan
        records.append(record)
    result = _calibrate(pd.DataFrame(records))
    for i, f, e in zip(result["source_id"], result["flux"], result["flux_error"]):
        flux[int(i)], flux_error[int(i)] = f, e
    return flux, flux_error


def _calibrate(frame):
    """gaiaxpy's calibrator on the probstar grid, without files, messages or progress bars."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # gaiaxpy prints "Reading input file..." and triggers pandas deprecation warnings
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        from gaiaxpy import calibrate

        calibrator = importlib.import_module("gaiaxpy.calibrator.calibrator")

        kwargs = dict(sampling=XP_WAVELENGTHS.astype(np.float64), truncation=False,
                      save_file=False)
        quiet = getattr(calibrator, "_calibrate", None)  # the same, with disable_info
        if quiet is not None and "disable_info" in inspect.signature(quiet).parameters:
            call, kwargs["disable_info"] = quiet, True  # no tqdm progress bar
        else:
            call = calibrate
        try:
            result, _ = call(frame, **kwargs)
        except Exception as exc:
            raise TableError(f"gaiaxpy could not sample the XP spectra "
                             f"({type(exc).__name__}: {exc})") from exc
    return result
