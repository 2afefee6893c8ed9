"""Calibration against exact answers: a model trained on a simulated population.

    python validation/simulation.py           # writes validation/simulation.md and *.png
    python validation/simulation.py --train   # first retrains the shipped simulated model
    python validation/simulation.py --train --from-stage 3 S2  # only its last stage, from
                                              # the stage-2 model in folder S2
    python validation/simulation.py --install RUN/best  # first installs a trained one
                                              # (benchmark/gpu_simulated.py) and recalibrates

Real labels are noisy and their population unknown; ``probstar.simulate`` draws stars
from a known process (PARSEC isochrones, IMF, priors, distances, dust, noisy photometry
and parallax), so exact answers exist. The same network and training recipe as the
real model (scalar tokens only: no simulated spectra) is trained on simulated stars
(``probstar/models/simulated``, the ``sim`` preset, recalibrated on 5,000 simulated
validation stars like the real model on its validation split) and checked three ways:

1. Simulation-based calibration (Talts et al. 2018): for 1,000 fresh stars drawn from
   the same process, the rank of each true value among 999 posterior draws (from
   photometry + parallax) is uniform when the posteriors are calibrated; a
   Kolmogorov-Smirnov test per parameter (bar: p > 0.01).
2. Exact conditionals by brute force: for an observed Teff = t +- 30 K, p(logg | Teff)
   is the logg of 10^6 simulated stars weighted by the Gaussian likelihood of t (exact
   for the simulator's noise model, up to Monte Carlo noise); the same with the colours
   (bp_rp, j_k with their errors) of a simulated star of that Teff, where a colour's
   error, which depends on brightness, is matched too (a 10% kernel). The model's
   answer is scored by the 1-D Wasserstein distance (bar: <= 0.1 dex) and the weights
   of its giant / dwarf modes (mass above logg 3.5; bar: within 0.03).
3. Coverage per *true* giant / dwarf group of Teff-only answers, for the exact
   posterior itself and for the model: what a perfectly calibrated answer to an
   ambiguous question does when the stars are selected on their true logg.
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.stats import wasserstein_distance

from probstar import recalibration
from probstar.calibration import CHECKED, coverage_check, pit, rank_uniformity, sbc_ranks
from probstar.checkpoint import update_config
from probstar.data.library import data_hash
from probstar.data.observations import Observations
from probstar.plots import axis_label
from probstar.query import load_model
from probstar.simulate import evidence_weights, simulate
from probstar.train import PRESETS, train
from probstar.vocab import index_of

from pdf_heads import giant_edge  # (validation/ is the script's folder)

HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parent / "probstar" / "models" / "simulated"
TARGETS = ("teff", "logg", "fe_h")
OBSERVED = ("g", "bp", "rp", "j", "h", "k", "bp_rp", "j_h", "j_k", "parallax")
TEFFS = (3700.0, 4000.0, 4300.0, 4700.0, 5200.0)
TEFF_ERR, GIANT_LOGG = 30.0, 3.5
N_TRAIN, N_SBC, N_RANK_DRAWS, N_EXACT = 500_000, 1000, 999, 1_000_000
#: The training stages of the shipped simulated model, each on a fresh population: peak
#: learning rate, epochs, smallest synthetic label error (x the label's scale). Stage 3
#: trains the limit of small input errors, which the first two never saw
#: (benchmark/label_errors.md).
STAGES = ((1e-3, 8, 0.02), (3e-4, 8, 0.02), (3e-4, 3, 0.002))
VALIDATION_SEED = 1  # 5,000 simulated validation stars (benchmark/gpu_simulated.py's too)


def validation_stars() -> Observations:
    """The simulated validation stars: best-checkpoint choice and recalibration."""
    return simulate(5000, seed=VALIDATION_SEED)[0]


def train_model(out: Path, seed: int = 0, first_stage: int = 1, start: str = "",
                settings: list[str] | tuple[str, ...] = ()) -> None:
    """Train the simulated-population model into ``out`` on CPU cores: the ``sim``
    preset in :data:`STAGES`, each from the last one's best weights on a fresh population
    (N_TRAIN stars), then the recalibration. ``first_stage`` > 1 starts there, from the
    weights in ``start`` (those of the stage before); ``settings`` (``probstar train
    --set`` syntax) change every stage's recipe."""
    if not 1 <= first_stage <= len(STAGES) or (first_stage > 1) != bool(start):
        raise ValueError("a first stage after 1 needs the previous stage's weights, and "
                         f"stages run 1..{len(STAGES)}; got {first_stage}, {start!r}")
    val_obs = validation_stars()
    for stage, (lr, epochs, error_min) in enumerate(STAGES, 1):
        if stage < first_stage:
            continue
        train_obs, _ = simulate(N_TRAIN, seed=seed + 10 * (stage - 1))
        run = out.with_name(f"{out.name}_run{stage}")
        cfg = replace(PRESETS["sim"], lr=lr, epochs=epochs, label_error_min=error_min,
                      init_from=start, seed=seed + stage - 1).with_settings(settings)
        train(cfg, train_obs, val_obs, run, data_hash=data_hash(train_obs))
        start = str(run / "best")
    install(Path(start), out, val_obs)


def install(trained: Path, out: Path, validation: Observations) -> None:
    """Copy a trained checkpoint (e.g. ``best/`` of benchmark/gpu_simulated.py) into
    ``out`` and fit its recalibration there."""
    out.mkdir(parents=True, exist_ok=True)
    for f in ("model.safetensors", "config.json"):
        shutil.copy(trained / f, out / f)
    recalibrate(out, validation)


def recalibrate(folder: Path, validation: Observations, seed: int = 1) -> None:
    """Fit the recalibration on simulated validation stars (never the SBC or exact-answer
    stars), their Teff observed +- TEFF_ERR K like the questions below, and store it in
    the model folder."""
    validation = observed_teff(validation, np.random.default_rng(seed))
    update_config(folder, recalibration=recalibration.fit(load_model(folder),
                                                          validation).to_dict())


def observed_teff(obs: Observations, rng) -> Observations:
    """The same stars with Teff observed with a Gaussian error of TEFF_ERR K."""
    (i,) = index_of("teff")
    values, errors = obs.values.copy(), obs.errors.copy()
    values[:, i] += rng.normal(0.0, TEFF_ERR, len(obs))
    errors[:, i] = TEFF_ERR
    return Observations(values, errors, obs.ids, dict(obs.extra))


def sbc(model, n: int, seed: int, head: str, calibrated: bool = True
        ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Ranks of the true labels of ``n`` fresh simulated stars among draws of ``head``'s
    answer (the flow's: joint draws) and their KS p-values."""
    obs, _ = simulate(n, seed=seed)
    post = model.posterior(obs.only(OBSERVED), list(TARGETS), head=head,
                           calibrated=calibrated)
    draws = post.sample(N_RANK_DRAWS, seed=seed)
    ranks = {name: sbc_ranks(draws[:, :, j], obs.column(name))
             for j, name in enumerate(post.names)}
    return ranks, {name: rank_uniformity(r, N_RANK_DRAWS) for name, r in ranks.items()}


def compare(model, pool, truths, evidence: dict[str, tuple[float, float]], rng) -> dict:
    """Model answer vs exact conditional for one piece of evidence."""
    w = evidence_weights(pool, truths, evidence)
    logg = pool.column("logg")
    data = {k: [v] for k, (v, _) in evidence.items()}
    data.update({f"{k}_err": [e] for k, (_, e) in evidence.items()})
    exact_draws = rng.choice(logg, size=20_000, p=w)
    out = {"exact_dwarfs": float(np.sum(w[logg > GIANT_LOGG])),
           "ess": float(1 / np.sum(w ** 2)), "exact": exact_draws}
    for key, calibrated in (("model", True), ("raw", False)):
        post = model.posterior(data, ["logg"], calibrated=calibrated)
        draws = post.sample(20_000, seed=0)[:, 0, 0]
        out.update({f"{key}_w1": float(wasserstein_distance(draws, exact_draws)),
                    f"{key}_dwarfs": float(np.mean(draws > GIANT_LOGG)), key: draws})
    return out


def coverage_by_truth(model, pool, n: int, seed: int) -> dict[str, np.ndarray]:
    """PIT of the true logg of ``n`` fresh stars given only their Teff (observed +-
    TEFF_ERR K), under the exact posterior (the pool's stars weighted by the Teff
    likelihood) and under the model's answer."""
    stars, _ = simulate(n, seed=seed)
    truth = stars.column("logg")
    teff = observed_teff(stars, np.random.default_rng(seed)).column("teff")
    order = np.argsort(pool.column("teff"))
    pool_teff, pool_logg = pool.column("teff")[order], pool.column("logg")[order]
    exact = np.empty(n)
    for i, t in enumerate(teff):  # the likelihood is negligible beyond 8 sigma
        lo, hi = np.searchsorted(pool_teff, [t - 8 * TEFF_ERR, t + 8 * TEFF_ERR])
        w = np.exp(-0.5 * ((pool_teff[lo:hi] - t) / TEFF_ERR) ** 2)
        exact[i] = w[pool_logg[lo:hi] < truth[i]].sum() / w.sum()
    out = {"truth": truth, "exact": exact}
    question = {"teff": teff, "teff_err": np.full(n, TEFF_ERR)}  # as validation questions
    for key, calibrated in (("model", True), ("model, not recalibrated", False)):
        post = model.posterior(question, "logg", calibrated=calibrated)
        out[key] = pit(post.sample(N_RANK_DRAWS, seed=seed)[:, :, 0], truth)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    first = p.add_mutually_exclusive_group()
    first.add_argument("--train", action="store_true",
                       help="first retrain the simulated model on the CPU (sim preset)")
    first.add_argument("--install", metavar="CHECKPOINT", help="first copy a trained "
                       "checkpoint into --model and recalibrate it there")
    p.add_argument("--from-stage", nargs=2, metavar=("STAGE", "WEIGHTS"), help="with "
                   "--train: start at that stage from the previous stage's model folder")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="with "
                   "--train: settings of every stage (probstar train --set syntax)")
    p.add_argument("--model", default=str(SHIPPED))
    p.add_argument("--output", default=str(HERE / "simulation.md"))
    args = p.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    if (args.from_stage or args.set) and not args.train:
        p.error("--from-stage and --set need --train")
    if args.train:
        first, start = args.from_stage or (1, "")
        train_model(Path(args.model), first_stage=int(first), start=start,
                    settings=args.set)
    if args.install:
        install(Path(args.install), Path(args.model), validation_stars())
    model = load_model(args.model)
    out_path = Path(args.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    answers = {"mixture": ("mixture", True), "mixture, not recalibrated": ("mixture", False),
               "flow": ("flow", True)}
    sbc_heads = {label: sbc(model, N_SBC, 2, *answer) for label, answer in answers.items()
                 if answer[0] in model.heads}
    pool, truths = simulate(N_EXACT, seed=3)
    rng = np.random.default_rng(4)
    rows = []
    for t in TEFFS:
        rows.append(("Teff only", t, compare(model, pool, truths, {"teff": (t, TEFF_ERR)},
                                             rng)))
        near = np.flatnonzero(np.abs(pool.column("teff") - t) < TEFF_ERR)
        star = pool.select(near[:1])  # the colours of a simulated star of that Teff
        evidence = {"teff": (t, TEFF_ERR)}
        evidence.update({c: (float(star.column(c)[0]), float(star.errors[0, index_of(c)[0]]))
                         for c in ("bp_rp", "j_k")})
        rows.append((f"Teff + bp_rp, j_k of a simulated star (logg {star.column('logg')[0]:.2f})",
                     t, compare(model, pool, truths, evidence, rng)))
    by_truth = coverage_by_truth(model, pool, N_SBC * 2, seed=5)
    figure({head: ranks for head, (ranks, _) in sbc_heads.items()}, rows,
           out_path.with_suffix(".png"))

    command = "python validation/simulation.py" + (" --train" if args.train else "") + \
        (" --from-stage " + " ".join(args.from_stage) if args.from_stage else "") + \
        (" --set " + " ".join(args.set) if args.set else "") + \
        (f" --install {args.install}" if args.install else "") + \
        (f" --model {args.model}" if args.model != str(SHIPPED) else "")
    out = ["# Calibration against exact answers (simulated population)\n",
           f"`{command}` ({model}; {time.perf_counter() - t0:.0f} s on 2 threads)\n",
           f"## 1. Simulation-based calibration ({N_SBC} fresh stars, photometry + parallax, "
           f"{N_RANK_DRAWS} draws each)\n",
           "The mixture head's answers are the recalibrated 1-D PDFs; the flow's are joint "
           "draws of (teff, logg, fe_h), ranked per parameter.\n",
           "| head | quantity | KS p-value of the ranks | bar p > 0.01 |", "|---|---|---|---|"]
    out += [f"| {head} | {n} | {pv:.3g} | {'yes' if pv > 0.01 else '**no**'} |"
            for head, (_, pvalues) in sbc_heads.items() for n, pv in pvalues.items()]
    out += [f"\n## 2. p(logg | evidence) against the exact conditional ({N_EXACT:,} "
            f"simulated stars, Teff observed +- {TEFF_ERR:g} K)\n",
            "The model's answer is the recalibrated mixture (the default); the same answer "
            "before recalibration is shown next to it. The last column is the 95th "
            f"percentile of the giants' logg (below {GIANT_LOGG}), where the giant branch "
            "ends: an answer smoothed over Teff puts mass between it and the dwarfs.\n",
            "| evidence | Teff (K) | exact dwarf weight | model dwarf weight | W1 (dex) | "
            "meets bar | not recalibrated: dwarf weight | W1 | meets bar | effective stars | "
            "giants' 95th percentile, exact / model |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, t, r in rows:
        cells = []
        for key in ("model", "raw"):
            ok = r[f"{key}_w1"] <= 0.1 and abs(r[f"{key}_dwarfs"] - r["exact_dwarfs"]) <= 0.03
            cells.append(f"{r[f'{key}_dwarfs']:.3f} | {r[f'{key}_w1']:.3f} | "
                         f"{'yes' if ok else '**no**'}")
        edges = " / ".join(f"{giant_edge(r[key]):.2f}" if np.any(r[key] < GIANT_LOGG) else "–"
                           for key in ("exact", "model"))
        out.append(f"| {label} | {t:.0f} | {r['exact_dwarfs']:.3f} | {cells[0]} | {cells[1]} "
                   f"| {r['ess']:.0f} | {edges} |")
    out += ["\n## 3. Coverage of Teff-only answers per true group: the exact posterior too\n",
            f"{len(by_truth['truth'])} fresh simulated stars, each asked p(logg | Teff) with "
            f"its Teff observed +- {TEFF_ERR:g} K. The exact posterior is calibrated by "
            "construction, so its coverage over all stars is nominal; selected on the *true* "
            "logg (giants / dwarfs), it is not: where the answer has a giant and a dwarf peak, "
            "the minority's truths fall outside the central intervals. The coverage bar per "
            "true group therefore cannot be met by any calibrated answer to an ambiguous "
            "question, including the real-data Teff-only and photometry-only rows of "
            "validation/calibration.md.\n",
            "| posterior | group | stars | " + " | ".join(f"{lv:.0%}" for lv in CHECKED) +
            " | within bar |", "|---|---|---|" + "---|" * len(CHECKED) + "---|"]
    groups = {"all": np.ones(len(by_truth["truth"]), bool),
              f"giants (logg < {GIANT_LOGG})": by_truth["truth"] < GIANT_LOGG,
              f"dwarfs (logg >= {GIANT_LOGG})": by_truth["truth"] >= GIANT_LOGG}
    for source in ("exact", "model", "model, not recalibrated"):
        for group, mask in groups.items():
            n, cov, ok = coverage_check(by_truth[source][mask])
            out.append(f"| {source} | {group} | {n} | " + " | ".join(f"{c:.3f}" for c in cov)
                       + f" | {'yes' if ok else '**no**'} |")
    out.append(f"\n![SBC ranks and exact conditionals]({out_path.with_suffix('.png').name})")
    out_path.write_text("\n".join(out) + "\n")
    print("\n".join(out))


def figure(ranks_by_head: dict[str, dict], rows: list, path: Path) -> None:
    names = list(next(iter(ranks_by_head.values())))
    fig, axes = plt.subplots(2, max(len(names), len(TEFFS)), figsize=(3.2 * len(TEFFS), 6))
    bins = np.linspace(0, N_RANK_DRAWS + 1, 21)
    for ax, name in zip(axes[0], names):
        for (head, ranks), colour in zip(ranks_by_head.items(),
                                         ("#1f5fa8", "0.5", "#d95f02")):
            ax.hist(ranks[name], bins, histtype="step", lw=1.5, color=colour, label=head)
        expected = N_SBC / 20
        ax.axhspan(expected - 2.58 * np.sqrt(expected), expected + 2.58 * np.sqrt(expected),
                   color="0.85", zorder=0, label="99% band")
        ax.set_title(f"SBC ranks: {axis_label(name)}", fontsize=9)
        ax.set_xlabel(f"rank among {N_RANK_DRAWS} draws")
    axes[0, 0].legend(fontsize=8, frameon=False)
    for ax in axes[0, len(names):]:
        ax.axis("off")
    for ax, (label, t, r) in zip(axes[1], [row for row in rows if row[0] == "Teff only"]):
        bins = np.linspace(-0.5, 5.5, 61)
        ax.hist(r["exact"], bins, density=True, color="0.75", label="exact")
        ax.hist(r["model"], bins, density=True, histtype="step", color="#1f5fa8", lw=1.5,
                label="model")
        ax.hist(r["raw"], bins, density=True, histtype="step", color="0.4", lw=1, ls="--",
                label="not recalibrated")
        ax.set_title(rf"$T_\mathrm{{eff}}$ = {t:.0f} $\pm$ {TEFF_ERR:g} K", fontsize=9)
        ax.set_xlabel(axis_label("logg"))
    axes[1, 0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
