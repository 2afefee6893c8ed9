"""What 2MASS colours add to the inverse problem: MCMC with the spectrum alone against
the spectrum and j_h, j_k, side by side on the same test stars.

    python benchmark/inverse_photometry.py     # ~40 min on 2 cores (20 stars, 2 at a time)

1. *Is the photometry likelihood calibrated?* On the validation split, the PIT of each
   star's observed j_h and j_k under ``PhotometryLikelihood``'s answer given its APOGEE
   labels (teff, logg, fe_h, alpha_m, ak): the coverage of central intervals.
2. *What does it add?* For the first ``--stars`` test stars of ``validation/inverse.py``
   (every parameter labelled, a full XP spectrum) that have j_h and j_k, emcee with
   the same settings, seed and prior for both likelihoods: the spectrum's (tempered, T
   stored with the model) alone, and the spectrum's plus the photometry's (untempered).
   Each is set against the amortised answer from the same data (XP; XP + j_h, j_k):
   widths, accuracy against APOGEE, 68% coverage, agreement (the bar of
   validation/inverse.md) and the agreement expected from the widths alone.

``--cache`` keeps each run's summary as a JSON line, so a stopped run resumes. Writes
``benchmark/results/inverse_photometry.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from probstar.calibration import agreement, coverage, expected_agreement
from probstar.data import load_split
from probstar.evaluate import robust_scatter
from probstar.inverse import (PARAMETERS, PhotometryLikelihood, Prior, SpectrumLikelihood,
                              run_emcee)
from probstar.query import load_model, shipped_model_path
from probstar.recalibration import mixture_arrays, mixture_pit
from probstar.vocab import index_of

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "validation"))
from inverse import _read_cache, coverage68, summarise, weights_digest  # noqa: E402
# (validation/inverse.py)

COLOURS = ("j_h", "j_k")
SETTINGS = ("spectrum", "spectrum + j_h, j_k")
LEVELS = (0.5, 0.68, 0.9, 0.95)
_WORKER: dict = {}


def _init_worker(args: dict, model: str | None) -> None:
    torch.set_num_threads(1)
    _WORKER.update(model=load_model(model), prior=Prior.training_population(), args=args)


def _run(job) -> tuple[int, str, dict]:
    """emcee on one star with one setting, in a worker: its summary and seconds."""
    i, setting, flux, flux_err, colours = job
    w, a = _WORKER, _WORKER["args"]
    like = SpectrumLikelihood(w["model"], flux, flux_err)
    if setting != "spectrum":
        like = like + PhotometryLikelihood(w["model"], dict(zip(COLOURS, colours)))
    t = time.perf_counter()
    idata = run_emcee(like, w["prior"], n_walkers=a["walkers"], n_steps=a["steps"],
                      burn=a["burn"], seed=i)
    return i, setting, {**summarise(idata), "seconds": time.perf_counter() - t}


def chosen_stars(n: int):
    """The first ``n`` test stars of validation/inverse.py's selection with j_h and j_k."""
    stars = load_split("test").complete([*PARAMETERS, "xp"])
    has_colours = np.isfinite(stars.values[:, index_of(list(COLOURS))]).all(1)
    return stars.select(np.flatnonzero(has_colours)[:n])


def colour_coverage(model) -> list[str]:
    """Section 1: coverage of the validation stars' observed colours under the
    photometry likelihood's answers at their labels."""
    stars = load_split("validation").complete([*PARAMETERS, *COLOURS])
    post = model.posterior(stars.only(list(PARAMETERS)), list(COLOURS), head="mixture",
                           calibrated=False)
    w, mu, sd = mixture_arrays(post)
    half68 = np.median(np.abs(post.quantile(0.84) - post.quantile(0.16)) / 2, 0)
    norm, rows = model.normalization, []
    for j, name in enumerate(post.names):
        k = index_of(name)[0]
        y = (stars.column(name) - norm.loc[k]) / norm.scale[k]
        u = mixture_pit(w[:, j], mu[:, j], sd[:, j], y, np.zeros_like(y))
        se = np.sqrt(0.68 * 0.32 / len(u))
        rows.append(f"| {name} | {len(u)} | "
                    + " | ".join(f"{c:.3f}" for c in coverage(u, LEVELS))
                    + f" | {se:.3f} | {half68[j]:.3f} |")
    return ["## 1. The photometry likelihood on validation stars", "",
            "PIT of each star's observed colour under the mixture head's answer given its "
            "APOGEE teff, logg, fe_h, alpha_m and ak (error 0: the model learned the "
            "observed colours, their noise included). Fraction inside the central "
            "intervals; the labels' own errors are not convolved (they widen the spread "
            "of the observed colours a little).", "",
            "| colour | stars | 50% | 68% | 90% | 95% | binomial s.e. at 68% | median "
            "half-width of the 68% interval (mag) |", "|---|---|---|---|---|---|---|---|",
            *rows, ""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stars", type=int, default=20)
    p.add_argument("--walkers", type=int, default=24)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--burn", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--cache", default=str(ROOT / "benchmark/results/inverse_photometry.jsonl"))
    p.add_argument("--output", default=str(ROOT / "benchmark/results/inverse_photometry.md"))
    args = p.parse_args()
    t_start = time.perf_counter()
    torch.set_num_threads(args.workers)
    model = load_model(args.model)
    stars = chosen_stars(args.stars)
    xp, cols = index_of("xp"), index_of(list(PARAMETERS))
    keys = {**{k: getattr(args, k) for k in ("walkers", "steps", "burn")},
            "model": weights_digest(args.model or shipped_model_path())}
    done = {(i, s): row for s in SETTINGS
            for i, row in _read_cache(args.cache, {**keys, "setting": s}).items()}
    cache = Path(args.cache)
    jobs = [(i, s, stars.values[i, xp], stars.errors[i, xp],
             stars.values[i, index_of(list(COLOURS))]) for i in range(len(stars))
            for s in SETTINGS if (i, s) not in done]
    if jobs:
        with mp.get_context("spawn").Pool(args.workers, _init_worker, (keys, args.model)) as pool, \
                cache.open("a") as out:
            for i, setting, result in tqdm(pool.imap_unordered(_run, jobs), total=len(jobs),
                                           desc="emcee", unit="run"):
                done[i, setting] = result
                out.write(json.dumps({"star": i, "setting": setting, **keys,
                                      **{k: np.asarray(v).tolist()
                                         for k, v in result.items()}}) + "\n")
                out.flush()

    truth, error = stars.values[:, cols], stars.errors[:, cols]
    amortised = {}
    for setting, inputs in zip(SETTINGS, (["xp"], ["xp", *COLOURS])):
        post = model.posterior(stars.only(inputs), list(PARAMETERS), head="mixture")
        order = [post.names.index(q) for q in PARAMETERS]
        amortised[setting] = {"median": post.median()[:, order], "std": post.std()[:, order]}
    lines = ["# What 2MASS colours add to the inverse problem", "",
             f"`python benchmark/inverse_photometry.py --stars {args.stars} --walkers "
             f"{args.walkers} --steps {args.steps} --burn {args.burn}` (shipped model; "
             f"{time.perf_counter() - t_start:.0f} s for this run, cached runs not counted; "
             "emcee runs on one CPU thread each, 2 at a time)", "",
             *colour_coverage(model),
             f"## 2. Test split, {len(stars)} stars: MCMC with and without the colours", "",
             f"emcee, {args.walkers} walkers x {args.steps} steps, the first {args.burn} "
             "dropped, seed = the star's row, the training population's prior, spectrum "
             f"likelihood tempered at T = {model.likelihood_temperature:g} (the model's), "
             "the colours' untempered. Amortised: the default (recalibrated mixture) answer "
             "from the same data. Agree: medians within the combined sd (the bar of "
             "validation/inverse.md is 0.90); expected: what two calibrated answers of "
             "these widths would reach (`probstar.calibration.expected_agreement`). "
             "Coverage: median +- 0.994 sd, the label's error added, holds the APOGEE "
             "label.", "",
             "| data | parameter | MCMC median sd | amortised median sd | MCMC robust "
             "scatter | amortised robust scatter | MCMC c68 | amortised c68 | agree | "
             "expected | max R-hat / min ESS |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    summary = []
    for setting in SETTINGS:
        mcmc = {k: np.stack([done[i, setting][k] for i in range(len(stars))])
                for k in ("median", "std", "r_hat", "ess")}
        amo = amortised[setting]
        agree = agreement(mcmc["median"], mcmc["std"], amo["median"], amo["std"]) < 1
        expected = expected_agreement(mcmc["std"], amo["std"])
        c_mcmc, c_amo = coverage68(mcmc, truth, error), coverage68(amo, truth, error)
        for j, name in enumerate(PARAMETERS):
            lines.append(
                f"| {setting} | {name} | {np.median(mcmc['std'][:, j]):.3g} | "
                f"{np.median(amo['std'][:, j]):.3g} | "
                f"{robust_scatter(truth[:, j], mcmc['median'][:, j]):.3g} | "
                f"{robust_scatter(truth[:, j], amo['median'][:, j]):.3g} | "
                f"{c_mcmc[:, j].mean():.2f} | {c_amo[:, j].mean():.2f} | "
                f"{agree[:, j].mean():.2f} | {expected[:, j].mean():.2f} | "
                f"{mcmc['r_hat'][:, j].max():.3f} / {mcmc['ess'][:, j].min():.0f} |")
        seconds = np.mean([done[i, setting]["seconds"] for i in range(len(stars))])
        summary.append(f"- {setting}: all pairs agree {agree.mean():.3f} (expected "
                       f"{expected.mean():.3f}); MCMC 68% coverage {c_mcmc.mean():.3f}, "
                       f"amortised {c_amo.mean():.3f}; {seconds:.0f} s per star")
    ratio = np.median(np.stack([done[i, SETTINGS[1]]["std"] / done[i, SETTINGS[0]]["std"]
                                for i in range(len(stars))]), 0)
    lines += ["", *summary, "- MCMC sd with the colours / without, median over stars: "
              + ", ".join(f"{n} {r:.2f}" for n, r in zip(PARAMETERS, ratio)), ""]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
