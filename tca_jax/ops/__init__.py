"""Differentiable building blocks with their own VJPs."""

from tca_jax.ops.sparse_attention import plain_sparsify, sparsify

__all__ = ["plain_sparsify", "sparsify"]
