"""What does each input add to a giant / dwarf question? The models against exact answers.

    python benchmark/input_information.py   # writes benchmark/input_information.md (~10 min)
    python benchmark/input_information.py --sim-model A B --output F  # other simulated models
    python benchmark/input_information.py --real-model A B --real-only --output F  # real ones

Asked for logg from Teff alone, then from Teff with colours, magnitudes or parallax, a
model should get sharper with every input that carries information. Scored per input
set: the Brier score of the answer's dwarf probability P(logg > 3.5) against the star's
class (lower = better; "base rate" is the score of answering every star with the
population's dwarf fraction) and the CRPS of logg (dex). For the simulated population
the exact answer of each star is computed too (1,000,000 simulator draws weighted by the
likelihood of that star's inputs, ``probstar.simulate.evidence_weights``): the gap
between the model and the exact answer is information the model leaves unused (Teff
observed +- 30 K). That the information can be learnt from simulated stars, side by
side: "XGBoost" rows, one classifier per input set trained on 500,000 other simulated
stars (Teff observed +- 30 K too) for that set alone, score its dwarf probability (Brier
only); on real stars the same, trained on the train split. Real stars: the shipped model
on test-split stars (APOGEE Teff with its error, logg as the class). Only stars with
every input of every set are scored. Recalibrated mixture answers, 1,000 draws. The
model is asked as a table with those columns is (colours derived from magnitudes); the
exact answers use the magnitudes alone (derived colours add no information).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from xgboost import XGBClassifier

from probstar.calibration import crps
from probstar.data import load_split
from probstar.query import load_model, shipped_model_path
from probstar.simulate import evidence_weights, simulate
from probstar.vocab import COLOURS, index_of

HERE = Path(__file__).resolve().parent
GIANT_LOGG, N_DRAWS, TEFF_ERR = 3.5, 1000, 30.0
MAGNITUDES = ["g", "bp", "rp", "j", "h", "k"]
INPUT_SETS = {"Teff": ["teff"], "Teff + bp_rp, j_k": ["teff", "bp_rp", "j_k"],
              "Teff + 6 magnitudes": ["teff", *MAGNITUDES],
              "6 magnitudes": MAGNITUDES}
SIM_ONLY = {"Teff + bp_rp, j_k + parallax": ["teff", "bp_rp", "j_k", "parallax"],
            "6 magnitudes + parallax": [*MAGNITUDES, "parallax"]}


def scores(draws: np.ndarray, logg: np.ndarray) -> tuple[float, float]:
    """Brier score of P(logg > GIANT_LOGG) and mean CRPS of logg, from draws (n, stars)."""
    p_dwarf = (draws > GIANT_LOGG).mean(0)
    return (float(np.mean((p_dwarf - (logg > GIANT_LOGG)) ** 2)),
            float(np.nanmean(crps(draws, logg))))


def complete(stars, input_sets: dict[str, list[str]]):
    """The stars that have every input of every set, and logg."""
    used = sorted({n for names in input_sets.values() for n in names} | {"logg"})
    return stars.select(np.isfinite(stars.values[:, index_of(used)]).all(1))


def base_rate(logg: np.ndarray) -> float:
    """Brier score of answering every star with the sample's dwarf fraction."""
    dwarf = logg > GIANT_LOGG
    return float(np.mean((dwarf.mean() - dwarf) ** 2))


def model_scores(model, stars, names: list[str], logg: np.ndarray,
                 derive: bool = True) -> tuple[float, float]:
    """Scores of the model's answers, asked as a table with these columns is (colours
    derived from the magnitudes, as ``probstar.data.tables`` does) or, ``derive=False``,
    as an ``Observations`` holding only these names."""
    question = stars.only(names)
    question = question.derive_colours() if derive else question
    draws = model.posterior(question, "logg").sample(N_DRAWS, seed=0)[:, :, 0]
    return scores(draws, logg)


def exact_scores(pool, pool_truths, stars, names: list[str], logg: np.ndarray,
                 rng: np.random.Generator) -> tuple[float, float, float]:
    """Scores of the exact answers (pool stars drawn by their evidence weights) and the
    median effective number of pool stars behind one answer (small: a noisy answer)."""
    pool_logg = pool.column("logg")
    draws, n_eff = np.empty((N_DRAWS, len(stars))), np.empty(len(stars))
    for i in tqdm(range(len(stars)), desc=" + ".join(names), leave=False):
        evidence = {n: (float(stars.column(n)[i]), float(stars.errors[i, index_of(n)[0]]))
                    for n in names}
        w = evidence_weights(pool, pool_truths, evidence)
        n_eff[i] = 1.0 / np.sum(w ** 2)
        draws[:, i] = pool_logg[rng.choice(len(w), N_DRAWS, p=w)]
    return (*scores(draws, logg), float(np.median(n_eff)))


def xgboost_brier(train, stars, names: list[str], logg: np.ndarray) -> float:
    """Brier score of an XGBoost classifier of logg > GIANT_LOGG trained on ``train``
    for this input set alone, given what the model is given (the names and the colours
    derived from them; missing inputs as missing)."""
    columns = index_of(names + [c for c, pair in COLOURS.items() if set(pair) <= set(names)])

    def inputs(obs):
        return obs.only(names).derive_colours().values[:, columns]

    train = train.select(np.isfinite(train.column("logg")))
    clf = XGBClassifier(n_estimators=400, max_depth=6, learning_rate=0.1, n_jobs=2,
                        random_state=0).fit(inputs(train), train.column("logg") > GIANT_LOGG)
    p_dwarf = clf.predict_proba(inputs(stars))[:, 1]
    return float(np.mean((p_dwarf - (logg > GIANT_LOGG)) ** 2))


def with_teff_error(stars, rng: np.random.Generator):
    """The stars with Teff observed +- TEFF_ERR (noise added, error set)."""
    (i,) = index_of("teff")
    stars.values[:, i] += rng.normal(0.0, TEFF_ERR, len(stars))
    stars.errors[:, i] = TEFF_ERR
    return stars


def real_rows(models: dict) -> list[tuple]:
    """Rows for the real test split: each model (folder -> Model), then XGBoost."""
    test = complete(load_split("test"), INPUT_SETS)
    logg, data = test.column("logg"), f"real test split ({len(test)} stars)"
    rows = [(data, "-", "base rate", base_rate(logg), np.nan, np.nan)]
    for folder, model in models.items():
        answer = f"model {folder}".strip()
        for label, names in INPUT_SETS.items():
            rows.append((data, label, answer, *model_scores(model, test, names, logg),
                         np.nan))
        rows.append((data, "Teff + 6 magnitudes", f"{answer}, colours not derived",
                     *model_scores(model, test, INPUT_SETS["Teff + 6 magnitudes"], logg,
                                   derive=False), np.nan))
    train_split = load_split("train")
    for label, names in INPUT_SETS.items():
        rows.append((data, label, "XGBoost (this input set only)",
                     xgboost_brier(train_split, test, names, logg), np.nan, np.nan))
    return rows


def simulated_rows(models: dict, n_stars: int) -> list[tuple]:
    """Rows for simulated stars: each model, the exact answers, then XGBoost."""
    stars = complete(simulate(2 * n_stars, seed=7)[0], {**INPUT_SETS, **SIM_ONLY})
    stars = stars.select(slice(0, n_stars))
    rng = np.random.default_rng(7)
    stars = with_teff_error(stars, rng)
    logg = stars.column("logg")
    pool, pool_truths = simulate(1_000_000, seed=3)
    xgb_train = with_teff_error(simulate(500_000, seed=11)[0], np.random.default_rng(11))
    data = f"simulated ({len(stars)} stars)"
    rows = [(data, "-", "base rate", base_rate(logg), np.nan, np.nan)]
    for label, names in {**INPUT_SETS, **SIM_ONLY}.items():
        for folder, model in models.items():
            if set(names) <= set(model.input_names):  # (trained without some: no row)
                rows.append((data, label, f"model {folder}".strip(),
                             *model_scores(model, stars, names, logg), np.nan))
        rows.append((data, label, "exact", *exact_scores(pool, pool_truths, stars, names,
                                                          logg, rng)))
        rows.append((data, label, "XGBoost (this input set only)",
                     xgboost_brier(xgb_train, stars, names, logg), np.nan, np.nan))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stars", type=int, default=400, help="simulated stars scored")
    p.add_argument("--real-model", nargs="+", default=[], metavar="FOLDER",
                   help="real-data model folder(s) to score side by side (default: the "
                   "shipped one)")
    p.add_argument("--sim-model", nargs="+", default=[], metavar="FOLDER",
                   help="simulated-population model folder(s) to score side by side "
                   "(default: the shipped one)")
    p.add_argument("--real-only", action="store_true", help="skip the simulated stars")
    p.add_argument("--output", default=str(HERE / "input_information.md"))
    args = p.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    rows = real_rows({f: load_model(f) for f in args.real_model} or {"": load_model()})
    if not args.real_only:
        rows += simulated_rows({f: load_model(f) for f in args.sim_model} or
                               {"": load_model(shipped_model_path().parent / "simulated")},
                               args.stars)

    command = "python benchmark/input_information.py"
    for flag, folders in (("--real-model", args.real_model), ("--sim-model", args.sim_model)):
        command += f" {flag} {' '.join(folders)}" if folders else ""
    command += " --real-only" if args.real_only else ""
    if Path(args.output).resolve() != HERE / "input_information.md":
        command += f" --output {args.output}"
    lines = ["# What each input adds: logg from Teff, colours, magnitudes, parallax\n",
             f"`{command}` ({time.perf_counter() - t0:.0f} s on 2 threads; real: "
             f"{', '.join(args.real_model) or 'the shipped model'}; simulated: "
             f"{'-' if args.real_only else ', '.join(args.sim_model) or 'the shipped model'}"
             f"). Brier score of P(logg > {GIANT_LOGG}) and mean CRPS of logg (dex), "
             "both lower = better; recalibrated mixture answers. N_eff: median effective "
             "number of the 10^6 simulated stars behind one exact answer (below ~30 the "
             "exact answer is itself noisy).\n",
             "| data | inputs | answer | Brier (dwarf?) | CRPS logg | N_eff |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {d} | {s} | {a} | {b:.4f} | " + " | ".join(
        "-" if np.isnan(x) else f"{x:{f}}" for x, f in ((c, ".3f"), (n, ".0f"))) + " |"
        for d, s, a, b, c, n in rows]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
