"""Pretrained weights by name or URL, and the mmpose 0.x key layout.

`resolve_weights(value)` turns what a user typed after `--weights` into a local file: an existing path, an
http(s) URL (downloaded once into the cache), or a name from `REGISTRY` (shipped inside the package, or
downloaded when its publisher gives a direct URL; otherwise the error says where to download it and where to
put it). Every registered file whose hash is known is checked against it, wherever it comes from; a failed
download says the exact cache path at which to save the file by hand. `resolve_default()` gives the weights
used when none are named: `DEFAULT_MODEL`, else (offline) the bundled `BUNDLED_MODEL` with a note saying so.

The registered configs and the bundled model are package data (`package_file`), so an installed wheel needs
no repository checkout.

The mmpose 0.x key layout of registered mmpose checkpoints is converted by `load_checkpoint`
(checkpoint/layouts.py explains how the mapping was derived and checked).
"""
from __future__ import annotations

import difflib
import hashlib
import http.client
import importlib.resources
import logging
import os
import pathlib
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import BinaryIO, Optional

from tqdm import tqdm

from .fileio import WriteError, atomic_write

__all__ = ["WeightsError", "WeightsEntry", "REGISTRY", "DEFAULT_MODEL", "BUNDLED_MODEL", "package_file",
           "config_path", "cache_dir", "cache_path", "weights_status", "entry_of_file", "resolve_weights",
           "resolve_default", "download"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


class WeightsError(RuntimeError):
    """Weights cannot be found, downloaded, verified or converted; the message says which and why."""


@dataclass(frozen=True)
class WeightsEntry:
    """One set of published weights.

    config: experiment YAML, relative to the package (`package_file`; a checkout's experiments/ links there).
    url: direct download, or None; then `page` is where a person downloads the file named `filename`, or
        `packaged` names the file shipped inside the package (relative to it, like `config`).
    filename: the published file name (None where no source names it).
    sha256: full hash or its leading hex digits; None where unpublished.
    layout: key layout of the file: "official", "official_fp16" (keys under "1.", conv tensors float16),
        "mmpose" (see `convert_mmpose_state_dict`), "swahr" (official plus SWAHR's `conv_scale_layers`),
        "higherhrnet" (a model file this toolkit wrote: weights and meta, checkpoint/meta.py), "bearpaw"
        (bearpaw/pytorch-pose's training checkpoint: epoch, arch, state_dict with keys under "module.",
        best_acc, optimizer; checkpoint/layouts.py).
    ap, ap_multiscale: published AP on `ap_split`, single-scale with flip / multi-scale (None if not published);
        for MPII models the published PCKh@0.5 (mean over the joints), as `ap_split` says.
    publisher: who released the weights, in a few words.
    """
    name: str
    config: str
    layout: str
    ap_split: str
    ap: Optional[float]
    ap_multiscale: Optional[float]
    ap_source: str
    url: Optional[str] = None
    page: Optional[str] = None
    filename: Optional[str] = None
    sha256: Optional[str] = None
    note: str = ""
    publisher: str = ""
    packaged: Optional[str] = None


_OFFICIAL_README = "https://github.com/HRNet/HigherHRNet-Human-Pose-Estimation/blob/master/README.md"
# The README's "Testing on COCO val2017 dataset using model zoo's models" link (Google Drive); its Quick
# start also links the model zoo as https://drive.google.com/open?id=1bdXVmYrSynPLSk5lptvgyQ8fhziobD50
# and https://1drv.ms/f/s!AhIXJn_J-blW4AwKRMklXVzndJT0 (OneDrive).
_OFFICIAL_PAGE = "https://drive.google.com/drive/folders/1X9-TzWpwbX2zQf2To8lB-ZQHMYviYYh6"
_MMPOSE_COCO_MD = ("https://github.com/open-mmlab/mmpose/blob/0.x/configs/body/2d_kpt_sview_rgb_img/"
                   "associative_embedding/coco/higherhrnet_coco.md")
_MMPOSE_CROWDPOSE_MD = ("https://github.com/open-mmlab/mmpose/blob/0.x/configs/body/2d_kpt_sview_rgb_img/"
                        "associative_embedding/crowdpose/higherhrnet_crowdpose.md")
_MMPOSE_DOWNLOAD = "https://download.openmmlab.com/mmpose/bottom_up/"
_SWAHR_README = "https://github.com/greatlog/SWAHR-HumanPose/blob/master/README.md"
# SWAHR README, "Installation": Google Drive, or BaiduYun https://pan.baidu.com/s/1aifAVwUbfAvRN4ZxrItZxQ
# (password 8weh). The README does not list the folder's files.
_SWAHR_PAGE = "https://drive.google.com/drive/folders/13FFvwK7bDZLD4H_toueopbLhJqFjimlu"
_OFFICIAL, _MMPOSE, _SWAHR = "HRNet (official)", "mmpose 0.x (OpenMMLab)", "SWAHR (Luo et al.)"
_TOPDOWN_OFFICIAL = "HRNet top-down (official)"
_TOPDOWN_README = "https://github.com/leoxiaobin/deep-high-resolution-net.pytorch/blob/master/README.md"
# That README's model zoo link (Google Drive); it also gives OneDrive: https://1drv.ms/f/s!AhIXJn_J-blW231MH2krnmLq5kkQ.
_TOPDOWN_PAGE = "https://drive.google.com/drive/folders/1hOTihvbyIxsm5ygDpbUuJ7O_tzv4oXjC"
_MMPOSE_TOPDOWN_MD = ("https://github.com/open-mmlab/mmpose/blob/0.x/configs/body/2d_kpt_sview_rgb_img/"
                      "topdown_heatmap/coco/hrnet_coco.md")
_MMPOSE_TOPDOWN_DOWNLOAD = "https://download.openmmlab.com/mmpose/top_down/hrnet/"
_TOPDOWN_NOTE = ("a top-down network: it finds the joints of one person per box (higherhrnet.topdown, "
                 "docs/topdown.md); predict and eval do not run it yet")
_BEARPAW_README = "https://github.com/bearpaw/pytorch-pose/blob/master/README.md"
# That README's "pretrained models (e.g., 2-stack hourglass model)" link (Google Drive). Its evaluation command
# reads checkpoint/mpii/hg_s2_b1/model_best.pth.tar; example/main.py saves the best epoch as model_best.pth.tar
# and the last as checkpoint.pth.tar.
_BEARPAW_PAGE = ("https://drive.google.com/drive/folders/0B63t5HSgY4SQQ2FBRE5rQ2EzbjQ?"
                 "resourcekey=0-EyrDJs1JYnC5byj5GydbPQ&usp=sharing")
_BEARPAW = "bearpaw/pytorch-pose (Wei Yang)"
_MPII_PCKH = "MPII val, PCKh@0.5"


def _bearpaw_note(model: str, last: bool) -> str:
    saved = ("checkpoint.pth.tar, the last epoch as example/main.py saves it; the README reports its PCKh but does not "
             "say that the folder holds it" if last else "model_best.pth.tar, the best epoch")
    return (f"a top-down network for MPII's 16 joints (MODEL.NAME stacked_hourglass): one person per box; the file: "
            f"{model}'s {saved}")


_ENTRIES = (
    # Official HigherHRNet. AP: README "Main Results", COCO val2017 without / with multi-scale test (flip is
    # the test default, README "Testing"). File names: README names pose_higher_hrnet_w32_512.pth; the two
    # 640 files are named in stefanopini/simple-HigherHRNet's README, which links them in the folder above.
    # No hash is published. The 640 configs train with FP16.ENABLED, which saves the "1."-wrapped layout.
    WeightsEntry("higherhrnet_w32_512", "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml", "official",
                 "COCO val2017", 67.1, 69.9, _OFFICIAL_README,
                 publisher=_OFFICIAL, page=_OFFICIAL_PAGE, filename="pose_higher_hrnet_w32_512.pth"),
    WeightsEntry("higherhrnet_w32_640", "experiments/coco/higher_hrnet/w32_640_adam_lr1e-3.yaml", "official_fp16",
                 "COCO val2017", 68.5, 70.6, _OFFICIAL_README,
                 publisher=_OFFICIAL, page=_OFFICIAL_PAGE, filename="pose_higher_hrnet_w32_640.pth.tar"),
    WeightsEntry("higherhrnet_w48_640", "experiments/coco/higher_hrnet/w48_640_adam_lr1e-3.yaml", "official_fp16",
                 "COCO val2017", 69.9, 72.1, _OFFICIAL_README,
                 publisher=_OFFICIAL, page=_OFFICIAL_PAGE, filename="pose_higher_hrnet_w48_640.pth.tar"),
    # mmpose 0.x. URLs and AP: higherhrnet_coco.md / higherhrnet_coco.yml (single-scale, flip_test=True in
    # the configs; multi-scale with scales [2, 1, 0.5]). mmpose released w32-512, w32-640 and w48-512 on COCO
    # (no w48-640), and w32-512 on CrowdPose. The 8 hex digits in a file name are sha256[:8] of the file
    # (tools/misc/publish_model.py: `sha256sum`, then f'-{sha[:8]}_{date}.pth').
    WeightsEntry("mmpose_higherhrnet_w32_512", "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml", "mmpose",
                 "COCO val2017", 67.7, 70.6, _MMPOSE_COCO_MD,
                 url=_MMPOSE_DOWNLOAD + "higher_hrnet32_coco_512x512-8ae85183_20200713.pth", sha256="8ae85183",
                 publisher=_MMPOSE),
    WeightsEntry("mmpose_higherhrnet_w32_640", "experiments/coco/higher_hrnet/w32_640_adam_lr1e-3.yaml", "mmpose",
                 "COCO val2017", 68.6, 70.6, _MMPOSE_COCO_MD,
                 url=_MMPOSE_DOWNLOAD + "higher_hrnet32_coco_640x640-a22fe938_20200712.pth", sha256="a22fe938",
                 publisher=_MMPOSE),
    WeightsEntry("mmpose_higherhrnet_w48_512", "experiments/coco/mmpose/w48_512.yaml", "mmpose",
                 "COCO val2017", 68.6, 71.6, _MMPOSE_COCO_MD,
                 url=_MMPOSE_DOWNLOAD + "higher_hrnet48_coco_512x512-60fedcbc_20200712.pth", sha256="60fedcbc",
                 publisher=_MMPOSE),
    # higherhrnet_crowdpose.md / .yml: CrowdPose test, single-scale; multi-scale with scales [2, 1].
    WeightsEntry("mmpose_higherhrnet_w32_512_crowdpose", "experiments/crowd_pose/higher_hrnet/w32_512_adam_lr1e-3.yaml",
                 "mmpose", "CrowdPose test", 65.5, 66.1, _MMPOSE_CROWDPOSE_MD,
                 url=_MMPOSE_DOWNLOAD + "higher_hrnet32_crowdpose_512x512-1aa4a132_20201017.pth", sha256="1aa4a132",
                 publisher=_MMPOSE),
    # SWAHR (Luo et al., CVPR 2021). AP: README "Main Results" (HigherHRNet + SWAHR rows). The README's test
    # command loads models/pose_coco/pose_higher_hrnet_w32_512.pth; no source names the other files.
    WeightsEntry("swahr_w32_512", "experiments/coco/swahr/w32_512.yaml", "swahr",
                 "COCO val2017", 68.9, 71.4, _SWAHR_README,
                 publisher=_SWAHR, page=_SWAHR_PAGE, filename="pose_higher_hrnet_w32_512.pth"),
    WeightsEntry("swahr_w48_640", "experiments/coco/swahr/w48_640.yaml", "swahr",
                 "COCO val2017", 70.8, 73.2, _SWAHR_README, publisher=_SWAHR, page=_SWAHR_PAGE),
    # The README reports CrowdPose test AP and the repository has experiments/crowd_pose/higher_hrnet/
    # w48_640_adam_lr1e-3.yaml, but whether the download folder holds CrowdPose weights is not stated.
    WeightsEntry("swahr_w48_640_crowdpose", "experiments/crowd_pose/swahr/w48_640.yaml", "swahr",
                 "CrowdPose test", 71.6, 73.8, _SWAHR_README, publisher=_SWAHR, page=_SWAHR_PAGE,
                 note="the SWAHR README reports these results but does not say that the weights are in its "
                      "download folder"),
    # Official top-down HRNet (deep-high-resolution-net.pytorch). AP: its README, "Results on COCO val2017 with
    # detector having human AP of 56.4" (the boxes of COCO_val2017_detections_AP_H_56_person.json), flip test;
    # there is no multi-scale test. File names: the README's models/pytorch/pose_coco/ listing. No hash is
    # published. A plain state_dict with the official key names (tests/assets/spec/pose_hrnet_*.json).
    WeightsEntry("pose_hrnet_w32_256x192", "experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml", "official",
                 "COCO val2017", 74.4, None, _TOPDOWN_README, publisher=_TOPDOWN_OFFICIAL, page=_TOPDOWN_PAGE,
                 filename="pose_hrnet_w32_256x192.pth", note=_TOPDOWN_NOTE),
    WeightsEntry("pose_hrnet_w32_384x288", "experiments/coco/hrnet/w32_384x288_adam_lr1e-3.yaml", "official",
                 "COCO val2017", 75.8, None, _TOPDOWN_README, publisher=_TOPDOWN_OFFICIAL, page=_TOPDOWN_PAGE,
                 filename="pose_hrnet_w32_384x288.pth", note=_TOPDOWN_NOTE),
    WeightsEntry("pose_hrnet_w48_256x192", "experiments/coco/hrnet/w48_256x192_adam_lr1e-3.yaml", "official",
                 "COCO val2017", 75.1, None, _TOPDOWN_README, publisher=_TOPDOWN_OFFICIAL, page=_TOPDOWN_PAGE,
                 filename="pose_hrnet_w48_256x192.pth", note=_TOPDOWN_NOTE),
    WeightsEntry("pose_hrnet_w48_384x288", "experiments/coco/hrnet/w48_384x288_adam_lr1e-3.yaml", "official",
                 "COCO val2017", 76.3, None, _TOPDOWN_README, publisher=_TOPDOWN_OFFICIAL, page=_TOPDOWN_PAGE,
                 filename="pose_hrnet_w48_384x288.pth", note=_TOPDOWN_NOTE),
    # mmpose 0.x top-down HRNet (TopDown + TopdownHeatmapSimpleHead): URLs and AP from hrnet_coco.md (the same
    # detector boxes, flip test and shift_heatmap in its configs, as mmpose's own pipeline runs them). The 8 hex
    # digits in a file name are sha256[:8] of the file, as for mmpose's HigherHRNet files above.
    WeightsEntry("mmpose_pose_hrnet_w32_256x192", "experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml", "mmpose",
                 "COCO val2017", 74.6, None, _MMPOSE_TOPDOWN_MD, publisher=_MMPOSE,
                 url=_MMPOSE_TOPDOWN_DOWNLOAD + "hrnet_w32_coco_256x192-c78dce93_20200708.pth", sha256="c78dce93",
                 note=_TOPDOWN_NOTE),
    WeightsEntry("mmpose_pose_hrnet_w32_384x288", "experiments/coco/hrnet/w32_384x288_adam_lr1e-3.yaml", "mmpose",
                 "COCO val2017", 76.0, None, _MMPOSE_TOPDOWN_MD, publisher=_MMPOSE,
                 url=_MMPOSE_TOPDOWN_DOWNLOAD + "hrnet_w32_coco_384x288-d9f0d786_20200708.pth", sha256="d9f0d786",
                 note=_TOPDOWN_NOTE),
    WeightsEntry("mmpose_pose_hrnet_w48_256x192", "experiments/coco/hrnet/w48_256x192_adam_lr1e-3.yaml", "mmpose",
                 "COCO val2017", 75.6, None, _MMPOSE_TOPDOWN_MD, publisher=_MMPOSE,
                 url=_MMPOSE_TOPDOWN_DOWNLOAD + "hrnet_w48_coco_256x192-b9e0b3ab_20200708.pth", sha256="b9e0b3ab",
                 note=_TOPDOWN_NOTE),
    WeightsEntry("mmpose_pose_hrnet_w48_384x288", "experiments/coco/hrnet/w48_384x288_adam_lr1e-3.yaml", "mmpose",
                 "COCO val2017", 76.7, None, _MMPOSE_TOPDOWN_MD, publisher=_MMPOSE,
                 url=_MMPOSE_TOPDOWN_DOWNLOAD + "hrnet_w48_coco_384x288-314c8528_20200708.pth", sha256="314c8528",
                 note=_TOPDOWN_NOTE),
    # bearpaw/pytorch-pose's stacked hourglasses (MPII, 256x256 person crops). PCKh@0.5 (mean): its README's table,
    # rows hg_s2_b1 / hg_s8_b1 (best) and (last), MPII validation split of Tompson et al. (2958 people); the
    # README's evaluation command gives no -f, so without flip test. No hash is published; the released files
    # hold the training state (layout "bearpaw", checkpoint/layouts.py).
    *(WeightsEntry(f"{model}_256x256_mpii{'_last' if last else ''}", f"experiments/mpii/hourglass/{model}.yaml",
                   "bearpaw", _MPII_PCKH, pckh, None, _BEARPAW_README, publisher=_BEARPAW, page=_BEARPAW_PAGE,
                   filename="checkpoint.pth.tar" if last else "model_best.pth.tar", note=_bearpaw_note(model, last))
      for model, last, pckh in (("hg_s2_b1", False, 86.95), ("hg_s2_b1", True, 86.76),
                                ("hg_s8_b1", False, 88.78), ("hg_s8_b1", True, 88.64))),
    # The bundled model (README "Models"): trained by this project on its synthetic stick figures, shipped
    # inside the package. AP: README's table, synthetic validation split (200 images), single scale + flip.
    WeightsEntry("synthetic_w16_256", "experiments/synthetic/w16_256_tiny.yaml", "higherhrnet",
                 "synthetic val", 51.8, None, "README.md, Models", publisher="this project (synthetic data)",
                 packaged="assets/w16_256_tiny.pth", filename="w16_256_tiny.pth",
                 sha256="b224e932bdabf083289d519d9a77f4eebbec0b1050efef656e1d6a2fe2e67978",
                 note="a demo model trained on synthetic stick figures, not for photos of real people"),
)

REGISTRY: dict[str, WeightsEntry] = {entry.name: entry for entry in _ENTRIES}

# The weights used when none are named: real COCO weights with a direct download (a person without a config
# or a file gets people in photos), and where they cannot be had (offline), the bundled demo model.
DEFAULT_MODEL = "mmpose_higherhrnet_w32_512"
BUNDLED_MODEL = "synthetic_w16_256"


def package_file(relative: str) -> str:
    """The local path of `relative` ("experiments/coco/...", "assets/..."), a file shipped inside the installed
    package (found with importlib.resources, wherever the package is installed). Raises WeightsError when it
    is not there."""
    resource = importlib.resources.files(__package__)
    for part in relative.split("/"):
        resource = resource.joinpath(part)
    if not isinstance(resource, pathlib.Path):
        raise WeightsError(f"{relative} is inside a zipped installation of higherhrnet; install the package as "
                           f"files (pip install, not a zip) to use it")
    if not resource.is_file():
        raise WeightsError(f"{relative} is missing from this installation of higherhrnet ({resource}); "
                           f"reinstall the package")
    return str(resource)


def config_path(entry: WeightsEntry) -> str:
    """The local path of the entry's experiment config (shipped inside the package)."""
    return package_file(entry.config)


def cache_dir() -> str:
    """$HIGHERHRNET_CACHE, else $XDG_CACHE_HOME/higherhrnet, else ~/.cache/higherhrnet."""
    if os.environ.get("HIGHERHRNET_CACHE"):
        return os.path.expanduser(os.environ["HIGHERHRNET_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "higherhrnet")


def cache_path(entry: WeightsEntry) -> str:
    """Where the entry's file lives in the cache: the URL's file name, or <name>/<published file name>
    for files a person downloads (a folder per entry, because publishers reuse file names). Bundled
    entries have no cache path: their file is `package_file(entry.packaged)`."""
    if entry.packaged:
        raise ValueError(f"weights {entry.name!r} are shipped inside the package, not cached")
    if entry.url:
        return os.path.join(cache_dir(), _url_filename(entry.url))
    return os.path.join(cache_dir(), entry.name, entry.filename or f"{entry.name}.pth")


def weights_status(entry: WeightsEntry) -> str:
    """"bundled" (shipped inside the package), "cached" (a file is at its cache path; checked when used),
    "download" (fetched on first use) or "manual" (to be downloaded by a person)."""
    if entry.packaged:
        return "bundled"
    if os.path.isfile(cache_path(entry)):
        return "cached"
    return "download" if entry.url else "manual"


def entry_of_file(path: str | os.PathLike) -> Optional[WeightsEntry]:
    """The registered entry whose known sha256 the file has (all of it, or the published leading digits), or
    None: how a file that carries no config of its own (official, mmpose) is recognised."""
    candidates = [entry for entry in REGISTRY.values() if entry.sha256]
    if not candidates:
        return None
    actual = _sha256_of(os.fspath(path))
    return next((entry for entry in candidates if actual.startswith(entry.sha256.lower())), None)


def resolve_weights(value: str, progress: bool = True) -> str:
    """A local weights file for `value`: an existing path, an http(s) URL or a name in `REGISTRY`.

    URLs and registered files are downloaded once into `cache_dir()`; every file whose hash is known is
    checked against it: a registered entry's file (bundled, cached or downloaded), a URL whose file name
    carries a hash prefix (mmpose / torch.hub style), a local file with the file name of a registered
    download. Raises WeightsError (a failed download says where to save the file by hand).
    """
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        if urllib.parse.urlparse(value).scheme.lower() not in ("http", "https"):
            raise WeightsError(f"cannot fetch weights from {value}: only http(s) URLs are supported")
        return _cached_download(value, _hash_in_filename(_url_filename(value)), progress)
    path = os.path.expanduser(value)
    if os.path.isfile(path):
        entry = _entry_named_like(path)
        if entry is not None:
            _check_hash(path, entry, "it has the file name of registered weights but not their content "
                                     "(damaged, cut short, or another file)")
        return path
    if os.path.isdir(path):
        raise WeightsError(f"weights path {value} is a folder, not a file")
    if value in REGISTRY:
        return _resolve_entry(REGISTRY[value], progress)
    if _looks_like_path(value):
        raise WeightsError(f"checkpoint not found: {value}")
    known = ", ".join(sorted(REGISTRY))
    close = difflib.get_close_matches(value, list(REGISTRY), n=3)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise WeightsError(f"unknown weights name {value!r} (not a file, URL or registered name).{hint} "
                       f"Known names: {known}")


def resolve_default(progress: bool = True) -> tuple[str, str, Optional[str]]:
    """(registered name, local file, note) of the weights to use when none are named: `DEFAULT_MODEL`, cached
    or downloaded, with note None; where it cannot be had (offline, a failed download), `BUNDLED_MODEL` with
    a one-line note saying so, why, and where to save the COCO weights by hand."""
    try:
        return DEFAULT_MODEL, resolve_weights(DEFAULT_MODEL, progress), None
    except WeightsError as e:
        reason = " ".join(str(e).split())
    return BUNDLED_MODEL, resolve_weights(BUNDLED_MODEL, progress), (
        f"using the bundled demo model {BUNDLED_MODEL} ({REGISTRY[BUNDLED_MODEL].note}): the default COCO "
        f"weights {DEFAULT_MODEL} could not be had: {reason}")


def _looks_like_path(value: str) -> bool:
    # Registered names have no dots and no separators, so either one means a file was meant.
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return any(s in value for s in separators) or value.startswith(("~", ".")) or "." in value


def _entry_named_like(path: str) -> Optional[WeightsEntry]:
    """The registered download with a known hash whose URL file name `path` has (a file downloaded by hand):
    such names (mmpose's, with their hash prefix) name one file exactly."""
    name = os.path.basename(path)
    return next((entry for entry in REGISTRY.values()
                 if entry.url and entry.sha256 and _url_filename(entry.url) == name), None)


def _check_hash(path: str, entry: WeightsEntry, remedy: str) -> None:
    actual = _sha256_of(path)
    if not actual.startswith(entry.sha256.lower()):
        raise WeightsError(f"{path} does not match weights {entry.name!r}: sha256 {actual}, expected "
                           f"{entry.sha256}; {remedy}")


def _resolve_entry(entry: WeightsEntry, progress: bool) -> str:
    if entry.packaged:
        path = package_file(entry.packaged)
        if entry.sha256:
            _check_hash(path, entry, "the file shipped with this installation was changed: reinstall the package "
                                     "(or, after retraining it on purpose, record its new sha256 in zoo.py)")
        return path
    if entry.url:
        return _cached_download(entry.url, entry.sha256, progress)
    path = cache_path(entry)
    if not os.path.isfile(path):
        what = entry.filename or f"the {entry.name} weights"
        note = f" Note: {entry.note}." if entry.note else ""
        raise WeightsError(
            f"weights {entry.name!r} cannot be downloaded automatically. Download {what} from\n"
            f"  {entry.page}\nand save it as\n  {path}\nor pass the path of the downloaded file instead "
            f"of the name.{note}")
    if entry.sha256:
        _check_hash(path, entry, f"delete it and download it again from {entry.page}")
    return path


def _url_filename(url: str) -> str:
    name = urllib.parse.unquote(os.path.basename(urllib.parse.urlparse(url).path))
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise WeightsError(f"cannot tell a file name from the URL {url}")
    return name


# mmpose: <name>-<sha256[:8]>_<yyyymmdd>.pth (the brief also allows "_" before the hash);
# torch.hub: <name>-<sha256 prefix>.pth, e.g. hrnet_w32-36af842e.pth.
_HASH_PATTERNS = (re.compile(r"[-_]([0-9a-f]{8})_\d{8}\.pth$"), re.compile(r"-([0-9a-f]{8,64})\.pth$"))


def _hash_in_filename(filename: str) -> Optional[str]:
    for pattern in _HASH_PATTERNS:
        match = pattern.search(filename)
        if match:
            return match.group(1)
    return None


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached_download(url: str, sha256: Optional[str], progress: bool) -> str:
    path = os.path.join(cache_dir(), _url_filename(url))
    if os.path.isfile(path):
        if sha256 is None:
            return path
        actual = _sha256_of(path)
        if actual.startswith(sha256.lower()):
            return path
        logger.warning("cached %s has sha256 %s, expected %s: downloading it again", path, actual, sha256)
    try:
        download(url, path, sha256, progress)
    except WeightsError as e:
        # Offline machines, proxies, firewalls: the file can still be fetched elsewhere and put in place.
        raise WeightsError(f"{e}. To use it without downloading here, save the file from {url} as {path}") from None
    return path


def download(url: str, path: str, sha256: Optional[str] = None, progress: bool = True) -> None:
    """Stream `url` into a temporary file next to `path`, check size and (when given) the sha256 or its
    leading digits, then rename it to `path`. Whatever stops it (bad hash, network, Ctrl-C), nothing stays
    behind, under either name. Raises WeightsError (a file that cannot be written, e.g. for lack of space,
    is named in one line)."""
    try:
        with atomic_write(path) as f:
            received, actual = _stream(url, f, os.path.basename(path), progress)
            if sha256 is not None and not actual.startswith(sha256.lower()):
                raise WeightsError(f"download of {url} is corrupt or not the expected file: sha256 {actual}, "
                                   f"expected {sha256} ({received} bytes received)")
    except WriteError as e:
        raise WeightsError(f"download of {url}: {e.keeping('nothing was kept')}") from None


def _stream(url: str, f: BinaryIO, label: str, progress: bool) -> tuple[int, str]:
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                      disable=not progress) as bar:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    f.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as e:
        raise WeightsError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except (OSError, http.client.HTTPException) as e:
        # urllib.error.URLError and socket timeouts are OSErrors; IncompleteRead is an HTTPException.
        reason = getattr(e, "reason", None) or str(e) or type(e).__name__
        raise WeightsError(f"download of {url} failed after {received} bytes: {reason}") from None
    # HTTPResponse.read(n) returns b"" when the server closes early instead of raising: count the bytes.
    if expected is not None and received != expected:
        raise WeightsError(f"download of {url} was cut off: {received} of {expected} bytes received")
    return received, digest.hexdigest()
