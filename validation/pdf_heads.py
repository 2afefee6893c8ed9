"""Do the PDF heads answer ambiguous questions right? Teff-only logg on held-out stars.

    python validation/pdf_heads.py               # writes validation/pdf_heads.md and .png

1. Teff-only questions at 3700, 4000, 4300, 4700 and 5200 K: each head's logg PDF
   against the logg of the held-out stars (test split; ``--split validation`` when
   choosing between models) within +-50 K of that Teff. Mass above
   logg = 3.5 (dwarfs) against the empirical fraction (bar: within 0.05), and the 1-D
   Wasserstein distance between the PDF (20,000 draws) and those stars' labels (bar:
   at most 0.15 dex).
   How often a right answer would meet that bar against so few stars: n stars drawn
   from the answer itself (or from the train split's stars in the window), scored the
   same way, many times over (a parametric bootstrap).
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
MASS_BAR, W1_BAR, N_REPEATS = 0.05, 0.15, 2000
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
            mass, w1 = bar_scores(draws, ref)
            rows.append({"teff": t, "head": label, "n": len(ref), "mass": mass,
                         "empirical": empirical, "w1": w1, "peaks": peaks,
                         "ok": within_bar(mass - empirical, w1), "draws": draws})
        curves[t, "reference"] = ref
    return rows, curves


def bar_scores(pdf_draws: np.ndarray, stars_logg: np.ndarray) -> tuple[float, float]:
    """The answer's dwarf mass and its W1 distance (dex) to the stars' logg."""
    return (float(np.mean(pdf_draws > GIANT_LOGG)),
            float(wasserstein_distance(pdf_draws, stars_logg)))


def within_bar(mass_error: float, w1: float) -> bool:
    """The issue's bar: dwarf mass within MASS_BAR of the stars' fraction, W1 <= W1_BAR."""
    return abs(mass_error) <= MASS_BAR and w1 <= W1_BAR


def meets_bar(pdf_draws: np.ndarray, stars_logg: np.ndarray) -> bool:
    """Whether an answer (its draws) meets the bar against these stars."""
    mass, w1 = bar_scores(pdf_draws, stars_logg)
    return within_bar(mass - np.mean(stars_logg > GIANT_LOGG), w1)


def chance_of_meeting_bar(population: np.ndarray, n: int, seed: int = 0) -> float:
    """How often the population's own distribution meets the bar against n stars drawn
    from it: the best any answer can expect from a bin of n held-out stars."""
    rng = np.random.default_rng(seed)
    return float(np.mean([meets_bar(population, rng.choice(population, n))
                          for _ in range(N_REPEATS)]))


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


def giant_edge(logg: np.ndarray) -> float:
    """The 95th percentile of the giants' logg (below GIANT_LOGG)."""
    return float(np.quantile(logg[logg < GIANT_LOGG], 0.95))


def at_most(chances: list[float], k: int) -> float:
    """P(at most k of independent events with these chances happen)."""
    counts = np.array([1.0])  # counts[j] = P(j events so far)
    for c in chances:
        counts = np.append(counts * (1 - c), 0) + np.append(0, counts * c)
    return float(counts[:k + 1].sum())


def chance_section(rows: list[dict], default: str) -> list[str]:
    """Section 1b: how often a right answer meets the bar against bins of this size."""
    reference = f"train split, ±{WINDOW:g} K (no model)"
    by = {(r["teff"], r["head"]): r for r in rows}
    met = sum(by[t, default]["ok"] for t in TEFFS)
    chances = {label: [chance_of_meeting_bar(by[t, label]["draws"], by[t, default]["n"],
                                             seed=int(t)) for t in TEFFS]
               for label in (reference, default)}
    table = [f"| {t:.0f} | {by[t, default]['n']} | {chances[reference][i]:.2f} | "
             f"{chances[default][i]:.2f} | {'yes' if by[t, default]['ok'] else 'no'} | "
             f"{giant_edge(by[t, reference]['draws']):.2f} / "
             f"{giant_edge(by[t, default]['draws']):.2f} |" for i, t in enumerate(TEFFS)]
    summary = [f"expected {sum(c):.1f}, all five {np.prod(c):.2f}, at most {met}: "
               f"{at_most(c, met):.2f}" for c in chances.values()]
    return [
        "## 1b. How often would a right answer meet this bar?\n",
        f"A bin of n held-out stars is a sample of its population, so even the population's "
        f"own distribution misses the bar by chance. Here n stars are drawn (with "
        f"replacement) {N_REPEATS} times from a stand-in for the population and scored "
        f"against it as above: \"train split\" takes the train split's stars within "
        f"±{WINDOW:g} K as the population (no model), \"{default}\" the default answer "
        f"itself ({N_DRAWS} draws). The fraction of draws meeting the bar is the chance that "
        f"a perfect answer meets it on this split. The bins are disjoint, so the rows are "
        f"independent: the last row gives the number of rows a perfect answer meets on "
        f"average, its chance of meeting all five, and its chance of meeting at most as "
        f"many as the {default} answer did ({met}). The last column shows where an answer "
        f"can differ from the population: the 95th percentile of the giants' logg (below "
        f"{GIANT_LOGG}), where the giant branch ends; few stars lie between it and the "
        f"dwarfs.\n",
        f"| Teff (K) | stars in the bin | chance, train split as the truth | chance, "
        f"{default} as the truth | {default} meets the bar here | giants' 95th percentile, "
        f"train split / {default} |", "|---|---|---|---|---|---|",
        *table, f"| rows met | | {summary[0]} | {summary[1]} | {met} | |\n"]


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
           f"and those stars' logg. Bar: |mass - fraction| <= {MASS_BAR} and W1 <= {W1_BAR}. "
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
    out += chance_section(rows, "mixture" if "mixture" in model.heads else model.heads[0])

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
