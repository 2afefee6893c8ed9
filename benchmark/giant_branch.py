"""Where does the Teff-only answer's giant branch end? (benchmark/NOTES.md, issue 3)

    python benchmark/giant_branch.py [--models DIR ...] [--output FILE]
    # default output: results/teff_only/giant_branch.md

Given only Teff, the real model's logg answer has a giant and a dwarf peak. For each
model and Teff: the 95th percentile of the giants' logg (below 3.5) and the mass lying
more than 0.65 dex above the giants' median but below 3.5 (the near-empty gap between
the giant branch and the dwarfs), against the train and validation splits' stars
within +-50 K; the same with a Teff error of 25 to 400 K; and the raw mixture's
components. 20,000 seeded draws per answer, raw mixture (no recalibration):
deterministic on CPU. A model folder may be any trained run (``runs/NAME``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from probstar.data import load_split
from probstar.query import load_model
from probstar.recalibration import mixture_arrays
from probstar.vocab import index_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validation"))
from pdf_heads import GIANT_LOGG, N_DRAWS, WINDOW, giant_edge, near  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "teff_only" / "giant_branch.md"
TEFFS, ERRORS = (3700.0, 4000.0, 4300.0), (None, 25.0, 150.0, 400.0)
LABELS, PHOTOMETRY = ("teff", "logg", "fe_h"), ("g", "bp_rp", "j_k")
GAP = 0.65  # dex above the giants' median where the gap to the dwarfs begins


def shape(logg: np.ndarray, giant_median: float) -> str:
    """'95th percentile of the giants / mass in the gap' of some logg values."""
    gap = np.mean((logg > giant_median + GAP) & (logg < GIANT_LOGG))
    return f"{giant_edge(logg):.2f} / {gap:.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=["probstar/models/default"])
    p.add_argument("--output", type=Path, default=OUT)
    args = p.parse_args()
    t0 = time.perf_counter()
    splits = {split: load_split(split) for split in ("train", "validation")}
    nearby = {(split, t): near(stars, t) for split, stars in splits.items() for t in TEFFS}
    median = {t: float(np.median(nearby["train", t][nearby["train", t] < GIANT_LOGG]))
              for t in TEFFS}
    errs = ["none" if e is None else f"{e:g} K" for e in ERRORS]
    command = f"python benchmark/giant_branch.py --models {' '.join(args.models)}" + (
        "" if args.output == OUT else f" --output {args.output}")
    out = [f"# Where the Teff-only giant branch ends\n\n`{command}`\n",
           f"Each cell: 95th percentile of the giants' logg (< {GIANT_LOGG}) / mass more than "
           f"{GAP} dex above the train split's giant median and below {GIANT_LOGG}. Raw "
           f"mixture answers ({N_DRAWS} draws); the train and validation splits' stars "
           f"within ±{WINDOW:g} K for reference.\n",
           "| model | Teff (K) | Teff error: " + " | ".join(errs) + " |",
           "|---|---|" + "---|" * len(ERRORS),
           *[f"| {split} split (no model) | {t:.0f} | {shape(nearby[split, t], median[t])} |"
             + " |" * (len(ERRORS) - 1) for split in splits for t in TEFFS]]
    components, photometry = [], []
    logg = index_of("logg")[0]
    for path in args.models:
        model = load_model(path)
        loc, scale = model.normalization.loc[logg], model.normalization.scale[logg]
        if set(PHOTOMETRY) & set(model.trained_names):
            scores = model.scores(splits["validation"], LABELS, PHOTOMETRY)
            photometry.append(f"| {path} | " + " | ".join(
                f"{scores[n]:.3f}" if n in scores else "" for n in PHOTOMETRY) + " |")
        for t in TEFFS:
            cells = []
            for e in ERRORS:
                data = {"teff": [t]} | ({} if e is None else {"teff_err": [e]})
                post = model.posterior(data, "logg", head="mixture", calibrated=False)
                cells.append(shape(post.sample(N_DRAWS, seed=0)[:, 0, 0], median[t]))
                if e is None:
                    w, mu, sd = (a[0, 0] for a in mixture_arrays(post))
                    comps = ", ".join(f"{m * scale + loc:.2f} ± {s * scale:.2f} ({x:.3f})"
                                      for x, m, s in sorted(zip(w, mu, sd), key=lambda c: c[1]))
                    components.append(f"| {path} | {t:.0f} | {comps} |")
            out.append(f"| {path} | {t:.0f} | " + " | ".join(cells) + " |")
    out += ["\nThe raw mixture's components given Teff alone (no error): mean ± sd (weight), "
            "logg.\n", "| model | Teff (K) | components |", "|---|---|---|", *components,
            "\nWhat the photometry answers cost: robust scatter (mag) of the median "
            "answer against the validation split's photometry, given Teff, logg and [Fe/H] "
            "(models that predict them).\n",
            "| model | " + " | ".join(PHOTOMETRY) + " |", "|---|" + "---|" * len(PHOTOMETRY),
            *photometry, f"\n{time.perf_counter() - t0:.0f} s."]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
