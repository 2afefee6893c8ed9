"""probstar in five questions, with the shipped model.

    python examples/quickstart.py
"""

import numpy as np

import probstar
from probstar.data import load_split
from probstar.evaluate import INPUT_SETS

model = probstar.load_model()
print(model)

# 1. Labels from a Gaia XP spectrum and colours: a distribution per star.
stars = load_split("test").select(slice(0, 5))
post = model.posterior(stars.only(INPUT_SETS["xp+colours"]), ["teff", "logg", "fe_h"])
for i, (med, lo, hi) in enumerate(zip(post.median(), post.quantile(0.16),
                                      post.quantile(0.84))):
    truth = [stars.column(n)[i] for n in post.names]
    print(f"star {i}: " + ", ".join(
        f"{n} = {m:.2f} [{a:.2f}, {b:.2f}] (APOGEE {t:.2f})"
        for n, m, a, b, t in zip(post.names, med, lo, hi, truth)))

# 2. Any subset of inputs: photometry only, answers with uncertainties. (No j_err etc.:
#    the shipped model was trained on magnitudes without errors and would ignore them,
#    with a warning.)
phot = {"g": [12.1], "bp": [12.7], "rp": [11.4], "j": [10.3], "h": [9.8], "k": [9.7]}
print("photometry only:", probstar.predict(phot, ["teff", "logg"]))

# 3. A single token is a valid question, and an ambiguous one: two peaks, with weights.
teff_only = model.posterior({"teff": [4000.0]}, "logg")
print("logg given Teff = 4000 K: peaks (value, weight):", teff_only.modes("logg")[0])

# 4. Joint answers: several names asked together come from the flow head, with their
#    correlations; samples and densities.
joint = model.posterior({"teff": [4000.0]}, ["logg", "fe_h"])
draws = joint.sample(1000, seed=0)  # (1000, 1, 2), one joint draw per row
print(joint, "corr(logg, fe_h) =", np.corrcoef(draws[:, 0].T)[0, 1].round(2),
      "log p:", joint.log_prob(draws[:3]))

# 5. A corner plot of the answer for star 0, its APOGEE values overplotted.
from probstar.plots import corner_plot  # noqa: E402

truth = [stars.column(n)[0] for n in post.names]
corner_plot(post, 0, truths=truth, title="star 0 from XP + colours").savefig("star0.png")
print("corner plot -> star0.png")
