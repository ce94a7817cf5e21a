"""LADE's shifted-test study (Hong et al. CVPR 2021): CE, PC softmax (CE + the target prior),
balanced softmax and LADE on the 11 shifted test label distributions of CIFAR-100-LT (rho 100),
with the target prior known (PC), estimated (EM, BBSE) and ignored. Every trial stores all of it
in its `shifts` table; PC softmax is the CE trial's `pc_true` row.

    python -m ltray.sweep experiments/lade_shift.py
    python -m ltray.report results/lade_shift --table shifts
    # here, without CIFAR:
    python -m ltray.sweep experiments/lade_shift.py --set data.name=digits-lt model.name=cnn-small train.epochs=30
"""

from ltray.config import DataConfig, Experiment, ModelConfig, Recipe, Resources, SearchConfig

METHODS = ("ce", "balanced_softmax", "lade")

EXPERIMENT = Experiment(
    name="lade_shift",
    data=DataConfig(name="cifar100-lt", rho=100, root="data"),
    model=ModelConfig(name="resnet32"),
    methods=METHODS,
    train=Recipe(epochs=200, batch_size=128, lr=0.1, weight_decay=2e-4, warmup_epochs=5, milestones=(0.8, 0.9)),
    search=SearchConfig(num_samples=len(METHODS)),  # LADE at its CIFAR defaults: alpha 0.1, lambda 0.01
    resources=Resources(num_workers=1, cpus_per_worker=1.0),
)
