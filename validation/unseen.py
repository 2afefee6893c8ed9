"""Unseen requests: asking for a quantity the model was never trained to predict.

The model ``benchmark/results/holdout`` (``benchmark/gpu_joint.py``) has queries tied to
the input embeddings and saw ``bp_rp`` only as an input: it never learned to predict it.
Asked for ``bp_rp`` anyway, its query is built from what the model learned of bp_rp as
an input. This script measures that answer on the test split against the observed
colour, side by side with (a) the same model asked for a colour it *was* trained to
predict (``j_h``), (b) the shipped model, for which ``bp_rp`` was a training target, and
(c) no model: the train split's bp_rp distribution given to every star.

    python validation/unseen.py            # -> validation/unseen.md, unseen.png (~1 min)

Scores: robust scatter and median bias of the PDF median against the observed colour,
and the coverage of the central 68% interval of the PDF (not convolved with the
colour's photometric error: the data set carries none; Gaia BP-RP errors of these bright
stars are a few mmag, 2MASS J-H a few hundredths). Inputs never include the magnitudes
the colour is made of (g, bp, rp for bp_rp; j, h, k for j_h).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from probstar import load_model  # noqa: E402
from probstar.data import load_split  # noqa: E402
from probstar.evaluate import answer_scores, median_bias, robust_scatter  # noqa: E402
from probstar.vocab import XP_NAMES, robust_loc_scale  # noqa: E402

HERE = Path(__file__).parent
HOLDOUT = HERE.parent / "benchmark" / "results" / "holdout"
QUESTIONS = {  # name: (inputs, requested colour)
    "XP spectrum -> bp_rp": (XP_NAMES, "bp_rp"),
    "teff, logg, fe_h, ak -> bp_rp": (("teff", "logg", "fe_h", "ak"), "bp_rp"),
    "j_h, j_k, ak -> bp_rp": (("j_h", "j_k", "ak"), "bp_rp"),
    "XP spectrum -> j_h": (XP_NAMES, "j_h"),
    "teff, logg, fe_h, ak -> j_h": (("teff", "logg", "fe_h", "ak"), "j_h"),
}


def main() -> None:
    t0 = time.time()
    train, test = load_split("train"), load_split("test")
    holdout, shipped = load_model(HOLDOUT), load_model()
    lines = ["# Unseen requests", "",
             f"`python validation/unseen.py` (test split, {len(test)} stars). The holdout "
             f"model ({holdout}) never had `bp_rp` as a training target; the shipped model "
             f"({shipped}) did. Scatter / bias: PDF median minus observed colour (mag). c68: "
             "fraction of stars whose observed colour lies in the central 68% interval of "
             "the PDF (no photometric errors in the data set to convolve with). Width: "
             "median half-width of that interval. \"No model\": every star gets the train "
             "split's distribution (its median, robust scale and quantiles).", "",
             "| question | model | trained on this target | scatter | bias | c68 | width |",
             "|---|---|---|---|---|---|---|"]
    results = {}
    for question, (inputs, name) in QUESTIONS.items():
        truth, pop = test.column(name), train.column(name)
        pop, known = pop[np.isfinite(pop)], truth[np.isfinite(truth)]
        loc, scale = robust_loc_scale(pop)
        lo, hi = np.quantile(pop, [0.16, 0.84])
        everyone = np.full_like(truth, loc)  # no model: the train median for every star
        rows = [("no model (train distribution)", "–", robust_scatter(truth, everyone),
                 median_bias(truth, everyone), np.mean((known >= lo) & (known <= hi)), scale)]
        for label, model in (("holdout (tied queries)", holdout), ("shipped", shipped)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the unseen-request warning: expected here
                s = answer_scores(model, test, inputs, name)  # no photometric errors
            results[(question, label)] = s  # in the data set to convolve colours with
            trained = "yes" if name in model.trained_names else "**no (unseen)**"
            rows.append((label, trained, s["scatter"], s["bias"], s["c68"], s["width"]))
        for label, trained, sc, bias, c68, width in rows:
            lines.append(f"| {question} | {label} | {trained} | {sc:.3f} | {bias:+.3f} | "
                         f"{c68:.3f} | {width:.3f} |")

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), constrained_layout=True)
    for ax, question in zip(axes, list(QUESTIONS)[:3]):
        truth = test.column("bp_rp")
        for label, colour in (("holdout (tied queries)", "C3"), ("shipped", "C0")):
            ax.scatter(truth, results[(question, label)]["median"], s=2, alpha=0.3, c=colour,
                       label=f"{label}: scatter {results[(question, label)]['scatter']:.3f}")
        ax.plot([0, 4], [0, 4], "k--", lw=0.8)
        ax.set(xlim=(0.5, 3.5), ylim=(0.5, 3.5), xlabel="observed BP-RP [mag]",
               ylabel="PDF median [mag]", title=question)
        ax.legend(loc="upper left", fontsize=8, markerscale=4)
    fig.suptitle("BP-RP asked of a model never trained to predict it (red) and of the shipped "
                 "model (blue), test split")
    fig.savefig(HERE / "unseen.png", dpi=110)
    lines += ["", "![unseen requests](unseen.png)", "",
              f"Total {time.time() - t0:.0f} s on 2 threads."]
    (HERE / "unseen.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
