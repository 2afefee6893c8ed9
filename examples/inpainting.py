"""Spectrum inpainting: the red half of an XP spectrum from its blue half.

    python examples/inpainting.py               # writes docs/inpainting.png

For three test-split stars the model sees only the pixels 336-598 nm (with their
errors) and answers for 600-1020 nm. Below each spectrum: the residual in units of the
observed flux error, and the model's 68% band in the same units (the band of the
observed flux: the model's noise-free answer convolved with the flux error).
``validation/spectra.py`` scores every pixel on the whole test split.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import probstar
from probstar.data import load_split
from probstar.plots import spectrum_plot
from probstar.vocab import XP_WAVELENGTHS, index_of

DOCS = Path(__file__).resolve().parent.parent / "docs"
STARS = (0, 1, 2)
GIVEN, ASKED = "xp_336-598", "xp_600-1020"


def main() -> None:
    model = probstar.load_model()
    test = load_split("test").select(list(STARS))
    post = model.posterior(test.only([GIVEN]), ASKED)
    given, asked = index_of(GIVEN), index_of(ASKED)
    wave_given, wave = XP_WAVELENGTHS[:len(given)], XP_WAVELENGTHS[len(given):]
    fig, axes = plt.subplots(2 * len(STARS), 1, figsize=(8, 4.4 * len(STARS)),
                             gridspec_kw={"height_ratios": [2.2, 1] * len(STARS)})
    for i in range(len(STARS)):
        ax, res = axes[2 * i], axes[2 * i + 1]
        ax.plot(wave_given, test.values[i, given], color="0.4", lw=1.2,
                label="given (observed)")
        spectrum_plot(post, i, observed=test.values[i, asked],
                      observed_err=test.errors[i, asked], ax=ax,
                      title=f"test star {STARS[i]}: 600-1020 nm given 336-598 nm")
        err = test.errors[i, asked]
        band = np.sqrt(post.std()[i] ** 2 + err ** 2) / err
        res.fill_between(wave, -band, band, color="#1f5fa8", alpha=0.3, lw=0,
                         label="68% band of the observed flux")
        res.plot(wave, (test.values[i, asked] - post.mean()[i]) / err, ".", ms=3,
                 color="#e07b00", label="(observed - predicted) / flux error")
        res.axhline(0, color="0.5", lw=0.8)
        res.set_ylabel("in flux errors")
        res.set_xlim(ax.get_xlim())
        res.legend(frameon=False, fontsize=7, ncol=2)
    axes[-1].set_xlabel("wavelength [nm]")
    fig.tight_layout()
    DOCS.mkdir(exist_ok=True)
    fig.savefig(DOCS / "inpainting.png", dpi=100)
    print(f"wrote {DOCS / 'inpainting.png'}")


if __name__ == "__main__":
    main()
