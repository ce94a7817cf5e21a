"""The benchmark that can tell methods apart: Fashion-MNIST-LT (real 28x28 images), rho = 100,
every method at its published defaults, 5 paired seeds (seed k: training subset k and initial
weights k for every method), test evaluated every epoch for the protocol-gap report.

    sudo apt-get install -y dataset-fashion-mnist      # Debian's Fashion-MNIST idx files
    python -m ltray.sweep experiments/fashion_lt.py
    python -m ltray.report results/fashion_lt --table paired

CE + post-hoc LA, CE + tau-normalisation and PC softmax come from the CE trials' own logits.
The README's table is these 9 methods (about an hour on 2 CPU cores). All 22 registered methods,
the 13 added since included (about 2.5 hours):

    python -m ltray.sweep experiments/fashion_lt.py --name fashion_lt_all --set search.num_samples=22 \
        methods=ce,logit_adjusted,balanced_softmax,lade,ldam_drw,equalization,dive,crt,mixup,focal,cb_ce,cb_focal,reweight,drs,bsce_cbs,lws,ce_wd,wb,remix,ride,sade,balpoe
"""

from ltray.config import DataConfig, Experiment, ModelConfig, Recipe, Resources, SearchConfig

METHODS = ("ce", "logit_adjusted", "balanced_softmax", "lade", "ldam_drw", "equalization", "dive", "crt", "mixup")

EXPERIMENT = Experiment(
    name="fashion_lt",
    data=DataConfig(name="fashion-mnist-lt", rho=100),
    # cnn-tiny: ~2 M multiply-adds per image; 20 epochs of 14,837 images take ~100 s on one core
    model=ModelConfig(name="cnn-tiny"),
    methods=METHODS,
    # LDAM-DRW's CIFAR schedule shrunk to 20 epochs: warm-up 2, lr x0.1 at 80% and 90% (DRW at 80%)
    train=Recipe(epochs=20, batch_size=128, lr=0.1, warmup_epochs=2, weight_decay=5e-4, track_test=True),
    search=SearchConfig(num_samples=len(METHODS)),  # each method once, at its published defaults
    repeats=5,
    repeat_subsets=True,
    # one trial per core, in its Tune process (no Train worker group: ~14 s less per trial)
    resources=Resources(num_workers=1, cpus_per_worker=1.0, in_process=True),
)
