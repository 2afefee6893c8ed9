"""An XP spectrum from stellar parameters, with its uncertainty, and how it changes.

    python examples/spectrum_from_parameters.py   # writes docs/spectrum_from_parameters.png

Top: three test-split stars, the spectrum the model generates from their APOGEE teff,
logg, fe_h, alpha_m and A_K alone (mean, 68% and 95% bands of the noise-free flux)
against the observed one. Bottom: the mean spectrum of a giant (logg = 2.5, [Fe/H] = 0,
A_K = 0) from 4000 to 5500 K. ``validation/spectra.py`` scores every pixel on the whole
test split.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import probstar
from probstar.data import load_split
from probstar.plots import spectrum_plot
from probstar.spectra import SPECTRUM_INPUTS
from probstar.vocab import XP_WAVELENGTHS, index_of

DOCS = Path(__file__).resolve().parent.parent / "docs"
STARS = (0, 1, 2)


def main() -> None:
    model = probstar.load_model()
    test = load_split("test").select(list(STARS))
    post = model.posterior(test.only(SPECTRUM_INPUTS), "xp")
    xp = index_of("xp")
    fig, axes = plt.subplots(len(STARS) + 1, 1, figsize=(8, 3.1 * (len(STARS) + 1)))
    for i, ax in enumerate(axes[:-1]):
        given = ", ".join(f"{n} = {test.column(n)[i]:.3g}" for n in SPECTRUM_INPUTS)
        spectrum_plot(post, i, observed=test.values[i, xp], observed_err=test.errors[i, xp],
                      ax=ax, title=f"test star {STARS[i]}: spectrum given {given}")
    teffs = np.arange(4000, 5501, 500)
    grid = model.posterior({"teff": teffs, "logg": np.full(teffs.size, 2.5),
                            "fe_h": np.zeros(teffs.size), "ak": np.zeros(teffs.size)}, "xp")
    for t, mean, std, colour in zip(teffs, grid.mean(), grid.std(),
                                    plt.cm.coolwarm_r(np.linspace(0, 1, teffs.size))):
        axes[-1].fill_between(XP_WAVELENGTHS, mean - std, mean + std, color=colour, alpha=0.3,
                              lw=0)
        axes[-1].plot(XP_WAVELENGTHS, mean, color=colour, label=f"Teff = {t} K")
    axes[-1].set_xlabel("wavelength [nm]")
    axes[-1].set_ylabel("flux / median flux")
    axes[-1].set_title("A giant (logg 2.5, [Fe/H] 0, A_K 0) at four temperatures "
                       "(mean and 68% band)", fontsize=10)
    axes[-1].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    DOCS.mkdir(exist_ok=True)
    fig.savefig(DOCS / "spectrum_from_parameters.png", dpi=100)
    print(f"wrote {DOCS / 'spectrum_from_parameters.png'}")


if __name__ == "__main__":
    main()
