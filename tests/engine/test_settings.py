"""The settings table: config, validation, the CLI and the settings file derive from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dune_gui.cli import build_parser, config_from_args
from dune_gui.engine import ARCHITECTURES, DEFAULTS, PRESETS, SETTINGS, ProtectConfig
from dune_gui.engine.config import (
    ARCHITECTURE_NAMES,
    AUTO_ENSEMBLE,
    REMOVED_SETTINGS,
    SHORTCUT_LEARNER_NAMES,
    with_legacy_values,
)
from dune_gui.engine.models import PRETRAINED_ARCHS


def test_every_setting_is_described_and_its_default_valid() -> None:
    for s in SETTINGS:
        assert s.label and len(s.help) > 20, s.name
        assert s.check(getattr(DEFAULTS, s.name)) is None, s.name
    assert set(ARCHITECTURE_NAMES) == {AUTO_ENSEMBLE, *ARCHITECTURES}
    # the shortcut term's learners are trained from scratch: no pretrained network
    assert set(SHORTCUT_LEARNER_NAMES) <= set(ARCHITECTURES) - PRETRAINED_ARCHS


def test_every_cli_setting_is_an_option_and_reaches_the_config() -> None:
    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["protect"].format_help()
    for s in SETTINGS:
        if s.cli:
            assert s.cli in help_text, s.name
    args = parser.parse_args(["protect", "in", "out", "--eps", "4", "--offset", "auto",
                              "--no-grey-robust", "--ensemble", "fast,small",
                              "--surrogate", "a.pt", "--surrogate", "b.onnx",
                              "--colour-grid", "2", "--no-strip-gps", "--format", "keep"])
    config = config_from_args(args)
    assert config.eps == pytest.approx(4 / 255) and config.label_offset == 0
    assert not config.grey_robust and config.architectures == ("fast", "small")
    assert config.surrogate_files == ("a.pt", "b.onnx") and config.colour_grid == 2
    assert not config.strip_gps and config.format == "keep"


def test_values_out_of_range_are_refused_in_words() -> None:
    with pytest.raises(ValueError, match=r"colour pattern must be between 1 and 8, not 9"):
        ProtectConfig(input_dir=Path("."), output_dir=Path("."), colour_grid=9)
    with pytest.raises(ValueError, match=r"budget \(eps\) must be between 0.5/255 and 255/255"):
        ProtectConfig(input_dir=Path("."), output_dir=Path("."), eps=2.0)
    with pytest.raises(ValueError, match=r"mode must be one of dune, spatial, colour"):
        ProtectConfig(input_dir=Path("."), output_dir=Path("."), mode="both")
    with pytest.raises(ValueError, match=r"unknown architectures resnet50"):
        ProtectConfig(input_dir=Path("."), output_dir=Path("."), architectures=("resnet50",))


@pytest.mark.parametrize(("k", "shift"), [(2, 3), (3, 1), (4, 3), (6, 3), (9, 3), (10, 3)])
def test_the_auto_label_shift_is_valid_for_every_class_count(k: int, shift: int) -> None:
    assert DEFAULTS.label_shift(k) == shift
    assert shift % k != 0


def test_an_explicit_label_shift_is_still_checked() -> None:
    config = ProtectConfig(input_dir=Path("."), output_dir=Path("."), label_offset=3)
    with pytest.raises(ValueError, match="multiple of the number of classes"):
        config.label_shift(3)


def test_settings_files_round_trip_and_old_shapes_migrate(tmp_path: Path) -> None:
    config = ProtectConfig(input_dir=tmp_path, output_dir=tmp_path / "o", eps=12 / 255,
                           psnr_min=26.0, colour_grid=3)
    path = tmp_path / "s.json"
    config.save(path)
    assert ProtectConfig.load(path) == config
    old = json.loads(path.read_text())
    for key in ("psnr_min", "ssim_min", "delta_e_max"):
        old.pop(key)
    old["colour"] = {"psnr_min": 32.0, "ssim_min": 0.95, "delta_e_max": 3.0}  # 0.1's shape
    path.write_text(json.dumps(old))
    assert ProtectConfig.load(path).colour.psnr_min == 32.0
    notes: list[str] = []
    method = with_legacy_values({"eps": 8 / 255, "colour": {"psnr_min": 20.0}}, notes)
    assert method["grey_robust"] is False and method["colour_grid"] == 1
    assert method["psnr_min"] == 20.0 and "colour" not in method
    assert len(notes) == 2  # the migration says what it did


def test_a_setting_removed_since_is_dropped_where_it_was_off_and_refused_where_on() -> None:
    assert not set(REMOVED_SETTINGS) & {s.name for s in SETTINGS}  # never hides a live one
    written = ProtectConfig(input_dir=".", output_dir="o").to_dict()
    for name, off in REMOVED_SETTINGS.items():
        assert ProtectConfig.from_dict({**written, name: off}).to_dict() == written
        on = 3 if isinstance(off, (int, float)) and not isinstance(off, bool) else True
        with pytest.raises(ValueError, match=name):
            ProtectConfig.from_dict({**written, name: on})
        assert name not in with_legacy_values({"eps": 8 / 255, name: off})


def test_the_cli_reference_lists_every_option_of_the_table() -> None:
    from dune_gui.cli import options_table

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    missing = [s.cli for s in SETTINGS if s.cli and f"`{s.cli}" not in doc]
    assert not missing, f"docs/cli.md lacks {missing}"
    assert options_table() in doc, "docs/cli.md's option table is stale: regenerate it"


def test_auto_surrogate_epochs_train_small_folders_of_small_images_longer() -> None:
    from dune_gui.engine.config import (
        MAX_SURROGATE_EPOCHS,
        MIN_SURROGATE_EPOCHS,
        PHOTO_SURROGATE_EPOCHS,
        SURROGATE_IMAGE_PASSES,
        resolve_surrogate_epochs,
    )

    assert ProtectConfig(input_dir=Path("."), output_dir=Path(".")).epochs == 0  # auto
    assert resolve_surrogate_epochs(7, 2000, 32) == 7  # an explicit count is kept
    # auto: every surrogate sees at least SURROGATE_IMAGE_PASSES images, within the bounds
    for n in (10, 500, 2000, 3000, 10_000, 50_000):
        epochs = resolve_surrogate_epochs(0, n, 32)
        assert MIN_SURROGATE_EPOCHS <= epochs <= MAX_SURROGATE_EPOCHS
        assert n * epochs >= SURROGATE_IMAGE_PASSES or epochs == MAX_SURROGATE_EPOCHS
        assert n * (epochs - 1) < SURROGATE_IMAGE_PASSES or epochs == MIN_SURROGATE_EPOCHS
    assert resolve_surrogate_epochs(0, 50_000, 32) == MIN_SURROGATE_EPOCHS
    assert resolve_surrogate_epochs(0, 10_000, 32) == 6  # CIFAR-10's training set
    # photos get their own count, whatever the folder's size
    for n in (500, 50_000):
        assert resolve_surrogate_epochs(0, n, 128) == PHOTO_SURROGATE_EPOCHS
    # more checkpoints than the auto minimum is refused up front
    with pytest.raises(ValueError, match="checkpoints"):
        ProtectConfig(input_dir=Path("."), output_dir=Path("."),
                      checkpoints=MIN_SURROGATE_EPOCHS + 1)


def test_the_defaults_are_the_default_level_and_every_level_sets_its_branches() -> None:
    """The CLI's and the settings file's defaults are the app's default level; choosing a
    level after another always sets which branches run and how many members the ensemble
    has (a level never inherits them from the one chosen before)."""
    from dune_gui.engine import DEFAULT_PRESET, DEFAULTS, PRESETS, preset_of

    assert preset_of(DEFAULTS.to_dict()) == DEFAULT_PRESET
    assert all("mode" in p.values for p in PRESETS.values())
    assert PRESETS["invisible"].values["mode"] == "spatial"
    assert {PRESETS[n].values["mode"] for n in ("standard", "strong")} == {"dune"}
    # likewise the ensemble size each level was measured with
    assert all("checkpoints" in p.values for p in PRESETS.values())


def test_the_auto_ensemble_trains_small_nets_on_small_images_and_a_pretrained_one_on_photos(
        ) -> None:
    from dune_gui.engine.config import (
        AUTO_ENSEMBLE,
        PHOTO_ENSEMBLE,
        PHOTO_SURROGATE_EPOCHS,
        PRETRAINED_SURROGATE_EPOCHS,
        PRETRAINED_SURROGATES,
        SMALL_IMAGE_ENSEMBLE,
        resolve_architectures,
        resolve_surrogate_epochs,
    )

    assert DEFAULTS.architectures == (AUTO_ENSEMBLE,)
    assert resolve_architectures((AUTO_ENSEMBLE,), 32) == SMALL_IMAGE_ENSEMBLE
    assert resolve_architectures((AUTO_ENSEMBLE,), 128) == PHOTO_ENSEMBLE
    assert resolve_architectures(("vgg", "lite0"), 128) == ("vgg", "lite0")  # as named
    assert set(PHOTO_ENSEMBLE) <= PRETRAINED_SURROGATES
    # pretrained networks alone start from ImageNet features: a few epochs, at least one
    # per checkpoint; any from-scratch member needs the photo count
    assert resolve_surrogate_epochs(0, 3000, 128, PHOTO_ENSEMBLE) == \
        PRETRAINED_SURROGATE_EPOCHS
    assert resolve_surrogate_epochs(0, 3000, 128, PHOTO_ENSEMBLE, checkpoints=9) == 9
    assert resolve_surrogate_epochs(0, 3000, 128, ("lite0", "vgg")) == PHOTO_SURROGATE_EPOCHS
    assert resolve_surrogate_epochs(5, 3000, 128, PHOTO_ENSEMBLE) == 5
    with pytest.raises(ValueError, match="alone"):
        ProtectConfig(input_dir=Path("."), output_dir=Path("."),
                      architectures=(AUTO_ENSEMBLE, "fast"))


def test_settings_that_follow_the_profile_do_so_at_their_auto_default() -> None:
    """A run takes a profile's value only where the user left the setting at auto, so the
    default of each such row must be its auto (an explicit default would be overridden)."""
    from dune_gui.engine.profile import FOLLOWS_THE_PROFILE_AT_AUTO

    following = [s for s in SETTINGS if s.follows_profile]
    assert following and set(FOLLOWS_THE_PROFILE_AT_AUTO) == {s.name for s in following}
    for s in following:
        assert (s.zero_means == "auto" and s.default == 0) or \
            (s.alone and tuple(s.default) == s.alone[:1]), s.name


def test_portable_settings_files_leave_out_the_machines_own_settings(tmp_path: Path) -> None:
    # The cache folder is a path on this machine: the app's Save settings (portable) must
    # not carry it; the CLI's --save-config keeps it for shards sharing one cache folder.
    config = ProtectConfig(input_dir=tmp_path, output_dir=tmp_path / "o",
                           cache_dir=tmp_path / "cache", steps=3)
    path = tmp_path / "settings.json"
    config.save(path, portable=True)
    saved = json.loads(path.read_text())
    assert "cache_dir" not in saved and saved["steps"] == 3
    assert ProtectConfig.load(path).cache_dir is None
    config.save(path)
    assert ProtectConfig.load(path).cache_dir == tmp_path / "cache"


def test_a_setting_is_unused_only_where_its_branch_is_off() -> None:
    from dune_gui.engine import unused_settings
    from dune_gui.engine.config import USE_REASONS

    for s in SETTINGS:  # every row names a real property, with a reason for the form
        if s.used_when is not None:
            assert isinstance(getattr(ProtectConfig, s.used_when), property), s.name
            assert s.used_when in USE_REASONS, s.name
    invisible = unused_settings(PRESETS["invisible"].values)
    # error-minimising noise trains no surrogates and steers no class elsewhere
    assert {"architectures", "epochs", "checkpoints", "label_offset", "psnr_min",
            "batch_size"} <= set(invisible)
    assert not {"eps", "steps", "noise_rounds", "working_size", "seed"} & set(invisible)
    standard = unused_settings(PRESETS["standard"].values)
    assert {"noise_rounds", "noise_learner", "pattern_steps"} <= set(standard)
    assert not {"architectures", "psnr_min", "label_offset", "batch_size"} & set(standard)
    pretrained = unused_settings(PRESETS["pretrained"].values)
    assert not {"pattern_steps", "pattern_learners", "pattern_networks"} & set(pretrained)
    # a combination no run accepts mid-edit greys nothing out
    assert unused_settings({"mode": "pattern", "pattern_eps": 0.0}) == {}
    # the reasons read as one line
    assert all("\n" not in why for why in invisible.values())
