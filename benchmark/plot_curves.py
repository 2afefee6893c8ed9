"""Learning curves (validation robust scatter vs epoch) of the recorded training runs.

Also prints a markdown table of each run's last evaluated epoch.

    python benchmark/plot_curves.py      # writes benchmark/results/learning_curves.png
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).with_name("results")
UNITS = {"teff": "Teff scatter [K]", "logg": "logg scatter [dex]", "fe_h": "[Fe/H] scatter [dex]"}


def read(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def main():
    ablations = {}
    for row in read(RESULTS / "gpu_session" / "ablations.jsonl"):
        ablations.setdefault(row["variant"], []).append(row)
    ablations["asinh flux"] = read(RESULTS / "gpu_session2" / "asinh14_curve.jsonl")
    runs = {"gpu preset (shipped)": read(RESULTS / "gpu_session" / "learning_curve.jsonl"),
            "gpu preset, asinh flux": read(RESULTS / "gpu_session2" / "learning_curve.jsonl")}
    cpu = RESULTS / "cpu_preset" / "learning_curve.jsonl"
    if cpu.exists():
        runs["cpu preset (2 CPU cores)"] = read(cpu)

    fig, axes = plt.subplots(2, 3, figsize=(14, 8), constrained_layout=True)
    for row, (title, curves) in enumerate([
            ("Token-design ablations (base: dim 128, 3+2 layers, 40 epochs)", ablations),
            ("Full training runs", runs)]):
        for ax, name in zip(axes[row], UNITS):
            for label, curve in curves.items():
                ax.plot([c["epoch"] for c in curve], [c[name] for c in curve], label=label)
            ax.set_xlabel("epoch")
            ax.set_ylabel(UNITS[name])
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[row, 0].legend(fontsize=8)
        axes[row, 1].set_title(title)
    fig.suptitle("Validation split, full XP + colours → label: robust scatter of the "
                 "predictive median")
    out = RESULTS / "learning_curves.png"
    fig.savefig(out, dpi=90)
    print(f"{out}\n\n| run | epochs | Teff [K] | logg | [Fe/H] | training stars/s |"
          "\n|---|---|---|---|---|---|")
    for label, curve in {**ablations, **runs}.items():
        last = curve[-1]
        print(f"| {label} | {last['epoch']} | {last['teff']:.1f} | {last['logg']:.3f} | "
              f"{last['fe_h']:.3f} | {last['stars_per_second']:.0f} |")


if __name__ == "__main__":
    main()
