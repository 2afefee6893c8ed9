"""Posterior draws on disk: one HDF5 dataset per requested name, (n_stars, n_samples).

Requested XP pixels go into one dataset ``xp`` of shape (n_stars, n_samples, n_pixels)
with their wavelengths in ``xp_wavelength`` (nm). The same sample index across names is
one joint draw. Each dataset carries its unit;
the file carries the head, whether the draws are joint, and the provenance (input,
model, seed, probstar version). ``source_id`` holds the stars' ids when the input had
them.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from . import __version__
from .posterior import Posterior
from .vocab import NAMES, VOCAB, XP_NAMES, XP_WAVELENGTHS

__all__ = ["write_samples", "read_samples", "hdf5_path"]


def hdf5_path(path: str | Path) -> Path:
    """``path`` as a Path, or a ValueError when its name is not that of an HDF5 file."""
    path = Path(path)
    if path.suffix.lower() not in (".h5", ".hdf5"):
        raise ValueError(f"{path}: samples are written as HDF5; use a .h5 or .hdf5 name")
    return path


def write_samples(path: str | Path, posterior: Posterior, draws: np.ndarray,
                  ids: np.ndarray | None = None, provenance: dict | None = None) -> Path:
    """Write ``draws`` (n_samples, n_stars, n_names) of ``posterior`` to HDF5 at ``path``."""
    path = hdf5_path(path)
    n, n_stars, n_names = draws.shape
    pixels = [j for j, name in enumerate(posterior.names) if name in XP_NAMES]
    with h5py.File(path, "w") as f:
        for j, name in enumerate(posterior.names):
            if name in XP_NAMES:  # all pixels go into one dataset, below
                continue
            ds = f.create_dataset(name, data=np.ascontiguousarray(draws[:, :, j].T),
                                  compression="gzip", shuffle=True)
            ds.attrs["unit"] = VOCAB[NAMES.index(name)].unit
            ds.attrs["description"] = VOCAB[NAMES.index(name)].description
        if pixels:
            ds = f.create_dataset("xp", data=np.ascontiguousarray(
                draws[:, :, pixels].transpose(1, 0, 2)), compression="gzip", shuffle=True)
            ds.attrs["unit"] = VOCAB[NAMES.index(XP_NAMES[0])].unit
            ds.attrs["description"] = "Gaia XP flux divided by its median over 336-1020 nm"
            wavelengths = [XP_WAVELENGTHS[XP_NAMES.index(posterior.names[j])] for j in pixels]
            f.create_dataset("xp_wavelength", data=np.asarray(wavelengths, np.float64))
        if ids is not None:
            f.create_dataset("source_id", data=np.asarray(ids))
        f.attrs.update({"names": list(posterior.names), "joint": posterior.joint,
                        "n_samples": n, "n_stars": n_stars,
                        "probstar_version": __version__,
                        "layout": "one dataset per name, shape (n_stars, n_samples) "
                                  "(XP pixels: one dataset 'xp', (n_stars, n_samples, "
                                  "n_pixels)); the same sample index across names is one "
                                  "joint draw",
                        **{k: v for k, v in (provenance or {}).items() if v is not None}})
    return path


def read_samples(path: str | Path) -> dict[str, np.ndarray]:
    """{name: (n_stars, n_samples)}, ``xp`` (n_stars, n_samples, n_pixels) with
    ``xp_wavelength``, and ``source_id``, as written, from a samples file."""
    with h5py.File(path, "r") as f:
        return {str(name): f[name][()] for name in f}
