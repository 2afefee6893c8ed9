"""Where is the spectrum likelihood misspecified, and does a shared discrepancy term fix it?

    python benchmark/likelihood_discrepancy.py     # writes benchmark/likelihood_discrepancy.md

The inverse problems (``probstar.inverse``) temper the spectrum head's likelihood,
p(spectrum | theta)^(1/T), T = 6, because untempered posteriors are far too narrow.
Two measures at the stars' APOGEE labels, both exact for a right likelihood:

1. the observed spectrum's squared Mahalanobis distance under the likelihood's normal,
   chi^2 with 343 degrees of freedom: its median / 343 is about 1 (0.998);
2. linearised at the label, without a prior: the likelihood's best-fit parameters minus
   the label in units of its sd, z ~ N(0, 1) per parameter. A label (its error added)
   lies inside the T-tempered 68% interval when |z| < sqrt(T), so the coverage at each T
   shows the temperature the parameters need, in one network pass per star instead of a
   posterior search.

The alternative to tempering tried here: k covariance directions G (343, k) shared by
every star, added to the head's own (``probstar.inverse.fit_discrepancy``, maximum
likelihood), fitted on one half of the validation split (even rows) and scored on the
other half (odd rows) and on the test split.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from probstar.data import load_split
from probstar.inverse import (PARAMETERS, fit_discrepancy, fully_labelled,
                              spectrum_answers, spectrum_residuals)
from probstar.model.spectrum import with_noise
from probstar.query import load_model
from probstar.vocab import index_of

HERE = Path(__file__).resolve().parent
TEMPERATURES = (1, 2, 4, 6, 8, 16)


def misfit(model, stars, discrepancy: np.ndarray | None, step: float = 1e-2) -> dict:
    """Both measures of the module docstring for ``stars`` (all ``fully_labelled``), and
    the mean log-likelihood per pixel (nats, normalised flux units). The Jacobian of the
    mean spectrum comes from central differences of ``step`` (normalised units)."""
    answers, flux, noise_var = spectrum_residuals(model, stars)
    g = None if discrepancy is None else torch.as_tensor(discrepancy)
    observed = with_noise(answers, noise_var, g)
    n = flux.shape[1]
    def mean(shift: np.ndarray) -> torch.Tensor:
        return spectrum_answers(model, stars, shift=shift).loc.double()

    with torch.no_grad():  # -2 log p = n log 2 pi + log det + M, 2 H = n + n log 2 pi + log det
        log_prob = observed.log_prob(flux)
        mahalanobis = -2 * log_prob - 2 * observed.entropy() + n
        jacobian = torch.stack([(mean(step * e) - mean(-step * e)) / (2 * step)
                                for e in np.eye(len(PARAMETERS))], -1)  # stars, pixels, d
        offsets, variances = [], []
        for rows in torch.arange(len(flux)).split(256):
            residual = (flux[rows] - answers.loc[rows]).double()[..., None]
            solved = torch.linalg.solve(observed.covariance_matrix[rows].double(),
                                        torch.cat([jacobian[rows], residual], -1))
            jt = jacobian[rows].transpose(1, 2)
            c = torch.linalg.inv(jt @ solved[..., :-1])  # the likelihood's covariance
            offsets.append((c @ (jt @ solved[..., -1:]))[..., 0])
            variances.append(c.diagonal(dim1=1, dim2=2))
    offset, variance = torch.cat(offsets), torch.cat(variances)
    cols, norm = index_of(list(PARAMETERS)), model.normalization
    label_var = torch.as_tensor((np.nan_to_num(stars.errors[:, cols]) / norm.scale[cols]) ** 2)

    def covered(t: float) -> float:
        return float((offset.abs() < (t * variance + label_var).sqrt()).double().mean())

    needed = next(t for t in np.geomspace(0.25, 64, 401) if covered(t) >= 0.68)
    return {"stars": len(flux), "mahalanobis": float(mahalanobis.median() / n),
            "log_lik": float(log_prob.mean() / n),
            "coverage": {t: covered(t) for t in TEMPERATURES}, "needed": float(needed),
            "z68": np.quantile((offset / variance.sqrt()).abs().numpy(), 0.68, axis=0),
            "sd": np.median((needed * variance).sqrt().numpy(), 0) * norm.scale[cols]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, nargs="*", default=[8],
                   help="discrepancy ranks to fit (none: the likelihood as it is)")
    p.add_argument("--model", default=None, help="model folder (default: shipped)")
    p.add_argument("--steps", type=int, default=400, help="Adam steps fitting G")
    p.add_argument("--output", default=str(HERE / "likelihood_discrepancy.md"))
    args = p.parse_args()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = load_model(args.model)
    validation = load_split("validation")
    fit_half = validation.select(np.arange(0, len(validation), 2))
    check_half = fully_labelled(validation.select(np.arange(1, len(validation), 2)))
    test = fully_labelled(load_split("test"))
    fits: dict[int, tuple[np.ndarray | None, float]] = {0: (None, 0.0)}
    for k in args.ranks:
        t = time.perf_counter()
        g = fit_discrepancy(model, fit_half, rank=k, steps=args.steps, progress=True)
        fits[k] = (g, time.perf_counter() - t)
    scores = {k: (misfit(model, check_half, g), misfit(model, test, g))
              for k, (g, _) in fits.items()}

    lines = ["# Where the spectrum likelihood is misspecified", "",
             f"`python benchmark/likelihood_discrepancy.py --ranks "
             f"{' '.join(map(str, args.ranks))} --steps {args.steps}"
             + (f" --model {args.model}" if args.model else "") + "` ("
             + (f"model {args.model}" if args.model else "shipped model") + "; "
             f"{len(check_half)} validation stars (odd rows) and {len(test)} test stars with "
             "every parameter labelled and a full spectrum; the discrepancy directions G "
             "fitted on the even rows of the validation split; measures in the script's "
             "docstring)", "", "## 1. Misfit of the whole spectrum at the labels", "",
             "| discrepancy directions k | fitted in (s) | validation: median Mahalanobis^2 "
             "/ 343 | log-lik / pixel | test: median Mahalanobis^2 / 343 | log-lik / pixel |",
             "|---|---|---|---|---|---|"]
    for k, (v, t) in scores.items():
        lines.append(f"| {k} | {fits[k][1]:.0f} | {v['mahalanobis']:.2f} | {v['log_lik']:.3f} "
                     f"| {t['mahalanobis']:.2f} | {t['log_lik']:.3f} |")
    lines += ["", "## 2. Misfit along the directions the parameters move the spectrum", "",
              "68th percentile of |z| (1 for a right likelihood; its square is about the "
              "temperature that parameter needs), and the coverage of the labels by the "
              "T-tempered 68% intervals, pooled over the parameters (0.68 when right).", "",
              "| k | split | 68th percentile of abs(z): " + ", ".join(PARAMETERS) + " | "
              + " | ".join(f"coverage T = {t}" for t in TEMPERATURES) + " |",
              "|---|---|---|" + "---|" * len(TEMPERATURES)]
    for k, (v, t) in scores.items():
        for split, score in (("validation", v), ("test", t)):
            lines.append(f"| {k} | {split} | " + ", ".join(f"{z:.1f}" for z in score["z68"])
                         + " | " + " | ".join(f"{score['coverage'][x]:.2f}"
                                              for x in TEMPERATURES) + " |")
    direct = model.posterior(test.only(["xp"]), list(PARAMETERS), head="mixture")
    amortised = np.median(direct.std()[:, [direct.names.index(q) for q in PARAMETERS]], 0)
    lines += ["", "## 3. The widths of calibrated answers (test split)", "",
              "T needed: the smallest temperature whose pooled coverage reaches 0.68 (on each "
              "split); the likelihood's median sd at that T (linearised, no prior) against "
              "the amortised answer's (mixture head, XP spectrum) on the same test stars.",
              "", "| answer | T needed (validation / test) | median sd: "
              + ", ".join(PARAMETERS) + " |", "|---|---|---|",
              "| amortised | – | " + ", ".join(f"{x:.3g}" for x in amortised) + " |"]
    lines += [f"| likelihood, k = {k} | {v['needed']:.2f} / {t['needed']:.2f} | "
              + ", ".join(f"{x:.3g}" for x in t["sd"]) + " |" for k, (v, t) in scores.items()]
    lines += ["", f"{time.perf_counter() - t0:.0f} s in all (2 cores)."]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
