"""Stellar loci from the model's joint PDFs: a Kiel diagram and a colour-Teff locus.

    python examples/kiel_diagram.py          # writes docs/kiel_diagram.png

Left: for every test-split star, one joint draw of (logg, fe_h) from the model given
only that star's Teff (the flow head): the model's Kiel diagram of the APOGEE
population, next to the test stars' own APOGEE (Teff, logg), with PARSEC isochrones
([M/H] = 0, 1, 4 and 10 Gyr) from the simulator's grid. Right: the intrinsic BP - RP
colour the model gives (median and 68% band) for Teff 3600-6500 K, on the giant branch
(logg = 2) and the main sequence (logg = 4.5), at [M/H] = 0 and A_K = 0, against PARSEC
and the test stars with A_K < 0.03. The colour-magnitude version needs absolute
magnitudes, which the model does not know (no parallax in its training data).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import probstar
from probstar.data import load_split
from probstar.plots import axis_label
from probstar.simulate import isochrone_grid

DOCS = Path(__file__).resolve().parent.parent / "docs"
AGES_GYR = (1.0, 4.0, 10.0)


def isochrone(mh: float, age_gyr: float) -> dict[str, np.ndarray]:
    """The PARSEC isochrone of the grid nearest to [M/H] and age (main sequence to AGB)."""
    g = isochrone_grid()
    i = np.argmin(np.abs(g["MH"] - mh) + 10 * np.abs(g["LOGAGE"] - np.log10(age_gyr * 1e9)))
    rows = g["iso"] == g["iso"][i]
    return {"teff": 10 ** g["LOGTE"][rows], "logg": g["LOGG"][rows],
            "bp_rp": (g["GAIAEDR3_GBPMAG"] - g["GAIAEDR3_GRPMAG"])[rows],
            "label": f"PARSEC [M/H] = {g['MH'][i]:.2f}, {10 ** g['LOGAGE'][i] / 1e9:.1f} Gyr"}


def main() -> None:
    model = probstar.load_model()
    test = load_split("test")
    teff = test.column("teff")
    teff = teff[np.isfinite(teff) & (teff < 7000)]
    draws = model.posterior({"teff": teff}, ["logg", "fe_h"]).sample(1, seed=0)[0]

    fig, (kiel, locus) = plt.subplots(1, 2, figsize=(13, 5.5))
    kiel.scatter(teff, draws[:, 0], s=2, c=draws[:, 1], cmap="viridis", vmin=-1, vmax=0.4,
                 alpha=0.7, label="probstar: one draw of (logg, [Fe/H]) | Teff per star")
    truth = test.column("logg")
    kiel.scatter(test.column("teff"), truth, s=1, color="0.6", alpha=0.5,
                 label="test stars (APOGEE)", zorder=0)
    for age, ls in zip(AGES_GYR, ("-", "--", ":")):
        iso = isochrone(0.0, age)
        kiel.plot(iso["teff"], iso["logg"], ls, color="#b03030", lw=1.2, label=iso["label"])
    kiel.set_xlim(7000, 3000)
    kiel.set_ylim(5.5, -0.5)
    kiel.set_xlabel(axis_label("teff"))
    kiel.set_ylabel(axis_label("logg"))
    kiel.legend(fontsize=7, frameon=False, loc="lower left", markerscale=4)
    kiel.set_title("Kiel diagram: the model's p(logg, [Fe/H] | Teff), colour = [Fe/H]",
                   fontsize=10)

    grid = np.linspace(3600, 6500, 40)
    for logg, colour in ((2.0, "#e07b00"), (4.5, "#1f5fa8")):
        post = model.posterior({"teff": grid, "logg": np.full_like(grid, logg),
                                "fe_h": np.zeros_like(grid), "ak": np.zeros_like(grid)},
                               "bp_rp")
        med, lo, hi = (post.quantile(q)[:, 0] for q in (0.5, 0.16, 0.84))
        locus.fill_between(grid, lo, hi, color=colour, alpha=0.3, lw=0)
        locus.plot(grid, med, color=colour, lw=2,
                   label=f"probstar, logg = {logg}, [Fe/H] = 0, A_K = 0 (68%)")
        iso = isochrone(0.0, 4.0)
        branch = (np.abs(iso["logg"] - logg) < 0.5) & (iso["teff"] > 3500) & \
                 (iso["teff"] < 6600)
        locus.plot(iso["teff"][branch], iso["bp_rp"][branch], "--", color=colour, lw=1,
                   label=f"PARSEC 4 Gyr, |logg - {logg}| < 0.5")
    clear = test.column("ak") < 0.03
    locus.scatter(test.column("teff")[clear], test.column("bp_rp")[clear], s=2, color="0.6",
                  alpha=0.5, label="test stars, A_K < 0.03", zorder=0)
    locus.set_xlim(6600, 3500)
    locus.set_ylim(0.3, 2.6)
    locus.set_xlabel(axis_label("teff"))
    locus.set_ylabel(axis_label("bp_rp"))
    locus.legend(fontsize=7, frameon=False)
    locus.set_title("Intrinsic colour locus: BP - RP given Teff, logg, [Fe/H], A_K = 0",
                    fontsize=10)
    fig.tight_layout()
    DOCS.mkdir(exist_ok=True)
    fig.savefig(DOCS / "kiel_diagram.png", dpi=110)
    print(f"wrote {DOCS / 'kiel_diagram.png'}")


if __name__ == "__main__":
    main()
