"""The n-gram hash that decontamination and MinHash share: one polynomial over a run of 64-bit values."""

from __future__ import annotations

import numpy as np

MIX = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime: mixes several 64-bit values into one


def window_hashes(values: np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of every run of n consecutive values (uint64), wrapping at 2^64; empty when fewer."""
    count = len(values) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    acc = np.zeros(count, dtype=np.uint64)
    for offset in range(n):
        acc = acc * MIX + values[offset : offset + count]
    return acc
