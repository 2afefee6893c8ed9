"""Inputs the network never learnt to read: what the question API's guards prevent.

    python benchmark/input_errors.py      # writes benchmark/input_errors.md (~1 min)

The shipped real model saw XP spectra always with their flux errors, photometry never
with errors (the embedded data set has none), and spectra always divided by the median
of all 343 pixels. ``Model._inputs`` and the table reader therefore refuse a spectrum
without errors, leave out given photometric errors (warning) and leave out a partial
``flux`` spectrum (warning). Each row scores the mixture medians of test stars
(deterministic) against their APOGEE labels, once as answered and once with the guard
bypassed: the network reading the input as given.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from probstar.data import load_split
from probstar.evaluate import robust_scatter
from probstar.query import Model, load_model
from probstar.vocab import XP_NAMES, XP_WAVELENGTHS, index_of

HERE = Path(__file__).resolve().parent
N_STARS = 300
MAGNITUDES = ["g", "bp", "rp", "j", "h", "k"]
#: typical errors (mag) of Gaia G/BP/RP and 2MASS J/H/K for APOGEE stars
PHOTOMETRIC_ERRORS = {"g": 0.003, "bp": 0.003, "rp": 0.003, "j": 0.025, "h": 0.025,
                      "k": 0.025}
BLUE = XP_WAVELENGTHS < 600


def scatter(model: Model, data, truth) -> tuple[float, float]:
    """Robust scatter of the Teff and logg medians (mixture) against the labels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        post = model.posterior(data, ["teff", "logg"], head="mixture")
    med = post.median()
    return tuple(float(robust_scatter(truth[:, j], med[:, j])) for j in range(2))


def main() -> None:
    t0 = time.time()
    model = load_model()
    reading = Model(model.net, model.normalization,  # the same network, no guard
                    {**model.meta, "errors_always": [], "errors_never": []})
    stars = load_split("test").select(slice(0, N_STARS))
    truth = stars.values[:, index_of(["teff", "logg"])]
    rows = []

    photometry = stars.only(MAGNITUDES).derive_colours()
    rows.append(("6 magnitudes (colours derived), no errors", "–",
                 scatter(model, photometry, truth)))
    noisy = stars.only(MAGNITUDES)
    for name, err in PHOTOMETRIC_ERRORS.items():
        noisy.errors[:, index_of(name)[0]] = err
    noisy.derive_colours()
    rows.append(("the same with typical errors (G/BP/RP 0.003, JHK 0.025 mag)",
                 "errors left out (warning)", scatter(model, noisy, truth)))
    rows.append(("the same with typical errors (G/BP/RP 0.003, JHK 0.025 mag)",
                 "errors read by the network", scatter(reading, noisy, truth)))

    spectra = stars.only(["xp"])
    rows.append(("XP spectrum with its flux errors", "–", scatter(model, spectra, truth)))
    bare = stars.only(["xp"])
    bare.errors[:] = np.nan
    rows.append(("XP spectrum without flux errors", "refused (ValueError)", None))
    rows.append(("XP spectrum without flux errors", "read by the network",
                 scatter(reading, bare, truth)))

    blue = [n for n, b in zip(XP_NAMES, BLUE) if b]
    rows.append(("blue half (336-598 nm), divided by the full spectrum's median",
                 "–", scatter(model, stars.only(blue), truth)))
    renormalised = stars.only(blue)  # x / median(blue part of x): any scale drops out
    cols = index_of(blue)
    median = np.median(renormalised.values[:, cols], axis=1, keepdims=True)
    renormalised.values[:, cols] /= median
    renormalised.errors[:, cols] /= median
    rows.append(("blue half as a `flux` column", "left out (warning)", None))
    rows.append(("blue half as a `flux` column", "divided by its own median (before)",
                 scatter(model, renormalised, truth)))

    lines = ["# Inputs the network never learnt to read", "",
             f"`python benchmark/input_errors.py` ({time.time() - t0:.0f} s; shipped model, "
             f"first {N_STARS} test stars, mixture medians, deterministic). Robust scatter "
             "against APOGEE. \"read by the network\": the guard of the question API "
             "bypassed (a Model whose checkpoint records no error status).", "",
             "| input | handling | Teff scatter (K) | logg scatter (dex) |", "|---|---|---|---|"]
    for what, how, score in rows:
        cells = ("–", "–") if score is None else (f"{score[0]:.0f}", f"{score[1]:.3f}")
        lines.append(f"| {what} | {how} | {cells[0]} | {cells[1]} |")
    out = HERE / "input_errors.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
