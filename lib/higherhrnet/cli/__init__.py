"""The `higherhrnet` command (also `python -m higherhrnet`): one subcommand per job.

    higherhrnet predict --weights W --image photo.jpg            people in images, folders, videos, a webcam
    higherhrnet train --cfg CFG [KEY VALUE ...]                   training (torchrun for several processes)
    higherhrnet eval --cfg CFG --weights W                        COCO / CrowdPose / MPII metrics of a model
    higherhrnet export --cfg CFG --weights W --out model.onnx     ONNX export, checked against PyTorch
    higherhrnet summary --cfg CFG                                 parameters, multiply-adds, output shapes
    higherhrnet make-synthetic --out data/synthetic               the synthetic COCO-format dataset
    higherhrnet weights                                           the registered weights, and which are here

Every subcommand takes --cfg, --weights and --device the same way, and config overrides (KEY VALUE) anywhere
on the line; those that compute take --threads N. Idle OpenMP threads sleep instead of spinning
(OMP_WAIT_POLICY=PASSIVE, unless OMP_WAIT_POLICY, GOMP_SPINCOUNT or KMP_BLOCKTIME is set), so that the commands
share a busy machine gracefully (docs/performance.md). The scripts in tools/ and demo/ call these subcommands.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from ..interrupts import sigterm_raises, stopped
from ..threads import set_wait_policy
from .common import CommandError, UsageError, exit_status, fail, split_overrides, value_options

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
    "weights": "weights",
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
    """Run the command line `argv` (default sys.argv[1:]); returns the exit status.

    A command line a subcommand cannot parse (an unknown option, a missing value, an override without its
    value) prints that subcommand's usage line and the error (exit status 2). Errors a user can fix once the
    line parses are one line on stderr (exit status 2, or 1 when part of the work failed). Ctrl-C ends any
    subcommand with one line saying so and exit status 130, SIGTERM (docker stop, systemd, Kubernetes, SLURM)
    the same way with exit status 143 (subcommands that have something to report, such as what was finished,
    say it themselves; interrupts.sigterm_raises makes SIGTERM a KeyboardInterrupt while the command runs).

    OpenMP reads its wait policy once, when torch is imported: it is set here, before any subcommand imports
    torch (threads.set_wait_policy; nothing changes when torch was imported already, as in a test)."""
    set_wait_policy()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    command = next((word for word in argv if not word.startswith("-")), None)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    usage = subparsers.choices.get(command)     # whose usage line an error prints (None: the top level's)
    options = value_options(usage) if usage is not None else set()
    # Around the except clauses too: a second SIGTERM (ignored) cannot cut the last line short.
    with sigterm_raises():
        try:
            rest, overrides = split_overrides(argv, options)
            # Options the subcommand does not know come back here, to be reported with its usage line
            # (parse_args would report them with the top-level one).
            args, unknown = parser.parse_known_args(rest)
            usage = subparsers.choices[args.command]
            if unknown:
                raise UsageError(f"unrecognized arguments: {' '.join(unknown)}")
            return args.module.run(args, overrides)
        except UsageError as e:
            (usage or parser).print_usage(sys.stderr)
            print(f"{(usage or parser).prog}: error: {e}", file=sys.stderr)
            return e.code
        except CommandError as e:
            return fail(str(e), e.code)
        except KeyboardInterrupt as e:
            # A subcommand that knows what was finished says it in the exception's message.
            print(str(e) or stopped(e), file=sys.stderr)
            return exit_status(e)
