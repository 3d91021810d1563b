"""PyTorch reference training steps for the speed ratios (the `[bench]` extra: `pip install torch`).

Two references, each one full training step on a copy-task batch (`T + 20` steps, one-hot inputs
over 10 symbols, cross-entropy over every step, gradient-norm clipping at 1.0 and Adam, as the
tca-jax default config):

* `lstm_bptt`: `nn.LSTM` (the fused cuDNN / oneDNN kernel) + `nn.Linear` readout, full BPTT.
* `sab`: an SAB-augmented LSTM written the way the original release is, a Python loop over
  `nn.LSTMCell` with the sparse top-k attention of Ke et al. 2018, Algorithm 1, evaluated step by
  step (no cached projections):

      h_hat, c = LSTMCell(x_t, (h, c))
      d_i = tanh(W1 m_i + W2 h_hat)         for every memory m_i
      a_i = w3 . d_i
      a~  = relu(a - a_(k_top + 1))         a_(k+1): the (k_top + 1)-th largest score
      s   = sum_i a~_i m_i / sum_i a~_i
      h   = h_hat + s;   y = V1 h + V2 s + b
      every k_att steps h joins the memories (kept in the graph, so gradients reach them);
      every k_trunc steps (h, c) are detached: local truncated BPTT.

  Paper choices left open, fixed here: with at most k_top memories every memory is attended
  (the threshold is the smallest score minus 1); the sum of a~ gets 1e-8 to avoid 0/0; before the
  first memory s = 0.

Torch is optional: `available()` is False without it and the benchmark shows no ratio.
`default_device()` is "cuda" where PyTorch sees a GPU (the step then ends with
`torch.cuda.synchronize()`), "cpu" otherwise, so that a GPU run compares like with like.
"""

from __future__ import annotations

import types
from typing import Callable, Dict, Optional

try:
  import torch
  from torch import nn
except ImportError:  # exercised when the [bench] extra is missing (as in CI)
  torch = None
  # The module classes below still need a base to be defined; `make_step` refuses to run.
  nn = types.SimpleNamespace(Module=object)

SYMBOLS = 10


def available() -> bool:
  return torch is not None


def set_threads(n: int) -> int:
  """Sets torch's intra-op threads to `n` (what XLA uses) and returns what torch reports."""
  torch.set_num_threads(n)
  return torch.get_num_threads()


def get_threads() -> int:
  return torch.get_num_threads()


def version() -> Optional[str]:
  return None if torch is None else torch.__version__


def default_device() -> str:
  """"cuda" where PyTorch sees a GPU, else "cpu"."""
  return "cuda" if torch is not None and torch.cuda.is_available() else "cpu"


def _copy_batch(length: int, batch: int, seed: int):
  """A copy-task batch `(inputs [T+20, B, 10] float, targets [T+20, B] long)`."""
  g = torch.Generator().manual_seed(seed)
  digits = torch.randint(1, 9, (batch, 10), generator=g)
  seq = torch.cat([digits, torch.zeros(batch, length - 1, dtype=torch.long),
                   torch.full((batch, 1), 9), torch.zeros(batch, 10, dtype=torch.long)], 1)
  targets = torch.cat([torch.zeros(batch, length + 10, dtype=torch.long), digits], 1)
  inputs = nn.functional.one_hot(seq.T, SYMBOLS).float()
  return inputs.contiguous(), targets.T.contiguous()


def _train_step(module: nn.Module, forward: Callable, inputs, targets, lr=1e-3, clip=1.0):
  opt = torch.optim.Adam(module.parameters(), lr=lr)

  def step():
    opt.zero_grad(set_to_none=True)
    logits = forward(inputs)  # [T, B, 10]
    loss = nn.functional.cross_entropy(logits.reshape(-1, SYMBOLS), targets.reshape(-1))
    loss.backward()
    nn.utils.clip_grad_norm_(module.parameters(), clip)
    opt.step()
    return loss

  return step


class LSTMReadout(nn.Module):
  def __init__(self, hidden: int):
    super().__init__()
    self.lstm = nn.LSTM(SYMBOLS, hidden)
    self.readout = nn.Linear(hidden, SYMBOLS)

  def forward(self, inputs):
    features, _ = self.lstm(inputs)
    return self.readout(features)


class SABLoop(nn.Module):
  """The SAB-augmented LSTM as a Python loop over `LSTMCell` (see the module docstring)."""

  def __init__(self, hidden: int, k_top: int, k_att: int, k_trunc: int):
    super().__init__()
    self.hidden, self.k_top, self.k_att, self.k_trunc = hidden, k_top, k_att, k_trunc
    self.cell = nn.LSTMCell(SYMBOLS, hidden)
    self.w1 = nn.Linear(hidden, hidden, bias=False)
    self.w2 = nn.Linear(hidden, hidden)
    self.w3 = nn.Linear(hidden, 1, bias=False)
    self.v1 = nn.Linear(hidden, SYMBOLS)
    self.v2 = nn.Linear(hidden, SYMBOLS, bias=False)

  def attend(self, h_hat, memories):
    mem = torch.stack(memories, 1)  # [B, M, H]
    d = torch.tanh(self.w1(mem) + self.w2(h_hat)[:, None])
    a = self.w3(d)[..., 0]  # [B, M]
    if mem.shape[1] > self.k_top:
      threshold = torch.topk(a, self.k_top + 1, dim=1).values[:, -1:]
    else:
      threshold = a.min(dim=1, keepdim=True).values - 1.0
    weights = torch.relu(a - threshold)
    weights = weights / (weights.sum(1, keepdim=True) + 1e-8)
    return torch.einsum("bm,bmh->bh", weights, mem)

  def forward(self, inputs):
    batch = inputs.shape[1]
    h = inputs.new_zeros(batch, self.hidden)
    c = inputs.new_zeros(batch, self.hidden)
    memories, outputs = [], []
    for t in range(inputs.shape[0]):
      if t % self.k_trunc == 0:
        h, c = h.detach(), c.detach()
      h_hat, c = self.cell(inputs[t], (h, c))
      s = self.attend(h_hat, memories) if memories else torch.zeros_like(h_hat)
      h = h_hat + s
      outputs.append(self.v1(h) + self.v2(s))
      if t % self.k_att == 0:
        memories.append(h)
    return torch.stack(outputs)


def make_step(kind: str, length: int, hidden: int, batch: int, seed: int = 0,
              sab_options: Optional[Dict[str, int]] = None,
              device: Optional[str] = None) -> Callable[[], None]:
  """A zero-argument function running one training step (`kind`: "lstm_bptt" or "sab") on
  `device` (default: `default_device()`); it returns when the step has finished."""
  if torch is None:
    raise RuntimeError("the PyTorch references need torch: pip install -e '.[bench]'")
  device = device or default_device()
  torch.manual_seed(seed)
  inputs, targets = (a.to(device) for a in _copy_batch(length, batch, seed))
  if kind == "lstm_bptt":
    module = LSTMReadout(hidden)
  elif kind == "sab":
    o = {"k_top": 5, "k_att": 10, "k_trunc": 10}
    o.update(sab_options or {})
    module = SABLoop(hidden, o["k_top"], o["k_att"], o["k_trunc"])
  else:
    raise ValueError(f"unknown torch reference {kind!r}; allowed: lstm_bptt, sab")
  module = module.to(device)
  step = _train_step(module, module, inputs, targets)
  sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

  def run():
    step()
    sync()  # on the CPU PyTorch is synchronous already

  return run
