"""Export a trained network to ONNX: `higherhrnet export` (see `higherhrnet export --help`).

    python tools/export_onnx.py --cfg experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml \\
        --weights models/pose_higher_hrnet_w32_512.pth --out models/pose_higher_hrnet_w32_512.onnx
"""
import sys

from higherhrnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
