"""MCMC posteriors with the generative direction as likelihood, against the direct
(amortised) answer, for test-split stars.

    python validation/inverse.py      # inverse.md and .png: ~100 min on 2 cores
    python validation/inverse.py --stars 4 --steps 400 --burn 100    # a quick look

The report's header gives the settings and the machine. ``--device cuda --workers N``
runs the network on a GPU, but one GPU shared by 12 workers was slower than this: none
of 50 stars finished 5,000 steps in 290 s (benchmark/NOTES.md).

1. *Temperature*: the spectrum head's likelihood is misspecified (``probstar.inverse``),
   so it is tempered, p(spectrum | theta)^(1/T). T is the one stored with the model
   (checked by MCMC on validation stars, ``validation/inverse_temperature.py``), or
   ``--temperature``, or, with ``--calibration-stars N``, fitted on N validation stars
   by ``probstar.inverse.fit_temperature`` (Laplace-approximate 68% intervals must hold
   the labels 68% of the time; the coverage of every T tried is in the report; T = 1 is
   the untempered likelihood).
2. For each of the first ``--stars`` test stars with APOGEE teff, logg, fe_h, alpha_m and
   ak:

   - *MCMC*: p(theta | XP spectrum) proportional to the tempered likelihood of the
     observed spectrum (flux errors convolved) times the training population's prior
     (``probstar.inverse.Prior.training_population``), sampled with ``emcee``
     (``--walkers`` walkers, ``--steps`` steps, the first ``--burn`` dropped,
     ``--moves``) for every star, and with
     Pyro NUTS (2 chains, ``--nuts-samples`` draws after as many warm-up steps) for the
     first ``--nuts`` stars; both start over-dispersed around the posterior's mode;
   - *amortised*: ``model.posterior(spectrum, PARAMETERS)``, the mixture head
     (recalibrated), one network pass. Its prior is the same population's: the one it
     was trained on.

Agreement bar: the two medians differ by less than the two standard deviations added
in quadrature, for at least 90% of (star, parameter) pairs; the MCMC must have R-hat <
1.01 and bulk ESS > 400 per parameter. Calibration of both: how often median +- 0.994
sd (the 68% interval of a normal), widened by the label's APOGEE error, holds the
label. Times are wall seconds per star on this machine.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from probstar.checkpoint import update_config
from probstar.data import load_split
from probstar.evaluate import robust_scatter
from probstar.inverse import (PARAMETERS, Prior, SpectrumLikelihood, fit_temperature,
                              run_emcee, run_nuts)
from probstar.plots import axis_label
from probstar.query import load_model, shipped_model_path
from probstar.vocab import index_of

HERE = Path(__file__).resolve().parent


_WORKER: dict = {}


def _init_worker(model: str | None, device: str, walkers: int, steps: int, burn: int,
                 moves: str, nuts_samples: int, temperature: float) -> None:
    torch.set_num_threads(1)
    m = load_model(model)
    m.net.to(device)
    _WORKER.update(model=m, walkers=walkers, steps=steps, burn=burn, moves=moves,
                   nuts_samples=nuts_samples, temperature=temperature,
                   prior=Prior.training_population())


def _sample_star(job) -> tuple[int, dict]:
    """emcee (and NUTS if asked) for one star, in a worker process."""
    i, flux, flux_err, nuts = job
    w = _WORKER
    like = SpectrumLikelihood(w["model"], flux, flux_err, temperature=w["temperature"])
    t = time.perf_counter()
    out = {"emcee": summarise(run_emcee(like, w["prior"], n_walkers=w["walkers"],
                                        n_steps=w["steps"], burn=w["burn"], seed=i,
                                        moves=w["moves"]))}
    out["t_emcee"] = time.perf_counter() - t
    if nuts:
        t = time.perf_counter()
        out["nuts"] = summarise(run_nuts(like, w["prior"], n_samples=w["nuts_samples"],
                                         warmup=w["nuts_samples"], seed=i))
        out["t_nuts"] = time.perf_counter() - t
    return i, out


def summarise(idata: az.InferenceData) -> dict[str, np.ndarray]:
    """Median, std, R-hat and bulk ESS per parameter."""
    s = az.summary(idata, var_names=list(PARAMETERS), kind="diagnostics",
                   round_to="none")  # rounded to 0.01, R-hat 1.006 would read 1.01
    post = idata.posterior
    return {"median": np.array([float(post[p].median()) for p in PARAMETERS]),
            "std": np.array([float(post[p].std()) for p in PARAMETERS]),
            "r_hat": s["r_hat"].to_numpy(), "ess": s["ess_bulk"].to_numpy()}


def agreement(a: dict, b: dict) -> np.ndarray:
    """|median difference| / combined standard deviation, per parameter."""
    return np.abs(a["median"] - b["median"]) / np.hypot(a["std"], b["std"])


def coverage68(answer: dict, truth: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Whether median +- 0.994 sd (label error added) holds the label, per pair."""
    half = 0.9945 * np.sqrt(answer["std"] ** 2 + np.nan_to_num(error) ** 2)
    return np.abs(truth - answer["median"]) < half


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stars", type=int, default=50)
    p.add_argument("--calibration-stars", type=int, default=0,
                   help="fit the likelihood temperature on this many validation stars "
                        "(fit_temperature); 0: --temperature or the model's own")
    p.add_argument("--temperature", type=float, default=None,
                   help="the likelihood temperature (default: the model's stored one)")
    p.add_argument("--store", action="store_true",
                   help="store the temperature (fitted or given) in the model folder's "
                        "config.json, where SpectrumLikelihood finds it by default")
    p.add_argument("--nuts", type=int, default=0, help="stars also sampled with NUTS")
    p.add_argument("--model", default=None)
    p.add_argument("--output", default=str(HERE / "inverse.md"))
    p.add_argument("--walkers", type=int, default=24, help="emcee walkers")
    p.add_argument("--steps", type=int, default=6000, help="emcee steps per walker")
    p.add_argument("--burn", type=int, default=1000, help="emcee steps dropped")
    p.add_argument("--moves", default="differential", choices=["differential", "stretch"],
                   help="emcee's proposal moves (probstar.inverse.run_emcee)")
    p.add_argument("--nuts-samples", type=int, default=500)
    p.add_argument("--device", default="cpu", help="where the network runs: cpu or cuda")
    p.add_argument("--workers", type=int, default=2, help="stars sampled in parallel")
    p.add_argument("--deadline", type=float, default=float("inf"),
                   help="seconds after which the stars not yet sampled are left out")
    args = p.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    cols = index_of(list(PARAMETERS))
    xp = index_of("xp")

    def complete(split: str, n: int):
        return load_split(split).complete([*PARAMETERS, "xp"]).select(slice(n))

    prior = Prior.training_population()
    t0 = time.perf_counter()
    fitted = {}
    if args.calibration_stars > 0:
        temperature, fitted = fit_temperature(
            model, complete("validation", args.calibration_stars), prior,
            temperatures=(1, 4, 16, 32, 48, 64, 96), progress=True)
    else:
        temperature = model.likelihood_temperature if args.temperature is None \
            else args.temperature
    if args.store:
        update_config(args.model or shipped_model_path(), likelihood_temperature=temperature)
    t_fit = time.perf_counter() - t0
    stars = complete("test", args.stars)

    t0 = time.perf_counter()
    direct = model.posterior(stars.only(["xp"]), list(PARAMETERS), head="mixture")
    order = [direct.names.index(q) for q in PARAMETERS]
    amortised = {"median": direct.median()[:, order], "std": direct.std()[:, order]}
    t_amortised = (time.perf_counter() - t0) / len(stars)

    jobs = [(i, stars.values[i, xp], stars.errors[i, xp], i < args.nuts) for i in
            range(len(stars))]
    settings = (args.model, args.device, args.walkers, args.steps, args.burn, args.moves,
                args.nuts_samples, temperature)
    results, stop = {}, time.time() + args.deadline
    with mp.get_context("spawn").Pool(args.workers, _init_worker, settings) as pool:
        pending = pool.imap_unordered(_sample_star, jobs)
        for _ in tqdm(jobs, desc="MCMC", unit="star"):
            try:
                left = None if np.isinf(stop) else max(1.0, stop - time.time())
                i, results[i] = pending.next(timeout=left)
            except mp.TimeoutError:
                print(f"--deadline reached: {len(results)} of {len(jobs)} stars sampled")
                break
    done = sorted(results)  # the report covers the stars sampled before the deadline
    if not done:
        raise SystemExit("no star was sampled before --deadline: nothing to report")
    stars = stars.select(done)
    amortised = {k: v[done] for k, v in amortised.items()}
    rows = [results[i]["emcee"] for i in done]
    t_emcee = [results[i]["t_emcee"] for i in done]
    nuts_rows = [results[i]["nuts"] for i in done if "nuts" in results[i]]
    t_nuts = [results[i]["t_nuts"] for i in done if "nuts" in results[i]]
    emcee_ = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    ratio = agreement(emcee_, amortised)
    truth, error = stars.values[:, cols], stars.errors[:, cols]
    covered = {name: coverage68(answer, truth, error) for name, answer in
               (("emcee", emcee_), ("amortised", amortised))}

    machine = torch.cuda.get_device_name() if args.device == "cuda" else \
        f"{os.cpu_count()} CPU cores"
    command = (f"python validation/inverse.py --stars {args.stars}"
               + (f" --calibration-stars {args.calibration_stars}" if fitted else "")
               + (f" --temperature {args.temperature:g}" if args.temperature is not None
                  else "")
               + (" --store" if args.store else "")
               + f" --nuts {args.nuts} --walkers {args.walkers} --steps {args.steps} "
               f"--burn {args.burn} --moves {args.moves} --nuts-samples "
               f"{args.nuts_samples} --device {args.device} --workers {args.workers}")
    lines = ["# MCMC with the generative likelihood against the amortised answer",
             "", f"`{command}` (model: {args.model or 'shipped'}; {len(stars)} test stars, "
             f"XP spectrum only; {machine}, {args.workers} stars at a time, one CPU thread "
             f"each; emcee {args.walkers} walkers x {args.steps} steps, the first {args.burn} "
             f"dropped, {args.moves} moves"
             + (f"; NUTS 2 chains x {args.nuts_samples} draws after {args.nuts_samples} "
                "warm-up steps" if args.nuts else "") + "). Bar: medians within the "
             "combined standard deviation for >= 90% of (star, parameter) pairs; MCMC "
             "R-hat < 1.01, bulk ESS > 400. Prior: the training population's (a kernel "
             "density of the train-split labels), as the amortised answer's.", ""]
    if fitted:
        lines += [f"## 1. The likelihood's temperature (validation split, "
                  f"{args.calibration_stars} stars, {t_fit / 60:.1f} min)", "",
                  "Fraction of (star, parameter) pairs whose label lies inside the "
                  "Laplace-approximate 68% interval of the tempered posterior:", "",
                  "| T | " + " | ".join(f"{t:g}" for t in fitted) + " |",
                  "|---|" + "---|" * len(fitted),
                  "| coverage | " + " | ".join(f"{c:.3f}" for c in fitted.values()) + " |",
                  "", f"Chosen: **T = {temperature:g}** (closest to 0.68)"
                  + (", stored in the model's config.json" if args.store else "") +
                  ". At T = 1 the "
                  "likelihood is too sharp and off target: 343 pixels count as more "
                  "independent evidence than they are.", ""]
    else:
        lines += [f"Likelihood temperature T = {temperature:g} ("
                  + ("the one stored with the model" if args.temperature is None
                     else "given")
                  + ", not fitted here"
                  + ("; stored in the model's config.json" if args.store else "") + ").", ""]
    lines += ["## 2. Test split: MCMC (tempered likelihood) against the amortised answer", "",
              "| parameter | agree | median abs(diff)/combined sd | max R-hat | min ESS | "
              "emcee median sd | amortised median sd | emcee 68% coverage | amortised 68% "
              "coverage | emcee: robust scatter vs APOGEE | amortised: robust scatter "
              "vs APOGEE |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for j, name in enumerate(PARAMETERS):
        lines.append(
            f"| {name} | {np.mean(ratio[:, j] < 1):.2f} | {np.median(ratio[:, j]):.2f} | "
            f"{emcee_['r_hat'][:, j].max():.3f} | {emcee_['ess'][:, j].min():.0f} | "
            f"{np.median(emcee_['std'][:, j]):.3g} | {np.median(amortised['std'][:, j]):.3g} "
            f"| {covered['emcee'][:, j].mean():.2f} | {covered['amortised'][:, j].mean():.2f} "
            f"| {robust_scatter(truth[:, j], emcee_['median'][:, j]):.3g} | "
            f"{robust_scatter(truth[:, j], amortised['median'][:, j]):.3g} |")
    converged = (emcee_["r_hat"] < 1.01).all(1) & (emcee_["ess"] > 400).all(1)
    sharper = np.median(emcee_["std"] / amortised["std"], 0)
    lines += ["", f"- All pairs: {np.mean(ratio < 1):.3f} agree (bar 0.90). Stars whose "
              f"emcee run meets R-hat < 1.01 and ESS > 400 for every parameter: "
              f"{converged.sum()} of {len(stars)}.",
              f"- 68% coverage, all pairs: emcee {covered['emcee'].mean():.3f}, amortised "
              f"{covered['amortised'].mean():.3f}. The emcee posterior is wider, star by "
              "star, by a median factor of " + ", ".join(
                  f"{x:.1f} ({n})" for n, x in zip(PARAMETERS, sharper)) + ".",
              f"- Time per star: amortised {1e3 * t_amortised:.1f} ms (one batched pass "
              f"for all {len(stars)} stars, CPU), emcee {np.mean(t_emcee):.1f} s (wall "
              f"time of one star in its worker, {args.workers} workers sharing the machine) "
              f"({np.mean(t_emcee) / t_amortised:.0f}x slower)"
              + (f", NUTS {np.mean(t_nuts):.1f} s" if t_nuts else "") + "."]
    if nuts_rows:
        nuts = {k: np.stack([r[k] for r in nuts_rows]) for k in nuts_rows[0]}
        at = [k for k, i in enumerate(done) if "nuts" in results[i]]
        same = {name: {k: v[at] for k, v in d.items()} for name, d in
                (("emcee", emcee_), ("amortised", amortised))}
        lines += [f"- NUTS on {len(at)} stars: max R-hat {nuts['r_hat'].max():.3f}, min ESS "
                  f"{nuts['ess'].min():.0f}; NUTS vs emcee medians within the combined sd "
                  f"for {np.mean(agreement(nuts, same['emcee']) < 1):.2f} of pairs, NUTS vs "
                  f"amortised {np.mean(agreement(nuts, same['amortised']) < 1):.2f}."]

    fig, axes = plt.subplots(1, len(PARAMETERS), figsize=(4 * len(PARAMETERS), 4))
    for j, (ax, name) in enumerate(zip(axes, PARAMETERS)):
        ax.errorbar(emcee_["median"][:, j], amortised["median"][:, j],
                    xerr=emcee_["std"][:, j], yerr=amortised["std"][:, j], fmt=".", ms=4,
                    lw=0.7, color="#1f5fa8", alpha=0.8)
        lo = min(emcee_["median"][:, j].min(), amortised["median"][:, j].min())
        hi = max(emcee_["median"][:, j].max(), amortised["median"][:, j].max())
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
        ax.set_xlabel(f"emcee (likelihood^(1/{temperature:g})): {axis_label(name)}",
                      fontsize=8)
        ax.set_ylabel(f"amortised: {axis_label(name)}", fontsize=8)
        ax.set_title(f"{name}: {np.mean(ratio[:, j] < 1):.0%} agree", fontsize=10)
    fig.suptitle(f"{len(stars)} test stars, median +- 1 sd (python validation/inverse.py)",
                 fontsize=10)
    fig.tight_layout()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.with_suffix(".png"), dpi=100)
    lines += ["", f"![MCMC vs amortised]({out.with_suffix('.png').name})"]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
