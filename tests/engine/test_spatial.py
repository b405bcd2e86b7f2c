import torch

from dune_gui.engine.data import DecodedImage
from dune_gui.engine.export import compose, original_jnd, quality_metrics, read_back, to_pil
from dune_gui.engine.metrics import jnd_map, visible_share
from dune_gui.engine.models import build_model
from dune_gui.engine.spatial import ChangeLimit, SpatialPGD, spatial_pgd, upsample_delta
from dune_gui.engine.surrogates import Ensemble, SurrogateMember
from dune_gui.engine.views import FlipShiftView, grey_view


def _ensemble(members: int = 2, classes: int = 4) -> Ensemble:
    out = []
    for i in range(members):
        model = build_model("fast", classes, 16, torch.Generator().manual_seed(i)).eval()
        out.append(SurrogateMember(f"m{i}", model, True))
    return Ensemble(out, torch.device("cpu"))


def test_spatial_perturbation_never_exceeds_eps_and_stays_in_range() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 16, 16, generator=gen)
    x[0] = 0.0  # saturated images must stay in [0, 1]
    x[1] = 1.0
    target = torch.tensor([1, 2, 3, 0, 1, 2])
    eps = 4 / 255
    delta = spatial_pgd(x, target, _ensemble(), eps=eps, step_size=3 / 255, steps=5)
    assert delta.abs().max() <= eps + 1e-7
    assert (x + delta).min() >= 0 and (x + delta).max() <= 1


def test_targeted_ensemble_loss_falls_over_steps() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(8, 3, 16, 16, generator=gen)
    target = torch.randint(0, 4, (8,), generator=gen)
    losses: list[float] = []
    SpatialPGD(eps=8 / 255, step_size=1 / 255, steps=8).perturb(
        x, target, _ensemble(3), on_step=lambda t, loss: losses.append(loss))
    assert len(losses) == 8
    # loss at step t is measured before step t is taken: compare end with the start
    ensemble = _ensemble(3)
    delta = spatial_pgd(x, target, ensemble, 8 / 255, 1 / 255, 8)
    with torch.no_grad():
        before = ensemble.mean_cross_entropy(x, target).mean()
        after = ensemble.mean_cross_entropy(x + delta, target).mean()
    assert after < before
    assert losses[-1] < losses[0]


def test_upsampled_delta_stays_within_eps() -> None:
    eps = 8 / 255
    delta = (torch.rand(3, 16, 16) * 2 - 1) * eps
    big = upsample_delta(delta, 67, 41)
    assert big.shape == (3, 67, 41)
    assert big.abs().max() <= eps + 1e-7


def test_batch_composition_does_not_change_an_images_perturbation() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(4, 3, 16, 16, generator=gen)
    target = torch.tensor([0, 1, 2, 3])
    ensemble = _ensemble()
    together = spatial_pgd(x, target, ensemble, 8 / 255, 2 / 255, 4)
    alone = spatial_pgd(x[:1], target[:1], ensemble, 8 / 255, 2 / 255, 4)
    assert torch.allclose(together[:1], alone, atol=1e-6)


def test_grey_view_steps_give_a_pure_luminance_perturbation() -> None:
    # the gradient through the grayscale view is the luma weights times one grey gradient:
    # one sign per pixel, so all three channels move together
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(4, 3, 16, 16, generator=gen) * 0.5 + 0.25  # no clipping at 0 or 1
    target = torch.tensor([1, 2, 3, 0])
    delta = spatial_pgd(x, target, _ensemble(), 8 / 255, 1 / 255, 5, views=[grey_view])
    assert delta.abs().max() <= 8 / 255 + 1e-7
    assert (delta.abs() > 0).float().mean() > 0.9
    # equal up to float rounding of (x + delta) - x
    assert (delta - delta.mean(1, keepdim=True)).abs().max() < 1e-6


def test_grey_view_steps_lower_the_targeted_loss_on_grey_images() -> None:
    from dune_gui.engine.views import grey_view

    gen = torch.Generator().manual_seed(4)
    x = torch.rand(8, 3, 16, 16, generator=gen) * 0.5 + 0.25
    target = torch.randint(0, 4, (8,), generator=gen)
    ensemble = _ensemble()
    delta = spatial_pgd(x, target, ensemble, 8 / 255, 2 / 255, 6, views=[grey_view])
    with torch.no_grad():
        before = ensemble.mean_cross_entropy(grey_view(x), target).mean()
        after = ensemble.mean_cross_entropy(grey_view(x + delta), target).mean()
    assert after < before


def test_flip_and_shift_steps_stay_in_the_ball_are_seeded_and_batch_independent() -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(4, 3, 16, 16, generator=gen)
    target = torch.tensor([0, 1, 2, 3])
    ensemble = _ensemble()
    eps = 8 / 255
    together = spatial_pgd(x, target, ensemble, eps, 2 / 255, 6, views=[FlipShiftView(2, 3)])
    assert together.abs().max() <= eps + 1e-7
    assert (x + together).min() >= 0 and (x + together).max() <= 1
    alone = spatial_pgd(x[:1], target[:1], ensemble, eps, 2 / 255, 6, views=[FlipShiftView(2, 3)])
    assert torch.allclose(together[:1], alone, atol=1e-6)
    again = spatial_pgd(x, target, ensemble, eps, 2 / 255, 6, views=[FlipShiftView(2, 3)])
    assert torch.equal(together, again)
    plain = spatial_pgd(x, target, ensemble, eps, 2 / 255, 6)
    assert not torch.equal(together, plain)


def test_flip_and_shift_steps_lower_the_loss_on_augmented_views() -> None:
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(8, 3, 16, 16, generator=gen)
    target = torch.randint(0, 4, (8,), generator=gen)
    ensemble = _ensemble()
    delta = spatial_pgd(x, target, ensemble, 8 / 255, 2 / 255, 8, views=[FlipShiftView(2, 0)])
    with torch.no_grad():
        for seed in range(4):  # the same random view of the clean and the perturbed batch
            before = ensemble.mean_cross_entropy(FlipShiftView(2, 99 + seed)(x), target).mean()
            after = ensemble.mean_cross_entropy(FlipShiftView(2, 99 + seed)(x + delta),
                                                target).mean()
            assert after < before


def test_padding_to_a_fixed_batch_size_returns_the_real_images_only() -> None:
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(3, 3, 16, 16, generator=gen)
    target = torch.tensor([0, 1, 2])
    ensemble = _ensemble()
    losses: list[float] = []
    padded = spatial_pgd(x, target, ensemble, 8 / 255, 2 / 255, 3, pad_to=8,
                         on_step=lambda t, loss: losses.append(loss))
    plain = spatial_pgd(x, target, ensemble, 8 / 255, 2 / 255, 3)
    assert padded.shape == x.shape
    torch.testing.assert_close(padded, plain, rtol=0, atol=0)  # the CPU is batch-independent
    with torch.no_grad():
        start = ensemble.mean_cross_entropy(x, target).mean()
    # the loss reported after step 1 is measured before step 1 moved x: real images only
    assert abs(losses[0] - float(start)) < 1e-4


def _photo(height: int, width: int) -> torch.Tensor:
    """An 8-bit picture: a flat backdrop (light and dark halves) beside loud texture."""
    g = torch.Generator().manual_seed(3)
    x = torch.full((3, height, width), 120.0)
    x[:, height // 2:] = 20.0
    x[:, :, width // 2:] = torch.randint(30, 220, (1, height, width - width // 2), generator=g)
    return x / 255


def _decoded(x: torch.Tensor) -> DecodedImage:
    return DecodedImage(rgb=x.permute(1, 2, 0).numpy(), alpha=None, kind="RGB",
                        icc_profile=None, exif=None)


def test_the_written_change_keeps_the_perceptual_bound_after_rounding() -> None:
    """Rounding to 8 bits adds up to half a level, which on flat ground passed notice: the
    written change stays on the 8-bit grid, within the bound rounded, and never beyond notice
    (within eps, and within the bound itself when it is above one noticeable change)."""
    x = _photo(40, 60)
    jnd = jnd_map(x[None])[0] * 255
    g = torch.Generator().manual_seed(4)
    for budget, eps in ((0.95, 8 / 255), (0.5, 16 / 255), (2.0, 8 / 255)):
        bound = (jnd * budget).clamp(max=eps * 255)
        # the worst case for rounding (every pixel at its bound) and a random change
        for delta in (bound / 255 * torch.sign(torch.randn(3, 40, 60, generator=g)),
                      (torch.rand(3, 40, 60, generator=g) * 2 - 1) * 10 / 255):
            written = ChangeLimit(budget, eps).written(delta, x) * 255
            assert torch.allclose(written, written.round(), atol=1e-4)  # whole levels
            assert (written.abs() <= torch.floor(bound + 0.5) + 1e-4).all()
            assert (written.abs() <= eps * 255 + 1e-4).all()
            if budget <= 1:
                assert (written.abs() <= jnd + 1e-4).all()
                assert float(visible_share(x[None], x[None] + written[None] / 255)) == 0
            else:
                assert (written.abs() <= bound + 1e-4).all()


def test_a_photo_written_from_a_working_size_change_stays_below_notice() -> None:
    """A change made at a 32-px working size within 0.95 of that size's noticeable change,
    brought up to the photo's 120 x 180 and written to 8 bits: no pixel beyond notice at
    the photo's own size (without the limit some are: bilinear up-sampling moves the
    change off the texture it was bounded by, and rounding adds half a level)."""
    x = _photo(120, 180)
    small = torch.nn.functional.interpolate(x[None], size=(32, 48), mode="area")
    bound = (jnd_map(small) * 0.95).clamp(max=8 / 255)[0]
    delta = bound * torch.sign(torch.randn(3, 32, 48, generator=torch.Generator().manual_seed(5)))
    image = _decoded(x)
    shares = []
    for limit in (None, ChangeLimit(0.95, 8 / 255)):
        written = read_back(to_pil(compose(image, delta, None, limit=limit), image), image)
        shares.append(float(visible_share(x[None], written[None])))
    assert shares[0] > 0.01 and shares[1] == 0


def test_the_export_reads_one_noticeable_change_map_for_the_limit_and_the_measures() -> None:
    """The change limit and the share beyond notice both read the original's jnd_map; made
    once and handed to both, the written pixels and the measures are what each makes
    alone."""
    x = _photo(48, 64)
    image = _decoded(x)
    delta = (torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(6)) * 2 - 1) * 8 / 255
    limit = ChangeLimit(0.95, 8 / 255)
    jnd = original_jnd(image, delta, limit)
    assert jnd is not None and original_jnd(image, None, limit) is None
    alone, shared = compose(image, delta, None, limit=limit), compose(image, delta, None,
                                                                      limit=limit, jnd=jnd)
    assert torch.equal(alone, shared)
    written = read_back(to_pil(shared, image), image)
    assert quality_metrics(x, written) == quality_metrics(x, written, jnd)
    assert quality_metrics(x, written)["visible_share"] == 0
