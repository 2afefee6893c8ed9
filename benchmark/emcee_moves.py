"""emcee's proposal moves on the inverse problem: stretch against differential evolution.

    python benchmark/emcee_moves.py          # writes benchmark/emcee_moves.md, ~5 min

The same validation stars, the same tempered likelihood and population prior, the same
walkers, steps and seed; only ``run_emcee(moves=...)`` differs. Reported per star and
parameter: split R-hat and bulk ESS (ArviZ, each walker one chain) and the integrated
autocorrelation time they imply (kept draws / ESS, in steps). Two stars run at a time,
one CPU thread each.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import arviz as az
import numpy as np
import torch

from probstar.data import load_split
from probstar.inverse import PARAMETERS, Prior, SpectrumLikelihood, run_emcee
from probstar.query import load_model
from probstar.vocab import index_of

MOVES = ("stretch", "differential")
_WORKER: dict = {}


def _init_worker() -> None:
    torch.set_num_threads(1)
    _WORKER.update(model=load_model(), prior=Prior.training_population())


def _run(job) -> tuple[int, str, float, np.ndarray, np.ndarray]:
    star, flux, flux_err, moves, walkers, steps, burn = job
    like = SpectrumLikelihood(_WORKER["model"], flux, flux_err)
    t = time.perf_counter()
    idata = run_emcee(like, _WORKER["prior"], n_walkers=walkers, n_steps=steps, burn=burn,
                      seed=star, moves=moves)
    seconds = time.perf_counter() - t
    s = az.summary(idata, var_names=list(PARAMETERS), kind="diagnostics", round_to="none")
    return star, moves, seconds, s["r_hat"].to_numpy(), s["ess_bulk"].to_numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stars", type=int, default=3)
    p.add_argument("--walkers", type=int, default=24)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--burn", type=int, default=500)
    p.add_argument("--output", default=str(Path(__file__).with_name("emcee_moves.md")))
    args = p.parse_args()
    xp = index_of("xp")
    stars = load_split("validation").complete([*PARAMETERS, "xp"]).select(slice(args.stars))
    jobs = [(i, stars.values[i, xp], stars.errors[i, xp], moves, args.walkers, args.steps,
             args.burn) for i in range(len(stars)) for moves in MOVES]
    with mp.get_context("spawn").Pool(2, _init_worker) as pool:
        results = sorted(pool.map(_run, jobs))
    kept = args.walkers * (args.steps - args.burn)
    lines = ["# emcee moves on the inverse problem", "",
             f"`python benchmark/emcee_moves.py --stars {args.stars} --walkers {args.walkers} "
             f"--steps {args.steps} --burn {args.burn}`: the first {len(stars)} complete "
             f"validation stars, likelihood temperature {load_model().likelihood_temperature:g}"
             f", the training population's prior, {args.walkers} walkers x {args.steps} "
             f"steps, the first {args.burn} dropped; 2 CPU cores, one star per core.", "",
             "| star | moves | seconds | max R-hat | min bulk ESS | autocorrelation time "
             "(steps, " + ", ".join(PARAMETERS) + ") |", "|---|---|---|---|---|---|"]
    for star, moves, seconds, r_hat, ess in results:
        tau = kept / ess
        lines.append(f"| {star} | {moves} | {seconds:.0f} | {r_hat.max():.3f} | "
                     f"{ess.min():.0f} | {', '.join(f'{t:.0f}' for t in tau)} |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
