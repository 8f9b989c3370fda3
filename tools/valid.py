"""Evaluate a model with COCO keypoint AP: `higherhrnet eval` (see `higherhrnet eval --help`).

    python tools/valid.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml \\
        --weights models/pose_higher_hrnet_w32_512.pth DATASET.ROOT data/coco
    torchrun --nproc_per_node=4 tools/valid.py --cfg CFG --weights W
"""
import sys

from higherhrnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
