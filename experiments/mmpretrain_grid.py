"""mmpretrain's logit adjustment grid: CIFAR-10-LT at rho 200, 100, 50, 10 with the baseline (CE),
post-hoc adjustment (read from the baseline's stored logits: no retraining) and loss adjustment.
One study per rho (CIFAR-100-LT: add data.name=cifar100-lt):

    for rho in 200 100 50 10; do
      python -m ltray.sweep experiments/mmpretrain_grid.py --set data.rho=$rho --name mmp_c10_rho$rho
      python -m ltray.report results/mmp_c10_rho$rho
    done

The report's "test + post-hoc" column of the ce row is the post-hoc adjustment (tau* on
validation; tau = 1 is the trials table's test_bal_acc_posthoc_tau1).
"""

from ltray.config import DataConfig, Experiment, ModelConfig, Recipe, Resources, SearchConfig

EXPERIMENT = Experiment(
    name="mmpretrain_grid",
    data=DataConfig(name="cifar10-lt", rho=100, root="data"),
    model=ModelConfig(name="resnet32"),
    methods=("ce", "logit_adjusted"),
    train=Recipe(epochs=200, batch_size=128, lr=0.1, weight_decay=2e-4, warmup_epochs=5, milestones=(0.8, 0.9)),
    search=SearchConfig(num_samples=2),
    resources=Resources(num_workers=1, cpus_per_worker=1.0),
)
