"""What every subcommand shares: the option style, config overrides anywhere on the line, errors, the --device
option (resolved by higherhrnet.devices.resolve_device, as the Trainer and the Predictor resolve theirs), the
--threads option of the subcommands that compute.

Nothing here imports PyTorch: `higherhrnet --help` and `higherhrnet SUBCOMMAND --help` answer at once.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable, Collection, Sequence

__all__ = ["CommandError", "UsageError", "add_config_options", "add_threads_option", "set_threads", "split_overrides",
           "value_options", "load_config_and_weights",
           "fail", "check_writable_folder", "check_writable_file",
           "EXIT_USAGE", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_TERMINATED", "exit_status"]

# Exit status for bad arguments, configs, weights and output locations (argparse uses 2 as well).
EXIT_USAGE = 2
# Exit status when some of the work failed (a damaged input, replicas that disagree): what could be done is done.
EXIT_FAILED = 1
# Exit status after Ctrl-C (SIGINT), as shells report a process that SIGINT ended: 128 + 2.
EXIT_INTERRUPTED = 130
# Exit status after SIGTERM (docker stop, systemd, Kubernetes, SLURM), handled as Ctrl-C is: 128 + 15.
EXIT_TERMINATED = 143


class CommandError(Exception):
    """A problem the user can fix (bad argument, unreadable file); printed as one line, exit status `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class UsageError(CommandError):
    """A command line the subcommand cannot use (an option value out of range, an override without its value):
    printed as argparse prints its own errors, the subcommand's usage line and then the message."""


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


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """--threads N, the same in every subcommand that computes."""
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for PyTorch (default: one per core, idle ones sleeping; with a spinning "
                             "OpenMP wait policy of yours, a Predictor takes one per free CPU; docs/performance.md)")


def set_threads(threads: int | None) -> None:
    """PyTorch's thread count for the rest of the command: --threads N when given (UsageError below 1); else
    PyTorch's default is left as it is."""
    if threads is None:
        return
    if threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _config_sections() -> set[str]:
    from ..config.defaults import _C    # yacs only: cheap

    return set(_C.keys())


# What a config key looks like on the command line: upper-case words joined by dots (TEST.FLIP_TEST, SEED).
_KEY_PATTERN = re.compile(r"[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)*")


def split_overrides(argv: Sequence[str], value_options: Collection[str] = ()) -> tuple[list[str], list[str]]:
    """(other arguments, KEY VALUE overrides): a word whose first dotted part is a top-level config key
    (TEST.FLIP_TEST, DATASET.ROOT, SEED, ...) starts an override and takes the next word as its value, wherever
    it stands, so options may come before or after the overrides. A key that is misspelled below its section
    (TEST.FLIP_TST) is still an override: loading the config then names it with a "did you mean" hint.

    Not overrides: the value of an option in `value_options` (options that take exactly one value, e.g.
    `--out TEST`), and an existing file or folder (a photo named DATASET.JPG).
    """
    sections = _config_sections()
    rest, overrides = [], []
    words = list(argv)
    i = 0
    while i < len(words):
        word = words[i]
        if word in value_options and i + 1 < len(words):
            rest += [word, words[i + 1]]
            i += 2
            continue
        if _KEY_PATTERN.fullmatch(word) and word.split(".")[0] in sections and not os.path.exists(word):
            if i + 1 >= len(words):
                raise UsageError(f"config override {word} has no value (overrides are KEY VALUE pairs)")
            overrides += [word, words[i + 1]]
            i += 2
            continue
        rest.append(word)
        i += 1
    return rest, overrides


def value_options(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings of `parser` that take exactly one value (--out DIR, --cfg YAML, ...)."""
    return {option for action in parser._actions if action.option_strings and action.nargs is None
            for option in action.option_strings}


def load_config_and_weights(cfg_path: str | None, weights: str | None, overrides: Sequence[str],
                            default_weights: Callable | None = None, progress: bool = True,
                            default_model: bool = False, check: Callable | None = None):
    """(cfg, config path or None, local weights file) for --cfg, --weights and the overrides: the library's
    higherhrnet.hub.resolve_model, its errors as one-line CommandErrors.

    --weights may be a path, an http(s) URL or a registered name (zoo.py): URLs and names are downloaded
    once into the cache. Without --cfg, registered weights bring their own experiment file, and a model file
    this toolkit wrote (or an ONNX file it exported) carries the config it was made with (the config path is
    None then). Without --weights: TEST.MODEL_FILE, else default_weights(cfg, config path) when given; with
    default_model and neither --cfg nor --weights, the default model (zoo.DEFAULT_MODEL; offline, the bundled
    demo model, with a note on stderr saying so). check(cfg): raises ConfigError when the model cannot be used
    (hub.resolve_model's check: before any download where it can).
    """
    from ..checkpoint import CheckpointError
    from ..config import ConfigError, load_cfg
    from ..hub import MissingConfigError, resolve_model
    from ..models.onnx import OnnxError
    from ..zoo import REGISTRY, WeightsError, config_path

    if cfg_path is None and not weights and not default_model:
        raise CommandError("--cfg is required (it may be left out when --weights names registered weights or "
                           "a model file this toolkit wrote, which come with their config)")
    try:
        cfg = load_cfg(cfg_path, overrides) if cfg_path is not None else None
        if cfg is not None and not weights:
            weights = cfg.TEST.MODEL_FILE or (default_weights(cfg, cfg_path) if default_weights else None)
            if not weights and not default_model:
                raise CommandError("no weights: pass --weights (a file, a URL or a registered name) or set "
                                   "TEST.MODEL_FILE")
        resolved = resolve_model(weights or None, cfg, () if cfg is not None else overrides, progress, check)
    except MissingConfigError as e:
        raise CommandError(f"--cfg is required: {e}") from None
    except (ConfigError, WeightsError, CheckpointError, OnnxError) as e:
        raise CommandError(str(e)) from None
    if resolved.note:
        print(f"note: {resolved.note}", file=sys.stderr)
    if cfg_path is None and resolved.config_source.startswith("registry:"):
        cfg_path = config_path(REGISTRY[resolved.name])
    return resolved.cfg, cfg_path, resolved.weights


def exit_status(stop: KeyboardInterrupt) -> int:
    """The exit status after the stop `stop` (a KeyboardInterrupt): 128 + its signal's number, as shells report a
    process that signal ended (EXIT_INTERRUPTED after Ctrl-C, EXIT_TERMINATED after SIGTERM)."""
    from ..interrupts import stop_signal

    return 128 + stop_signal(stop)


def fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def check_writable_folder(folder: str, what: str = "output folder") -> None:
    """Create `folder` and prove that files can be written in it, before any slow work; CommandError otherwise
    (e.g. a path under a regular file, a read-only place)."""
    from ..fileio import writable_folder_problem

    problem = writable_folder_problem(folder)
    if problem:
        raise CommandError(f"cannot write to {what} {folder}: {problem}")


def check_writable_file(path: str, what: str = "output file") -> None:
    """CommandError, before any slow work, when the file `path` cannot be written: a folder has that name, or
    its folder does not exist or cannot be written."""
    from ..fileio import writable_folder_problem

    problem = "a folder has that name" if os.path.isdir(path) else writable_folder_problem(
        os.path.dirname(path) or os.curdir, create=False)
    if problem:
        raise CommandError(f"cannot write {what} {path}: {problem}")
