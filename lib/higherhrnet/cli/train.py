"""Train the network of a config (HigherHRNet, the stacked hourglass AE, ...).

    higherhrnet train --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml
    higherhrnet train --cfg CFG DATASET.ROOT /data/coco TRAIN.IMAGES_PER_GPU 8
    torchrun --nproc_per_node=4 -m higherhrnet train --cfg CFG                 # one machine, 4 processes
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --master_port=29500 --nproc_per_node=8 \\
        -m higherhrnet train --cfg CFG                                         # two machines (node 0)

Output: OUTPUT_DIR/<dataset>/<model>/<config name>/ (checkpoint.pth, final_state.pth, model_best.pth with
TRAIN.VAL_FREQ, train.log); TensorBoard logs under LOG_DIR/<dataset>/<model>/<config name>/.
Exit status 2 on bad arguments, config, data or a non-finite loss; 1 if DDP replicas ended with different
weights.
"""
from __future__ import annotations

import argparse
import logging
import os

from .common import CommandError, add_config_options

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)


def setup_logging() -> None:
    """Training messages (logger "higherhrnet.train") on the console, marked with the torchrun rank."""
    logger = logging.getLogger("higherhrnet.train")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s [rank {os.environ.get('RANK', '0')}] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from .. import CheckpointError, ConfigError, load_cfg
    from ..data import DatasetError
    from ..engine import Trainer, TrainingError
    from ..images import ImageError

    setup_logging()
    trainer = None
    try:
        cfg = load_cfg(args.cfg, overrides)
        trainer = Trainer(cfg, args.cfg, device=args.device)
        result = trainer.run()
    except (ConfigError, DatasetError, ImageError, CheckpointError, TrainingError) as e:
        raise CommandError(str(e)) from None
    finally:
        if trainer is not None:
            trainer.close()
    return 0 if result["replicas_identical"] else 1
