"""Do the PDF heads answer ambiguous questions right? Teff-only logg on held-out stars.

    python validation/pdf_heads.py               # writes validation/pdf_heads.md and .png

1. Teff-only questions at 3700, 4000, 4300, 4700 and 5200 K: each head's logg PDF
   against the logg of the held-out stars (test split; ``--split validation`` when
   choosing between models) within +-50 K of that Teff. Mass above
   logg = 3.5 (dwarfs) against the empirical fraction (bar: within 0.05), and the 1-D
   Wasserstein distance between the PDF (20,000 draws) and those stars' labels (bar:
   at most 0.15 dex).
2. Point accuracy: the robust scatter of each head's median on the whole split
   from XP + colours (the table of validation/accuracy.md), all heads of one model.
3. Calibration and label noise: coverage of the central 68% and 95% intervals, the
   median predicted width, and the median APOGEE label error relative to it. The mixture
   head is fitted with the label noise deconvolved (its PDF is of the true value); the
   flow is fitted to the noisy labels (its PDF is of a measurement). The coverage
   compares both against the noisy labels.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.stats import wasserstein_distance

from probstar.data import load_split
from probstar.evaluate import INPUT_SETS, accuracy_rows, format_table, joint_log_density, \
    posterior_medians, scatter_ratio
from probstar.plots import axis_label
from probstar.query import load_model
from probstar.vocab import index_of

TEFFS = (3700.0, 4000.0, 4300.0, 4700.0, 5200.0)
WINDOW, GIANT_LOGG, N_DRAWS = 50.0, 3.5, 20_000
TARGETS = ("teff", "logg", "fe_h")
COLOURS = {"mixture": "#1f5fa8", "flow": "#2a9d3a", "gaussian": "#b03030",
           "flow (logg, fe_h)": "#8fd18f", "mixture, not recalibrated": "#8fb3e0"}


def near(stars, t: float) -> np.ndarray:
    """logg of the stars within WINDOW of Teff = t."""
    teff, logg = stars.column("teff"), stars.column("logg")
    return logg[(np.abs(teff - t) <= WINDOW) & np.isfinite(logg)]


def answers(model, t: float) -> dict:
    """Each head's answer to "Teff = t, logg?", and the flow's joint (logg, fe_h) answer
    (what ``probstar sample --request logg fe_h`` gives), as (posterior, name)."""
    out = {head: model.posterior({"teff": [t]}, ["logg"], head=head) for head in model.heads}
    if model.recalibration.fitted and "mixture" in model.heads:
        out["mixture, not recalibrated"] = model.posterior({"teff": [t]}, ["logg"],
                                                           head="mixture", calibrated=False)
    if "flow" in model.heads:
        out["flow (logg, fe_h)"] = model.posterior({"teff": [t]}, ["logg", "fe_h"], head="flow")
    return out


def teff_only_rows(model, stars, train) -> tuple[list[dict], dict]:
    """One row per Teff and answer, plus the train split's own stars as a no-model
    reference: what a model that learnt the training distribution exactly would score
    (the test bins hold ~100-200 stars, so they differ from it by chance)."""
    rows, curves = [], {}
    x = np.linspace(-0.5, 5.5, 601)
    for t in TEFFS:
        ref, trained_on = near(stars, t), near(train, t)
        empirical = float(np.mean(ref > GIANT_LOGG))
        found = {f"train split, ±{WINDOW:g} K (no model)": (trained_on, [])}
        for label, post in answers(model, t).items():
            draws = post.sample(N_DRAWS, seed=0)[:, 0, post.names.index("logg")]
            curves[t, label] = (x, post.pdf("logg", x)[0])
            found[label] = (draws, post.modes("logg")[0])
        for label, (draws, peaks) in found.items():
            mass = float(np.mean(draws > GIANT_LOGG))
            w1 = float(wasserstein_distance(draws, ref))
            rows.append({"teff": t, "head": label, "n": len(ref), "mass": mass,
                         "empirical": empirical, "w1": w1, "peaks": peaks,
                         "ok": abs(mass - empirical) <= 0.05 and w1 <= 0.15})
        curves[t, "reference"] = ref
    return rows, curves


def calibration_rows(answers: dict, stars) -> list[dict]:
    """Coverage and widths of each head's answer (``answers``: head -> posterior)."""
    rows = []
    for head, post in answers.items():
        lo68, hi68 = post.quantile(0.16), post.quantile(0.84)
        lo95, hi95 = post.quantile(0.025), post.quantile(0.975)
        width = (hi68 - lo68) / 2
        for j, name in enumerate(post.names):
            y, err = stars.column(name), stars.errors[:, index_of(name)[0]]
            ok = np.isfinite(y)
            rows.append({"head": head, "name": name,
                         "c68": float(np.mean((y[ok] >= lo68[ok, j]) & (y[ok] <= hi68[ok, j]))),
                         "c95": float(np.mean((y[ok] >= lo95[ok, j]) & (y[ok] <= hi95[ok, j]))),
                         "width": float(np.median(width[ok, j])),
                         "noise": float(np.nanmedian(err[ok] / width[ok, j]))})
    return rows


def plot(curves: dict, heads: list[str], path: Path) -> None:
    fig, axes = plt.subplots(1, len(TEFFS), figsize=(3.2 * len(TEFFS), 3.4), sharey=True)
    for ax, t in zip(axes, TEFFS):
        ref = curves[t, "reference"]
        ax.hist(ref, bins=np.linspace(-0.5, 5.5, 31), density=True, color="0.8",
                label=f"held-out stars ({len(ref)})")
        for label in heads:
            x, p = curves[t, label]
            ax.plot(x, p, color=COLOURS.get(label), lw=1.6, label=label)
        ax.axvline(GIANT_LOGG, color="0.4", ls=":", lw=1)
        ax.set_title(rf"given only $T_\mathrm{{eff}}$ = {t:.0f} K", fontsize=10)
        ax.set_xlabel(axis_label("logg"))
    axes[0].set_ylabel("probability density")
    axes[0].legend(fontsize=8, frameon=False, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model folder (default: the shipped model)")
    p.add_argument("--output", default=str(Path(__file__).with_name("pdf_heads.md")))
    p.add_argument("--split", default="test", choices=("test", "validation"),
                   help="held-out stars to compare with (validation: for choosing models)")
    args = p.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    model, stars = load_model(args.model), load_split(args.split)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)

    rows, curves = teff_only_rows(model, stars, load_split("train"))
    labels = [label for t, label in curves if t == TEFFS[0] and label != "reference"]
    plot(curves, labels, Path(args.output).with_suffix(".png"))
    command = f"python validation/pdf_heads.py --split {args.split}" + (
        f" --model {args.model}" if args.model else "")
    out = [f"# PDF heads on held-out stars\n\n`{command}` "
           f"({model}; {args.split} split, {len(stars)} stars; {time.perf_counter() - t0:.0f} s "
           "to here)\n",
           "## 1. Teff-only questions: logg\n",
           f"Mass above logg = {GIANT_LOGG} (dwarfs) vs the fraction among held-out stars within "
           f"±{WINDOW:g} K; W1 = Wasserstein distance (dex) between the PDF ({N_DRAWS} draws) "
           "and those stars' logg. Bar: |mass - fraction| <= 0.05 and W1 <= 0.15. "
           "\"flow (logg, fe_h)\": the logg of the flow's joint (logg, fe_h) answer; "
           "\"mixture, not recalibrated\": the default answer before its recalibration map "
           "(fitted on every validation star's Teff-only question, it widens the answers and "
           "moves the giant peak). "
           f"\"train split, ±{WINDOW:g} K\": no model, the train split's own stars in the same "
           "window scored the same way; what a model that learnt its training data exactly "
           "would score against these few held-out stars.\n",
           "| Teff (K) | answer | stars | PDF mass > 3.5 | their fraction > 3.5 | "
           "W1 (dex) | peaks (weight) | meets bar |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peaks = ", ".join(f"{v:.2f} ({w:.2f})" for v, w in r["peaks"]) or "–"
        out.append(f"| {r['teff']:.0f} | {r['head']} | {r['n']} | {r['mass']:.3f} | "
                   f"{r['empirical']:.3f} | {r['w1']:.3f} | {peaks} | "
                   f"{'yes' if r['ok'] else 'no'} |")
    out.append(f"\n![Teff-only logg PDFs]({Path(args.output).with_suffix('.png').name})\n")

    acc, medians, answers = [], {}, {}
    inputs = stars.only(INPUT_SETS["xp+colours"])
    for head in model.heads:  # one answer per head, for the medians and the intervals
        t1 = time.perf_counter()
        answers[head] = model.posterior(inputs, list(TARGETS), head=head)
        medians[head] = posterior_medians(answers[head])
        acc += accuracy_rows(f"{head} head ({time.perf_counter() - t1:.0f} s)", stars,
                             medians[head])
    out += [f"## 2. Point accuracy of each head's median (XP + colours, {args.split} split)\n",
            format_table(acc)]
    if "gaussian" in medians:
        out += ["Robust scatter of each PDF head's medians over the Gaussian head's (below 1: "
                "more accurate), all stars, with its 95% paired-bootstrap interval (the stars "
                "resampled, the same for both heads; 2000 resamples):\n",
                "| head | " + " | ".join(TARGETS) + " |", "|---|" + "---|" * len(TARGETS)]
        for head in [h for h in medians if h != "gaussian"]:
            ratios = [scatter_ratio(stars.column(n), medians[head][n], medians["gaussian"][n])
                      for n in TARGETS]
            out.append(f"| {head} | " + " | ".join(f"{r:.3f} ({lo:.3f}-{hi:.3f})"
                                                   for r, lo, hi in ratios) + " |")

    cal = calibration_rows(answers, stars)
    out += [f"## 3. Calibration against the (noisy) {args.split} labels\n",
            "c68 / c95: fraction of labels inside the central 68% / 95% interval (ideal "
            "0.68 / 0.95). Width: median half-width of the 68% interval. Noise: median "
            "APOGEE label error / that width; label noise adds noise^2 to the squared "
            "width of a measurement's PDF.\n",
            "| head | quantity | c68 | c95 | width | noise / width |", "|---|---|---|---|---|---|"]
    for r in cal:
        out.append(f"| {r['head']} | {r['name']} | {r['c68']:.3f} | {r['c95']:.3f} | "
                   f"{r['width']:.3g} | {r['noise']:.2f} |")
    density = {head: joint_log_density(model, stars, head) for head in model.heads}
    out += ["\nMean joint log density at the (teff [K], logg, fe_h) labels of the stars "
            "with all three (XP + colours): 1-D heads as independent products, the flow "
            "as its joint; no head convolved with the label noise here. Higher is better.\n",
            "| head | mean log density |", "|---|---|"]
    out += [f"| {head} | {value:.3f} |" for head, value in density.items()]
    out.append(f"\nTotal {time.perf_counter() - t0:.0f} s on {torch.get_num_threads()} threads.")
    Path(args.output).write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
