"""Conventional baselines for the accuracy benchmark: XGBoost and a plain MLP.

Both baselines see the same fixed inputs (:func:`baseline_inputs`): the 343 Gaia XP flux
pixels plus the colours bp_rp, j_h and j_k. Each predicts teff, logg and fe_h; they are
the reference that probstar's accuracy is compared with.

    from probstar.data import load_split
    train, val, test = (load_split(s) for s in ("train", "validation", "test"))
    xgb = fit_xgboost(train, val)
    mlp = fit_mlp(train, val, minutes=4.0)
    predictions = predict_mlp(mlp, test)  # {name: (n_stars,)}, scored by probstar.evaluate
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from probstar.data import Observations
from probstar.evaluate import INPUT_SETS
from probstar.vocab import XP_NAMES, index_of, robust_loc_scale

__all__ = [
    "TARGETS",
    "baseline_inputs",
    "fit_xgboost",
    "predict_xgboost",
    "MLPBaseline",
    "fit_mlp",
    "predict_mlp",
]

TARGETS: tuple[str, ...] = ("teff", "logg", "fe_h")
_N_XP = len(XP_NAMES)
#: Flux scale below which the asinh transform of the MLP inputs is linear (above: ~log).
_FLUX_SOFTENING = 0.05


def baseline_inputs(obs: Observations) -> np.ndarray:
    """Input matrix (n_stars, 346): probstar's ``xp+colours`` input set, NaN kept."""
    columns = index_of(INPUT_SETS["xp+colours"])  # 343 XP pixels, bp_rp, j_h, j_k
    return np.ascontiguousarray(obs.values[:, columns], np.float32)


def _labels(obs: Observations, targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Label values and errors (n_stars, n_targets); NaN where absent."""
    idx = index_of(list(targets))
    return obs.values[:, idx].astype(np.float32), obs.errors[:, idx].astype(np.float32)


# ----------------------------------------------------------------------------- XGBoost

def fit_xgboost(train: Observations, validation: Observations,
                targets: Sequence[str] = TARGETS, seed: int = 0, *,
                n_estimators: int = 1000, max_depth: int = 6, learning_rate: float = 0.05,
                early_stopping_rounds: int | None = None, n_jobs: int = 2,
                verbose: bool = True) -> dict[str, Any]:
    """One ``xgboost.XGBRegressor`` per target, trained where that label is present.

    All ``n_estimators`` trees are kept by default. ``early_stopping_rounds`` stops on the
    validation RMSE instead; RMSE is dominated by the hot-star tail, so it stops teff too
    early for the robust scatter (717 trees: 133 K vs 126 K with all 1000).
    Returns {target name: fitted regressor}.
    """
    import xgboost as xgb

    x_tr, x_va = baseline_inputs(train), baseline_inputs(validation)
    y_tr, _ = _labels(train, targets)
    y_va, _ = _labels(validation, targets)
    models: dict[str, Any] = {}
    for j, name in enumerate(targets):
        t0 = time.perf_counter()
        m_tr, m_va = np.isfinite(y_tr[:, j]), np.isfinite(y_va[:, j])
        model = xgb.XGBRegressor(
            n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate,
            tree_method="hist", n_jobs=n_jobs, random_state=seed,
            early_stopping_rounds=early_stopping_rounds if m_va.any() else None)
        eval_set = [(x_va[m_va], y_va[m_va, j])] if m_va.any() else None
        model.fit(x_tr[m_tr], y_tr[m_tr, j], eval_set=eval_set, verbose=False)
        models[name] = model
        if verbose:
            best = getattr(model, "best_iteration", None)
            trees = n_estimators if best is None else best + 1
            print(f"xgboost {name}: {m_tr.sum()} stars, {trees} trees, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return models


def predict_xgboost(models: dict[str, Any], obs: Observations) -> dict[str, np.ndarray]:
    """Predictions {target: (n_stars,)} of the models from :func:`fit_xgboost`."""
    x = baseline_inputs(obs)
    return {name: np.asarray(m.predict(x), np.float64) for name, m in models.items()}


# ----------------------------------------------------------------------------- MLP

@dataclass
class MLPBaseline:
    """A trained MLP with the input and target scalings it was trained with."""

    net: Any  # torch.nn.Module: (n, 346) -> (n, 2 * n_targets) [means, log-variances]
    targets: tuple[str, ...]
    x_loc: np.ndarray  # (346,) median of the transformed train inputs
    x_scale: np.ndarray  # (346,) MAD-std of the transformed train inputs
    y_loc: np.ndarray  # (n_targets,) median of the train labels
    y_scale: np.ndarray  # (n_targets,) MAD-std of the train labels
    history: list[dict[str, float]]  # per epoch: epoch, seconds, lr, train and val loss
    best_epoch: int

    def standardise(self, obs: Observations) -> np.ndarray:
        """Transformed, standardised inputs with NaN replaced by 0 (= the train median)."""
        x = (_transform_inputs(baseline_inputs(obs)) - self.x_loc) / self.x_scale
        return np.nan_to_num(x, nan=0.0).astype(np.float32)


def _transform_inputs(x: np.ndarray) -> np.ndarray:
    """asinh-softened log of the flux pixels (linear near 0, log above); colours as is."""
    out = x.copy()
    out[:, :_N_XP] = np.arcsinh(x[:, :_N_XP] / _FLUX_SOFTENING)
    return out


def _make_net(n_in: int, n_out: int, hidden: Sequence[int] = (512, 512, 256)):
    import torch.nn as nn

    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.GELU()]
        width = h
    layers.append(nn.Linear(width, 2 * n_out))
    return nn.Sequential(*layers)


def _gaussian_nll(out, y, var_label, mask):
    """Mean Gaussian NLL over present labels; the label's own variance is added."""
    import torch

    k = y.shape[1]
    mean, log_var = out[:, :k], out[:, k:].clamp(-12.0, 8.0)
    var = log_var.exp() + var_label
    nll = 0.5 * (torch.log(var) + (y - mean) ** 2 / var)
    return (nll * mask).sum() / mask.sum().clamp(min=1.0)


def fit_mlp(train: Observations, validation: Observations,
            targets: Sequence[str] = TARGETS, seed: int = 0, minutes: float = 4.0, *,
            lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 512,
            warmup: float = 0.03, grad_clip: float = 5.0, threads: int = 2,
            progress: bool = True) -> MLPBaseline:
    """Train a 512-512-256 GELU MLP for ``minutes`` of wall clock; keep the best epoch.

    Heteroscedastic Gaussian NLL (predicted variance + label variance), missing labels
    masked, targets standardised by train median / MAD-std, AdamW with linear warm-up and
    a cosine decay of the learning rate over the time budget, batch ``batch_size``,
    gradient norm clipped at ``grad_clip``.
    The weights with the lowest validation loss are returned.
    """
    import torch
    from tqdm.auto import tqdm

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    targets = tuple(targets)

    x_tr_raw = _transform_inputs(baseline_inputs(train))
    x_loc, x_scale = robust_loc_scale(x_tr_raw)
    y_tr, e_tr = _labels(train, targets)
    y_loc, y_scale = robust_loc_scale(y_tr)
    model = MLPBaseline(None, targets, x_loc, x_scale, y_loc, y_scale, [], -1)

    def tensors(obs: Observations):
        x = model.standardise(obs)
        y, e = _labels(obs, targets)
        mask = np.isfinite(y)
        ys = np.where(mask, (y - y_loc) / y_scale, 0.0)
        var = np.where(mask & np.isfinite(e), (e / y_scale) ** 2, 0.0)
        return (torch.from_numpy(x), torch.from_numpy(ys.astype(np.float32)),
                torch.from_numpy(var.astype(np.float32)),
                torch.from_numpy(mask.astype(np.float32)))

    tr, va = tensors(train), tensors(validation)
    keep = tr[3].sum(1) > 0  # stars with at least one label
    tr = tuple(t[keep] for t in tr)
    n = tr[0].shape[0]

    net = _make_net(tr[0].shape[1], len(targets))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    budget = 60.0 * minutes
    best_loss, best_state = math.inf, copy.deepcopy(net.state_dict())
    t0 = time.perf_counter()
    bar = tqdm(total=round(budget), unit="s", desc="mlp", disable=not progress,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s {postfix}")
    epoch = 0
    while time.perf_counter() - t0 < budget:
        net.train()
        order = torch.from_numpy(rng.permutation(n))
        total, count = 0.0, 0
        for start in range(0, n - batch_size // 2, batch_size):  # drop a tiny last batch
            frac = (time.perf_counter() - t0) / budget
            if frac >= 1.0:
                break
            scale = frac / warmup if frac < warmup else 0.5 * (1 + math.cos(
                math.pi * (frac - warmup) / (1 - warmup)))
            for group in opt.param_groups:
                group["lr"] = lr * max(scale, 1e-3)
            idx = order[start:start + batch_size]
            loss = _gaussian_nll(net(tr[0][idx]), tr[1][idx], tr[2][idx], tr[3][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
            opt.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
        net.eval()
        with torch.no_grad():
            val_loss = float(_gaussian_nll(net(va[0]), va[1], va[2], va[3]))
        epoch += 1
        elapsed = time.perf_counter() - t0
        model.history.append(dict(epoch=epoch, seconds=elapsed, lr=opt.param_groups[0]["lr"],
                                  train_loss=total / max(count, 1), val_loss=val_loss))
        if val_loss < best_loss:
            best_loss, best_state, model.best_epoch = (
                val_loss, copy.deepcopy(net.state_dict()), epoch)
        bar.update(min(round(elapsed), bar.total) - bar.n)
        bar.set_postfix_str(f"epoch {epoch} train {total / max(count, 1):.3f} "
                            f"val {val_loss:.3f} best {best_loss:.3f}")
    bar.close()
    net.load_state_dict(best_state)
    net.eval()
    model.net = net
    return model


def predict_mlp(model: MLPBaseline, obs: Observations, *,
                return_sigma: bool = False, batch_size: int = 8192) -> dict[str, np.ndarray]:
    """Predicted means {target: (n_stars,)} in physical units.

    With ``return_sigma`` the predicted standard deviations are added as ``'<name>_sigma'``.
    """
    import torch

    x = torch.from_numpy(model.standardise(obs))
    k = len(model.targets)
    with torch.no_grad():
        out = torch.cat([model.net(x[i:i + batch_size])
                         for i in range(0, x.shape[0], batch_size)]).numpy().astype(np.float64)
    mean = out[:, :k] * model.y_scale + model.y_loc
    sigma = np.exp(0.5 * np.clip(out[:, k:], -12.0, 8.0)) * model.y_scale
    preds = {name: mean[:, j] for j, name in enumerate(model.targets)}
    if return_sigma:
        preds.update({f"{name}_sigma": sigma[:, j] for j, name in enumerate(model.targets)})
    return preds
