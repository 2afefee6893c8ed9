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

# 2. Any subset of inputs: photometry only, with uncertainties.
phot = {"g": [12.1], "bp": [12.7], "rp": [11.4], "j": [10.3], "h": [9.8], "k": [9.7],
        "j_err": [0.02], "h_err": [0.02], "k_err": [0.02]}
print("photometry only:", probstar.predict(phot, ["teff", "logg"]))

# 3. A single token is a valid question (the Gaussian head gives one peak; see issue 3).
print("Teff = 4000 K only:", probstar.predict({"teff": [4000.0]}, "logg"))

# 4. Samples and densities.
draws = post.sample(1000, seed=0)  # (1000, 5, 3)
print("sample means:", np.round(draws.mean(0)[0], 2), "log p:", post.log_prob(draws[0]))
