"""Train the network of a config (HigherHRNet, the stacked hourglass AE, ...).

    higherhrnet train --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml
    higherhrnet train --cfg CFG DATASET.ROOT /data/coco TRAIN.IMAGES_PER_GPU 8
    torchrun --nproc_per_node=4 -m higherhrnet train --cfg CFG                 # one machine, 4 processes
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --master_port=29500 --nproc_per_node=8 \\
        -m higherhrnet train --cfg CFG                                         # two machines (node 0)

Output: OUTPUT_DIR/<dataset>/<model>/<config name>/ (checkpoint.pth, final_state.pth, model_best.pth with
TRAIN.VAL_FREQ, train.log); TensorBoard logs under LOG_DIR/<dataset>/<model>/<config name>/. Progress and
the log go to stderr; when training finishes, one line on stdout names these files and the commands that
evaluate and run the final weights. A first run of about a minute: docs/training.md.

An existing checkpoint.pth is resumed (AUTO_RESUME). If the configuration changed since it was written,
learning-rate and optimiser settings are applied; changes to the network, loss, data or optimiser type are
listed and refused: --fresh starts again (the old files are kept under dated names), --resume-anyway
resumes regardless. Training stops, naming the epoch, iteration and tensor, when the loss or a weight
becomes NaN or infinite; nothing is saved from such weights. Ctrl-C stops cleanly, saying where training
was and which checkpoint is the last complete one (also in train.log); so does SIGTERM (docker stop, systemd,
Kubernetes, SLURM; torchrun passes it to every process), and so does a checkpoint that cannot be written (a full
disk). A run folder another live training run is using is refused, naming that run (its process id, host, start
and command line), unless --share-run-folder.
Exit status 2 on bad arguments, config, data, a refused resume, a busy run folder, a file that cannot be
written or a non-finite loss or weight; 1 if DDP replicas ended with different weights; 130 after Ctrl-C, 143
after SIGTERM.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from .common import CommandError, add_config_options, add_threads_option, set_threads

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--fresh", action="store_true",
                        help="start again even if the run folder has a checkpoint (its checkpoint.pth, "
                             "final_state.pth and model_best.pth are kept under names with their date)")
    resume.add_argument("--resume-anyway", action="store_true",
                        help="resume even though the configuration changed in ways the checkpoint cannot follow "
                             "(weights and epoch from the checkpoint, the rest from the new configuration)")
    parser.add_argument("--share-run-folder", action="store_true",
                        help="train even when another live training run is using the same run folder "
                             "(OUTPUT_DIR/<dataset>/<model>/<config name>), which is otherwise refused; each file "
                             "there is then the last one either run wrote")
    add_threads_option(parser)


class _Console(logging.StreamHandler):
    """A handler writing to whatever sys.stderr is when a message comes (tests and notebooks replace it). It
    leaves out the line naming the saved files, which run() prints on stdout."""

    def __init__(self):
        from ..engine.hooks import SUMMARY_RECORD     # PyTorch: imported when the subcommand runs

        super().__init__()
        self.addFilter(lambda record: not getattr(record, SUMMARY_RECORD, False))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging() -> None:
    """Training messages (logger "higherhrnet.train") on the console, marked with the torchrun rank."""
    logger = logging.getLogger("higherhrnet.train")
    if any(isinstance(h, _Console) for h in logger.handlers):
        return    # a second run in the same process (tests, notebooks)
    handler = _Console()
    handler.setFormatter(logging.Formatter(f"%(asctime)s [rank {os.environ.get('RANK', '0')}] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from .. import CheckpointError, ConfigError, load_cfg
    from ..data import DatasetError
    from ..engine import Trainer, TrainingError
    from ..engine.trainer import TrainingInterrupted
    from ..images import ImageError
    from ..interrupts import same_stop, stopped

    set_threads(args.threads)
    setup_logging()
    trainer = None
    try:
        cfg = load_cfg(args.cfg, overrides)
        resume = "fresh" if args.fresh else "anyway" if args.resume_anyway else "check"
        trainer = Trainer(cfg, args.cfg, device=args.device, resume=resume, share_run_folder=args.share_run_folder)
        result = trainer.run()
    except (ConfigError, DatasetError, ImageError, CheckpointError, TrainingError) as e:
        raise CommandError(str(e)) from None
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt as e:
        raise same_stop(e, f"{stopped(e)} before training started; nothing was saved") from None
    finally:
        if trainer is not None:
            trainer.close()
    if result["summary"]:
        print(result["summary"])
    return 0 if result["replicas_identical"] else 1
