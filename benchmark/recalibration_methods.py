"""Which recalibration? Map families fitted on the validation split, scored on the test split.

    python benchmark/recalibration_methods.py   # writes benchmark/results/recalibration_methods.md

The shipped model's uncalibrated mixture answers (4 input sets -> teff, logg, fe_h) are
turned into PIT values of the labels (label error convolved in, exactly), on both
splits. Each candidate map is fitted on the validation PIT values of one kind of context
(spectrum, photometry, parameters: ``probstar.recalibration.KINDS``), optionally per
predicted class (the answer's logg median below / above 3.5), applied to the test PIT
values, and scored with the calibration report's bar (``coverage_check``: 33 rows of
input set x quantity x all / true giants / true dwarfs). The choice is made on the
validation split alone, by two-fold cross-validation (fit on the even-numbered stars,
score on the odd ones, and the reverse: 66 rows); the test column only reports.
Candidates:

- ``width``: one scale on every mixture component's width (grid 0.5-2.5, chosen by the
  mean coverage error at 5-99%); needs the mixture, so its PIT values are recomputed;
- ``isotonic``: the empirical CDF of the PIT values (Kuleshov et al. 2018), a step map;
- ``probit``: a Gaussian in probit space, two parameters;
- ``kernel h``: the shipped family, a kernel estimate of the probit PIT values with
  bandwidth h (``probstar.recalibration``). A map whose density has several peaks
  puts spurious peaks into every answer it recalibrates (a step map, ``isotonic``, is
  worse: zero density between steps), so the choice is the smooth map (1 peak) with the
  most validation rows.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from scipy import special

from probstar.calibration import LEVELS, coverage, coverage_check
from probstar.data import load_split
from probstar.evaluate import INPUT_SETS
from probstar.query import load_model
from probstar.recalibration import kernel_centers, mixture_arrays, mixture_pit, \
    normalised_label

OUT = Path(__file__).resolve().parent / "results" / "recalibration_methods.md"
INPUTS = {"xp+colours": ("spectrum", INPUT_SETS["xp+colours"]),
          "xp": ("spectrum", INPUT_SETS["xp"]),
          "photometry": ("photometry", INPUT_SETS["photometry"]),
          "teff only": ("parameters", ("teff",))}
TARGETS, GIANT_LOGG = ("teff", "logg", "fe_h"), 3.5
SCALES = np.round(np.arange(0.5, 2.501, 0.02), 2)
PEAKS: list[int] = []  # local maxima of each fitted kernel map's density (1 = smooth)


def answers(model, stars) -> dict[str, dict]:
    """Per input set: mixture parameters of each target, labels and noise (normalised)."""
    out = {}
    for label, (_, inputs) in INPUTS.items():
        targets = [t for t in TARGETS if t not in inputs]
        post = model.posterior(stars.only(inputs), targets, head="mixture", calibrated=False)
        d = {"mix": list(mixture_arrays(post)), "names": post.names,
             "logg_median": post.median()[:, post.names.index("logg")],
             "true_logg": stars.column("logg")}
        d.update({name: normalised_label(model, stars, name) for name in targets})
        out[label] = d
    return out


def half(answers_by_set: dict, parity: int) -> dict:
    """The same answers for every other star (``parity`` 0 or 1)."""
    def cut(x):
        if isinstance(x, np.ndarray):
            return x[parity::2]
        if isinstance(x, (list, tuple)) and x and isinstance(x[0], np.ndarray):
            return type(x)(cut(a) for a in x)
        return x
    return {k: {key: cut(v) for key, v in d.items()} for k, d in answers_by_set.items()}


def pit_of(d: dict, name: str, width: float = 1.0) -> np.ndarray:
    w, mu, sd = (a[:, d["names"].index(name)] for a in d["mix"])
    truth, noise = d[name]
    return mixture_pit(w, mu, width * sd, truth, noise)


def probit(u: np.ndarray) -> np.ndarray:
    return special.ndtri(np.clip(np.asarray(u, np.float64), 1e-9, 1 - 1e-9))


def fit_map(method: str, fit_pits: list, fit_data: list):
    """A function PIT -> recalibrated PIT (``width``: (data, name, mask) -> PIT)."""
    u = np.concatenate(fit_pits)
    u = u[np.isfinite(u)]
    if method == "isotonic":
        s = np.sort(u)
        return lambda p: np.searchsorted(s, p, side="right") / s.size
    if method == "probit":
        m, sd = probit(u).mean(), probit(u).std()
        return lambda p: special.ndtr((probit(p) - m) / sd)
    if method.startswith("kernel"):
        h = float(method.split()[1])
        c = kernel_centers(u, h)
        z = np.linspace(-5, 5, 2001)
        density = np.exp(-0.5 * ((z[:, None] - c) / h) ** 2).mean(1)  # of the probit PITs
        PEAKS.append(int(((density[1:-1] > density[:-2]) & (density[1:-1] > density[2:])).sum()))
        return lambda p: special.ndtr((probit(p)[:, None] - c) / h).mean(1)
    errors = [np.mean(np.abs(coverage(np.concatenate(
        [pit_of(d, name, s)[mask] for d, name, mask in fit_data])) - LEVELS)) for s in SCALES]
    best = SCALES[int(np.argmin(errors))]
    return lambda d, name, mask: pit_of(d, name, best)[mask]


def classes(d: dict, split_by_class: bool) -> dict[str, np.ndarray]:
    every = np.ones(d["logg_median"].shape, bool)
    if not split_by_class:
        return {"all": every}
    return {"giant": d["logg_median"] < GIANT_LOGG, "dwarf": d["logg_median"] >= GIANT_LOGG}


def score(method: str, split_by_class: bool, val: dict, test: dict) -> tuple[int, list[str]]:
    """Rows of the bar passed on the test split, and the rows that fail."""
    passed, failed = 0, []
    for label, d in test.items():
        kind = INPUTS[label][0]
        same_kind = [v for k, v in val.items() if INPUTS[k][0] == kind]
        for name in d["names"]:
            if name not in TARGETS:
                continue
            u = np.full(d["logg_median"].shape, np.nan)
            for cls, mask in classes(d, split_by_class).items():
                fit_data = [(v, name, classes(v, split_by_class)[cls]) for v in same_kind]
                if method == "none":
                    u[mask] = pit_of(d, name)[mask]
                    continue
                f = fit_map(method, [pit_of(v, name)[m] for v, _, m in fit_data], fit_data)
                u[mask] = f(d, name, mask) if method == "width" else f(
                    np.nan_to_num(pit_of(d, name)[mask]))
            u[~np.isfinite(d[name][0])] = np.nan
            true_logg = d["true_logg"]
            for group, mask in (("all", np.ones_like(true_logg, bool)),
                                ("true giants", true_logg < GIANT_LOGG),
                                ("true dwarfs", true_logg >= GIANT_LOGG)):
                ok = coverage_check(u[mask])[2]
                passed += ok
                if not ok:
                    failed.append(f"{label} {name} {group}")
    return passed, failed


def main() -> None:
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    model = load_model()
    val, test = answers(model, load_split("validation")), answers(model, load_split("test"))
    halves = [half(val, 0), half(val, 1)]
    rows = ["| map | per predicted class | validation, 2-fold: rows within the bar (of 66) "
            "| most peaks of a map's density (1 = smooth) | test: rows within the bar (of 33) "
            "| test rows that fail |", "|---|---|---|---|---|---|"]
    for method in ("none", "width", "isotonic", "probit", "kernel 0.1", "kernel 0.2",
                   "kernel 0.3", "kernel 0.4"):
        for split_by_class in ((False,) if method == "none" else (False, True)):
            PEAKS.clear()
            cv = sum(score(method, split_by_class, a, b)[0]
                     for a, b in (halves, halves[::-1]))
            peaks = max(PEAKS) if PEAKS else "–"
            passed, failed = score(method, split_by_class, val, test)
            rows.append(f"| {method} | {'yes' if split_by_class else 'no'} | {cv} | {peaks} | "
                        f"{passed} | {'; '.join(failed)} |")
            print(rows[-1], flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("# Recalibration maps compared\n\n`python benchmark/recalibration_methods.py`"
                   f" ({model}; fitted on the validation split, scored on the test split; "
                   f"{time.perf_counter() - t0:.0f} s on 2 threads)\n\n" + "\n".join(rows)
                   + "\n")


if __name__ == "__main__":
    main()
