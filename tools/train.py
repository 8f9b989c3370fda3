"""Train a network of a config: `higherhrnet train` (see `higherhrnet train --help`).

    python tools/train.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml
    torchrun --nproc_per_node=4 tools/train.py --cfg CFG
"""
import sys

from higherhrnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
