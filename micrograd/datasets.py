"""Toy data sets generated in code (no download, no NumPy), reproducible from a seed.

Each function returns ``(X, y)``: ``X`` a list of ``[x0, x1]`` float pairs, ``y`` a list of
labels. Binary sets use labels -1/+1, as Karpathy's demo does after ``y = y*2 - 1``.
"""
from __future__ import annotations

import math
import random
from typing import List, Tuple

Dataset = Tuple[List[List[float]], List[int]]


def make_moons(n_samples: int = 100, noise: float = 0.1, seed: int = 1337) -> Dataset:
    """Two interleaving half circles, as scikit-learn's make_moons draws them (its geometry,
    not its random stream): the first half of the points on the upper moon (label -1), the
    rest on the lower one (label +1), Gaussian noise of std ``noise``, then shuffled."""
    if n_samples < 2:
        raise ValueError(f"make_moons needs at least 2 samples, got {n_samples}")
    rng = random.Random(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    X: List[List[float]] = []
    y: List[int] = []
    for i in range(n_out):
        t = math.pi * i / (n_out - 1) if n_out > 1 else 0.0
        X.append([math.cos(t), math.sin(t)])
        y.append(-1)
    for i in range(n_in):
        t = math.pi * i / (n_in - 1) if n_in > 1 else 0.0
        X.append([1.0 - math.cos(t), 1.0 - math.sin(t) - 0.5])
        y.append(1)
    for point in X:
        point[0] += rng.gauss(0.0, noise)
        point[1] += rng.gauss(0.0, noise)
    order = list(range(n_samples))
    rng.shuffle(order)
    return [X[i] for i in order], [y[i] for i in order]
