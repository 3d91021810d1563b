"""tca-jax: temporal credit assignment in recurrent networks (BPTT, TBPTT, RTRL, UORO, SAB, TPTT),
in JAX. See README.md; the learners are in `tca_jax.learners`, the trainer in `tca_jax.train`."""

# The one place the version is written: setup.py reads it from here, CHANGELOG.md and
# CITATION.cff name it.
__version__ = "0.1.0"
