"""The container every reader produces and every model consumes.

``Observations`` holds one row per star and one column per vocabulary name: a value
(NaN = not observed), an uncertainty (NaN = unknown) and an optional star identifier.
Missing values are ordinary data; impossible values are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..vocab import COLOURS, NAMES, VOCAB, index_of, out_of_range

__all__ = ["Observations", "InvalidValueError", "star_rows"]


def star_rows(mask) -> str:
    """"N star(s) (row(s) a, b, ...)", the stars where ``mask`` (n_stars,) is True, for
    messages that name the stars at fault (the first five rows shown)."""
    rows = np.flatnonzero(mask)
    shown = ", ".join(map(str, rows[:5].tolist())) + (", ..." if rows.size > 5 else "")
    return f"{rows.size} star(s) (row(s) {shown})"


class InvalidValueError(ValueError):
    """A value outside the physically valid range of its quantity."""


@dataclass
class Observations:
    """Values and uncertainties of vocabulary quantities for a batch of stars.

    values, errors: float32 arrays (n_stars, len(NAMES)); NaN means absent / unknown.
    ids: optional int64 Gaia source ids (n_stars,), used for the train/test split.
    """

    values: np.ndarray
    errors: np.ndarray
    ids: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # pass-through columns

    def __post_init__(self) -> None:
        shape = (self.values.shape[0], len(NAMES))
        if self.values.shape != shape or self.errors.shape != shape:
            raise ValueError(f"values and errors must have shape (n_stars, {len(NAMES)}), "
                             f"got {self.values.shape} and {self.errors.shape}")
        self.values = _clean(self.values)
        self.errors = _clean(self.errors)
        self.errors[~np.isfinite(self.values)] = np.nan
        self.errors[self.errors < 0] = np.nan

    def __len__(self) -> int:
        return self.values.shape[0]

    @classmethod
    def empty(cls, n_stars: int) -> "Observations":
        nan = np.full((n_stars, len(NAMES)), np.nan, np.float32)
        return cls(nan, nan.copy())

    def column(self, name: str) -> np.ndarray:
        (i,) = index_of(name)
        return self.values[:, i]

    def select(self, rows) -> "Observations":
        """A subset of stars (boolean mask, indices or a slice), as a copy: changing it
        leaves these stars as they are."""
        return Observations(
            self.values[rows].copy(), self.errors[rows].copy(),
            None if self.ids is None else self.ids[rows].copy(),
            {k: v[rows].copy() for k, v in self.extra.items()},
        )

    def has_any(self, names) -> np.ndarray:
        """(n_stars,) True where a star has at least one of ``names`` observed: the stars
        that a question from those inputs can be asked of."""
        return np.isfinite(self.values[:, index_of(list(names))]).any(1)

    def complete(self, names) -> "Observations":
        """The stars (in order) with every one of ``names`` observed, e.g. every label of
        an inverse problem and the whole XP spectrum."""
        return self.select(np.isfinite(self.values[:, index_of(list(names))]).all(1))

    def only(self, names) -> "Observations":
        """The same stars with every quantity except ``names`` removed (set absent)."""
        keep = np.zeros(len(NAMES), bool)
        keep[index_of(list(names))] = True
        values, errors = self.values.copy(), self.errors.copy()
        values[:, ~keep] = np.nan
        errors[:, ~keep] = np.nan
        return Observations(values, errors, self.ids, dict(self.extra))

    def derive_colours(self) -> "Observations":
        """Fill absent colours (bp_rp, j_h, j_k) from their two magnitudes where both exist."""
        for colour, (a, b) in COLOURS.items():
            (ic,), (ia,), (ib,) = index_of(colour), index_of(a), index_of(b)
            fill = np.isnan(self.values[:, ic])
            self.values[fill, ic] = self.values[fill, ia] - self.values[fill, ib]
            err = np.hypot(self.errors[fill, ia], self.errors[fill, ib])
            self.errors[fill, ic] = err
        return self

    def validate(self) -> "Observations":
        """Raise :class:`InvalidValueError` naming the first star row and field out of range."""
        if len(self) == 0:
            raise ValueError("the table holds no stars (0 rows)")
        if not np.isfinite(self.values).any():
            raise ValueError("no usable value: every quantity of every star is missing")
        outside = out_of_range(self.values)
        if outside.any():
            i = int(np.flatnonzero(outside.any(0))[0])  # the first name out of range
            token, bad = VOCAB[i], np.flatnonzero(outside[:, i])
            row = int(bad[0])
            raise InvalidValueError(
                f"row {row}: {token.name} = {self.values[row, i]:g} {token.unit} is outside "
                f"the valid range [{token.low:g}, {token.high:g}] ({bad.size} such row(s)); "
                "check the column's units")
        return self


def _clean(a: np.ndarray) -> np.ndarray:
    """float32 copy with inf turned into NaN (= missing)."""
    a = np.array(a, dtype=np.float32, copy=True)
    a[~np.isfinite(a)] = np.nan
    return a
