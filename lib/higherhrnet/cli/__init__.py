"""The `higherhrnet` command (also `python -m higherhrnet`): one subcommand per job.

    higherhrnet predict --weights W --image photo.jpg            people in images, folders, videos, a webcam
    higherhrnet train --cfg CFG [KEY VALUE ...]                   training (torchrun for several processes)
    higherhrnet eval --cfg CFG --weights W                        COCO / CrowdPose metrics of a model
    higherhrnet export --cfg CFG --weights W --out model.onnx     ONNX export, checked against PyTorch
    higherhrnet summary --cfg CFG                                 parameters, multiply-adds, output shapes
    higherhrnet make-synthetic --out data/synthetic               the synthetic COCO-format dataset

Every subcommand takes --cfg, --weights and --device the same way, and config overrides (KEY VALUE) anywhere
on the line. The scripts in tools/ and demo/ call these subcommands.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .common import CommandError, fail, split_overrides

__all__ = ["main", "SUBCOMMANDS"]

# subcommand -> module (in this package) with `add_arguments(parser)`, `run(args, overrides) -> int` and a
# docstring whose first line is the subcommand's summary. Modules import PyTorch only inside run().
SUBCOMMANDS = {
    "predict": "predict",
    "train": "train",
    "eval": "evaluate",
    "export": "export",
    "summary": "summary",
    "make-synthetic": "synthetic",
}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="higherhrnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"higherhrnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(f".{module_name}", __name__)
        summary = (module.__doc__ or "").strip().splitlines()[0]
        sub = commands.add_parser(name, help=summary, description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default sys.argv[1:]); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        rest, overrides = split_overrides(argv)
    except CommandError as e:
        return fail(str(e), e.code)
    args = build_parser().parse_args(rest)
    try:
        return args.module.run(args, overrides)
    except CommandError as e:
        return fail(str(e), e.code)
