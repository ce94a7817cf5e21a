"""Multi-expert methods (SADE, RIDE, BalPoE): each loss against a per-example brute force in
float64 written from the authors' formulas, the model's shapes, and a trial's stored expert logits."""

import math

import numpy as np
import pytest
import torch

from ltray.core.losses import (balpoe_loss, balpoe_taus, inverse_prior, ride_class_temperature, ride_loss,
                               sade_loss)
from ltray.errors import LtrayError
from ltray.models import Experts, build_model

COUNTS = torch.tensor([40.0, 20.0, 8.0, 3.0], dtype=torch.float64)
PRIOR = COUNTS / COUNTS.sum()


def _data(e=3, n=7, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, e, c, generator=g, dtype=torch.float64), torch.randint(0, c, (n,), generator=g)


def _ce(z, y):  # one example's cross-entropy
    return -z[y] + math.log(sum(math.exp(v) for v in z))


def test_inverse_prior_reverses_the_ranks():
    p = torch.tensor([0.1, 0.6, 0.05, 0.25])
    assert inverse_prior(p).tolist() == pytest.approx([0.25, 0.05, 0.6, 0.1])  # the commonest gets the rarest's


def test_sade_loss_is_ce_plus_balanced_plus_inverse():
    z, y = _data()
    tau, inv = 2.0, inverse_prior(PRIOR)
    want = 0.0
    for i in range(len(y)):
        lp = [math.log(p + 1e-9) for p in PRIOR.tolist()]
        li = [math.log(p + 1e-9) for p in inv.tolist()]
        want += _ce(z[i, 0].tolist(), y[i]) / len(y)
        want += _ce([a + b for a, b in zip(z[i, 1].tolist(), lp)], y[i]) / len(y)
        want += _ce([a + b - tau * c for a, b, c in zip(z[i, 2].tolist(), lp, li)], y[i]) / len(y)
    assert sade_loss(z, y, PRIOR, tau).item() == pytest.approx(want, rel=1e-12)
    with pytest.raises(LtrayError, match=r"\(N, E, C\) logits with E = 3"):
        sade_loss(z[:, :2], y, PRIOR)


def test_ride_loss_is_ldam_per_expert_plus_the_kl_diversity_term():
    cos, y = _data(e=3)
    cos = torch.tanh(cos)
    s, max_m, div, temp = 30.0, 0.5, -0.45, 1.5
    w = torch.tensor([0.5, 0.8, 1.2, 1.5], dtype=torch.float64)
    ct = ride_class_temperature(COUNTS)
    m = COUNTS ** -0.25
    m = (m * max_m / m.max()).tolist()
    for weight, class_t in ((None, None), (w, ct)):
        t = [temp * (1.0 if class_t is None else float(class_t[c])) for c in range(4)]
        t_mean = sum(t) / len(t)
        ce_sum, kl_sum = 0.0, 0.0
        for k in range(3):
            num, den = 0.0, 0.0
            for i in range(len(y)):
                zk = [s * v for v in cos[i, k].tolist()]
                zm = [v - (s * m[c] if c == y[i] else 0.0) for c, v in enumerate(zk)]
                wi = 1.0 if weight is None else float(weight[y[i]])
                num += wi * _ce(zm, int(y[i]))
                den += wi
                zbar = [s * sum(cos[i, j, c].item() for j in range(3)) / 3 for c in range(4)]
                p = torch.softmax(torch.tensor([a / b for a, b in zip(zbar, t)], dtype=torch.float64), 0).tolist()
                q = torch.softmax(torch.tensor([a / b for a, b in zip(zk, t)], dtype=torch.float64), 0).tolist()
                kl_sum += sum(pc * (math.log(pc) - math.log(qc)) for pc, qc in zip(p, q)) / len(y)
            ce_sum += num / den  # weighted CE's mean: sum w_i l_i / sum w_i
        want = ce_sum + div * t_mean ** 2 * kl_sum
        got = ride_loss(cos, y, COUNTS, max_m, s, weight, div, temp, class_t).item()
        assert got == pytest.approx(want, rel=1e-9)


def test_ride_class_temperature_is_the_authors():
    n = COUNTS
    w = 4 * n / n.sum() * 0.05 + 0.95
    assert ride_class_temperature(COUNTS).tolist() == pytest.approx((w / w.max()).tolist())


def test_balpoe_loss_is_the_mean_of_logit_adjusted_losses():
    z, y = _data(e=3)
    taus = balpoe_taus(3)
    assert taus.tolist() == [0.0, 1.0, 2.0] and taus.mean() == 1.0
    want = 0.0
    for k, tau in enumerate(taus.tolist()):
        for i in range(len(y)):
            want += _ce([a + tau * math.log(p + 1e-9) for a, p in zip(z[i, k].tolist(), PRIOR.tolist())], y[i])
    assert balpoe_loss(z, y, PRIOR, taus).item() == pytest.approx(want / len(y) / 3, rel=1e-12)


def test_balpoe_refuses_taus_that_do_not_average_one():
    from ltray.methods import get_method

    m = get_method("balpoe")
    with pytest.raises(LtrayError, match="average 1"):
        m.make_loss(COUNTS.float(), 10, m.hp({"tau_max": 3.0}))


@pytest.mark.parametrize("name,channels,size", [("resnet32", 3, 32), ("cnn-small", 1, 8), ("cnn-tiny", 1, 28)])
def test_experts_share_a_trunk_and_average_in_eval(name, channels, size):
    torch.manual_seed(0)
    net = build_model(name, 5, channels, "cosine", experts=3)
    x = torch.randn(4, channels, size, size)
    assert isinstance(net, Experts) and net.train()(x).shape == (4, 3, 5)
    net.eval()
    assert torch.allclose(net(x), net.expert_logits(x).mean(1))
    single = sum(p.numel() for p in build_model(name, 5, channels).parameters())
    assert single < sum(p.numel() for p in net.parameters()) < 3 * single  # shared trunk, 0.75-wide branches
    with pytest.raises(LtrayError, match="no multi-expert form"):
        build_model("linear", 5, 1, experts=3, in_dim=2)


def test_a_multi_expert_trial_stores_each_experts_logits(tmp_path):
    from ltray import results as R
    from ltray.config import Experiment, Recipe
    from ltray.sweep.trial import LocalApi, TrialSpec, train_trial

    exp = Experiment(name="ex", methods=("sade",), train=Recipe(epochs=1, warmup_epochs=0, batch_size=64))
    train_trial(TrialSpec.build(exp, str(tmp_path), "t", "sade", {}, 0), LocalApi(), 0, 0)
    tabs = R.load_study(str(tmp_path), ("logits", "expert_logits", "shifts", "trials"))
    ex, lg = tabs["expert_logits"].to_pylist(), tabs["logits"].to_pylist()
    assert {r["expert"] for r in ex} == {0, 1, 2} and {r["split"] for r in ex} == {"val", "test"}
    for split in ("val", "test"):
        mean = np.mean([[r["logits"] for r in ex if r["split"] == split and r["expert"] == e] for e in range(3)], axis=0)
        stored = np.array([r["logits"] for r in lg if r["split"] == split])
        np.testing.assert_allclose(mean, stored, rtol=1e-5, atol=1e-5)  # the trial's logits are the experts' mean
    # SADE's test-time aggregation on every shifted set, marked transductive where it is shown
    from ltray.core.longtail import shift_names
    from ltray.report import render
    from ltray.report.layouts import shifts_report

    tta = [r for r in tabs["shifts"].to_pylist() if r["adjustment"] == "sade_tta"]
    assert sorted(r["shift"] for r in tta) == sorted(n for n, _, _ in shift_names())
    assert all(0 <= r["accuracy"] <= 1 for r in tta)
    text = "\n".join(render.text_lines(shifts_report(tabs)))
    assert "sade_tta is transductive" in text and "mean" in text


def test_the_experts_table_is_one_definition_everywhere(tmp_path):
    """The report's "mean" expert row is the trials table's test balanced accuracy (the method's
    prediction), and the dashboard shows the report's numbers."""
    from dashboard.compare import expert_rows
    from ltray import results as R
    from ltray.config import Experiment, Recipe
    from ltray.report import expert_table
    from ltray.sweep.trial import LocalApi, TrialSpec, train_trial

    exp = Experiment(name="ex", methods=("balpoe",), train=Recipe(epochs=1, warmup_epochs=0, batch_size=64))
    for seed in (0, 1):
        train_trial(TrialSpec.build(exp, str(tmp_path), f"t{seed}", "balpoe", {}, seed), LocalApi(), 0, 0)
    tabs = R.load_study(str(tmp_path), ("trials", "expert_logits", "per_class"))
    rows = expert_table(tabs)
    assert [r["expert"] for r in rows] == ["0", "1", "2", "mean (the prediction)"]
    trials = tabs["trials"].to_pylist()
    assert rows[-1]["bal_acc"]["mean"] == pytest.approx(np.mean([t["test_bal_acc"] for t in trials]), abs=1e-6)
    shifts = R.load_study(str(tmp_path), ("shifts",))["shifts"].to_pylist()  # the same mean as the shifts table's
    none = [r["accuracy"] for r in shifts if r["adjustment"] == "none"]
    assert rows[-1]["shifts"]["mean"] == pytest.approx(np.mean(none), abs=1e-6)
    board = expert_rows(tabs)
    assert board[-1]["bal_acc"].startswith(f"{rows[-1]['bal_acc']['mean'] * 100:.1f}%")


def _ddp_rank(rank: int, world: int, port: int, out: str) -> None:
    import os

    import torch.distributed as dist

    from ltray.config import Recipe
    from ltray.datasets import DataConfig, load_data
    from ltray.train import fit

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        data = load_data(DataConfig(name="digits-lt", rho=100))
        res = fit(data, "sade", None, "cnn-small", Recipe(epochs=1, warmup_epochs=0, batch_size=64), seed=0)
        if rank == 0:
            torch.save({"test": torch.from_numpy(res.expert_logits["test"]), "mean": torch.from_numpy(res.test_logits),
                        "views": len(res.test_views)}, out)
    finally:
        dist.destroy_process_group()


def test_a_multi_expert_model_trains_under_ddp(tmp_path):
    """Two gloo ranks train SADE's three experts in DDP (every branch gets gradients, so DDP needs
    no unused-parameter search); rank 0 leaves each expert's logits, their mean the trial's."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_ddp_rank, args=(2, port, out), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    assert got["test"].shape[1:] == (3, 10) and got["views"] == 5
    assert torch.allclose(got["test"].mean(1), got["mean"], atol=1e-4)
