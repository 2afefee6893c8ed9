"""PDF heads and the Posterior built on them: shapes, exact deconvolution, modes, quantiles."""

import numpy as np
import pyro.distributions as pdist
import pytest
import torch

from probstar.model import MARGINAL_HEADS, ModelConfig, ProbStarNet, make_head
from probstar.posterior import Posterior
from probstar.train import _draw, head_losses, joint_subsets

TINY = ModelConfig(dim=16, heads=2, components=3)


@pytest.mark.parametrize("name", MARGINAL_HEADS)
def test_marginal_head_contract(name):
    head = make_head(name, TINY)
    h = torch.randn(7, 3, 16, requires_grad=True)
    d = head(h)
    assert d.batch_shape == (7, 3)
    assert d.sample((4,)).shape == (4, 7, 3)
    loss = head.loss(h, torch.randn(7, 3), torch.zeros(7, 3)).mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    # label noise widens the predictive distribution of the measurement
    assert torch.all(head(h, torch.full((7, 3), 4.0)).variance > d.variance)


def test_mixture_deconvolution_is_exact():
    """The noisy-label likelihood equals the true-value PDF convolved with the noise."""
    head = make_head("mixture", TINY)
    h = torch.randn(1, 1, 16)
    noise_var = torch.tensor([[0.3]])
    y = torch.tensor([[0.7]])
    true = head(h)
    t = torch.linspace(-15, 15, 60001, dtype=torch.float64).view(-1, 1, 1)
    integrand = true.log_prob(t.float()).double().exp() * torch.distributions.Normal(
        t, noise_var.sqrt().double()).log_prob(y.double()).exp()
    numeric = torch.trapezoid(integrand.squeeze(), t.squeeze())
    assert torch.isclose(head(h, noise_var).log_prob(y).double().exp().squeeze(), numeric,
                         rtol=1e-4)


def _flow(h: torch.Tensor, trained: bool = True):
    """The flow head's joint PDF for features ``h`` on a tiny network's mixture base;
    ``trained``: layers moved off their identity start, as training would."""
    net = ProbStarNet(TINY)
    if trained:
        with torch.no_grad():
            for p in net.outputs["flow"].parameters():
                p.add_(0.05 * torch.randn_like(p))
    return net, net.distribution("flow", h)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_flow_head_is_a_joint_distribution(d):
    h = torch.randn(5, d, 16, requires_grad=True)
    net, dist = _flow(h)
    assert dist.batch_shape == (5,) and dist.event_shape == (d,)
    x = dist.sample((3,))
    assert x.shape == (3, 5, d)
    assert dist.log_prob(x).shape == (3, 5) and torch.isfinite(dist.log_prob(x)).all()
    (-dist.log_prob(torch.randn(5, d))).mean().backward()
    assert h.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.outputs["mixture"].parameters())  # base fixed


def test_untrained_flow_is_the_independent_mixture():
    """Every layer starts as the identity: the joint PDF is the product of the mixture's."""
    h = torch.randn(4, 3, 16)
    net, dist = _flow(h, trained=False)
    x = torch.randn(6, 4, 3)
    mixture = net.distribution("mixture", h).log_prob(x).sum(-1)
    assert torch.allclose(dist.log_prob(x), mixture, atol=1e-4)


def test_flow_density_integrates_to_one():
    _, dist = _flow(torch.randn(2, 1, 16))
    t = torch.linspace(-30, 30, 20001)
    p = dist.log_prob(t.view(-1, 1, 1).expand(-1, 2, 1)).exp()
    assert torch.allclose(torch.trapezoid(p, t, dim=0), torch.ones(2), atol=2e-3)


def test_flow_refuses_too_many_names():
    with pytest.raises(ValueError, match="1 to 4 names"):
        _flow(torch.randn(2, 5, 16))


def test_flow_needs_its_base_head():
    with pytest.raises(ValueError, match="needs the mixture head"):
        ModelConfig(dim=16, heads=2, outputs=("gaussian", "flow"))


def _two_peaks() -> Posterior:
    """logg-like: 90% near 1.2 (sd 0.3), 10% near 4.6 (sd 0.15), in a scaled frame."""
    mix = pdist.MixtureSameFamily(pdist.Categorical(torch.tensor([[[0.9, 0.1]]])),
                                  pdist.Normal(torch.tensor([[[-1.0, 2.4]]]),
                                               torch.tensor([[[0.3, 0.15]]])))
    return Posterior.independent(mix, ["logg"], torch.tensor([2.2]), torch.tensor([1.0]))


def test_modes_and_weights_of_a_bimodal_answer():
    (peaks,) = _two_peaks().modes("logg")
    assert len(peaks) == 2
    (m1, w1), (m2, w2) = peaks
    assert abs(m1 - 1.2) < 0.02 and abs(w1 - 0.9) < 0.01
    assert abs(m2 - 4.6) < 0.02 and abs(w2 - 0.1) < 0.01


def test_mixture_quantiles_match_draws():
    post = _two_peaks()
    draws = post.sample(200_000, seed=1)[:, 0, 0]
    for q in (0.05, 0.5, 0.8, 0.95):  # (0.9 falls in the flat gap between the peaks)
        assert abs(post.quantile(q)[0, 0] - np.quantile(draws, q)) < 0.03
    assert abs(post.mean()[0, 0] - draws.mean()) < 0.01
    x = np.linspace(-1, 7, 4001)
    assert abs(np.trapezoid(post.pdf("logg", x)[0], x) - 1) < 1e-3


def test_joint_posterior_summaries_are_seeded_and_consistent():
    _, dist = _flow(torch.randn(3, 2, 16))
    post = Posterior(dist, ["teff", "logg"], torch.tensor([5000.0, 3.0]),
                     torch.tensor([500.0, 1.0]), n_mc=4000)
    assert post.joint and "joint" in repr(post)
    np.testing.assert_array_equal(post.median(), post.quantile(0.5))
    again = Posterior(dist, post.names, post.loc, post.scale, n_mc=4000)
    np.testing.assert_array_equal(post.median(), again.median())  # deterministic
    x = post.grid("logg")
    assert abs(np.trapezoid(post.pdf("logg", x), x, axis=1) - 1).max() < 0.02
    assert sum(w for _, w in post.modes("logg")[0]) == pytest.approx(1, abs=1e-6)
    assert post.log_prob(post.sample(2, seed=0)).shape == (2, 3)
    with pytest.raises(KeyError, match="not requested"):
        post.modes("fe_h")
    with pytest.raises(ValueError, match="finite"):
        post.log_prob(np.full((3, 2), np.nan))


def test_one_name_flow_density_is_exact():
    """A flow answer over one name is its own marginal: its density is the flow's
    log_prob (not a kernel estimate), normalised, and its modes' weights sum to 1."""
    _, dist = _flow(torch.randn(3, 1, 16))
    post = Posterior(dist, ["logg"], torch.tensor([3.0]), torch.tensor([1.0]))
    x = post.grid("logg")
    exact = np.exp(post.log_prob(x.T[..., None])).T
    np.testing.assert_allclose(post.pdf("logg", x), exact, rtol=1e-6)
    assert abs(np.trapezoid(exact, x, axis=1) - 1).max() < 2e-3
    assert sum(w for _, w in post.modes("logg")[0]) == pytest.approx(1, abs=1e-6)


def test_joint_subsets_draw_from_eligible_columns_only():
    g = torch.Generator().manual_seed(0)
    eligible = torch.rand(500, 4, generator=g) < 0.6
    groups = joint_subsets(eligible, 4, g)
    rows = torch.cat([r for r, _ in groups])
    assert sorted(rows.tolist()) == eligible.any(1).nonzero().flatten().tolist()
    sizes = set()
    for r, cols in groups:
        assert eligible[r[:, None], cols].all()  # only eligible columns
        assert (cols.diff(dim=1) > 0).all()  # distinct, in increasing order
        sizes.add(cols.shape[1])
    assert sizes == {1, 2, 3, 4}


@pytest.mark.parametrize("inverse", [False, True])
def test_sync_free_spline_equals_nflows(inverse):
    """The flow head's spline gives nflows' numbers, tails included, and its gradients."""
    from nflows.transforms.splines.rational_quadratic import \
        unconstrained_rational_quadratic_spline

    from probstar.model.spline import rational_quadratic_spline

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(5000, generator=g) * 4).requires_grad_()  # ~20% beyond the bound
    w, h = (torch.randn(5000, 8, generator=g) for _ in range(2))
    d = torch.randn(5000, 7, generator=g).requires_grad_()
    ours = rational_quadratic_spline(x, w, h, d, inverse=inverse, bound=5.0)
    theirs = unconstrained_rational_quadratic_spline(x, w, h, d.clone(), inverse=inverse,
                                                     tails="linear", tail_bound=5.0)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    grads = [torch.autograd.grad(sum(o.sum() for o in out), (x, d))
             for out in (ours, theirs)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # summation order
    there = rational_quadratic_spline(ours[0].detach(), w, h, d.detach(),
                                      inverse=not inverse, bound=5.0)
    torch.testing.assert_close(there[0], x.detach(), atol=1e-3, rtol=0)  # a bijection
    torch.testing.assert_close(there[1], -ours[1].detach(), atol=1e-3, rtol=0)


def test_mixture_draws_for_missing_labels_follow_the_mixture():
    net = ProbStarNet(TINY)
    h = torch.randn(1, 2, 16).expand(40000, 2, 16)
    draws = _draw(net.outputs["mixture"], h, torch.Generator().manual_seed(0))
    pdf = net.outputs["mixture"](h[:1])
    assert draws.shape == (40000, 2)
    se = pdf.stddev[0] / 200
    assert torch.all((draws.mean(0) - pdf.mean[0]).abs() < 4 * se)
    assert torch.allclose(draws.std(0), pdf.stddev[0], rtol=0.03)


def test_flow_loss_scores_missing_labels_as_mixture_draws():
    """A star with no label of the joint names still trains the flow (on draws from the
    mixture); the 1-D heads score only the labels that exist."""
    net = ProbStarNet(TINY)
    h, y, var = torch.randn(8, 3, 16), torch.zeros(8, 3), torch.zeros(8, 3)
    none = torch.zeros(8, 3, dtype=torch.bool)
    joint = torch.arange(3)
    plain = head_losses(net, h, y, var, none, joint, torch.Generator().manual_seed(0))
    imputed = head_losses(net, h, y, var, none, joint, torch.Generator().manual_seed(0),
                          missing=~none)
    assert plain["flow"] == 0 and imputed["flow"] != 0 and torch.isfinite(imputed["flow"])
    assert imputed["mixture"] == plain["mixture"] == 0


def test_target_weights_scale_the_marginal_losses_only():
    """A column's weight scales its share of the 1-D heads' mean NLL (the count of scored
    labels stays the divisor); the flow's loss does not change."""
    net = ProbStarNet(TINY)
    h, y, var = torch.randn(8, 3, 16), torch.randn(8, 3), torch.zeros(8, 3)
    hidden, joint = torch.ones(8, 3, dtype=torch.bool), torch.arange(2)

    def losses(weight=None, scored=hidden):
        return head_losses(net, h, y, var, scored, joint, torch.Generator().manual_seed(0),
                           weight=weight)

    plain, ones = losses(), losses(torch.ones(3))
    no_third = losses(torch.tensor([1.0, 1.0, 0.0]))
    without = losses(scored=hidden & (torch.arange(3) < 2))
    for head in ("gaussian", "mixture"):
        torch.testing.assert_close(ones[head], plain[head])
        torch.testing.assert_close(no_third[head], without[head] * 2 / 3)
    torch.testing.assert_close(no_third["flow"], plain["flow"])
