"""Fit the XGBoost and MLP baselines on train / validation and score them on test.

    python validation/run_baselines.py --minutes 4

Prints a markdown table (model, target, scatter and bias over all test stars and over
3500 < teff < 6500 K) and the fit times.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import (fit_mlp, fit_xgboost, predict_mlp,  # noqa: E402
                       predict_xgboost, score)
from probstar.data import load_split  # noqa: E402


def markdown_table(results: dict[str, list[dict]], window: tuple[float, float]) -> str:
    """Markdown table of score() rows per model."""
    lo, hi = (f"{w:g}" for w in window)
    lines = [f"| model | target | scatter all | bias all | scatter {lo}-{hi} | bias {lo}-{hi} |",
             "|---|---|---:|---:|---:|---:|"]
    for model, rows in results.items():
        for r in rows:
            fmt = ".1f" if r["target"] == "teff" else ".3f"
            lines.append(f"| {model} | {r['target']} | {r['scatter_all']:{fmt}} | "
                         f"{r['bias_all']:{fmt}} | {r['scatter_window']:{fmt}} | "
                         f"{r['bias_window']:{fmt}} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="MLP wall-clock budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-xgboost", action="store_true")
    parser.add_argument("--skip-mlp", action="store_true")
    args = parser.parse_args(argv)
    window = (3500.0, 6500.0)

    train, validation, test = (load_split(s) for s in ("train", "validation", "test"))
    print(f"stars: train {len(train)}, validation {len(validation)}, test {len(test)}")
    results, times = {}, {}
    if not args.skip_xgboost:
        t0 = time.perf_counter()
        xgb = fit_xgboost(train, validation, seed=args.seed)
        times["xgboost"] = time.perf_counter() - t0
        results["xgboost"] = score(test, predict_xgboost(xgb, test), window)
    if not args.skip_mlp:
        t0 = time.perf_counter()
        mlp = fit_mlp(train, validation, seed=args.seed, minutes=args.minutes)
        times["mlp"] = time.perf_counter() - t0
        print(f"mlp: {len(mlp.history)} epochs, best epoch {mlp.best_epoch}")
        results["mlp"] = score(test, predict_mlp(mlp, test), window)

    print()
    print(markdown_table(results, window))
    print()
    for model, seconds in times.items():
        print(f"fit time {model}: {seconds:.0f} s")


if __name__ == "__main__":
    main()
