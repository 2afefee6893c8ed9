"""Inpainting: the spectrum head's answer as it is, and conditioned on the given pixels.

Given one half of an XP spectrum, the head answers N(mu, F F^T + diag(d)) over all 343
pixels. Its mean for the *given* pixels differs from what was observed; treating the
observed half as a noisy draw of that joint normal and conditioning on it (Woodbury,
rank 8) moves the asked half along the shared covariance directions. This measures how
much of the gap to a k-NN (validation/spectra.md) that recovers: median over pixels of
the median |observed - predicted| / flux error, validation split, stars with every pixel.

    python benchmark/inpainting_conditioning.py   (~30 s)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from probstar import load_model
from probstar.data.library import load_split
from probstar.model.network import N_SCALARS
from probstar.vocab import index_of

HALVES = {"blue -> red": ("xp_336-598", "xp_600-1020"),
          "red -> blue": ("xp_600-1020", "xp_336-598")}


def conditioned_mean(pdf, flux: torch.Tensor, err: torch.Tensor, given: torch.Tensor,
                     asked: torch.Tensor) -> torch.Tensor:
    """E[asked pixels | given pixels observed with errors ``err``] under the head's
    low-rank normal: mu_a + F_a (I + F_g^T E^-1 F_g)^-1 F_g^T E^-1 (y_g - mu_g),
    E = diag(d_g + err_g^2)."""
    mu, factor = pdf.loc, pdf.cov_factor
    e_inv = 1 / (pdf.cov_diag[:, given] + err[:, given] ** 2)
    fg = factor[:, given]
    capacitance = torch.eye(factor.shape[-1]) + torch.einsum("bpk,bp,bpl->bkl", fg, e_inv, fg)
    w = torch.linalg.solve(capacitance, torch.einsum("bpk,bp->bk", fg,
                                                     e_inv * (flux[:, given] - mu[:, given])))
    return mu[:, asked] + torch.einsum("bpk,bk->bp", factor[:, asked], w)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", default=str(Path(__file__).with_suffix(".md")))
    args = p.parse_args()
    t0 = time.perf_counter()
    model = load_model()
    obs = load_split("validation").complete(["xp"])
    values, errors = model.normalization.apply(obs.values, obs.errors)
    flux = torch.as_tensor(values[:, N_SCALARS:])
    err = torch.as_tensor(errors[:, N_SCALARS:])
    rows = []
    for question, (given_name, asked_name) in HALVES.items():
        given, asked = (torch.tensor(index_of(n)) - N_SCALARS for n in (given_name, asked_name))
        with torch.inference_mode():
            pdf = model.net.spectrum_distribution(*model._inputs(obs.only([given_name])))
        for how, mean in (("the head's answer", pdf.loc[:, asked]),
                          ("conditioned on the given pixels",
                           conditioned_mean(pdf, flux, err, given, asked))):
            ratio = ((flux[:, asked] - mean).abs() / err[:, asked]).numpy()
            rows.append(f"| {question} | {how} | {np.median(np.median(ratio, 0)):.2f} |")
    lines = ["# Inpainting: conditioning the head's joint normal on the given pixels", "",
             f"`python benchmark/inpainting_conditioning.py` ({time.perf_counter() - t0:.0f} s, "
             f"{len(obs)} validation stars with every pixel, shipped model)", "",
             "| question | mean | median over pixels of median abs(resid)/flux err |",
             "|---|---|---|", *rows]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
