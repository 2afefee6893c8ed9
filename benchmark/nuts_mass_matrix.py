"""Does a dense NUTS mass matrix fix the badly mixing stars of validation/inverse_nuts.md?

    python benchmark/nuts_mass_matrix.py --stars 39 2    # ~30 min per star, one thread each

Runs Pyro NUTS with ``dense_mass=True`` (a full mass matrix adapted during warm-up) on
the chosen test stars, with every other setting of the committed NUTS report (4 chains x
500 draws after 300 warm-up steps, seed = the star's index, T stored with the model, the
training population's prior), one star per process on one CPU thread, and sets R-hat,
bulk ESS and wall time per parameter next to the diagonal-mass run of the same star read
from ``validation/inverse_nuts.jsonl``. Writes ``benchmark/results/nuts_mass_matrix.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import torch

from probstar.data import load_split
from probstar.inverse import PARAMETERS, Prior, SpectrumLikelihood, run_nuts
from probstar.query import load_model
from probstar.vocab import index_of

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "validation"))
from inverse import _read_cache, summarise  # noqa: E402  (validation/inverse.py)

CACHE = ROOT / "validation" / "inverse_nuts.jsonl"
SETTINGS = {"chains": 4, "nuts_samples": 500, "nuts_warmup": 300}


def dense_run(star: int) -> dict:
    """NUTS with a dense mass matrix on test star ``star`` (the report's star order):
    the report's summary of it (``validation/inverse.py``) and its wall seconds."""
    torch.set_num_threads(1)
    model, prior = load_model(), Prior.training_population()
    stars = load_split("test").complete([*PARAMETERS, "xp"])
    xp = index_of("xp")
    like = SpectrumLikelihood(model, stars.values[star, xp], stars.errors[star, xp])
    t = time.perf_counter()
    idata = run_nuts(like, prior, n_samples=SETTINGS["nuts_samples"],
                     warmup=SETTINGS["nuts_warmup"], chains=SETTINGS["chains"], seed=star,
                     dense_mass=True)
    return {**summarise(idata), "seconds": time.perf_counter() - t}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stars", type=int, nargs="+", default=[39, 2])
    p.add_argument("--output", default=str(ROOT / "benchmark/results/nuts_mass_matrix.md"))
    args = p.parse_args()
    cached = _read_cache(str(CACHE), {"sampler": "nuts", "model": "shipped", **SETTINGS,
                                      "temperature": load_model().likelihood_temperature})
    missing = [s for s in args.stars if s not in cached]
    if missing:
        raise SystemExit(f"stars {missing} are not in {CACHE} with the settings {SETTINGS}")
    diagonal = {s: cached[s] for s in args.stars}
    with mp.get_context("spawn").Pool(min(2, len(args.stars))) as pool:
        dense = dict(zip(args.stars, pool.map(dense_run, args.stars)))
    lines = ["# NUTS: diagonal against dense mass matrix", "",
             f"`python benchmark/nuts_mass_matrix.py --stars {' '.join(map(str, args.stars))}`"
             " (4 chains x 500 draws after 300 warm-up steps, seed = star index, one CPU "
             "thread per star, two stars at a time; the diagonal runs are the committed "
             "report's, validation/inverse_nuts.jsonl, also two at a time)", "",
             "| star | mass matrix | " + " | ".join(f"R-hat {q}" for q in PARAMETERS)
             + " | min ESS | seconds |", "|---" * (len(PARAMETERS) + 4) + "|"]
    for s in args.stars:
        for kind, run in (("diagonal", diagonal[s]), ("dense", dense[s])):
            lines.append(f"| {s} | {kind} | " + " | ".join(f"{r:.3f}" for r in run["r_hat"])
                         + f" | {np.min(run['ess']):.0f} | {run['seconds']:.0f} |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
