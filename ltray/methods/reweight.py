"""Re-weighting by inverse class frequency: each sample's CE weighted by 1 / n_y (weights
normalised to sum to C). In expectation this is the balanced risk, so its logits carry no
training prior."""

from ltray.core.losses import inverse_frequency_weights
from ltray.methods import Method, register
from ltray.methods.ce import weighted_ce_loss


def _loss(counts, epochs, hp, teacher=None):
    return weighted_ce_loss(inverse_frequency_weights(counts).float())


METHOD = register(Method(
    name="reweight",
    summary="CE re-weighted by inverse class frequency",
    make_loss=_loss,
    balanced_logits=True,
))
