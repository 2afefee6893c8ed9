"""Flow vs mixture head per Teff bin: where does the joint head gain or lose?

    python benchmark/flow_by_teff.py [--model FOLDER] [--split validation]

Robust scatter of the median and the fraction of labels inside the central 68%
interval, for teff and logg, from XP + colours, per APOGEE Teff bin. This is how the
flow's trouble with hot stars (Teff > 6500 K) was found (benchmark/NOTES.md, "Flow on
the mixture"). A second table asks the hot stars' logg alone and together with other
names: which of the flows (one per number of names) was wrong there ("Stars without
[Fe/H] in the flow").
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from probstar.data import load_split
from probstar.evaluate import INPUT_SETS, robust_scatter
from probstar.query import load_model

BINS = ((0, 3500), (3500, 4500), (4500, 5500), (5500, 6500), (6500, 1e5))
HOT = 6500  # K
REQUESTS = (["logg"], ["teff", "logg"], ["logg", "fe_h"], ["teff", "logg", "fe_h"])


def summaries(post) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and central 68% interval (16%, 84% quantiles) of each name, per star."""
    return post.median(), post.quantile(0.16), post.quantile(0.84)


def scores(truth: np.ndarray, med: np.ndarray, q16: np.ndarray, q84: np.ndarray
           ) -> tuple[float, float]:
    """Robust scatter of the median and the fraction of truths inside the interval."""
    return robust_scatter(truth, med), float(np.mean((truth >= q16) & (truth <= q84)))


def logg_row(model, inputs, truth: np.ndarray, request: list[str], head: str) -> str:
    """The logg answer of ``head`` to ``request``, scored, as a table row."""
    post = model.posterior(inputs, request, head=head)
    j = post.names.index("logg")
    scatter, inside = scores(truth, *(a[:, j] for a in summaries(post)))
    return f"| {head} | {', '.join(request)} | {scatter:.3f} | {inside:.2f} |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model folder (default: the shipped model)")
    p.add_argument("--split", default="validation", choices=("validation", "test"))
    args = p.parse_args()
    torch.set_num_threads(2)
    model, stars = load_model(args.model), load_split(args.split)
    inputs = stars.only(INPUT_SETS["xp+colours"])
    teff, logg = stars.column("teff"), stars.column("logg")
    print(f"`python benchmark/flow_by_teff.py --split {args.split}"
          f"{' --model ' + args.model if args.model else ''}` ({model})\n")
    print("| Teff bin (K) | stars | head | Teff scatter | Teff c68 | logg scatter | logg c68 |")
    print("|---|---|---|---|---|---|---|")
    answers = {}
    for head in ("mixture", "flow"):
        answers[head] = summaries(model.posterior(inputs, ["teff", "logg", "fe_h"], head=head))
    for lo, hi in BINS:
        s = (teff >= lo) & (teff < hi)
        for head, answer in answers.items():
            (t_scatter, t_in), (g_scatter, g_in) = (
                scores(y[s], *(a[s, j] for a in answer)) for j, y in enumerate((teff, logg)))
            print(f"| {lo:.0f}-{hi:.0f} | {s.sum()} | {head} | {t_scatter:.1f} | {t_in:.2f} | "
                  f"{g_scatter:.3f} | {g_in:.2f} |")
    hot = np.flatnonzero(teff >= HOT)
    print(f"\nStars hotter than {HOT} K ({hot.size}), logg asked alone and with others:\n")
    print("| head | request | logg scatter | logg c68 |\n|---|---|---|---|")
    hot_inputs = stars.select(hot).only(INPUT_SETS["xp+colours"])
    print(logg_row(model, hot_inputs, logg[hot], ["logg"], "mixture"))
    for request in REQUESTS:
        print(logg_row(model, hot_inputs, logg[hot], request, "flow"))


if __name__ == "__main__":
    main()
