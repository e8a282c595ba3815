"""The augmentation presets (ferlite.training.augment): one definition, the choices of ``ferlite-train --aug``."""

import dataclasses

import pytest

from ferlite.cli.train import train_cmd
from ferlite.training.augment import PRESETS, AugmentConfig


def test_presets_are_the_command_line_choices_and_the_lookup():
    (aug,) = [p for p in train_cmd.params if p.name == "aug"]
    assert list(aug.type.choices) == list(PRESETS) == ["none", "flip", "light", "standard", "strong", "capture"]
    assert all(AugmentConfig.preset(name) is config for name, config in PRESETS.items())
    assert PRESETS["standard"] == AugmentConfig() and PRESETS["strong"].erase == 0.5
    assert not any(dataclasses.astuple(PRESETS["none"]))  # changes nothing
    assert [name for name, config in PRESETS.items() if config.degrades] == ["capture"]
    with pytest.raises(ValueError, match="unknown augmentation preset 'extreme'; valid: none, flip, light, standard, "
                                         "strong, capture"):
        AugmentConfig.preset("extreme")
