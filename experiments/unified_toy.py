"""Seed 003's toy studies (Liu & Liu 2021) on a 10-class subset: is sample count the only cause?

Case 1: the tenth class fixed, the other nine grown step by step; case 2: nine classes fixed,
the tenth shrunk. On CIFAR-10 the steps are 100 -> 5000 images; on digits-lt (here) 10 -> 110.
The `per_class` table of each step's trial has the accuracy of the fixed and the varied classes.
"Similar samples" variant: add --set train.mixup_alpha=1.0 (mixup makes images of mixed classes).

    # case 1 on digits, tenth class fixed at 10 images:
    for n in 10 30 60 110; do
      python -m ltray.sweep experiments/unified_toy.py --name toy1_$n \\
        --set data.counts=$n,$n,$n,$n,$n,$n,$n,$n,$n,10
    done
    # case 2: nine fixed at 110, the tenth shrunk
    for n in 110 60 30 10; do
      python -m ltray.sweep experiments/unified_toy.py --name toy2_$n \\
        --set data.counts=110,110,110,110,110,110,110,110,110,$n
    done
    # CIFAR-10: --set data.name=cifar10-lt model.name=resnet32 data.counts=...,100 (100 -> 5000)
"""

from ltray.config import DataConfig, Experiment, ModelConfig, Recipe, Resources, SearchConfig

EXPERIMENT = Experiment(
    name="unified_toy",
    data=DataConfig(name="digits-lt", counts=(110,) * 9 + (10,)),
    model=ModelConfig(name="cnn-small"),
    methods=("ce",),
    train=Recipe(epochs=30, batch_size=128, lr=0.1, weight_decay=5e-4, warmup_epochs=5),
    search=SearchConfig(num_samples=1),
    resources=Resources(num_workers=1, cpus_per_worker=1.0),
    repeats=3,
)
