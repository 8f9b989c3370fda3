"""Write the synthetic COCO-format dataset: `higherhrnet make-synthetic` (see its --help).

    python tools/make_synthetic.py --out data/synthetic
"""
import sys

from higherhrnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["make-synthetic", *sys.argv[1:]]))
