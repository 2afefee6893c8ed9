"""Speed of joint sampling: 1,000 draws of (Teff, logg, [Fe/H]) for every test star.

    python benchmark/sampling_speed.py          # writes benchmark/sampling.md

From the full XP spectrum and colours, on 2 CPU threads: one network pass per star
(``Model.posterior``), then the draws (``Posterior.sample``), for the joint flow head and,
for comparison, the independent mixture head. Best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from probstar.data import load_split
from probstar.evaluate import INPUT_SETS
from probstar.query import load_model

NAMES = ["teff", "logg", "fe_h"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model folder (default: the shipped model)")
    p.add_argument("-n", type=int, default=1000, help="draws per star")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--output", default=str(Path(__file__).with_name("sampling.md")))
    args = p.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    stars = load_split("test").only(INPUT_SETS["xp+colours"])
    lines = [f"# Joint sampling speed\n\n`python benchmark/sampling_speed.py` — {model}, "
             f"{len(stars)} test stars (XP spectrum + colours), {args.n} draws each of "
             f"{', '.join(NAMES)}; {torch.get_num_threads()} CPU threads "
             f"({platform.processor() or platform.machine()}), best of {args.repeats}.\n",
             "| head | network pass (s) | sampling (s) | total (s) | draws/s |",
             "|---|---|---|---|---|"]
    for head in [h for h in ("flow", "mixture") if h in model.heads]:
        best = None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            post = model.posterior(stars, NAMES, head=head)
            t1 = time.perf_counter()
            draws = post.sample(args.n, seed=0)
            t2 = time.perf_counter()
            if best is None or t2 - t0 < best[2]:
                best = (t1 - t0, t2 - t1, t2 - t0)
        assert draws.shape == (args.n, len(stars), len(NAMES))
        lines.append(f"| {head} | {best[0]:.1f} | {best[1]:.1f} | {best[2]:.1f} | "
                     f"{args.n * len(stars) / best[2]:,.0f} |")
        print(lines[-1], flush=True)
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
