"""The one train / validation / test split, fixed by the Gaia source id.

bucket = crc32(str(source_id)) % 10: 0 test, 1 validation, 2-9 train. (Gaia source ids
have structured low bits, so ``source_id % 10`` would not be random.)
"""

from __future__ import annotations

import zlib

import numpy as np

SPLITS = ("train", "validation", "test")


def bucket(source_ids: np.ndarray) -> np.ndarray:
    """crc32 bucket 0-9 of each source id."""
    return np.array([zlib.crc32(str(int(s)).encode()) % 10 for s in source_ids], np.int64)


def split_mask(source_ids: np.ndarray, split: str) -> np.ndarray:
    """Boolean mask of the stars in ``split`` ('train', 'validation' or 'test')."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    b = bucket(source_ids)
    return {"test": b == 0, "validation": b == 1, "train": b >= 2}[split]
