"""Credit-assignment rules behind one protocol (`learners.base`); `get(name, **options)`."""

from tca_jax.learners.base import Aux, CarriedState, Learner, window_loss
from tca_jax.learners.bptt import BPTT, TBPTT
from tca_jax.registry import Registry

REGISTRY = Registry("learner", "learner.name")
REGISTRY.register(BPTT.NAME)(BPTT)
REGISTRY.register(TBPTT.NAME)(TBPTT)

get = REGISTRY.get
names = REGISTRY.names
register = REGISTRY.register

__all__ = ["Aux", "CarriedState", "Learner", "BPTT", "TBPTT", "get", "names", "register",
           "window_loss"]
