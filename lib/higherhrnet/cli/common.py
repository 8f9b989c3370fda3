"""What every subcommand shares: the option style, config overrides anywhere on the line, errors, devices.

Nothing here imports PyTorch: `higherhrnet --help` and `higherhrnet SUBCOMMAND --help` answer at once.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["CommandError", "add_config_options", "split_overrides", "load_config_and_weights", "default_device",
           "fail", "EXIT_USAGE"]

# Exit status for bad arguments, configs, weights and output locations (argparse uses 2 as well).
EXIT_USAGE = 2


class CommandError(Exception):
    """A problem the user can fix (bad argument, unreadable file); printed as one line, exit status `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def add_config_options(parser: argparse.ArgumentParser, cfg_required: bool = True, weights: str | None = None,
                       device: bool = True) -> None:
    """--cfg, optionally --weights (with its help text) and --device, the same in every subcommand."""
    parser.add_argument("--cfg", required=cfg_required, metavar="YAML",
                        help="experiment config file" + ("" if cfg_required else " (default: the one of --weights "
                                                                                  "when it names registered weights)"))
    if weights is not None:
        parser.add_argument("--weights", metavar="W", help=weights)
    if device:
        parser.add_argument("--device", metavar="D", help="cpu, cuda, cuda:1, ... (default: cuda when available)")


def _config_sections() -> set[str]:
    from ..config.defaults import _C    # yacs only: cheap

    return set(_C.keys())


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(other arguments, KEY VALUE overrides): a word whose first dotted part is a top-level config key
    (TEST.FLIP_TEST, DATASET.ROOT, SEED, ...) starts an override and takes the next word as its value, wherever
    it stands, so options may come before or after the overrides. A key that is misspelled below its section
    (TEST.FLIP_TST) is still an override: loading the config then names it with a "did you mean" hint."""
    sections = _config_sections()
    rest, overrides = [], []
    words = list(argv)
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-") and word.split(".")[0] in sections and word.upper() == word:
            if i + 1 >= len(words):
                raise CommandError(f"config override {word} has no value (overrides are KEY VALUE pairs)")
            overrides += [word, words[i + 1]]
            i += 2
            continue
        rest.append(word)
        i += 1
    return rest, overrides


REPO_ROOT = Path(__file__).resolve().parents[3]


def load_config_and_weights(cfg_path: str | None, weights: str | None, overrides: Sequence[str],
                            default_weights: Callable | None = None, progress: bool = True):
    """(cfg, config path, local weights file) for --cfg, --weights and the overrides.

    --weights may be a path, an http(s) URL or a registered name (zoo.py): URLs and names are downloaded
    once into the cache. Without --cfg, registered weights bring their own experiment file. Without
    --weights: TEST.MODEL_FILE, else default_weights(cfg, config path) when given.
    """
    from ..config import ConfigError, load_cfg
    from ..zoo import REGISTRY, WeightsError, resolve_weights

    if cfg_path is None:
        entry = REGISTRY.get(weights or "")
        if entry is None:
            raise CommandError("--cfg is required (it may be left out only when --weights names registered "
                               "weights, which come with their config)")
        cfg_path = str(REPO_ROOT / entry.config)
        if not os.path.isfile(cfg_path):
            raise CommandError(f"the config of {weights}, {entry.config}, is not in this installation; pass it "
                               f"with --cfg")
    try:
        cfg = load_cfg(cfg_path, overrides)
    except ConfigError as e:
        raise CommandError(str(e)) from None
    weights = weights or cfg.TEST.MODEL_FILE or (default_weights(cfg, cfg_path) if default_weights else None)
    if not weights:
        raise CommandError("no weights: pass --weights (a file, a URL or a registered name) or set TEST.MODEL_FILE")
    try:
        return cfg, cfg_path, resolve_weights(weights, progress=progress)
    except WeightsError as e:
        raise CommandError(str(e)) from None


def default_device(device: str | None) -> str:
    """`device`, or CUDA when available, else the CPU: the default of every subcommand."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
