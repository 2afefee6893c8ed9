"""Spectra as answers: parameters -> XP spectrum, and inpainting, on held-out stars.

    python validation/spectra.py        # writes validation/spectra.md and spectra*.png

Test split, shipped model, spectrum head. Two questions:

1. *Parameters -> spectrum*: given teff, logg, fe_h, alpha_m and ak (APOGEE values, no
   errors given), the 343-pixel spectrum.
2. *Inpainting*: given the observed pixels 336-598 nm (with their errors), the pixels
   600-1020 nm; and the reverse, 600-1020 nm -> 336-598 nm.

For every pixel: the median absolute residual (observed - predicted mean) in units of
the observed flux error, and the fraction of stars whose observed flux lies inside the
central 68% predictive band. The model predicts the noise-free flux, so the band is
that of the answer convolved with each star's flux error (sqrt(sigma_model^2 +
sigma_flux^2)). Bar: 68% +- 5%. The answer's widths are scaled per kind of context by
the model's width scales (fitted on the validation split, ``probstar recalibrate``);
the rows "no width scale" are the network's own answer. Side by side, in the same
run, a k-nearest-neighbour baseline fitted on the train split (the mean and scatter
of the 25 nearest train stars in the standardised inputs; for inpainting, in the given
pixels).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.neighbors import NearestNeighbors

from probstar.data import load_split
from probstar.plots import spectrum_plot
from probstar.query import load_model
from probstar.spectra import SPECTRUM_INPUTS, band_coverage, pixel_z
from probstar.vocab import XP_WAVELENGTHS, index_of

HERE = Path(__file__).resolve().parent
BAND, TOLERANCE, K = 0.68, 0.05, 25
QUESTIONS = {  # name: (inputs, requested pixels)
    "parameters -> spectrum": (SPECTRUM_INPUTS, "xp"),
    "inpainting 336-598 -> 600-1020 nm": (("xp_336-598",), "xp_600-1020"),
    "inpainting 600-1020 -> 336-598 nm": (("xp_600-1020",), "xp_336-598"),
}


def knn_answer(train, test, inputs, request) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the K nearest train stars' requested pixels, in
    the standardised input space (stars missing an input or a pixel left out)."""
    cols_in, cols_out = index_of(list(inputs)), index_of(request)
    x_train, y_train = train.values[:, cols_in], train.values[:, cols_out]
    ok = np.isfinite(x_train).all(1) & np.isfinite(y_train).all(1)
    x_train, y_train = x_train[ok], y_train[ok]
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-9
    x_test = np.nan_to_num((test.values[:, cols_in] - mu) / sd)
    nn = NearestNeighbors(n_neighbors=K).fit((x_train - mu) / sd)
    idx = nn.kneighbors(x_test, return_distance=False)
    return y_train[idx].mean(1), y_train[idx].std(1, ddof=1)


def score(z: np.ndarray, flux_err: np.ndarray, resid: np.ndarray) -> dict:
    """Per-pixel median |residual| / flux error and 68% band coverage, and totals."""
    ratio = np.nanmedian(np.abs(resid) / flux_err, 0)
    cover = band_coverage(z, BAND)
    total = float(band_coverage(z, BAND, axis=None))
    return {"ratio": ratio, "coverage": cover, "total": total,
            "pixels_ok": float(np.mean(np.abs(cover - BAND) <= TOLERANCE))}


def evaluate(model, train, test) -> dict:
    """Scores of the model and the k-NN baseline for every question, and the answers."""
    results = {}
    for question, (inputs, request) in QUESTIONS.items():
        cols = index_of(request)
        flux, err = test.values[:, cols], test.errors[:, cols]
        raw = model.posterior(test.only(inputs), request, calibrated=False)
        post = model.posterior(test.only(inputs), request)
        mean, sd = knn_answer(train, test, inputs, request)
        knn_z = (flux - mean) / np.sqrt(sd ** 2 + err ** 2)
        results[question] = {"probstar": score(pixel_z(post, test), err, flux - post.mean()),
                             "probstar, no width scale": score(pixel_z(raw, test), err,
                                                               flux - raw.mean()),
                             "k-NN": score(knn_z, err, flux - mean), "post": post,
                             "wave": XP_WAVELENGTHS[np.array(cols) - index_of("xp")[0]]}
    return results


def figure_pixels(results: dict, path: Path) -> None:
    fig, axes = plt.subplots(2, 1, figsize=(8.5, 6.5), sharex=True)
    colours = {"parameters -> spectrum": "#1f5fa8", "inpainting 336-598 -> 600-1020 nm":
               "#2a9d3a", "inpainting 600-1020 -> 336-598 nm": "#b03030"}
    for question, r in results.items():
        for who, ls in (("probstar", "-"), ("k-NN", ":")):
            axes[0].plot(r["wave"], r[who]["ratio"], ls, color=colours[question], lw=1.2,
                         label=f"{question} ({who})")
            axes[1].plot(r["wave"], r[who]["coverage"], ls, color=colours[question], lw=1.2)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("median |obs - pred| / flux error")
    axes[0].legend(fontsize=7, frameon=False, ncol=2)
    axes[1].axhspan(BAND - TOLERANCE, BAND + TOLERANCE, color="0.85", label="68% +- 5%")
    axes[1].axhline(BAND, color="0.4", lw=0.8)
    axes[1].set_ylabel("fraction inside the 68% band")
    axes[1].set_xlabel("wavelength [nm]")
    axes[1].set_ylim(0, 1)
    axes[1].legend(fontsize=8, frameon=False)
    fig.suptitle("Predicted XP spectra of test-split stars, per pixel "
                 "(python validation/spectra.py)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def figure_examples(results: dict, test, path: Path, stars=(0, 1, 2)) -> None:
    fig, axes = plt.subplots(len(stars), 2, figsize=(12, 3.2 * len(stars)))
    for row, i in enumerate(stars):
        label = ", ".join(f"{n} {test.column(n)[i]:.4g}" for n in ("teff", "logg", "fe_h"))
        for col, question in enumerate(list(results)[:2]):
            post = results[question]["post"]
            cols = index_of(post.names)
            spectrum_plot(post, i, observed=test.values[i, cols],
                          observed_err=test.errors[i, cols], ax=axes[row, col],
                          title=f"test star {i} ({label}): {question}")
            if col == 1:  # the given part, for context
                given = index_of("xp_336-598")
                axes[row, col].plot(XP_WAVELENGTHS[:len(given)], test.values[i, given],
                                    color="0.5", lw=1, label="given")
                axes[row, col].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: shipped)")
    p.add_argument("--output", default=str(HERE / "spectra.md"))
    p.add_argument("--split", default="test", choices=("test", "validation"),
                   help="the held-out stars scored (validation: to compare models)")
    args = p.parse_args()
    t0 = time.perf_counter()
    model = load_model(args.model)
    train, test = load_split("train"), load_split(args.split)
    results = evaluate(model, train, test)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure_pixels(results, out.with_suffix(".png"))
    figure_examples(results, test, out.with_name(out.stem + "_examples.png"))
    command = "python validation/spectra.py" + "".join(
        f" --{k} {v}" for k, v in (("model", args.model), ("split", args.split))
        if v and v != "test")
    lines = [f"# Spectra as answers ({args.split} split)", "",
             f"`{command}` ({time.perf_counter() - t0:.0f} s, {len(test)} {args.split} "
             f"stars, model: {args.model or 'shipped'}). The predictive "
             "band of an observed pixel is the model's noise-free answer convolved with "
             "that pixel's flux error; widths scaled by the model's width scales "
             f"{model.spectrum_widths} (fitted on the validation split"
             + ("; scored here on that same split, so the scaled rows' coverage is "
                "in-sample" if args.split == "validation" else "")
             + ") except in the rows 'no width scale'. k-NN: mean and scatter of the 25 "
             "nearest train stars in the inputs, same stars, same run.", "",
             "| question | answer | median over pixels of median abs(resid)/flux err | "
             "max over pixels | 68% band coverage, all pixels | pixels within 68% +- 5% |",
             "|---|---|---|---|---|---|"]
    for question, r in results.items():
        for who in ("probstar", "probstar, no width scale", "k-NN"):
            s = r[who]
            lines.append(f"| {question} | {who} | {np.median(s['ratio']):.2f} | "
                         f"{np.max(s['ratio']):.2f} | {s['total']:.3f} | "
                         f"{s['pixels_ok']:.2f} |")
    lines += ["", f"![per pixel]({out.with_suffix('.png').name})", "",
              f"![examples]({out.stem}_examples.png)", "",
              "## Every pixel", "",
              "Median |observed - predicted| / flux error, and the 68% band coverage, of "
              "probstar, per pixel (wavelength in nm).", "",
              "| nm | " + " | ".join(f"{q}: ratio | coverage" for q in results) + " |",
              "|---|" + "---|---|" * len(results)]
    for j, w in enumerate(XP_WAVELENGTHS):
        cells = []
        for r in results.values():
            k = np.flatnonzero(r["wave"] == w)
            cells += [f"{r['probstar']['ratio'][k[0]]:.2f}",
                      f"{r['probstar']['coverage'][k[0]]:.3f}"] if k.size else ["", ""]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:12]))


if __name__ == "__main__":
    main()
