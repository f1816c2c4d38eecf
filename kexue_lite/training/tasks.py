"""make_batch: synthetic sequence tasks for the tiny Transformer (the training part, univae-attention-masks 8475).

``copy``, ``reverse``, ``sort`` (ascending), ``sort_desc``: ids ``(B, n)`` uniform over ``vocab`` symbols, targets
``(B, n)``. ``assoc_recall``: ``seq_len = 2P + 1`` tokens ``k_1 v_1 ... k_P v_P q`` with distinct keys from the first
``vocab // 2`` symbols, values from the rest, and ``q`` one of the keys; the target ``(B,)`` is q's value.
``uniae_copy``: ``x = (ids, segment_ids)`` for ``[CLS s ; BOS s]`` with ``s`` a random string of ``seq_len`` symbols,
``[CLS] = vocab``, ``[BOS] = vocab + 1`` (segment 0 for ``CLS s``, 1 for ``BOS s``); the target is ``s``.
"""

from __future__ import annotations

import torch

__all__ = ["make_batch", "TASKS"]

TASKS = ("copy", "reverse", "sort", "sort_desc", "assoc_recall", "uniae_copy")


def make_batch(task: str, batch_size: int, seq_len: int, vocab: int, generator: torch.Generator | None = None):
    """One batch ``(x, y)`` of ``task`` (int64 tensors on the CPU); see the module docstring for the layouts."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    for name, value, low in (("batch_size", batch_size, 1), ("seq_len", seq_len, 1), ("vocab", vocab, 2)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    g = generator
    if task == "assoc_recall":
        if seq_len < 3 or seq_len % 2 == 0:
            raise ValueError(f"seq_len must be 2P + 1 >= 3 for assoc_recall, got {seq_len}")
        P, n_keys = (seq_len - 1) // 2, vocab // 2
        if P > n_keys or vocab - n_keys < 1:
            raise ValueError(f"assoc_recall needs P = {P} distinct keys among vocab // 2 = {n_keys} symbols (and a value symbol)")
        keys = torch.argsort(torch.rand(batch_size, n_keys, generator=g), dim=1)[:, :P]
        values = torch.randint(n_keys, vocab, (batch_size, P), generator=g)
        pick = torch.randint(0, P, (batch_size,), generator=g)
        rows = torch.arange(batch_size)
        x = torch.stack([keys, values], dim=2).reshape(batch_size, 2 * P)
        x = torch.cat([x, keys[rows, pick][:, None]], dim=1)
        return x, values[rows, pick]
    s = torch.randint(0, vocab, (batch_size, seq_len), generator=g)
    if task == "copy":
        return s, s.clone()
    if task == "reverse":
        return s, s.flip(1)
    if task == "sort":
        return s, s.sort(dim=1).values
    if task == "sort_desc":
        return s, s.sort(dim=1, descending=True).values
    cls, bos = torch.full((batch_size, 1), vocab), torch.full((batch_size, 1), vocab + 1)
    ids = torch.cat([cls, s, bos, s], dim=1)
    segments = torch.cat([torch.zeros(batch_size, seq_len + 1, dtype=torch.long),
                          torch.ones(batch_size, seq_len + 1, dtype=torch.long)], dim=1)
    return (ids, segments), s.clone()
