"""The CUDA path (bf16 autocast, channels-last). Skipped where no CUDA device exists (CI);
run on a GPU machine with `.ci/device-check`. Every other engine test uses device 'auto',
so on such a machine the whole suite runs on CUDA as well."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dune_gui.engine import ProtectConfig, protect
from dune_gui.engine.class_patterns import aim_heads, make_class_patterns
from dune_gui.engine.models import build_model
from dune_gui.engine.spatial import SpatialPGD, spatial_pgd
from dune_gui.engine.surrogates import Ensemble, SurrogateMember
from dune_gui.engine.views import FlipShiftView, grey_view
from tests.conftest import tiny_settings

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

CUDA = torch.device("cuda")


def _ensemble(device: torch.device, members: int = 2, classes: int = 4) -> Ensemble:
    out = []
    for i in range(members):
        model = build_model("fast", classes, 32, torch.Generator().manual_seed(i)).eval()
        out.append(SurrogateMember(f"m{i}", model.to(device), True))
    return Ensemble(out, device)


def test_bf16_channels_last_logits_agree_with_the_cpu() -> None:
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        cpu = _ensemble(torch.device("cpu")).logits(x)
        gpu = _ensemble(CUDA).logits(x.to(CUDA)).cpu()
    assert gpu.dtype == torch.float32
    # bf16 keeps ~3 significant digits: close logits, and the same decisions
    assert (gpu - cpu).abs().max() < 0.1 * cpu.abs().max() + 1e-3
    assert (gpu.argmax(-1) == cpu.argmax(-1)).float().mean() > 0.9


def test_spatial_pgd_on_cuda_stays_within_eps_and_lowers_the_loss() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(16, 3, 32, 32, generator=gen).to(CUDA)
    target = torch.randint(0, 4, (16,), generator=gen).to(CUDA)
    ensemble = _ensemble(CUDA, members=3)
    eps = 8 / 255
    delta = spatial_pgd(x, target, ensemble, eps, 2 / 255, 10,
                        views=[grey_view, FlipShiftView(2, 3)])
    assert delta.device.type == "cuda"
    assert delta.abs().max() <= eps + 1e-6
    assert (x + delta).min() >= 0 and (x + delta).max() <= 1
    with torch.no_grad():
        before = ensemble.mean_cross_entropy(x, target).mean()
        after = ensemble.mean_cross_entropy(x + delta, target).mean()
    assert after < before


def test_protect_on_cuda_keeps_the_invariants(labeled_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = ProtectConfig(input_dir=labeled_folder, output_dir=out, device="cuda",
                           **tiny_settings(eps=4 / 255))
    result = protect(config)
    assert result.status == "completed" and result.device.startswith("cuda")
    manifest = json.loads(result.manifest_path.read_text())
    assert "cuda" in json.dumps(manifest)
    for src in labeled_folder.rglob("*.jpg"):
        dst = out / src.relative_to(labeled_folder).with_suffix(".png")
        with Image.open(src) as a, Image.open(dst) as b:
            assert a.size == b.size
            pa = np.asarray(a.convert("RGB"), dtype=np.int16)
            pb = np.asarray(b.convert("RGB"), dtype=np.int16)
        offset = np.rint(np.asarray(result.colour_offsets[src.parent.name]) * 255)
        unclipped = ((pa + offset > 5) & (pa + offset < 250)).all(axis=2)
        # spatial part within eps (4/255) around the class's colour offset, plus rounding
        assert np.abs(pb - pa - offset)[unclipped].max() <= 4 + 2


def test_a_fixed_batch_size_makes_an_images_perturbation_independent_of_its_batch() -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(12, 3, 32, 32, generator=gen).to(CUDA)
    target = torch.randint(0, 4, (12,), generator=gen).to(CUDA)
    ensemble = _ensemble(CUDA, members=3)
    pgd = SpatialPGD(8 / 255, 2 / 255, 10, through_grey_view=True, augment_shift=2, pad_to=16)
    whole = pgd.perturb(x, target, ensemble)
    tail = pgd.perturb(x[5:], target[5:], ensemble)  # a resumed run: other batch, other slots
    single = pgd.perturb(x[7:8], target[7:8], ensemble)  # the preview
    assert torch.equal(whole[5:], tail)
    assert torch.equal(whole[7:8], single)


def test_class_patterns_on_cuda_stay_in_their_box_and_lower_the_aim_loss() -> None:
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(24, 3, 48, 48, generator=generator) * 255).to(torch.uint8)
    labels = torch.arange(24) % 4
    aims = torch.tensor([1, 404, 945, 20])
    eps = 16 / 255
    losses: list[float] = []
    patterns = make_class_patterns(images, labels, aims, aim_heads(("lite0",), CUDA), eps,
                                   30, 12, seed=5, tick=lambda step, loss: losses.append(loss),
                                   shortcut_weight=1.0)
    assert patterns.device.type == "cpu" and patterns.dtype == torch.float32
    assert patterns.abs().max() <= eps + 1e-7
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
