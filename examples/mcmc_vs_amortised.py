"""One star, two routes to p(teff, logg, fe_h, alpha_m, ak | XP spectrum): MCMC with the
model's generative direction as the likelihood (emcee and Pyro NUTS), and the direct
answer.

    python examples/mcmc_vs_amortised.py     # writes docs/mcmc_vs_amortised.png

The likelihood is the spectrum head's answer given the parameters, convolved with the
observed flux errors and tempered by the temperature stored with the model (checked
by MCMC on validation stars, ``validation/inverse_temperature.py``); the prior is the training
population's (``probstar.inverse.Prior.training_population``). The untempered
likelihood is drawn too, to show why it is tempered. The direct (amortised) answer is
one network pass. Here the chains are short, to stay under two minutes;
``validation/inverse.py`` does this for 50 stars with longer chains, R-hat and ESS.
"""

from __future__ import annotations

import time
from pathlib import Path

import arviz as az
import corner
import numpy as np
from matplotlib.lines import Line2D

import probstar
from probstar.data import load_split
from probstar.inverse import PARAMETERS, Prior, SpectrumLikelihood, run_emcee, run_nuts
from probstar.plots import axis_label
from probstar.vocab import index_of

DOCS = Path(__file__).resolve().parent.parent / "docs"
STAR = 3  # a test-split star


def draws_of(idata: az.InferenceData) -> np.ndarray:
    return np.stack([idata.posterior[p].values.ravel() for p in PARAMETERS], 1)


def main() -> None:
    model = probstar.load_model()
    star = load_split("test").select([STAR])
    xp = index_of("xp")
    flux, flux_err = star.values[0, xp], star.errors[0, xp]
    like = SpectrumLikelihood(model, flux, flux_err)  # the model's fitted temperature
    untempered = SpectrumLikelihood(model, flux, flux_err, temperature=1.0)
    prior = Prior.training_population()
    temperature = model.likelihood_temperature

    t = time.perf_counter()
    direct = model.posterior(star.only(["xp"]), list(PARAMETERS), head="mixture")
    t_direct = time.perf_counter() - t
    t = time.perf_counter()
    emcee_run = run_emcee(like, prior, n_steps=700, burn=200, seed=0)
    t_emcee = time.perf_counter() - t
    t = time.perf_counter()  # one short chain, to stay under 2 minutes; R-hat needs more
    nuts_run = run_nuts(like, prior, n_samples=120, warmup=80, chains=1, seed=0)
    t_nuts = time.perf_counter() - t
    raw_run = run_emcee(untempered, prior, n_steps=400, burn=150, seed=0)
    for name, run in (("emcee", emcee_run), ("NUTS", nuts_run), ("emcee, T = 1", raw_run)):
        print(name, az.summary(run, kind="diagnostics")[["ess_bulk"]].to_string(), sep="\n")

    order = [direct.names.index(p) for p in PARAMETERS]
    amortised = direct.sample(20000, seed=0)[:, 0, order]
    truth = star.values[0, index_of(list(PARAMETERS))]
    tempered = f"likelihood^(1/{temperature:g})"
    sets = {f"amortised (one network pass, {t_direct:.2f} s)": (amortised, "#1f5fa8"),
            f"emcee, {tempered} ({t_emcee:.0f} s)": (draws_of(emcee_run), "#e07b00"),
            f"NUTS, {tempered} ({t_nuts:.0f} s)": (draws_of(nuts_run), "#2a9d3a"),
            "emcee, untempered likelihood": (draws_of(raw_run), "#b0306a")}
    ranges = [tuple(np.percentile(np.concatenate([d[:, j] for d, _ in sets.values()]),
                                  [0.5, 99.5])) for j in range(len(PARAMETERS))]
    fig = None
    for draws, colour in sets.values():
        fig = corner.corner(draws, fig=fig, color=colour, range=ranges, bins=30,
                            smooth=1.0, plot_datapoints=False, plot_density=False,
                            levels=(0.393, 0.865), labels=[axis_label(p) for p in PARAMETERS],
                            hist_kwargs={"density": True}, truths=truth, truth_color="black")
    handles = [Line2D([], [], color=c, lw=2, label=k) for k, (_, c) in sets.items()]
    handles.append(Line2D([], [], color="black", label="APOGEE values"))
    fig.legend(handles=handles, loc="upper right", frameon=False, fontsize=10,
               bbox_to_anchor=(0.98, 0.93))
    fig.suptitle(f"Test star {STAR}: p(Teff, logg, [Fe/H], [alpha/M], A_K | XP spectrum)",
                 y=1.02)
    DOCS.mkdir(exist_ok=True)
    fig.savefig(DOCS / "mcmc_vs_amortised.png", dpi=90, bbox_inches="tight")
    print(f"wrote {DOCS / 'mcmc_vs_amortised.png'}")


if __name__ == "__main__":
    main()
