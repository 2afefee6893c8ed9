"""MCMC posteriors with the generative direction as likelihood, against the direct
(amortised) answer, for test-split stars.

    python validation/inverse.py      # inverse.md and .png: ~100 min on 2 cores
    python validation/inverse.py --stars 4 --steps 400 --burn 100    # a quick look
    python validation/inverse.py --sampler nuts --cache validation/inverse_nuts.jsonl \
        --output validation/inverse_nuts.md      # ~13 min per star, 2 at a time; resumable

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
     (``probstar.inverse.Prior.training_population``), sampled with ``--sampler``:
     ``emcee`` (``--walkers`` walkers, ``--steps`` steps, the first ``--burn`` dropped,
     ``--moves``) or Pyro ``nuts`` (``--chains`` chains of ``--nuts-samples`` draws
     after ``--nuts-warmup`` warm-up steps); both start over-dispersed around the
     posterior's mode, seeded by the star's index;
   - *amortised*: ``model.posterior(spectrum, PARAMETERS)``, the mixture head
     (recalibrated), one network pass. Its prior is the same population's: the one it
     was trained on.

Agreement bar: the two medians differ by less than the two standard deviations added
in quadrature, for at least 90% of (star, parameter) pairs; the MCMC must have R-hat <
1.01 and bulk ESS > 400 per parameter. Two calibrated answers meet it only if they carry
about the same information: the report also gives the agreement expected by chance from
the two answers' widths (``probstar.calibration.expected_agreement``). Calibration of
both: how often median +- 0.994 sd (the 68% interval of a normal), widened by the
label's APOGEE error, holds the label. Times are wall seconds per star on this machine.

``--cache FILE`` keeps each star's summary (a JSON line) as soon as it is sampled and
skips the stars already there with the same settings: a run stopped by ``--deadline`` (or
by anything else) goes on where it stopped, and the report covers every cached star.
``--deadline 0`` only rewrites the report from the cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from probstar.calibration import agreement, expected_agreement
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


def _init_worker(model: str | None, device: str, temperature: float, args: dict) -> None:
    torch.set_num_threads(1)
    m = load_model(model)
    m.net.to(device)
    _WORKER.update(model=m, temperature=temperature, prior=Prior.training_population(),
                   args=args)


def _sample_star(job) -> tuple[int, dict]:
    """The chosen sampler for one star, in a worker process: its summary and seconds."""
    i, flux, flux_err = job
    w, a = _WORKER, _WORKER["args"]
    like = SpectrumLikelihood(w["model"], flux, flux_err, temperature=w["temperature"])
    t = time.perf_counter()
    if a["sampler"] == "emcee":
        idata = run_emcee(like, w["prior"], n_walkers=a["walkers"], n_steps=a["steps"],
                          burn=a["burn"], seed=i, moves=a["moves"])
    else:
        idata = run_nuts(like, w["prior"], n_samples=a["nuts_samples"],
                         warmup=a["nuts_warmup"], chains=a["chains"], seed=i)
    return i, {**summarise(idata), "seconds": time.perf_counter() - t}


SUMMARY = ("median", "std", "r_hat", "ess")
#: each sampler's own options (argparse names): the cache key and the report's command
SAMPLER_OPTIONS = {"emcee": ("walkers", "steps", "burn", "moves"),
                   "nuts": ("chains", "nuts_samples", "nuts_warmup")}


def _read_cache(path: str | None, sampling: dict) -> dict[int, dict]:
    """The stars of a --cache file sampled with these settings (later lines win)."""
    results = {}
    if path and Path(path).exists():
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            if all(row.get(k) == v for k, v in sampling.items()):
                results[row["star"]] = {k: np.asarray(row[k]) for k in (*SUMMARY,
                                                                         "seconds")}
    return results


def summarise(idata: az.InferenceData) -> dict[str, np.ndarray]:
    """Median, std, R-hat and bulk ESS per parameter."""
    s = az.summary(idata, var_names=list(PARAMETERS), kind="diagnostics",
                   round_to="none")  # rounded to 0.01, R-hat 1.006 would read 1.01
    post = idata.posterior
    return {"median": np.array([float(post[p].median()) for p in PARAMETERS]),
            "std": np.array([float(post[p].std()) for p in PARAMETERS]),
            "r_hat": s["r_hat"].to_numpy(), "ess": s["ess_bulk"].to_numpy()}


def coverage68(answer: dict, truth: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Whether median +- 0.994 sd (label error added) holds the label, per pair."""
    half = 0.9945 * np.sqrt(answer["std"] ** 2 + np.nan_to_num(error) ** 2)
    return np.abs(truth - answer["median"]) < half


def weights_digest(folder: str | Path) -> str:
    """The cache's name of a model: the start of its weights' SHA-256, so that cached
    runs of one model are never read as another's (a folder name can change hands)."""
    return hashlib.sha256((Path(folder) / "model.safetensors").read_bytes()).hexdigest()[:16]


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
    p.add_argument("--sampler", default="emcee", choices=["emcee", "nuts"])
    p.add_argument("--model", default=None)
    p.add_argument("--output", default=str(HERE / "inverse.md"))
    p.add_argument("--walkers", type=int, default=24, help="emcee walkers")
    p.add_argument("--steps", type=int, default=6000, help="emcee steps per walker")
    p.add_argument("--burn", type=int, default=1000, help="emcee steps dropped")
    p.add_argument("--moves", default="differential", choices=["differential", "stretch"],
                   help="emcee's proposal moves (probstar.inverse.run_emcee)")
    p.add_argument("--chains", type=int, default=4, help="NUTS chains")
    p.add_argument("--nuts-samples", type=int, default=500, help="NUTS draws per chain")
    p.add_argument("--nuts-warmup", type=int, default=300, help="NUTS warm-up steps")
    p.add_argument("--cache", default=None,
                   help="JSON-lines file of per-star results, kept and reused (resumes)")
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

    sampling = {"sampler": args.sampler, "temperature": temperature,
                "model": weights_digest(args.model or shipped_model_path()),
                **{k: getattr(args, k) for k in SAMPLER_OPTIONS[args.sampler]}}
    results = _read_cache(args.cache, sampling)
    jobs = [(i, stars.values[i, xp], stars.errors[i, xp]) for i in range(len(stars))
            if i not in results]
    stop = time.time() + args.deadline
    with mp.get_context("spawn").Pool(args.workers, _init_worker, (
            args.model, args.device, temperature, vars(args))) as pool:
        pending = pool.imap_unordered(_sample_star, jobs)
        for _ in tqdm(jobs, desc=args.sampler, unit="star"):
            try:
                left = None if np.isinf(stop) else max(1.0, stop - time.time())
                i, results[i] = pending.next(timeout=left)
            except mp.TimeoutError:
                print(f"--deadline reached: {len(results)} of {len(stars)} stars sampled")
                break
            if args.cache:
                with open(args.cache, "a") as f:
                    f.write(json.dumps({"star": i, **sampling, **{
                        k: np.asarray(v).tolist() for k, v in results[i].items()}}) + "\n")
    done = sorted(results)  # the report covers the stars sampled before the deadline
    if not done:
        raise SystemExit("no star was sampled before --deadline: nothing to report")
    stars = stars.select(done)
    amortised = {k: v[done] for k, v in amortised.items()}
    mc = args.sampler
    seconds = [results[i]["seconds"] for i in done]
    mcmc = {k: np.stack([results[i][k] for i in done]) for k in SUMMARY}
    ratio = agreement(mcmc["median"], mcmc["std"], amortised["median"], amortised["std"])
    ceiling = expected_agreement(mcmc["std"], amortised["std"])
    truth, error = stars.values[:, cols], stars.errors[:, cols]
    covered = {name: coverage68(answer, truth, error) for name, answer in
               ((mc, mcmc), ("amortised", amortised))}

    machine = torch.cuda.get_device_name() if args.device == "cuda" else \
        f"{os.cpu_count()} CPU cores"
    how = " ".join(f"--{k.replace('_', '-')} {getattr(args, k)}" for k in SAMPLER_OPTIONS[mc])
    what = (f"emcee {args.walkers} walkers x {args.steps} steps, the first {args.burn} "
            f"dropped, {args.moves} moves" if mc == "emcee" else
            f"Pyro NUTS {args.chains} chains x {args.nuts_samples} draws after "
            f"{args.nuts_warmup} warm-up steps")
    command = (f"python validation/inverse.py --stars {args.stars}"
               + (f" --calibration-stars {args.calibration_stars}" if fitted else "")
               + (f" --temperature {args.temperature:g}" if args.temperature is not None
                  else "")
               + (" --store" if args.store else "")
               + f" --sampler {mc} {how} --device {args.device} --workers {args.workers}"
               + (f" --cache {args.cache}" if args.cache else ""))
    lines = ["# MCMC with the generative likelihood against the amortised answer",
             "", f"`{command}` (model: {args.model or 'shipped'}; {len(stars)} test stars, "
             f"XP spectrum only; {machine}, {args.workers} stars at a time, one CPU thread "
             f"each; {what}). Bar: medians within the "
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
              "| parameter | agree | expected agree (calibrated, nested) | "
              "median abs(diff)/combined sd | max R-hat | min ESS | "
              f"{mc} median sd | amortised median sd | {mc} 68% coverage | amortised 68% "
              f"coverage | {mc}: robust scatter vs APOGEE | amortised: robust scatter "
              "vs APOGEE |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for j, name in enumerate(PARAMETERS):
        lines.append(
            f"| {name} | {np.mean(ratio[:, j] < 1):.2f} | {ceiling[:, j].mean():.2f} | "
            f"{np.median(ratio[:, j]):.2f} | "
            f"{mcmc['r_hat'][:, j].max():.3f} | {mcmc['ess'][:, j].min():.0f} | "
            f"{np.median(mcmc['std'][:, j]):.3g} | {np.median(amortised['std'][:, j]):.3g} "
            f"| {covered[mc][:, j].mean():.2f} | {covered['amortised'][:, j].mean():.2f} "
            f"| {robust_scatter(truth[:, j], mcmc['median'][:, j]):.3g} | "
            f"{robust_scatter(truth[:, j], amortised['median'][:, j]):.3g} |")
    converged = (mcmc["r_hat"] < 1.01).all(1) & (mcmc["ess"] > 400).all(1)
    sharper = np.median(mcmc["std"] / amortised["std"], 0)
    lines += ["", f"- All pairs: {np.mean(ratio < 1):.3f} agree (bar 0.90); two calibrated "
              "normal answers of these widths, one's information holding the other's, "
              f"would agree on {ceiling.mean():.3f} of them "
              "(`probstar.calibration.expected_agreement`). Stars whose "
              f"{mc} run meets R-hat < 1.01 and ESS > 400 for every parameter: "
              f"{converged.sum()} of {len(stars)}; with max R-hat < 1.02: "
              f"{(mcmc['r_hat'].max(1) < 1.02).sum()}. Per star, max R-hat / min ESS / "
              "seconds, the bar's misses in bold: " + ", ".join(
                  f"{i}: " + ("{}" if ok else "**{}**").format(
                      f"{r.max():.4f} / {e.min():.0f} / {t:.0f}")
                  for i, ok, r, e, t in zip(done, converged, mcmc["r_hat"], mcmc["ess"],
                                            seconds)) + ".",
              f"- 68% coverage, all pairs: {mc} {covered[mc].mean():.3f}, amortised "
              f"{covered['amortised'].mean():.3f}. The {mc} posterior is wider, star by "
              "star, by a median factor of " + ", ".join(
                  f"{x:.1f} ({n})" for n, x in zip(PARAMETERS, sharper)) + ".",
              f"- Time per star: amortised {1e3 * t_amortised:.1f} ms (one batched pass "
              f"for all {len(stars)} stars, CPU), {mc} {np.mean(seconds):.1f} s (wall "
              f"time of one star in its worker, {args.workers} workers sharing the machine) "
              f"({np.mean(seconds) / t_amortised:.0f}x slower)."]

    fig, axes = plt.subplots(1, len(PARAMETERS), figsize=(4 * len(PARAMETERS), 4))
    for j, (ax, name) in enumerate(zip(axes, PARAMETERS)):
        ax.errorbar(mcmc["median"][:, j], amortised["median"][:, j],
                    xerr=mcmc["std"][:, j], yerr=amortised["std"][:, j], fmt=".", ms=4,
                    lw=0.7, color="#1f5fa8", alpha=0.8)
        lo = min(mcmc["median"][:, j].min(), amortised["median"][:, j].min())
        hi = max(mcmc["median"][:, j].max(), amortised["median"][:, j].max())
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
        ax.set_xlabel(f"{mc} (likelihood^(1/{temperature:g})): {axis_label(name)}",
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
