"""The toy data sets: reproducible from a seed, the shapes they claim, labels -1/+1, checked inputs."""
import math
import random

import pytest

from micrograd import datasets
from micrograd.datasets import DATASETS, make_circles, make_moons, make_spirals, make_xor

ALL = sorted(DATASETS)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_data_other_seed_other_data(name):
    make = DATASETS[name]
    assert make(n_samples=40, seed=3) == make(n_samples=40, seed=3)
    assert make(n_samples=40, seed=3) != make(n_samples=40, seed=4)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n", [2, 7, 100])
def test_sizes_and_labels(name, n):
    X, y = DATASETS[name](n_samples=n)
    assert len(X) == len(y) == n
    assert all(len(p) == 2 and all(type(c) is float for c in p) for p in X)
    assert set(y) <= {-1, 1}


@pytest.mark.parametrize("name", ["moons", "circles", "spirals"])
def test_two_halves(name):
    _, y = DATASETS[name](n_samples=101)
    assert (y.count(-1), y.count(1)) == (50, 51)


@pytest.mark.parametrize("name", ALL)
def test_does_not_touch_the_global_random_state(name):
    random.seed(42)
    expected = random.random()
    random.seed(42)
    DATASETS[name]()
    assert random.random() == expected


def test_moons_without_noise_lie_on_the_two_half_circles():
    X, y = make_moons(n_samples=40, noise=0.0)
    for (a, b), label in zip(X, y):
        if label == -1:  # upper moon: the unit half circle around (0, 0)
            assert math.hypot(a, b) == pytest.approx(1.0) and b >= -1e-12
        else:  # lower moon: the unit half circle around (1, 0.5), below its centre
            assert math.hypot(a - 1.0, b - 0.5) == pytest.approx(1.0) and b <= 0.5 + 1e-12


def test_moons_default_arguments_unchanged():
    assert make_moons() == make_moons(100, 0.1, 1337)


def test_circles_without_noise_have_radii_one_and_factor():
    X, y = make_circles(n_samples=30, noise=0.0, factor=0.3)
    for (a, b), label in zip(X, y):
        assert math.hypot(a, b) == pytest.approx(1.0 if label == -1 else 0.3)
    with pytest.raises(ValueError, match="0 < factor < 1"):
        make_circles(factor=1.5)


def test_spiral_arms_are_half_a_turn_apart():
    X, y = make_spirals(n_samples=40, noise=0.0)
    arm = {label: [p for p, t in zip(X, y) if t == label] for label in (-1, 1)}
    # turning arm -1 by pi ((a, b) -> (-a, -b)) gives arm +1
    for a, b in arm[-1]:
        assert min(math.hypot(a + c, b + d) for c, d in arm[1]) < 1e-12
    radii = sorted(math.hypot(a, b) for a, b in arm[-1])
    assert radii[0] == pytest.approx(0.2) and radii[-1] == pytest.approx(1.0)


def test_xor_labels_follow_the_quadrant_without_noise():
    X, y = make_xor(n_samples=200, noise=0.0)
    assert all((label == 1) == (a * b > 0) for (a, b), label in zip(X, y))
    assert all(-1.0 <= c <= 1.0 for p in X for c in p)
    assert 60 < y.count(1) < 140  # uniform points: about half in each class


@pytest.mark.parametrize("name", ALL)
def test_noise_moves_points_by_about_its_std(name):
    clean, _ = DATASETS[name](n_samples=400, noise=0.0, seed=5)
    noisy, _ = DATASETS[name](n_samples=400, noise=0.1, seed=5)
    # the same points in the same order, each moved by Gaussian noise of std 0.1 per coordinate
    moves = [c - d for p, q in zip(noisy, clean) for c, d in zip(p, q)]
    std = math.sqrt(sum(m * m for m in moves) / len(moves))
    assert 0.08 < std < 0.12


@pytest.mark.parametrize("name", ALL)
def test_bad_arguments(name):
    make = DATASETS[name]
    with pytest.raises(ValueError, match="at least 2 samples"):
        make(n_samples=1)
    with pytest.raises(TypeError, match="n_samples must be an int"):
        make(n_samples=10.0)
    with pytest.raises(ValueError, match="cannot be negative"):
        make(noise=-0.1)
    with pytest.raises(TypeError, match="noise must be a number"):
        make(noise="0.1")


def test_registry_names_the_functions():
    assert DATASETS == {
        "moons": datasets.make_moons,
        "circles": datasets.make_circles,
        "spirals": datasets.make_spirals,
        "xor": datasets.make_xor,
    }
