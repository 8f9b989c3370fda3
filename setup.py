"""Install with: pip install -c constraints.txt -e ".[test]"  (see README.md)."""
import runpy

from setuptools import find_packages, setup

# Read from the package's version module without importing the package (its dependencies may not be installed).
VERSION = runpy.run_path("lib/higherhrnet/version.py")["__version__"]

ONNX = ["onnx>=1.17", "onnxruntime>=1.18", "onnxscript>=0.3"]
# A static ffmpeg for H.264 videos that browsers play (without it: VP9 / WebM through OpenCV).
VIDEO = ["imageio-ffmpeg>=0.4"]

setup(
    name="higherhrnet",
    version=VERSION,
    description="Bottom-up multi-person human pose estimation with HigherHRNet",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    include_package_data=True,
    # Shipped inside the package, found with importlib.resources (higherhrnet.zoo.package_file): the experiment
    # configs (the repository's experiments/ is a link to them) and the bundled synthetic model.
    package_data={"higherhrnet": ["experiments/*/*.yaml", "experiments/*/*/*.yaml", "assets/*.pth"]},
    entry_points={"console_scripts": ["higherhrnet = higherhrnet.cli:main"]},
    install_requires=[
        # constraints.txt pins torch to the CPU build used here; with CUDA, install the torch
        # build you want first and this range is then satisfied without a download.
        "torch>=2.1",
        "numpy>=1.23",
        "opencv-python-headless>=4.6",
        "simplejpeg>=1.7",
        "pycocotools>=2.0.6",
        "scipy>=1.9",
        "munkres>=1.1",
        "numba>=0.60",
        "yacs>=0.1.8",
        "tensorboardX>=2.5",
        "tqdm>=4.60",
        "PyYAML>=5.4",
    ],
    extras_require={
        # CrowdPose's metrics (AP easy / medium / hard); crowdposetools is not on PyPI.
        "crowdpose": ["faster-coco-eval>=1.6"],
        # tools/export_onnx.py and Predictor(backend="onnxruntime"); onnxscript only for --exporter dynamo.
        "onnx": ONNX,
        "video": VIDEO,
        "test": ["pytest>=7", "faster-coco-eval>=1.6", *ONNX, *VIDEO],
    },
)
