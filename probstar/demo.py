"""``probstar demo``: three questions to the shipped model, answered as full PDFs.

(a) Given only Teff = 4000 K, what is logg?  Two peaks: giants and dwarfs.
(b) The same star with negligible extinction (A_K = 0): nearby, so more likely a dwarf.
(c) A held-out star's Gaia XP spectrum and colours: the joint (Teff, logg, [Fe/H]).

Each answer is compared with held-out APOGEE stars (test split): those satisfying the
same condition for (a) and (b), the star's own labels for (c). Corner plots (PNG) and a
markdown summary go to the output folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .evaluate import INPUT_SETS
from .posterior import Posterior
from .query import Model, load_model

__all__ = ["run_demo"]

TEFF, WINDOW, LOW_AK = 4000.0, 50.0, 0.05  # K, K, mag
GIANT_LOGG = 3.5  # dex: below it a giant, above it a dwarf


def _peaks_text(post: Posterior, name: str, fmt: str) -> str:
    return ", ".join(f"{v:{fmt}} (weight {w:.2f})" for v, w in post.modes(name)[0])


def _giant_question(model: Model, test, given: dict, select: np.ndarray, what: str,
                    folder: Path, stem: str) -> list[str]:
    from .plots import condition_text, corner_plot

    post = model.posterior(given, ["logg"])
    reference = test.column("logg")[select]
    reference = reference[np.isfinite(reference)]
    x = np.linspace(-1.0, 6.0, 2801)
    p = post.pdf("logg", x)[0]
    dwarf_mass = float(np.trapezoid(np.where(x > GIANT_LOGG, p, 0.0), x))
    question = ", ".join(condition_text(k, v[0]) for k, v in given.items())
    fig = corner_plot(post, reference=reference[:, None],
                      reference_label=f"test stars, {what}",
                      title=f"$\\log g$ given only {question}")
    fig.savefig(folder / f"{stem}.png", dpi=110, bbox_inches="tight")
    return [f"- peaks: {_peaks_text(post, 'logg', '.2f')}",
            f"- probability of a dwarf (logg > {GIANT_LOGG}): {dwarf_mass:.2f}; "
            f"held-out stars with {what}: {np.mean(reference > GIANT_LOGG):.2f} "
            f"of {len(reference)}",
            f"- median {post.median()[0, 0]:.2f}, 16-84%: {post.quantile(0.16)[0, 0]:.2f} to "
            f"{post.quantile(0.84)[0, 0]:.2f} dex",
            f"- plot: `{stem}.png`"]


def run_demo(output: str | Path = "probstar-demo", model: Model | str | Path | None = None,
             star: int = 0) -> str:
    """Answer the three questions; write PNGs and ``summary.md`` to ``output``; the text."""
    from .data.library import load_split
    from .plots import corner_plot

    t0 = time.perf_counter()
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    model = model if isinstance(model, Model) else load_model(model)
    test = load_split("test")
    if not 0 <= star < len(test):
        raise ValueError(f"--star must be in 0..{len(test) - 1} (the test split), got {star}")
    teff, ak = test.column("teff"), test.column("ak")
    near = np.abs(teff - TEFF) <= WINDOW
    lines = [f"# probstar demo\n\nModel: {model}. Held-out reference: the test split "
             f"({len(test)} APOGEE stars never seen in training).\n"]

    lines += [f"## (a) Given only Teff = {TEFF:g} K, what is logg?\n"]
    lines += _giant_question(model, test, {"teff": [TEFF]}, near,
                             f"|Teff - {TEFF:g}| <= {WINDOW:g} K", folder, "a_logg_given_teff")

    lines += ["\n## (b) The same star with negligible extinction (A_K = 0)\n"]
    lines += _giant_question(model, test, {"teff": [TEFF], "ak": [0.0]},
                             (np.abs(teff - TEFF) <= 2 * WINDOW) & (ak < LOW_AK),
                             f"|Teff - {TEFF:g}| <= {2 * WINDOW:g} K, A_K < {LOW_AK:g}",
                             folder, "b_logg_given_teff_no_extinction")

    names = ["teff", "logg", "fe_h"]
    one = test.select(slice(star, star + 1))
    post = model.posterior(one.only(INPUT_SETS["xp+colours"]), names)
    truth = [float(one.column(n)[0]) for n in post.names]
    source = one.ids[0] if one.ids is not None else star
    fig = corner_plot(post, truths=truth, title=f"Gaia DR3 {source} (held out): "
                      "Teff, log g, [Fe/H] from its XP spectrum and colours")
    fig.savefig(folder / "c_joint_from_spectrum.png", dpi=110, bbox_inches="tight")
    fmt = {"teff": ".0f", "logg": ".2f", "fe_h": ".2f"}
    lines += [f"\n## (c) Held-out star {source} (test split #{star}): XP spectrum + colours "
              f"-> joint (Teff, logg, [Fe/H])\n",
              f"Head: {'flow (joint)' if post.joint else 'independent 1-D'}.\n",
              "| quantity | peaks (weight) | median | 16-84% | APOGEE |",
              "|---|---|---|---|---|"]
    med, lo, hi = post.median()[0], post.quantile(0.16)[0], post.quantile(0.84)[0]
    for j, n in enumerate(post.names):
        f = fmt[n]
        lines.append(f"| {n} | {_peaks_text(post, n, f)} | {med[j]:{f}} | "
                     f"{lo[j]:{f}} to {hi[j]:{f}} | {truth[j]:{f}} |")
    corr = np.corrcoef(post.sample(4000, seed=0)[:, 0, :].T)
    lines += ["", f"Correlations of the joint draws: teff-logg {corr[0, 1]:+.2f}, "
              f"teff-fe_h {corr[0, 2]:+.2f}, logg-fe_h {corr[1, 2]:+.2f}.",
              "- plot: `c_joint_from_spectrum.png`",
              f"\n({time.perf_counter() - t0:.1f} s; reproduce: `probstar demo --output "
              f"{folder} --star {star}`)\n"]
    text = "\n".join(lines)
    (folder / "summary.md").write_text(text)
    return text
