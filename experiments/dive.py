"""DiVE (He et al. ICCV 2021) on CIFAR-100-LT, rho = 100: a balanced-softmax teacher trained once,
then students searched over the temperature tau, power p and distillation weight a.

    python -m ltray.sweep experiments/dive.py            # needs data/cifar-100-python (and a GPU to be quick)
    python -m ltray.sweep experiments/dive.py --set data.name=digits-lt model.name=cnn-small train.epochs=30

The seed's recipe: ResNet-32, 200 epochs, batch 128, SGD momentum 0.9, weight decay 2e-4,
lr 0.1 with 5 warm-up epochs, x0.01 at epochs 120 and 160. Published: 45.4 - 45.5 top-1.
On GPUs: --set resources.gpus_per_worker=0.25 packs four trials per GPU.
"""

from ltray.config import DataConfig, Experiment, ModelConfig, Recipe, Resources, SearchConfig

EXPERIMENT = Experiment(
    name="dive",
    data=DataConfig(name="cifar100-lt", rho=100, root="data"),
    model=ModelConfig(name="resnet32"),
    methods=("dive",),
    train=Recipe(epochs=200, batch_size=128, lr=0.1, momentum=0.9, weight_decay=2e-4, warmup_epochs=5,
                 schedule="multistep", milestones=(0.6, 0.8), gamma=0.01),  # 120 and 160 of 200
    search=SearchConfig(num_samples=16),  # the published defaults (tau 3, p 0.5, a 0.5) first, then TPE
    resources=Resources(num_workers=1, cpus_per_worker=1.0),
)
