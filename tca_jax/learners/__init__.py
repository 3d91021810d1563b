"""Credit-assignment rules behind one protocol (`learners.base`); `get(name, **options)`."""

from tca_jax.learners.base import Aux, CarriedState, Learner, window_loss
from tca_jax.learners.bptt import BPTT, TBPTT
from tca_jax.learners.eligibility import EProp, RFLO
from tca_jax.learners.sab import SAB
from tca_jax.learners.frozen import Frozen
from tca_jax.learners.kf_rtrl import KFRTRL
from tca_jax.learners.online_diag import OnlineDiag
from tca_jax.learners.replay import Replay
from tca_jax.learners.rtrl import RTRL
from tca_jax.learners.snap1 import SnAp1
from tca_jax.learners.uoro import UORO
from tca_jax.learners.tptt import TPTT, TPTTHx
from tca_jax.registry import Registry

REGISTRY = Registry("learner", "learner.name")
REGISTRY.register(BPTT.NAME)(BPTT)
REGISTRY.register(TBPTT.NAME)(TBPTT)
REGISTRY.register(SAB.NAME)(SAB)
REGISTRY.register(Replay.NAME)(Replay)
for _cls in (RTRL, UORO, KFRTRL, SnAp1):  # forward-mode online learners
  REGISTRY.register(_cls.NAME)(_cls)
REGISTRY.register(TPTT.NAME)(TPTT)
REGISTRY.register(TPTTHx.NAME)(TPTTHx)
for _cls in (RFLO, EProp, OnlineDiag):  # eligibility-trace rules
  REGISTRY.register(_cls.NAME)(_cls)

get = REGISTRY.get
names = REGISTRY.names
register = REGISTRY.register

__all__ = ["Aux", "CarriedState", "Learner", "BPTT", "TBPTT", "RTRL", "UORO", "KFRTRL", "SnAp1",
           "SAB", "TPTT", "TPTTHx", "RFLO", "EProp", "OnlineDiag",
           "Replay", "Frozen", "get", "names", "register", "window_loss"]
