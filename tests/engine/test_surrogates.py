from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from dune_gui.engine.models import build_model
from dune_gui.engine.surrogates import (
    SurrogateError,
    load_surrogate_file,
    members_from_checkpoints,
)
from dune_gui.engine.training import checkpoint_epochs, random_crop_flip, train_classifier

CPU = torch.device("cpu")


def test_checkpoint_epochs_are_evenly_spaced() -> None:
    assert checkpoint_epochs(15, 5) == [3, 6, 9, 12, 15]
    assert checkpoint_epochs(10, 1) == [10]


def test_training_is_deterministic_for_a_seed_and_learns() -> None:
    gen = torch.Generator().manual_seed(0)
    # a trivially learnable set: class = which colour channel is bright
    labels = torch.arange(60) % 3
    images = torch.randint(0, 60, (60, 3, 16, 16), generator=gen, dtype=torch.uint8)
    images[torch.arange(60), labels] += 180

    def run() -> tuple[dict, dict]:
        g = torch.Generator().manual_seed(5)
        model = build_model("fast", 3, 16, g)
        result = train_classifier(model, images, labels, 4, g, CPU, keep_epochs=[2, 4],
                                  batch_size=16, learning_rate=0.05)
        return result.checkpoints, result.train_accuracy

    a, acc = run()
    b, _ = run()
    assert sorted(a) == [2, 4]
    for key in a[4]:
        assert torch.equal(a[4][key], b[4][key])
    assert acc[4] > 0.9


def test_dropout_draws_from_the_seed_and_the_callers_generator_is_left_alone() -> None:
    """Layers drawing from torch's global generator (dropout, the pretrained EfficientNets'
    stochastic depth) train the same weights from the same seed, whatever the caller did
    to the global generator before."""
    images = torch.randint(0, 256, (32, 3, 8, 8), generator=torch.Generator().manual_seed(1),
                           dtype=torch.uint8)
    labels = torch.arange(32) % 2

    def train(global_seed: int) -> list[torch.Tensor]:
        torch.manual_seed(0)  # the same initial weights
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5),
                                    torch.nn.Linear(3 * 8 * 8, 2))
        torch.manual_seed(global_seed)  # whatever the caller did to the global generator
        g = torch.Generator().manual_seed(5)
        train_classifier(model, images, labels, 2, g, CPU, batch_size=8, augment=None,
                         recalibrate=False)
        return [p.detach().clone() for p in model.parameters()]

    assert all(torch.equal(x, y) for x, y in zip(train(1), train(2), strict=True))
    torch.manual_seed(7)
    expected = torch.rand(3)
    train(7)
    assert torch.equal(torch.rand(3), expected)  # the caller's global stream is untouched


def test_random_crop_flip_keeps_shape_and_content_range() -> None:
    x = torch.rand(5, 3, 16, 16)
    y = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


def test_state_dict_surrogate_is_recognised(tmp_path: Path) -> None:
    model = build_model("vgg", 4, 32, torch.Generator().manual_seed(0))
    path = tmp_path / "mine.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    member = load_surrogate_file(str(path), 4, 32, CPU)
    assert member.differentiable
    with torch.no_grad():
        x = torch.rand(2, 3, 32, 32)
        assert torch.allclose(member.model(x), model.eval()(x), atol=1e-5)


def test_state_dict_for_other_class_count_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mine.pt"
    torch.save(build_model("fast", 7, 32).state_dict(), path)
    with pytest.raises(SurrogateError, match="match no known architecture"):
        load_surrogate_file(str(path), 4, 32, CPU)


class _Evil:
    def __reduce__(self):  # would run code if unpickled without weights_only
        return (print, ("pwned",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"payload": _Evil()}, path)
    with pytest.raises(SurrogateError, match=r"refused|not a loadable"):
        load_surrogate_file(str(path), 4, 32, CPU)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(SurrogateError):
        load_surrogate_file(str(raw), 4, 32, CPU)


def test_torchscript_surrogate(tmp_path: Path) -> None:
    model = build_model("fast", 3, 32, torch.Generator().manual_seed(0)).eval()
    path = tmp_path / "scripted.pt"
    torch.jit.trace(model, torch.rand(1, 3, 32, 32)).save(str(path))
    member = load_surrogate_file(str(path), 3, 32, CPU)
    assert member.differentiable
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    member.model(x).sum().backward()
    assert x.grad is not None


def test_onnx_surrogate_joins_without_gradients(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    model = build_model("fast", 3, 32, torch.Generator().manual_seed(0)).eval()
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (torch.rand(1, 3, 32, 32),), str(path), input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    member = load_surrogate_file(str(path), 3, 32, CPU)
    assert not member.differentiable
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(member.model(x), model(x), atol=1e-4)


@pytest.mark.parametrize("name", ["broken.onnx", "broken.pt"])
def test_malformed_model_files_give_clear_errors(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04 definitely not a model")
    with pytest.raises(SurrogateError, match=name):
        load_surrogate_file(str(path), 3, 32, CPU)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SurrogateError, match="not found"):
        load_surrogate_file(str(tmp_path / "nope.pt"), 3, 32, CPU)


@pytest.mark.parametrize("arch", ["fast", "vgg", "small", "mobilenet"])
def test_a_member_folds_its_batch_norms_and_computes_the_same_function(arch: str) -> None:
    gen = torch.Generator().manual_seed(1)
    model = build_model(arch, 4, 32, gen)
    model.train()
    with torch.no_grad():  # running statistics that are not the identity
        for _ in range(3):
            model(torch.rand(16, 3, 32, 32, generator=gen))
    model.eval()
    x = torch.rand(8, 3, 32, 32, generator=gen)
    with torch.no_grad():
        expected = model(x)
    [member] = members_from_checkpoints(arch, {1: model.state_dict()}, 4, 32, CPU)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in member.model.modules())
    with torch.no_grad():
        assert torch.allclose(member.model(x), expected, atol=1e-4, rtol=1e-4)


def test_pretrained_networks_read_pixels_as_their_weights_were_trained() -> None:
    # EfficientNet-Lite's weights expect (p - 127) / 128 for 8-bit pixels p, not
    # torchvision's ImageNet statistics
    from dune_gui.engine.pretrained import PretrainedClassifier

    model = PretrainedClassifier("lite0", 2, torch.Generator().manual_seed(0))
    pixels = torch.tensor([0.0, 127.0, 255.0]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    assert torch.allclose(model._normalised(pixels / 255),
                          torch.tensor([-127 / 128, 0.0, 1.0]).expand(1, 3, 1, 3), atol=1e-6)


def test_pretrained_surrogates_cached_under_the_old_input_scaling_are_not_reused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from dune_gui.engine import pretrained
    from dune_gui.engine.surrogates import cache_key

    def keys() -> tuple[str, str]:
        return tuple(cache_key("data", arch, 10, 128, 4, [2, 4], 0, 128, 0.05)
                     for arch in ("lite0", "fast"))

    before = keys()
    monkeypatch.setattr(pretrained, "INPUT_SCALING_VERSION", pretrained.INPUT_SCALING_VERSION + 1)
    after = keys()
    assert after[0] != before[0]
    assert after[1] == before[1]  # from-scratch surrogates keep their cache
