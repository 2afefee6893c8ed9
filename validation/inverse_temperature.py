"""The likelihood temperature checked by MCMC itself, on validation stars.

    python validation/inverse_temperature.py    # inverse_temperature.md: ~20 min on 2 cores

``probstar.inverse.fit_temperature`` picks the temperature T of the tempered spectrum
likelihood, p(spectrum | theta)^(1/T), from Laplace approximations, and on the test
split the emcee posteriors at the T it chose (64) over-cover (``validation/inverse.md``
at commit efbb33b). Here the coverage is measured on the posteriors emcee actually
samples: each of ``--stars`` validation stars is sampled once at the broadest
temperature, ``--sampled-at`` (32 walkers, ``--steps`` steps, the first ``--burn``
dropped, every 10th kept), and the draws are importance-reweighted to each smaller T
(weights p(spectrum | theta)^(1/T - 1/T0)). A label is covered when its PIT under the
weighted draws, the label's APOGEE error convolved in (``probstar.calibration.pit``),
lies in the central 68%. The weights' effective sample size says how far each
reweighting can be trusted. Prior: the training population's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from probstar.calibration import coverage, label_errors, pit
from probstar.data import load_split
from probstar.inverse import PARAMETERS, Prior, SpectrumLikelihood, run_emcee
from probstar.query import load_model
from probstar.vocab import index_of

HERE = Path(__file__).resolve().parent
_WORKER: dict = {}


def _init_worker(model: str | None, steps: int, burn: int, sampled_at: float) -> None:
    torch.set_num_threads(1)
    _WORKER.update(model=load_model(model), prior=Prior.training_population(), steps=steps,
                   burn=burn, sampled_at=sampled_at)


def _sample_star(job) -> tuple[int, np.ndarray, np.ndarray]:
    """Thinned emcee draws (n, d) of one star at the broadest temperature and their
    untempered log-likelihoods (n,)."""
    i, flux, flux_err = job
    w = _WORKER
    like = SpectrumLikelihood(w["model"], flux, flux_err, temperature=w["sampled_at"])
    run = run_emcee(like, w["prior"], n_steps=w["steps"], burn=w["burn"], seed=i)
    draws = np.stack([run.posterior[p].values[:, ::10].ravel() for p in PARAMETERS], 1)
    with torch.no_grad():
        log_like = like(torch.as_tensor(draws)).double().numpy() * w["sampled_at"]
    return i, draws, log_like


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stars", type=int, default=30)
    p.add_argument("--sampled-at", type=float, default=16.0, help="T0, the broadest T")
    p.add_argument("--temperatures", type=float, nargs="+",
                   default=[4, 6, 7, 8, 9, 10, 12, 14, 16])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--burn", type=int, default=500)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--output", default=str(HERE / "inverse_temperature.md"))
    args = p.parse_args()
    cols, xp = index_of(list(PARAMETERS)), index_of("xp")
    stars = load_split("validation").complete([*PARAMETERS, "xp"]) \
        .select(slice(args.stars))  # the stars validation/inverse.py fits T on

    t0 = time.perf_counter()
    jobs = [(i, stars.values[i, xp], stars.errors[i, xp]) for i in range(len(stars))]
    runs = {}
    with mp.get_context("spawn").Pool(args.workers, _init_worker,
                                      (args.model, args.steps, args.burn, args.sampled_at)) as pool:
        for i, draws, log_like in tqdm(pool.imap_unordered(_sample_star, jobs),
                                       total=len(jobs), desc="emcee", unit="star"):
            runs[i] = draws, log_like
    minutes = (time.perf_counter() - t0) / 60

    order = sorted(runs)
    draws = np.stack([runs[i][0] for i in order], 1)  # (n_draws, stars, parameters)
    log_like = np.stack([runs[i][1] for i in order], 1)  # (n_draws, stars)
    truth = stars.values[order][:, cols]
    noise = label_errors(stars.errors[order][:, cols])
    rows = []
    for t in args.temperatures:
        log_w = log_like * (1 / t - 1 / args.sampled_at)
        w = np.exp(log_w - log_w.max(0))
        ess = w.sum(0) ** 2 / (w ** 2).sum(0)
        u = pit(draws, truth, noise, weights=w[..., None])  # same weight, every parameter
        rows.append((t, coverage(u, [0.68])[0], np.median(ess), np.min(ess)))
    lines = ["# The likelihood temperature, checked by MCMC on validation stars", "",
             f"`python validation/inverse_temperature.py --stars {args.stars} --sampled-at "
             f"{args.sampled_at:g} --steps {args.steps} --burn {args.burn}` ({len(runs)} "
             f"validation stars, the first ones `fit_temperature` uses; emcee at T0 = "
             f"{args.sampled_at:g}, {len(draws)} kept draws per star, reweighted to each T; "
             f"{minutes:.1f} min on {args.workers} CPU cores).", "",
             "| T | 68% coverage of the labels (all parameters) | median weight ESS | "
             "min weight ESS |", "|---|---|---|---|"]
    lines += [f"| {t:g} | {c:.3f} | {m:.0f} | {lo:.0f} |" for t, c, m, lo in rows]
    best = min(rows, key=lambda r: abs(r[1] - 0.68))
    lines += ["", f"Closest to 0.68: T = {best[0]:g} (coverage {best[1]:.3f}; "
              f"{len(runs) * len(PARAMETERS)} pairs, binomial sd "
              f"{np.sqrt(0.68 * 0.32 / (len(runs) * len(PARAMETERS))):.3f})."]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
