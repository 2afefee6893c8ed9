"""Save and load a trained model: ``model.safetensors`` + ``config.json`` in one folder.

The JSON carries everything needed to rebuild the model (architecture, vocabulary,
normalisation, the names it was trained on, data hash, code version), so ``predict``
needs nothing else. Files are written atomically (temp file, then rename), so an
interruption never leaves a half-written checkpoint. No pickle is ever loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from . import __version__
from .model.network import ModelConfig, ProbStarNet
from .vocab import NAMES, Normalization

__all__ = ["CheckpointError", "save_checkpoint", "read_checkpoint", "load_checkpoint",
           "update_config", "atomic_write"]

FORMAT = "probstar-checkpoint-1"
WEIGHTS, CONFIG = "model.safetensors", "config.json"


class CheckpointError(ValueError):
    """A missing, corrupt or foreign checkpoint."""


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path`` (atomic on POSIX)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(folder: str | Path, net: ProbStarNet, normalization: Normalization,
                    **meta: Any) -> Path:
    """Write weights and config of ``net`` to ``folder``; ``meta`` goes into the JSON."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write(folder / WEIGHTS, lambda p: save_file(state, str(p)))
    config = {"format": FORMAT, "probstar_version": __version__,
              "model": net.config.to_dict(), "vocabulary": list(NAMES),
              "normalization": normalization.to_dict(), **meta}
    atomic_write(folder / CONFIG, lambda p: p.write_text(json.dumps(config, indent=1)))
    return folder


def read_checkpoint(folder: str | Path) -> tuple[dict, dict[str, torch.Tensor], Normalization]:
    """Config, weights (by parameter name) and normalisation stored in ``folder``,
    checked; errors name the file and what is wrong."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG, folder / WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"{path}: missing; a probstar model folder holds "
                                  f"{CONFIG} and {WEIGHTS}")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{config_path}: not a probstar checkpoint (format "
                              f"{config.get('format') if isinstance(config, dict) else None!r},"
                              f" expected {FORMAT!r})")
    if config.get("vocabulary") != list(NAMES):
        raise CheckpointError(f"{config_path}: written for another vocabulary; this probstar "
                              f"({__version__}) cannot read it")
    try:
        normalization = Normalization.from_dict(config["normalization"])
        model = config["model"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{config_path}: invalid model description ({exc})") from None
    try:
        state = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{weights_path}: corrupt weights file ({exc})") from None
    broken = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if broken:  # (a damaged payload of the right size reads as NaN / inf numbers)
        raise CheckpointError(f"{weights_path}: corrupt weights file (NaN or inf in "
                              f"{', '.join(broken[:3])}{', ...' if len(broken) > 3 else ''})")
    if isinstance(model, dict) and "head" in model:  # before the PDF heads: one "head."
        state = {k.replace("head.", f"outputs.{model['head']}.", 1)
                 if k.startswith("head.") else k: v for k, v in state.items()}
    return config, state, normalization


def load_checkpoint(folder: str | Path) -> tuple[ProbStarNet, Normalization, dict]:
    """Rebuild the network from ``folder``; errors name the file and what is wrong."""
    config, state, normalization = read_checkpoint(folder)
    config_path, weights_path = Path(folder) / CONFIG, Path(folder) / WEIGHTS
    try:
        net = ProbStarNet(ModelConfig.from_dict(config["model"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{config_path}: invalid model description ({exc})") from None
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights_path}: weights do not fit the architecture in "
                              f"{CONFIG} ({str(exc).splitlines()[0]})") from None
    net.eval()
    return net, normalization, config


def update_config(folder: str | Path, **entries: Any) -> None:
    """Add or replace top-level ``entries`` of a checkpoint's JSON (e.g. its
    recalibration), leaving the weights untouched."""
    config, _, _ = read_checkpoint(folder)  # checks it is a readable checkpoint first
    config.update(entries)
    atomic_write(Path(folder) / CONFIG, lambda p: p.write_text(json.dumps(config, indent=1)))


def save_train_state(path: Path, state: dict) -> None:
    """Optimizer / schedule / RNG state, as tensors and numbers only (weights_only loadable)."""
    atomic_write(path, lambda p: torch.save(state, p))


def load_train_state(path: Path) -> dict:
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot resume from it ({type(exc).__name__}: {exc})") \
            from None
