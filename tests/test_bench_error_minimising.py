"""The error-minimising screen (dune_gui/bench/error_minimising.py): the perturbation
stays inside its per-pixel budget and the images' range, a seed gives the same noise, and
the noise alone makes pictures without class content learnable."""

from __future__ import annotations

import torch

from dune_gui.bench.error_minimising import error_minimising_noise
from dune_gui.engine.metrics import jnd_map


def tiny_set() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, 16, 16, generator=generator)
    y = torch.arange(4).repeat_interleave(10)
    return x, y, jnd_map(x).clamp(max=8 / 255)


def test_noise_stays_in_its_budget_and_range_and_a_seed_repeats_it() -> None:
    x, y, budget = tiny_set()
    one = error_minimising_noise(x, y, budget, rounds=2, train_steps=2, pgd_steps=3)
    two = error_minimising_noise(x, y, budget, rounds=2, train_steps=2, pgd_steps=3)
    assert torch.equal(one.delta, two.delta)
    assert (one.delta.abs() <= budget + 1e-6).all()
    assert ((x + one.delta) >= -1e-6).all() and ((x + one.delta) <= 1 + 1e-6).all()
    assert one.delta.abs().sum() > 0
    assert len(one.learner_accuracy) == 2


def test_the_noise_makes_the_classes_easier_to_learn() -> None:
    """Random pictures have no class content: only the noise can make them learnable."""
    x, y, budget = tiny_set()
    budget = torch.full_like(budget, 16 / 255)
    result = error_minimising_noise(x, y, budget, rounds=12, train_steps=5, pgd_steps=5,
                                    stop_accuracy=1.01)
    assert result.learner_accuracy[-1] > max(0.5, result.learner_accuracy[0])
