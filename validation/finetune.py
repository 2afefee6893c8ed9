"""Fine-tuning a new token: [alpha/M] learned from few labelled stars.

The model ``benchmark/results/holdout`` was pre-trained (``benchmark/gpu_joint.py``) with
``alpha_m`` removed from the data: that token's embedding and query are untrained. For
each N, N random train stars with an [alpha/M] label (and their other observations) are
the only data; the same number of optimizer steps then

- trains only the new token of the pre-trained model: alpha_m's embedding row, from
  which (queries tied to the embeddings) its query is made too (768 numbers);
- fine-tunes every weight of the pre-trained model;
- trains the same architecture from scratch (its normalisation fitted on the N stars),

and XGBoost is fitted on the same N stars and inputs (XP + colours). All are scored on
the test split: [alpha/M] from XP + colours, robust scatter of the median against the
APOGEE label, and (probstar) the coverage of the central 68% interval of the PDF
convolved with the label's error. The shipped model (pre-trained with [alpha/M] on every
train star) is the reference. Caveat: the pre-trained model's normalisation constants
(median and scale of each column over the train split) include alpha_m's.

    python validation/finetune.py       # -> validation/finetune.md, finetune.png (~20 min)
    cd validation && python finetune.py --sizes 3000 --steps 800 --modes "all weights" \
        "from scratch" --output finetune_long.md   # more steps (~22 min)
    cd validation && python finetune.py --sizes 100 300 1000 --steps 800 --modes \
        "all weights" "from scratch" --output finetune_curve.md   # against N (~47 min)
"""

from __future__ import annotations

import argparse
import math
import shlex
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from probstar import load_model  # noqa: E402
from probstar.calibration import label_errors  # noqa: E402
from probstar.checkpoint import load_checkpoint  # noqa: E402
from probstar.data import load_split  # noqa: E402
from probstar.evaluate import INPUT_SETS, answer_scores, robust_scatter  # noqa: E402
from probstar.train import TrainConfig, train  # noqa: E402
from probstar.vocab import index_of  # noqa: E402

from baselines import fit_xgboost, predict_xgboost  # noqa: E402

HERE = Path(__file__).parent
HOLDOUT = HERE.parent / "benchmark" / "results" / "holdout"
RUNS = HERE.parent / "runs" / "finetune"
INPUTS = INPUT_SETS["xp+colours"]


def alpha_scores(model, test) -> dict:
    """Scatter and 68% coverage of [alpha/M] from XP + colours on ``test``."""
    noise = label_errors(test.errors[:, index_of("alpha_m")[0]])
    return answer_scores(model, test, INPUTS, "alpha_m", noise)


#: How each mode trains (peak learning rates fixed beforehand, not tuned on the test).
MODES = {
    "new token only": {"init_from": str(HOLDOUT), "new_tokens": "alpha_m", "lr": 3e-3},
    "all weights": {"init_from": str(HOLDOUT), "lr": 1e-4},
    "from scratch": {"lr": 1e-3},
}


def run(base: TrainConfig, stars, val, test, steps: int, folder: Path, mode: str) -> dict:
    """Train ``stars`` for ``steps`` steps in ``mode`` (see MODES); test-split scores."""
    batch = min(128, len(stars))
    epochs = math.ceil(steps / math.ceil(len(stars) / batch))
    cfg = replace(base, epochs=epochs, batch_size=batch, warmup=0.1, drop_names="",
                  checkpoint_every=epochs, device="cpu", threads=2, seed=0, **MODES[mode])
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.time()
    train(cfg, stars, val, folder, progress=False)
    seconds = time.time() - t0
    return {"seconds": seconds, "epochs": epochs, **alpha_scores(load_model(folder), test)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[30, 100, 300, 1000, 3000])
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--output", default=str(HERE / "finetune.md"))
    args = p.parse_args()
    modes = {m: MODES[m] for m in args.modes}
    t0 = time.time()
    torch.set_num_threads(2)
    trainset, val, test = load_split("train"), load_split("validation"), load_split("test")
    labelled = np.flatnonzero(np.isfinite(trainset.column("alpha_m")))
    base = TrainConfig.from_dict(load_checkpoint(HOLDOUT)[2]["train"])
    shipped = alpha_scores(load_model(), test)
    rows = []
    for n in args.sizes:
        stars = trainset.select(np.sort(np.random.default_rng(0).choice(labelled, n, False)))
        scores = {mode: run(base, stars, val, test, args.steps,
                            RUNS / f"{mode.replace(' ', '_')}_{n}", mode) for mode in modes}
        xgb = fit_xgboost(stars, val, targets=("alpha_m",), n_estimators=300, verbose=False)
        xgb_scatter = robust_scatter(test.column("alpha_m"),
                                     predict_xgboost(xgb, test)["alpha_m"])
        rows.append((n, scores, xgb_scatter))
        print(n, scores, xgb_scatter, flush=True)

    lines = ["# Fine-tuning a new token: [alpha/M] from few labelled stars", "",
             f"`{shlex.join(['python', 'validation/finetune.py', *sys.argv[1:]])}` "
             f"(test split, {len(test)} stars, "
             f"{np.isfinite(test.column('alpha_m')).sum()} with [alpha/M]; {args.steps} "
             "optimizer steps per run, batch min(N, 128), seed 0; peak learning rates "
             + ", ".join(f"{m} {v['lr']:g}" for m, v in modes.items()) + "). "
             "Pre-trained: `benchmark/results/holdout`, which never saw alpha_m. "
             "Robust scatter (dex) of the median [alpha/M] from XP + colours against "
             "APOGEE; c68: coverage of the central 68% interval convolved with the label "
             "error (ideal 0.68). XGBoost: 300 trees on the same N stars and inputs.", "",
             "| labelled stars N | " + " | ".join(f"{m}: scatter | c68" for m in modes)
             + " | XGBoost scatter | seconds per run |",
             "|---|" + "---|---|" * len(modes) + "---|---|"]
    for n, scores, xgb in rows:
        cells = " | ".join(f"{s['scatter']:.4f} | {s['c68']:.3f}" for s in scores.values())
        seconds = " / ".join(f"{s['seconds']:.0f}" for s in scores.values())
        lines.append(f"| {n} | {cells} | {xgb:.4f} | {seconds} |")
    no_model = np.full(len(test), np.nanmedian(trainset.column("alpha_m")))
    lines += ["", f"Reference, the shipped model (alpha_m labels of all {len(labelled)} train "
              f"stars in pre-training): scatter {shipped['scatter']:.4f}, c68 "
              f"{shipped['c68']:.3f}. No model (train median for every star): scatter "
              f"{robust_scatter(test.column('alpha_m'), no_model):.4f}."]

    fig, ax = plt.subplots(figsize=(6, 4.2), constrained_layout=True)
    sizes = [r[0] for r in rows]
    for mode, marker in zip(modes, "osD"):
        ax.plot(sizes, [r[1][mode]["scatter"] for r in rows], marker + "-", label=mode)
    ax.plot(sizes, [r[2] for r in rows], "^-", label="XGBoost from scratch")
    ax.axhline(shipped["scatter"], color="k", ls="--", lw=0.8,
               label=f"shipped model ({len(labelled)} labels)")
    ax.set(xscale="log", xlabel="labelled stars N", ylabel="[alpha/M] robust scatter [dex]",
           title="[alpha/M] from XP + colours, test split")
    ax.legend(fontsize=8)
    out = Path(args.output)
    fig.savefig(out.with_suffix(".png"), dpi=110)
    lines += ["", f"![fine-tuning]({out.with_suffix('.png').name})", "",
              f"Total {time.time() - t0:.0f} s on 2 threads."]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
