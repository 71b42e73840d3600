"""``--set`` and the other run options shared by ``boxloop demo`` and ``boxloop local run``."""

from __future__ import annotations

import argparse

import pytest

from boxloop.cli import build_parser
from boxloop.cli.common import add_run_options, parse_set
from boxloop.core.errors import ConfigError


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_options(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ("--set", "batch_size=10", "target_accuracy=0.9", "labels_note=cars"),
        ("--set", "batch_size=10", "--set", "target_accuracy=0.9", "--set", "labels_note=cars"),
        ("--set", "batch_size=10", "target_accuracy=0.9", "--set", "labels_note=cars"),
    ],
)
def test_set_takes_several_settings_at_once_or_repeated(argv: tuple[str, ...]) -> None:
    args = _parse(*argv, "--image-steps", "64")

    assert parse_set(args.set) == {
        "batch_size": 10,
        "target_accuracy": 0.9,
        "labels_note": "cars",
    }
    assert args.image_steps == 64


def test_no_set_means_no_settings() -> None:
    assert parse_set(_parse().set) == {}


def test_set_names_the_setting_without_a_value() -> None:
    with pytest.raises(ConfigError, match="'batch_size': expected key=value"):
        parse_set(_parse("--set", "seed_size=4", "batch_size").set)


@pytest.mark.parametrize(
    "command",
    [
        ("demo",),
        ("local", "run", "--images", "imgs", "--labels", "l.json", "--out", "o"),
        ("aws", "start", "--images", "imgs"),
    ],
)
def test_every_command_with_settings_reads_set_alike(command: tuple[str, ...]) -> None:
    args = build_parser().parse_args([*command, "--set", "seed_size=4", "batch_size=5"])

    assert parse_set(args.set) == {"seed_size": 4, "batch_size": 5}
