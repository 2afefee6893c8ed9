"""Read any table (FITS, CSV, Parquet, ECSV, astropy, pandas, dict) into Observations.

Columns are matched to the vocabulary by name or alias, case-insensitively. An error
column is ``<name>_err`` or ``<name>_error``. A 2-D column ``flux`` (with
``flux_error``) of 343 pixels is a Gaia XP sampled spectrum on the 336-1020 nm grid;
each star's spectrum is divided by its median over the 343 pixels (the library
convention). A spectrum with some pixels missing does not define that median: it is
left out, with a warning naming its rows. ``xp_<nm>`` columns are taken as already
normalised (any subset of them). Colours absent
from the table are derived from their magnitudes. Unknown columns are ignored with one
warning that names them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..vocab import NAMES, XP_NAMES, index_of, resolve
from .observations import InvalidValueError, Observations, star_rows

__all__ = ["read_table", "from_columns", "TableError"]

ID_COLUMNS = ("source_id", "gaiaedr3_source_id", "gaiadr3_source_id", "gaia_source_id")
SPECTRUM_COLUMNS = ("flux", "xp_flux", "xp_sampled")
PASS_THROUGH = ("apogee_id", "medflux", "snr", "ra", "dec", "row")


class TableError(ValueError):
    """A table that cannot be turned into observations (unreadable, empty, wrong shape)."""


def read_table(source: Any) -> Observations:
    """Observations from a file path, astropy Table, pandas DataFrame or dict of columns."""
    return from_columns(_columns(source))


def _columns(source: Any) -> dict[str, np.ndarray]:
    if isinstance(source, (str, Path)):
        return _read_file(Path(source))
    if isinstance(source, Mapping):
        return {str(k): _as_array(v) for k, v in source.items()}
    if hasattr(source, "colnames"):  # astropy Table
        return {name: _as_array(source[name]) for name in source.colnames}
    if hasattr(source, "columns") and hasattr(source, "to_numpy"):  # pandas DataFrame
        return {str(name): _as_array(source[name].to_numpy()) for name in source.columns}
    raise TableError(f"cannot read observations from a {type(source).__name__}; give a file "
                     "path, an astropy Table, a pandas DataFrame or a dict of columns")


def _read_file(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise TableError(f"{path}: no such file")
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            import pandas as pd

            return _columns(pd.read_parquet(path))
        from astropy.table import Table

        fmt = "ascii.csv" if suffixes.endswith((".csv", ".csv.gz")) else None
        table = Table.read(path, format=fmt) if fmt else Table.read(path)
    except Exception as exc:  # corrupt or foreign file: say which file, not where it broke
        reason = str(exc).split("\n", 1)[0]  # astropy appends every format it knows
        raise TableError(f"{path}: cannot be read as a table ({type(exc).__name__}: "
                         f"{reason})") \
            from None
    return _columns(table)


def _as_array(column: Any) -> np.ndarray:
    """A column as a float or object array, masked entries as NaN."""
    if np.ma.isMaskedArray(column) or hasattr(column, "mask"):
        data = np.ma.asarray(column)
        if not np.ma.getmaskarray(data).any():
            return np.asarray(data.data)
        if data.dtype.kind in "fiu":
            return np.ma.filled(data.astype(np.float64), np.nan)
        out = np.asarray(data.data, object)
        out[np.ma.getmaskarray(data)] = None
        return out
    return np.asarray(column)


def from_columns(columns: Mapping[str, np.ndarray]) -> Observations:
    """Observations from named columns; see the module docstring for the matching rules."""
    columns = dict(columns)
    n_rows = _row_count(columns)
    obs = Observations.empty(n_rows)
    unknown = []
    lower = {name.lower(): name for name in columns}
    claimed: dict[tuple[str, int], str] = {}  # (values or errors, vocabulary index): column

    def claim(kind: str, indices, name: str) -> None:
        """Two columns for the same quantity (aliases, or a case variant): refuse."""
        for i in indices:
            other = claimed.setdefault((kind, i), name)
            if other != name:
                raise TableError(f"columns {other!r} and {name!r} both give "
                                 f"{NAMES[i]}{' errors' if kind == 'errors' else ''}; "
                                 "keep one")

    for name, column in columns.items():
        key = name.lower()
        if key in ID_COLUMNS:
            obs.ids = _source_ids(name, column)
        elif key in SPECTRUM_COLUMNS:
            errors = next((columns[lower[k + s]] for k in [key] for s in ("_error", "_err")
                           if k + s in lower), None)
            claim("values", index_of(list(XP_NAMES)), name)
            _set_spectrum(obs, name, column, errors)
        elif key.endswith(("_error", "_err")) and (
                key.rsplit("_err", 1)[0] in SPECTRUM_COLUMNS):
            continue  # read together with its spectrum
        elif key.endswith(("_error", "_err")) and resolve(_base(key)):
            claim("errors", index_of(_base(key)), name)
            (i,) = index_of(_base(key))
            obs.errors[:, i] = _non_negative(name, _numeric(name, column, n_rows))
        elif resolve(key):
            claim("values", index_of(key), name)
            (i,) = index_of(key)
            obs.values[:, i] = _numeric(name, column, n_rows)
        elif key in PASS_THROUGH:
            obs.extra[key] = np.asarray(column)
        else:
            unknown.append(name)
    if unknown:
        warnings.warn(f"ignoring {len(unknown)} column(s) that are not probstar quantities: "
                      f"{', '.join(unknown)}", stacklevel=3)
    obs = Observations(obs.values, obs.errors, obs.ids, obs.extra)  # re-clean inf / NaN
    obs.validate()  # the given columns first: the error names the one given
    try:
        return obs.derive_colours().validate()
    except InvalidValueError as exc:  # a colour derived from two magnitudes in range
        raise InvalidValueError(f"{exc}: that colour was derived from two of the magnitudes") \
            from None


def _source_ids(name: str, column: np.ndarray) -> np.ndarray:
    """Integer source ids; a missing or non-integer id is an error (it decides the split)."""
    column = np.asarray(column)
    if column.dtype.kind in "iu":
        return column.astype(np.int64)
    bad = next((i for i, v in enumerate(column)
                if not isinstance(v, (int, np.integer)) or isinstance(v, bool)), 0)
    raise TableError(f"row {bad}: column {name!r} holds {column[bad]!r}; source ids must be "
                     "integers with no missing value (a float column cannot hold 19-digit ids "
                     "exactly)")


def _base(key: str) -> str:
    return key[: -len("_error")] if key.endswith("_error") else key[: -len("_err")]


def _row_count(columns: Mapping[str, np.ndarray]) -> int:
    if not columns:
        raise TableError("the table has no columns")
    scalar = next((name for name, c in columns.items() if np.ndim(c) == 0), None)
    if scalar is not None:
        raise TableError(f"column {scalar!r} must hold one value per star, got a single scalar")
    lengths = {len(np.asarray(c)) for c in columns.values()}
    if len(lengths) != 1:
        raise TableError(f"columns have different lengths: {sorted(lengths)}")
    n = lengths.pop()
    if n == 0:
        raise TableError("the table holds no stars (0 rows)")
    return n


def _numeric(name: str, column: np.ndarray, n_rows: int) -> np.ndarray:
    column = np.asarray(column)
    if column.ndim != 1:
        raise TableError(f"column {name!r} must hold one number per star, got shape "
                         f"{column.shape}")
    try:
        return column.astype(np.float64)
    except (TypeError, ValueError):
        column = np.array([np.nan if _is_missing(v) else v for v in column], object)
        bad = next((i for i, v in enumerate(column) if not _is_number(v)), None)
        if bad is None:
            return column.astype(np.float64)
        raise TableError(f"row {bad}: column {name!r} holds {column[bad]!r}, not a number") \
            from None


#: Texts that mark a missing value in tables written by common tools (pandas, astropy,
#: TOPCAT, the Gaia archive).
MISSING_TEXT = frozenset({"", "na", "n/a", "nan", "null", "none", "--", "?"})


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, (str, np.str_)) and v.strip().lower() in MISSING_TEXT)


def _non_negative(name: str, errors: np.ndarray) -> np.ndarray:
    """The uncertainties of column ``name``, or a TableError at the first negative one
    (NaN is the way to say "unknown")."""
    with np.errstate(invalid="ignore"):
        negative = errors < 0
    if negative.any():
        row = int(np.nonzero(negative)[0][0])
        raise TableError(f"row {row}: column {name!r} holds a negative uncertainty "
                         f"({errors[negative].flat[0]:g}; {int(negative.sum())} such "
                         "value(s)); use NaN for an unknown one")
    return errors


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return v is None


def _set_spectrum(obs: Observations, name: str, flux, flux_error) -> None:
    flux = _spectrum_array(name, flux)
    cols = index_of(list(XP_NAMES))
    present = np.isfinite(flux)
    partial = present.any(1) & ~present.all(1)
    if partial.any():  # the median over 336-1020 nm is undefined (divided by the median
        first = int(np.argmax(partial))  # of the blue half: benchmark/input_errors.md)
        warnings.warn(
            f"column {name!r}: {star_rows(partial)} have a partial spectrum "
            f"({int(present[first].sum())} of {len(XP_NAMES)} pixels in row {first}); "
            "spectra are normalised by their median over all of 336-1020 nm, which a "
            "partial one does not define, so theirs are left out. Give them as xp_<nm> "
            "columns normalised by the full spectrum's median to use them.", stacklevel=4)
        flux = np.where(partial[:, None], np.nan, flux)
    with warnings.catch_warnings():  # a star without spectrum: an all-NaN row
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(flux, axis=1, keepdims=True)
    unusable = median[:, 0] <= 0
    if unusable.any():
        warnings.warn(f"column {name!r}: {star_rows(unusable)} have a spectrum whose median "
                      "is not positive; it cannot be normalised and is left out",
                      stacklevel=4)
    with np.errstate(invalid="ignore", divide="ignore"):
        median = np.where(median > 0, median, np.nan)  # a spectrum with no positive median
        obs.values[:, cols] = flux / median
        if flux_error is not None:
            errors = _non_negative(name + "_error", _spectrum_array(name + "_error",
                                                                    flux_error))
            obs.errors[:, cols] = errors / median


def _is_empty(cell: Any) -> bool:
    """A table cell that holds no spectrum (None or a lone NaN)."""
    return cell is None or (np.ndim(cell) == 0 and not np.isfinite(float(cell)))


def _spectrum_array(name: str, column) -> np.ndarray:
    if isinstance(column, np.ndarray) and column.dtype == object:
        try:
            column = np.stack([np.full(len(XP_NAMES), np.nan) if _is_empty(row)
                               else np.asarray(row, np.float64) for row in column])
        except ValueError:
            lengths = sorted({len(np.atleast_1d(r)) for r in column})
            raise TableError(f"column {name!r}: spectra of different lengths {lengths}; "
                             f"expected {len(XP_NAMES)} pixels (336-1020 nm, 2 nm steps)") \
                from None
    column = np.asarray(column, np.float64)
    if column.ndim != 2 or column.shape[1] != len(XP_NAMES):
        raise TableError(f"column {name!r} has shape {column.shape}; a Gaia XP sampled "
                         f"spectrum needs {len(XP_NAMES)} pixels per star (336-1020 nm in "
                         "2 nm steps)")
    return column
