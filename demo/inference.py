"""Multi-person pose estimation on images, folders and videos: `higherhrnet predict` (see its --help).

    python demo/inference.py --cfg CFG --weights W --image a.jpg [b.jpg ...] [--out DIR]
    python demo/inference.py --cfg CFG --weights W --folder photos/
    python demo/inference.py --cfg CFG --weights W --video clip.mp4
"""
import sys

from higherhrnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
