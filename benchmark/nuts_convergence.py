"""Does Pyro NUTS reach the inverse-problem convergence bar where emcee does not?

    python benchmark/nuts_convergence.py     # writes benchmark/nuts_convergence.md (~15 min)

validation/inverse.md: emcee (24 walkers x 6,000 steps, ~3 min per star) reaches R-hat
1.02-1.03, short of the issue's R-hat < 1.01 with bulk ESS > 400. Here NUTS
(``probstar.inverse.run_nuts``: 4 independent chains of ``--samples`` draws after as many
warm-up steps, over-dispersed starts) samples the same posterior (shipped model, its
likelihood temperature, the training-population prior, XP spectrum only) of the first
``--stars`` test stars, one CPU thread. Seeded: chain c of star i uses seed i + c.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import arviz as az
import torch

from probstar.data import load_split
from probstar.inverse import PARAMETERS, Prior, SpectrumLikelihood, run_nuts
from probstar.query import load_model
from probstar.vocab import index_of

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stars", type=int, default=2)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--output", default=str(HERE / "nuts_convergence.md"))
    args = p.parse_args()
    torch.set_num_threads(1)
    model, prior, test = load_model(), Prior.training_population(), load_split("test")
    pixels = index_of("xp")
    rows = []
    for i in range(args.stars):
        like = SpectrumLikelihood(model, test.values[i, pixels], test.errors[i, pixels])
        t = time.perf_counter()
        idata = run_nuts(like, prior, n_samples=args.samples, warmup=args.samples,
                         chains=args.chains, seed=i, progress=True)
        seconds = time.perf_counter() - t
        s = az.summary(idata, var_names=list(PARAMETERS), kind="diagnostics",
                       round_to="none")
        ok = bool(((s["r_hat"] < 1.01) & (s["ess_bulk"] > 400)).all())
        rows.append(f"| {i} | {seconds:.0f} | " + " | ".join(
            f"{s.loc[n, 'r_hat']:.4f} / {s.loc[n, 'ess_bulk']:.0f}" for n in PARAMETERS)
            + f" | {'yes' if ok else 'no'} |")
    lines = ["# NUTS convergence on the inverse problem\n",
             f"`python benchmark/nuts_convergence.py --stars {args.stars} --chains "
             f"{args.chains} --samples {args.samples}` (test stars 0..{args.stars - 1}; "
             f"{args.chains} chains x {args.samples} draws after {args.samples} warm-up "
             "steps; one CPU thread). Cells: R-hat / bulk ESS; bar: R-hat < 1.01 and ESS > "
             "400 for every parameter.\n",
             "| star | seconds | " + " | ".join(PARAMETERS) + " | meets bar |",
             "|---" * (3 + len(PARAMETERS)) + "|", *rows]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
