"""tca-jax: temporal credit assignment in recurrent networks (BPTT, TBPTT, RTRL, UORO, SAB, TPTT),
in JAX. See README.md; the learners are in `tca_jax.learners`, the trainer in `tca_jax.train`."""
