"""Network, heads, checkpoints, training and resume."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from probstar.checkpoint import CheckpointError, load_checkpoint
from probstar.model import ModelConfig, ProbStarNet
from probstar.model.network import N_PIXELS, N_SCALARS
from probstar.train import PRESETS, TrainConfig, _init_from, _scored_head, moving_average, \
    sample_context, train
from probstar.vocab import NAMES, index_of

SMALL = ModelConfig(dim=32, heads=2, encoder_layers=1, decoder_layers=1, region_hidden=16)


def random_batch(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, len(NAMES), generator=g)
    v[torch.rand(n, len(NAMES), generator=g) < 0.5] = torch.nan
    return v, torch.rand(n, len(NAMES), generator=g) * 0.1


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="dim"):
        ModelConfig(dim=30, heads=4)
    with pytest.raises(ValueError, match="outputs"):
        ModelConfig(outputs=("nope",))
    with pytest.raises(ValueError, match="joint_names"):
        ModelConfig(joint_names=("teff", "xp_500"))
    with pytest.raises(ValueError, match="unknown model config"):
        ModelConfig.from_dict({"dim": 32, "depth": 3})
    with pytest.raises(ValueError, match="value_frequencies"):
        ModelConfig(value_frequencies=-1)


def test_periodic_value_features_start_from_the_same_answers(tiny_run):
    """Fine-tuned from a model without them, a network with periodic value features
    answers as that model did until it trains; the features do change the answer."""
    source, _, _ = load_checkpoint(tiny_run)
    periodic = ProbStarNet(replace(source.config, value_frequencies=8))
    _init_from(periodic, str(tiny_run))
    v, s = random_batch(6)
    query = torch.arange(4)
    with torch.no_grad():
        torch.testing.assert_close(periodic.eval()(v, s, query), source.eval()(v, s, query))
        periodic.scalars.periodic.normal_()
        assert not torch.allclose(periodic(v, s, query), source(v, s, query))


def test_encoder_is_permutation_invariant():
    """Shuffling the token set changes no answer: no positional information anywhere."""
    net = ProbStarNet(SMALL).eval()
    v, s = random_batch()
    query = torch.tensor(index_of(["teff", "logg"]))
    with torch.no_grad():
        tokens, absent = net.embed(v, s)
        perm = torch.randperm(tokens.shape[1], generator=torch.Generator().manual_seed(3))
        out = net.decode(net.encode(tokens, absent), absent, query)
        shuffled = net.decode(net.encode(tokens[:, perm], absent[:, perm]), absent[:, perm],
                              query)
    torch.testing.assert_close(out, shuffled, rtol=1e-5, atol=1e-6)


def test_queries_do_not_interact():
    """The answer for teff is the same whether or not logg is asked too."""
    net = ProbStarNet(SMALL).eval()
    v, s = random_batch()
    with torch.no_grad():
        both = net(v, s, torch.tensor(index_of(["teff", "logg"])))
        alone = net(v, s, torch.tensor(index_of(["teff"])))
    torch.testing.assert_close(both[:, :1], alone, rtol=1e-5, atol=1e-6)


def test_empty_star_has_a_finite_answer():
    net = ProbStarNet(SMALL).eval()
    v = torch.full((2, len(NAMES)), torch.nan)
    with torch.no_grad():
        h = net(v, v, torch.tensor([0]))
    assert torch.isfinite(h).all()


def test_sample_context_hides_and_keeps():
    v, _ = random_batch(2000)
    v = torch.nan_to_num(v, 0.0)
    g = torch.Generator().manual_seed(1)
    cfg = replace(PRESETS["smoke"], label_errors=True, p_labels_only=0.3)
    ctx, sig = sample_context(v, torch.full_like(v, 0.1), cfg, g)
    shown = torch.isfinite(ctx)
    kept = shown.float().mean().item()
    assert 0.2 < kept < 0.8
    full = shown[:, N_SCALARS:].all(1).float().mean().item()
    assert abs(full - 0.7 * cfg.p_full_spectrum) < 0.05  # 30% are labels-only
    rest = shown.clone()
    rest[:, :4] = False  # labels: perturbed by their synthetic errors, if any
    torch.testing.assert_close(ctx[rest], v[rest])  # other visible values are untouched
    label_sig = sig[:, :4][shown[:, :4]]
    assert abs(torch.isnan(label_sig).float().mean() - 0.5) < 0.05  # half without error
    assert (label_sig[~torch.isnan(label_sig)] != 0.1).all()  # never the label's own error
    noisy = ~torch.isnan(sig[:, :4]) & shown[:, :4]
    z = (ctx[:, :4][noisy] - v[:, :4][noisy]) / sig[:, :4][noisy]
    assert abs(z.std().item() - 1) < 0.1  # the value carries the noise its error says
    errors = sig[:, :4][noisy]
    assert 0.02 <= errors.min() and errors.max() <= 0.5  # the recipe's range
    _, sig_small = sample_context(v, torch.full_like(v, 0.1),
                                  replace(cfg, label_error_min=0.002), g)
    assert sig_small[:, :4].nan_to_num(1.0).min() < 0.01  # a smaller floor is trained too
    assert (shown.sum(1) <= 1).any()  # very short contexts occur
    labels_only = ~shown[:, N_SCALARS:].any(1) & ~shown[:, 4:10].any(1) & shown.any(1)
    assert labels_only.float().mean() > 0.2  # parameters only, no photometry or spectrum
    torch.testing.assert_close(sig[:, 4:], torch.full_like(sig[:, 4:], 0.1))


def test_labels_only_contexts_show_the_parameters_a_star_has():
    """A star with Teff alone still shows Teff when labels-only contexts pick 1-2 of the
    five parameters: picking absent ones made empty contexts, mostly of hot stars."""
    v, _ = random_batch(2000)
    v = torch.nan_to_num(v, 0.0)
    v[:, index_of(["logg", "fe_h", "alpha_m", "ak"])] = torch.nan  # Teff is all they have
    cfg = replace(PRESETS["smoke"], p_labels_only=1.0, labels_only_max=2)
    ctx, _ = sample_context(v, torch.full_like(v, 0.1), cfg, torch.Generator().manual_seed(5))
    assert torch.isfinite(ctx[:, index_of("teff")[0]]).all()


def test_few_scalar_contexts_show_a_handful_of_any_scalars():
    v, _ = random_batch(2000)
    v = torch.nan_to_num(v, 0.0)
    cfg = replace(PRESETS["smoke"], p_few_scalars=0.5, few_scalars_max=3)
    ctx, _ = sample_context(v, torch.full_like(v, 0.1), cfg, torch.Generator().manual_seed(2))
    shown = torch.isfinite(ctx)
    few = ~shown[:, N_SCALARS:].any(1) & (shown[:, :N_SCALARS].sum(1) <= 3)
    assert 0.45 < few.float().mean() < 0.65  # half, plus short contexts of other kinds
    photometry_and_label = few & shown[:, :4].any(1) & shown[:, 4:N_SCALARS].any(1)
    assert photometry_and_label.float().mean() > 0.1  # e.g. Teff and a colour, alone


def test_hidden_magnitudes_leave_the_colours():
    """p_hide_magnitudes hides the six magnitudes together in that share of contexts (and
    of those not hidden, the usual per-scalar share); the colours stay as they would."""
    v, _ = random_batch(4000)
    v = torch.nan_to_num(v, 0.0)
    magnitudes, colours = index_of(["g", "bp", "rp", "j", "h", "k"]), index_of(["bp_rp", "j_k"])
    shown = {p: torch.isfinite(sample_context(
        v, torch.full_like(v, 0.1), replace(PRESETS["smoke"], p_hide_magnitudes=p),
        torch.Generator().manual_seed(4))[0]) for p in (0.0, 0.5)}
    no_magnitudes = {p: (~s[:, magnitudes].any(1)).float().mean().item()
                     for p, s in shown.items()}
    assert no_magnitudes[0.5] > 0.5 + 0.5 * no_magnitudes[0.0] - 0.04
    colours_alone = {p: (~s[:, magnitudes].any(1) & s[:, colours].any(1)).float().mean().item()
                     for p, s in shown.items()}
    assert colours_alone[0.5] > 2 * colours_alone[0.0]
    assert abs(shown[0.5][:, colours].float().mean() - shown[0.0][:, colours].float().mean()) \
        < 0.03
    with pytest.raises(ValueError, match="p_hide_magnitudes"):
        replace(PRESETS["smoke"], p_hide_magnitudes=1.5)


def test_checkpoint_round_trip(tiny_run):
    net, norm, meta = load_checkpoint(tiny_run)
    assert meta["epoch"] == 2 and meta["trained_names"][:3] == ["teff", "logg", "fe_h"]
    assert (tiny_run / "best" / "model.safetensors").exists()
    curve = [json.loads(x) for x in (tiny_run / "learning_curve.jsonl").read_text().splitlines()]
    assert [c["epoch"] for c in curve] == [1, 2] and "teff" in curve[0]


def test_corrupt_and_foreign_checkpoints(tiny_run, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((tiny_run / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt weights"):
        load_checkpoint(bad)
    weights = load_file(str(tiny_run / "model.safetensors"))  # right size, damaged numbers
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"NaN or inf in {name}"):
        load_checkpoint(bad)
    save_file(load_file(str(tiny_run / "model.safetensors")), str(bad / "model.safetensors"))
    config = json.loads((tiny_run / "config.json").read_text())
    config["normalization"]["teff"]["scale"] = 0.0
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="teff: loc must be finite and scale a positive"):
        load_checkpoint(bad)
    (bad / "config.json").write_text(json.dumps({"format": "keras", "layers": []}))
    with pytest.raises(CheckpointError, match="not a probstar checkpoint"):
        load_checkpoint(bad)
    (bad / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "nowhere")


def test_weights_from_another_architecture(tiny_run, tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    config = json.loads((tiny_run / "config.json").read_text())
    config["model"]["dim"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((tiny_run / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(folder)


@pytest.mark.parametrize("ema, dropout", [(0.0, 0.0), (0.9, 0.1)])
def test_resume_continues_exactly(train_stars, test_stars, tmp_path, ema, dropout):
    """Training 2 epochs at once equals 1 epoch, an interruption, and a resume (with a
    weight average and dropout too: the average and torch's random state travel in the
    training state)."""
    smoke = PRESETS["smoke"]
    cfg = replace(smoke, epochs=2, batch_size=200, ema=ema,
                  model=replace(smoke.model, dropout=dropout))
    stars, val = train_stars.select(slice(0, 400)), test_stars.select(slice(0, 50))
    train(cfg, stars, val, tmp_path / "straight", progress=False)
    # an interrupted run: same config, stopped after epoch 1 (simulated by a 1-epoch
    # run whose recorded settings are then those of the 2-epoch run)
    train(cfg, stars, val, tmp_path / "resumed", progress=False, stop_after=1)
    train(cfg, stars, val, tmp_path / "resumed", progress=False, resume=True)
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_moving_average_ramps_its_decay():
    """The averaged weights follow w <- d w + (1 - d) p with the ramped decay d."""
    net = torch.nn.Linear(1, 1)
    average = moving_average(net, decay=0.5)
    expected = net.weight.item()
    for t, value in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            net.weight.fill_(value)
        average.update_parameters(net)
        d = min(0.5, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * value
    assert average.module.weight.item() == pytest.approx(expected, rel=1e-6)
    assert net.weight.item() == 4.0


def test_ema_run_saves_the_average(train_stars, test_stars, tmp_path):
    """With ``ema`` the saved model is the average, not the last raw weights."""
    cfg = replace(PRESETS["smoke"], epochs=1, batch_size=200, ema=0.9)
    run = train(cfg, train_stars.select(slice(0, 400)), test_stars.select(slice(0, 50)),
                tmp_path / "run", progress=False)
    saved = load_file(str(run / "model.safetensors"))
    state = torch.load(run / "train_state.pt", weights_only=True)
    average = {k.removeprefix("module."): v for k, v in state["average"].items()
               if k.startswith("module.")}
    assert set(saved) == set(average)
    for k, v in saved.items():
        torch.testing.assert_close(v, average[k], rtol=0, atol=0)
    assert any(not torch.equal(v, state["model"][k]) for k, v in saved.items())


def test_refuses_to_overwrite_a_run(tiny_run, train_stars, test_stars):
    with pytest.raises(FileExistsError, match="--resume"):
        train(PRESETS["smoke"], train_stars, test_stars, tiny_run, progress=False)


def test_train_config_validation():
    with pytest.raises(ValueError, match="p_full_spectrum"):
        TrainConfig(p_full_spectrum=1.5)
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(ema=1.0)
    with pytest.raises(ValueError, match="label_error_min"):
        TrainConfig(label_error_min=0.0)
    with pytest.raises(ValueError, match="few_scalars_max"):
        TrainConfig(p_few_scalars=0.2, few_scalars_max=0)
    with pytest.raises(ValueError, match="photometry_weight"):
        TrainConfig(photometry_weight=-0.5)


def test_dropping_absent_tokens_and_grouping_change_no_answer():
    """Tokens no star has are dropped, short contexts run apart: same features per star."""
    from probstar.train import forward_grouped

    net = ProbStarNet(SMALL).eval()
    v, s = random_batch(6)
    v[:3, N_SCALARS:] = torch.nan  # three stars without a spectrum
    query = torch.arange(4)
    with torch.no_grad():
        grouped, = forward_grouped(lambda a, b: (net(a, b, query),), v, s)
        alone = torch.cat([net(v[i:i + 1], s[i:i + 1], query) for i in range(6)])
        kept = net.decode(*net.memory(v, s, drop_absent=False), query)  # (a GPU's way)
    torch.testing.assert_close(grouped, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(kept, alone, atol=1e-5, rtol=1e-5)


def test_one_encoder_pass_gives_both_training_outputs():
    """The scalar features and the spectrum loss share the encoded star; each equals what
    its own pass per star gives."""
    from probstar.model.spectrum import SpectrumHead
    from probstar.train import encoded_outputs

    net = ProbStarNet(replace(SMALL, spectrum_layers=1)).eval()
    whole, sigmas = random_batch(6, seed=1)
    whole[:, N_SCALARS:] = torch.rand(6, N_PIXELS) + 0.5  # every star has a spectrum
    context = whole.clone()
    context[:3, N_SCALARS:] = torch.nan  # three are shown no pixel
    context[3:, N_SCALARS + 100:] = torch.nan  # three only the first 100
    query = torch.arange(4)
    with torch.no_grad():
        h, spectrum = encoded_outputs(net, context, sigmas, whole, sigmas, query, True)
        alone = torch.cat([net(context[i:i + 1], sigmas[i:i + 1], query) for i in range(6)])
        scored = ~torch.isfinite(context[:, N_SCALARS:])
        nll = torch.cat([SpectrumHead.loss(
            net.spectrum(*net.memory(context[i:i + 1], sigmas[i:i + 1])),
            whole[i:i + 1, N_SCALARS:], sigmas[i:i + 1, N_SCALARS:] ** 2, scored[i:i + 1])
            for i in range(6)])
        only_h, no_spectrum = encoded_outputs(net, context, sigmas, whole, sigmas, query)
        one_pass = encoded_outputs(net, context, sigmas, whole, sigmas, query, True,
                                   grouped=False)  # (a GPU's way)
    torch.testing.assert_close(h, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(spectrum, nll.sum() / scored.sum(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one_pass, (h, spectrum), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(only_h, h)
    assert no_spectrum is None


@pytest.mark.parametrize("setting, moves", [
    ({"freeze_encoder": True}, ("queries", "decoder.", "ln_out.", "outputs.")),
    ({"train_only": "outputs.flow"}, ("outputs.flow.",)),
])
def test_fine_tuning_moves_only_what_it_should(tiny_run, train_stars, test_stars, tmp_path,
                                               setting, moves):
    source, _, _ = load_checkpoint(tiny_run)
    cfg = replace(PRESETS["smoke"], epochs=1, batch_size=128, init_from=str(tiny_run),
                  **setting)
    run = train(cfg, train_stars, test_stars.select(slice(0, 50)), tmp_path / "ft",
                progress=False)
    tuned, _, _ = load_checkpoint(run)
    before, after = source.state_dict(), tuned.state_dict()
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith(moves))
    frozen = [n for n in before if not n.startswith(moves)]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)
    # a flow alone is scored (and its best epoch picked) by its joint log density
    record = json.loads((run / "learning_curve.jsonl").read_text().splitlines()[-1])
    assert ("joint_log_density" in record) == (moves == ("outputs.flow.",))


def test_reinit_restarts_the_named_weights(tiny_run):
    """``reinit`` parts keep a fresh network's initialisation, the rest comes from the
    run; a prefix that names nothing is an error."""
    source, _, _ = load_checkpoint(tiny_run)
    model = PRESETS["smoke"].model
    torch.manual_seed(1)
    fresh = ProbStarNet(model).state_dict()
    torch.manual_seed(1)
    net = ProbStarNet(model)
    _init_from(net, str(tiny_run), ("outputs.flow",))
    loaded, theirs = net.state_dict(), source.state_dict()
    flow = [n for n in loaded if n.startswith("outputs.flow.")]
    assert flow and all(torch.equal(loaded[n], fresh[n]) for n in flow)
    assert any(not torch.equal(loaded[n], theirs[n]) for n in flow)
    assert all(torch.equal(loaded[n], theirs[n]) for n in loaded if n not in flow)
    with pytest.raises(ValueError, match="reinit='outputs.flw' matches no parameter"):
        _init_from(ProbStarNet(model), str(tiny_run), ("outputs.flw",))


def test_checkpoints_are_picked_on_the_head_that_trains():
    net = ProbStarNet(SMALL)
    assert _scored_head(net) is None  # everything trains: the default answer
    for name, p in net.named_parameters():
        p.requires_grad_(name.startswith(("outputs.flow.", "spectrum.")))
    assert _scored_head(net) == "flow"
    net.outputs["mixture"].requires_grad_(True)
    assert _scored_head(net) is None


def test_tied_queries_follow_the_input_embedding():
    """A tied query is a function of its name's embedding weights: change them, it moves."""
    net = ProbStarNet(replace(SMALL, tied_queries=True)).eval()
    assert not hasattr(net, "queries")
    v, s = random_batch()
    teff = torch.tensor(index_of(["teff"]))
    with torch.no_grad():
        before = net(v, s, teff)
        net.scalars.bias[teff] += 1.0
        assert not torch.allclose(net(v, s, teff), before)


def test_dropped_and_input_only_names(train_stars, test_stars, tmp_path):
    """drop_names are never seen (ignored as inputs, refused as requests); input_only
    names are inputs but no target: asking for one is an unseen request, allowed (with a
    warning) only when queries are tied to the embeddings."""
    from probstar import load_model

    cfg = replace(PRESETS["smoke"], epochs=1, batch_size=128, drop_names="alpha_m,fe_h",
                  input_only="bp_rp",
                  model=replace(PRESETS["smoke"].model, tied_queries=True))
    run = train(cfg, train_stars, test_stars.select(slice(0, 50)), tmp_path / "h",
                progress=False)  # (its validation pass scores teff and logg only)
    model = load_model(run)
    assert "alpha_m" not in model.input_names and "alpha_m" not in model.trained_names
    assert set(model.scores(test_stars.select(slice(0, 50)))) == {"teff", "logg"}
    assert "bp_rp" in model.input_names and "bp_rp" not in model.trained_names
    with pytest.raises(ValueError, match="cannot predict 'alpha_m'"):
        model.posterior({"teff": [4500.0]}, "alpha_m")
    with pytest.warns(UserWarning, match="ignoring those inputs"):
        model.posterior({"teff": [4500.0], "alpha_m": [0.1]}, "logg")
    with pytest.warns(UserWarning, match="never a training target"):
        post = model.posterior({"teff": [4500.0]}, "bp_rp")
    assert np.isfinite(post.median()).all()
    with pytest.raises(ValueError, match="scalar names"):
        train(replace(cfg, drop_names="xp_500"), train_stars, test_stars, tmp_path / "x",
              progress=False)


def test_untied_model_refuses_unseen_requests(train_stars, test_stars, tmp_path):
    cfg = replace(PRESETS["smoke"], epochs=1, batch_size=128, input_only="bp_rp")
    from probstar import load_model

    model = load_model(train(cfg, train_stars, test_stars.select(slice(0, 50)),
                             tmp_path / "u", progress=False))
    with pytest.raises(ValueError, match="cannot predict 'bp_rp'"):
        model.posterior({"teff": [4500.0]}, "bp_rp")


def test_new_tokens_train_only_their_embedding_rows(train_stars, test_stars, tmp_path):
    """Adding a token: only the new name's embedding rows move, nothing else."""
    smoke = PRESETS["smoke"]
    tied = replace(smoke.model, tied_queries=True)
    base = train(replace(smoke, epochs=1, batch_size=128, drop_names="alpha_m", model=tied),
                 train_stars, test_stars.select(slice(0, 50)), tmp_path / "base",
                 progress=False)
    cfg = replace(smoke, epochs=1, batch_size=128, model=tied, init_from=str(base),
                  new_tokens="alpha_m", lr=1e-2)
    run = train(cfg, train_stars, test_stars.select(slice(0, 50)), tmp_path / "ft",
                progress=False)
    before, after = (load_checkpoint(r)[0].state_dict() for r in (base, run))
    (alpha,) = index_of(["alpha_m"])
    for name in ("scalars.weight", "scalars.bias"):
        moved = (before[name] != after[name]).flatten(1).any(1)
        assert moved[alpha] and moved.sum() == 1
    assert all(torch.equal(before[n], after[n]) for n in before if not n.startswith("scalars."))
    with pytest.raises(ValueError, match="new_tokens"):
        TrainConfig(new_tokens="alpha_m", freeze_encoder=True)
