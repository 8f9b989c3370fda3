"""Train a network of the config (MODEL.NAME: HigherHRNet or the stacked hourglass AE).

    python tools/train.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml
    python tools/train.py --cfg CFG DATASET.ROOT /data/coco TRAIN.IMAGES_PER_GPU 8
    torchrun --nproc_per_node=4 tools/train.py --cfg CFG                 # one machine, 4 processes
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --master_port=29500 --nproc_per_node=8 \\
        tools/train.py --cfg CFG                                         # two machines (node 0)

Output: OUTPUT_DIR/<dataset>/<model>/<config name>/ (checkpoint.pth, final_state.pth, train.log).
Exit status 2 on bad arguments, config, data or a non-finite loss.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

import higherhrnet
from higherhrnet.checkpoint import CheckpointError
from higherhrnet.engine import Trainer, TrainingError
from higherhrnet.data import DatasetError
from higherhrnet.images import ImageError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="experiment YAML file")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser.parse_args(argv)


def setup_logging() -> None:
    """Training messages (logger "higherhrnet.train") on the console, marked with the torchrun rank."""
    logger = logging.getLogger("higherhrnet.train")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s [rank {os.environ.get('RANK', '0')}] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    trainer = None
    try:
        cfg = higherhrnet.load_cfg(args.cfg, args.opts)
        trainer = Trainer(cfg, args.cfg, device=args.device)
        result = trainer.run()
    except (higherhrnet.ConfigError, DatasetError, ImageError, CheckpointError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if trainer is not None:
            trainer.close()
    return 0 if result["replicas_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
