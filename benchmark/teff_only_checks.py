"""Two checks behind the Teff-only training recipe (benchmark/NOTES.md, issue 3).

    python benchmark/teff_only_checks.py     # writes benchmark/results/pdf_heads/teff_only_checks.md

1. How often a training context is "Teff only" (Teff shown, nothing else) under the
   issue-2 recipe and the fine-tuning stages' recipes (``sample_context`` on the train
   split, seeded).
2. Does the answer depend on the size of the Teff error given with it? Dwarf mass
   (logg > 3.5) given Teff alone, with no error, 10 K and 30 K, for the issue-2 model
   (trained with the APOGEE errors as inputs) and the shipped model (``label_errors``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from probstar.data import load_split
from probstar.query import load_model
from probstar.train import PRESETS, normalized_tensors, sample_context

RECIPES = {
    "issue 2 (gpu preset)": {},
    "stage 1 (25% labels-only)": {"p_labels_only": 0.25},
    "stages 3-4 (60% labels-only, 1-2 shown)": {"p_labels_only": 0.6, "labels_only_max": 2},
}
MODELS = {"issue-2 model": "benchmark/results/gaussian_v1", "shipped": None}


def teff_only_fraction(settings: dict, values, sigmas, repeats: int = 5) -> float:
    cfg = replace(PRESETS["gpu"], label_errors=True, **settings)
    g = torch.Generator().manual_seed(0)
    hits = 0
    for _ in range(repeats):
        context, _ = sample_context(values, sigmas, cfg, g)
        shown = torch.isfinite(context)
        hits += int((shown[:, 0] & (shown.sum(1) == 1)).sum())
    return hits / (repeats * len(values))


def main() -> None:
    torch.set_num_threads(2)
    train = load_split("train")
    model = load_model()
    values, sigmas = normalized_tensors(train, model.normalization, torch.device("cpu"))
    lines = ["# Teff-only checks\n", "`python benchmark/teff_only_checks.py`\n",
             "## How often a training context is Teff only\n",
             "| recipe | Teff-only contexts |", "|---|---|"]
    for name, settings in RECIPES.items():
        lines.append(f"| {name} | {100 * teff_only_fraction(settings, values, sigmas):.2f}% |")
    lines += ["\n## Dwarf mass (logg > 3.5) given only Teff, by the Teff error given\n",
              "| model | Teff | no error | ± 10 K | ± 30 K |", "|---|---|---|---|---|"]
    for label, path in MODELS.items():
        m = load_model(path)
        for teff in (4000.0, 4700.0):
            cells = []
            for err in (None, 10.0, 30.0):
                given = {"teff": [teff]} | ({} if err is None else {"teff_err": [err]})
                draws = m.posterior(given, "logg").sample(20_000, seed=0)
                cells.append(f"{np.mean(draws > 3.5):.3f}")
            lines.append(f"| {label} ({m.default_head} head) | {teff:.0f} K | "
                         + " | ".join(cells) + " |")
    out = Path(__file__).with_name("results") / "pdf_heads" / "teff_only_checks.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
