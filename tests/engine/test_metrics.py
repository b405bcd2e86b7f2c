import pytest
import torch

from dune_gui.engine.metrics import (
    PSNR_IDENTICAL,
    ciede2000_map,
    delta_e2000,
    delta_e2000_mean_p99,
    jnd_map,
    psnr,
    rgb_to_lab,
    ssim,
)

# Reference pairs from Sharma, Wu & Dalal (2005), Table 1.
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.mark.parametrize(("lab1", "lab2", "expected"), SHARMA)
def test_ciede2000_matches_published_values(lab1, lab2, expected) -> None:
    a = torch.tensor(lab1, dtype=torch.float64).view(1, 3, 1, 1)
    b = torch.tensor(lab2, dtype=torch.float64).view(1, 3, 1, 1)
    assert float(ciede2000_map(a, b)) == pytest.approx(expected, abs=1e-4)


def test_identical_images() -> None:
    x = torch.rand(3, 3, 20, 20)
    assert torch.all(psnr(x, x) == PSNR_IDENTICAL)
    assert torch.allclose(ssim(x, x), torch.ones(3))
    assert torch.all(delta_e2000(x, x) < 1e-3)


def test_the_99th_percentile_sees_a_spot_the_mean_hides() -> None:
    x = torch.full((2, 3, 20, 20), 0.5)
    y = x.clone()
    y[1, 0, :3, :3] = 0.9  # 9 of 400 pixels turned red, the rest untouched
    mean, p99 = delta_e2000_mean_p99(x, y)
    assert torch.allclose(mean, delta_e2000(x, y))
    assert float(mean[0]) < 1e-3 and float(p99[0]) < 1e-3
    assert float(p99[1]) > 10 * float(mean[1])


def test_psnr_of_a_known_shift() -> None:
    x = torch.full((1, 3, 8, 8), 0.5)
    assert float(psnr(x, x + 0.1)) == pytest.approx(20.0, abs=1e-3)


def test_lab_of_white_and_red() -> None:
    white = rgb_to_lab(torch.ones(1, 3, 1, 1)).flatten()
    red = rgb_to_lab(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)).flatten()
    assert torch.allclose(white, torch.tensor([100.0, 0.0, 0.0]), atol=0.05)
    assert torch.allclose(red, torch.tensor([53.24, 80.09, 67.20]), atol=0.05)


def test_ssim_falls_with_noise() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 32, 32, generator=gen)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    assert float(ssim(x, noisy)) < 0.9


def test_ssim_matches_its_definition_with_a_full_gaussian_window() -> None:
    # Wang et al.'s SSIM written directly: a 2-D Gaussian window (the outer product, not
    # the separable passes) per channel over the valid positions, in double precision
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 40, 29, generator=gen, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(x.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-coords**2 / (2 * 1.5**2))
    window = (torch.outer(g, g) / g.sum() ** 2).view(1, 1, 11, 11).repeat(3, 1, 1, 1)

    def local_mean(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(t, window, groups=3)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov = local_mean(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    expected = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)
                / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))).flatten(1).mean(1)
    assert torch.allclose(ssim(x, y), expected, atol=1e-10)
    assert torch.allclose(ssim(x.float(), y.float()), expected.float(), atol=1e-5)


def test_the_noticeable_change_rises_with_texture_and_brightness_never_toward_black() -> None:
    def flat(level: int) -> torch.Tensor:
        return torch.full((1, 3, 16, 16), level / 255)

    def at_centre(x: torch.Tensor) -> float:
        return float(jnd_map(x)[0, 0, 8, 8]) * 255

    mid, black, dark, white = (at_centre(flat(v)) for v in (127, 0, 40, 255))
    # a black or dark backdrop hides no more than mid-grey (sRGB levels are spaced about
    # evenly in lightness: on black, more showed as bands); bright areas hide more
    assert black == pytest.approx(mid) and dark == pytest.approx(mid)
    assert white > mid
    # texture hides a change: a checkerboard around mid-grey tolerates more than flat grey
    board = flat(127)
    board[..., ::2, ::2] += 20 / 255
    board[..., 1::2, 1::2] += 20 / 255
    assert at_centre(board) > mid + 3
