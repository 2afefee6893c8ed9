"""Does an input error mean what it says? Teff-only logg answers against the Teff error.

    python benchmark/label_errors.py      # writes benchmark/label_errors.md and .png (~4 min)
    python benchmark/label_errors.py --real-model DIR --output OUT.md   # another real model

The question "Teff = t +- sigma, what is logg?" should barely depend on sigma while
sigma is far below the width of the features of p(logg | Teff) (hundreds of K): the
exact answers of the simulated population (1,000,000 stars, each weighted by the
Gaussian likelihood of t) show it. The networks were trained with labels shown either
without an error or with a synthetic one of at least ``label_error_min`` x the label's
scale (``probstar.train``); below that the raw network extrapolates. Rows: the mass above
logg = 3.5 (the dwarf weight) of the mixture answer before recalibration, for the
shipped real model (no exact answer: APOGEE is not a simulator) and the shipped
simulated model, each raw (``label_error_min = 0``: every error read by the network) and
as answered (errors below the trained minimum count as none, ``Model._inputs``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from probstar.data import load_split
from probstar.query import load_model, shipped_model_path
from probstar.simulate import simulate

HERE = Path(__file__).resolve().parent
SIGMAS = (2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)  # K
TEFFS = (3700.0, 4000.0, 4700.0)
GIANT_LOGG, N_DRAWS = 3.5, 20_000


def dwarf_weights(model, teff: float, raw: bool) -> list[float]:
    """Mass above GIANT_LOGG of the uncalibrated mixture answer: no error, then SIGMAS."""
    saved = model.label_error_min
    model.label_error_min = 0.0 if raw else saved
    try:
        questions = [{"teff": [teff]}] + [{"teff": [teff], "teff_err": [s]} for s in SIGMAS]
        return [float(np.mean(model.posterior(q, "logg", head="mixture", calibrated=False)
                              .sample(N_DRAWS, seed=0)[:, 0, 0] > GIANT_LOGG))
                for q in questions]
    finally:
        model.label_error_min = saved


def exact_weights(teff_pool: np.ndarray, dwarf: np.ndarray, teff: float) -> list[float]:
    """The simulated population's dwarf weight given Teff = teff +- sigma (and sigma -> 0,
    approximated by 1 K)."""
    out = []
    for s in (1.0, *SIGMAS):
        w = np.exp(-0.5 * ((teff_pool - teff) / s) ** 2)
        out.append(float(w[dwarf].sum() / w.sum()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", default=str(HERE / "label_errors.md"))
    p.add_argument("--real-model", help="real model folder (default: the shipped model)")
    args = p.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    real_label = f"real ({args.real_model or 'shipped'})"
    models = {real_label: load_model(args.real_model), "simulated (shipped)":
              load_model(shipped_model_path().parent / "simulated")}
    pool, _ = simulate(1_000_000, seed=3)
    teff_pool, dwarf = pool.column("teff"), pool.column("logg") > GIANT_LOGG

    rows = []  # (model, Teff, answer, weights)
    for label, model in models.items():
        for t in TEFFS:
            if label.startswith("simulated"):
                rows.append((label, t, "exact", exact_weights(teff_pool, dwarf, t)))
            rows.append((label, t, "raw network", dwarf_weights(model, t, raw=True)))
            rows.append((label, t, "as answered", dwarf_weights(model, t, raw=False)))

    real = models[real_label]
    floor = real.label_error_min * real.normalization.scale[0]
    apogee = load_split("test").errors[:, 0]
    apogee = apogee[np.isfinite(apogee)]
    errors_line = (f"The APOGEE Teff errors that validation/calibration.py passes with its "
                   f"Teff-only questions (test split, {apogee.size} stars): median "
                   f"{np.median(apogee):.1f} K, {np.mean(apogee < floor):.0%} below the real "
                   f"model's {floor:.0f} K.\n")
    header = "| model | Teff (K) | answer | no error | " + \
        " | ".join(f"+- {s:g} K" for s in SIGMAS) + " |"
    mins = ", ".join(f"{label}: {m.label_error_min:g} x {m.normalization.scale[0]:.0f} K = "
                     f"{m.label_error_min * m.normalization.scale[0]:.0f} K"
                     for label, m in models.items())
    command = "python benchmark/label_errors.py" + (
        f" --real-model {args.real_model} --output {args.output}" if args.real_model else "")
    lines = ["# Teff-only answers against the Teff error\n",
             f"`{command}` ({time.perf_counter() - t0:.0f} s on 2 "
             "threads). Dwarf weight (mass above logg 3.5) of the mixture answer before "
             f"recalibration, {N_DRAWS} draws. Smallest trained Teff error: {mins}. "
             "Exact: the simulated population's own answer (the no-error column: +- 1 K).\n",
             errors_line,
             header, "|---" * (4 + len(SIGMAS)) + "|"]
    lines += [f"| {label} | {t:.0f} | {answer} | " + " | ".join(f"{w:.3f}" for w in ws) + " |"
              for label, t, answer, ws in rows]
    figure(rows, Path(args.output).with_suffix(".png"))
    lines.append(f"\n![dwarf weight against the Teff error]({Path(args.output).stem}.png)")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def figure(rows, path: Path) -> None:
    labels = list(dict.fromkeys(r[0] for r in rows))
    fig, axes = plt.subplots(1, len(labels), figsize=(5.5 * len(labels), 4), sharey=True)
    styles = {"exact": ("k", "--"), "raw network": ("tab:red", ":"),
              "as answered": ("tab:blue", "-")}
    x = np.array((0.7, *SIGMAS))  # "no error" drawn at the left edge
    for ax, label in zip(axes, labels):
        for model, t, answer, ws in rows:
            if model != label:
                continue
            color, ls = styles[answer]
            ax.plot(x, ws, ls=ls, color=color, marker="o", ms=3,
                    label=answer if t == TEFFS[0] else None)
            ax.annotate(f"{t:.0f} K", (x[-1], ws[-1]), xytext=(4, 0),
                        textcoords="offset points", fontsize=8, va="center")
        ax.set_xscale("log")
        ax.set_xticks(x, ["none", *(f"{s:g}" for s in SIGMAS)])
        ax.set_xlabel(r"input error on $T_\mathrm{eff}$ [K]")
        ax.set_title(f"{label}: p(logg > 3.5 | Teff)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("dwarf weight of the answer")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
