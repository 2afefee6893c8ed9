"""Posterior draws on disk: one HDF5 dataset per requested name, (n_stars, n_samples).

The same sample index across names is one joint draw. Each dataset carries its unit;
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
from .vocab import NAMES, VOCAB

__all__ = ["write_samples", "read_samples"]


def write_samples(path: str | Path, posterior: Posterior, draws: np.ndarray,
                  ids: np.ndarray | None = None, provenance: dict | None = None) -> Path:
    """Write ``draws`` (n_samples, n_stars, n_names) of ``posterior`` to HDF5 at ``path``."""
    path = Path(path)
    if path.suffix.lower() not in (".h5", ".hdf5"):
        raise ValueError(f"{path}: samples are written as HDF5; use a .h5 or .hdf5 name")
    n, n_stars, n_names = draws.shape
    with h5py.File(path, "w") as f:
        for j, name in enumerate(posterior.names):
            ds = f.create_dataset(name, data=np.ascontiguousarray(draws[:, :, j].T),
                                  compression="gzip", shuffle=True)
            ds.attrs["unit"] = VOCAB[NAMES.index(name)].unit
            ds.attrs["description"] = VOCAB[NAMES.index(name)].description
        if ids is not None:
            f.create_dataset("source_id", data=np.asarray(ids))
        f.attrs.update({"names": list(posterior.names), "joint": posterior.joint,
                        "n_samples": n, "n_stars": n_stars,
                        "probstar_version": __version__,
                        "layout": "one dataset per name, shape (n_stars, n_samples); the "
                                  "same sample index across names is one joint draw",
                        **{k: v for k, v in (provenance or {}).items() if v is not None}})
    return path


def read_samples(path: str | Path) -> dict[str, np.ndarray]:
    """{name: (n_stars, n_samples)} (and ``source_id`` if written) from a samples file."""
    with h5py.File(path, "r") as f:
        names = list(f.attrs["names"]) + (["source_id"] if "source_id" in f else [])
        return {str(name): f[name][()] for name in names}
