"""The cast-direction tool (dune_gui/bench/cast_directions.py): every variant keeps the
casts' sizes and changes only directions, in a copy, never in the source cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dune_gui.bench.cast_directions import DIRECTIONS, fibonacci_sphere, redirect, redirect_cache

CLASSES = [f"class{i}" for i in range(10)]


def searched_cache(root: Path) -> Path:
    generator = torch.Generator().manual_seed(3)
    casts = (torch.rand(len(CLASSES), 3, generator=generator) - 0.5) * 0.3
    (root / "colour").mkdir(parents=True)
    (root / "surrogates").mkdir()
    (root / "surrogates" / "member.pt").write_bytes(b"weights")
    (root / "colour" / "abc.json").write_text(
        json.dumps({name: casts[i].tolist() for i, name in enumerate(CLASSES)}))
    return root


@pytest.mark.parametrize("directions", DIRECTIONS)
def test_sizes_kept_directions_changed(directions: str, tmp_path: Path) -> None:
    source = searched_cache(tmp_path / "source")
    before = (source / "colour" / "abc.json").read_text()
    written = redirect_cache(source, tmp_path / "copy", directions, seed=5)
    assert [p.name for p in written] == ["abc.json"]
    assert (source / "colour" / "abc.json").read_text() == before  # source untouched
    assert (tmp_path / "copy" / "surrogates" / "member.pt").read_bytes() == b"weights"
    old = json.loads(before)
    new = json.loads(written[0].read_text())
    assert sorted(new) == sorted(old)
    for name in CLASSES:
        a, b = torch.tensor(old[name]), torch.tensor(new[name])
        if directions != "permuted":
            assert b.norm().item() == pytest.approx(a.norm().item(), rel=1e-6)
        assert not torch.allclose(a, b)
    if directions == "permuted":  # the same set of colours, none kept by its class
        as_set = sorted(tuple(round(v, 9) for v in c) for c in old.values())
        assert sorted(tuple(round(v, 9) for v in c) for c in new.values()) == as_set


def test_same_seed_same_casts() -> None:
    casts = torch.rand(10, 3, dtype=torch.float64)
    assert torch.equal(redirect(casts, "random", 1), redirect(casts, "random", 1))
    assert not torch.equal(redirect(casts, "random", 1), redirect(casts, "random", 2))


def test_spread_directions_are_unit_and_apart() -> None:
    unit = fibonacci_sphere(10)
    assert torch.allclose(unit.norm(dim=1), torch.ones(10), atol=1e-6)
    cosines = unit @ unit.T - 2 * torch.eye(10)
    assert cosines.max() < 0.7  # no two of ten within ~45 degrees


def test_refuses_an_existing_target(tmp_path: Path) -> None:
    source = searched_cache(tmp_path / "source")
    (tmp_path / "copy").mkdir()
    with pytest.raises(FileExistsError):
        redirect_cache(source, tmp_path / "copy", "random", 0)
