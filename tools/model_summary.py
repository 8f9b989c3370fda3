"""Print a network's parameters, multiply-adds and output shapes: `higherhrnet summary` (see its --help).

    python tools/model_summary.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml
"""
import sys

from higherhrnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["summary", *sys.argv[1:]]))
