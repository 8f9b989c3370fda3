"""Pretrained weights by name or URL, and the mmpose 0.x key layout.

`resolve_weights(value)` turns what a user typed after `--weights` into a local file: an existing path, an
http(s) URL (downloaded once into the cache), or a name from `REGISTRY` (downloaded when its publisher
gives a direct URL; otherwise the error says where to download it and where to put it).

The mmpose 0.x key layout of registered mmpose checkpoints is converted by `load_checkpoint`
(checkpoint/layouts.py explains how the mapping was derived and checked).
"""
from __future__ import annotations

import difflib
import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import BinaryIO, Optional

from tqdm import tqdm

from .fileio import atomic_write

__all__ = ["WeightsError", "WeightsEntry", "REGISTRY", "cache_dir", "cache_path", "resolve_weights", "download"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


class WeightsError(RuntimeError):
    """Weights cannot be found, downloaded, verified or converted; the message says which and why."""


@dataclass(frozen=True)
class WeightsEntry:
    """One set of published weights.

    config: repo-relative experiment YAML.
    url: direct download, or None; then `page` is where a person downloads the file named `filename`.
    filename: the published file name (None where no source names it).
    sha256: full hash or its leading hex digits; None where unpublished.
    layout: key layout of the file: "official", "official_fp16" (keys under "1.", conv tensors float16),
        "mmpose" (see `convert_mmpose_state_dict`), "swahr" (official plus SWAHR's `conv_scale_layers`).
    ap, ap_multiscale: published AP on `ap_split`, single-scale with flip / multi-scale (None if not published).
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


_ENTRIES = (
    # Official HigherHRNet. AP: README "Main Results", COCO val2017 without / with multi-scale test (flip is
    # the test default, README "Testing"). File names: README names pose_higher_hrnet_w32_512.pth; the two
    # 640 files are named in stefanopini/simple-HigherHRNet's README, which links them in the folder above.
    # No hash is published. The 640 configs train with FP16.ENABLED, which saves the "1."-wrapped layout.
    WeightsEntry("higherhrnet_w32_512", "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml", "official",
                 "COCO val2017", 67.1, 69.9, _OFFICIAL_README,
                 page=_OFFICIAL_PAGE, filename="pose_higher_hrnet_w32_512.pth"),
    WeightsEntry("higherhrnet_w32_640", "experiments/coco/higher_hrnet/w32_640_adam_lr1e-3.yaml", "official_fp16",
                 "COCO val2017", 68.5, 70.6, _OFFICIAL_README,
                 page=_OFFICIAL_PAGE, filename="pose_higher_hrnet_w32_640.pth.tar"),
    WeightsEntry("higherhrnet_w48_640", "experiments/coco/higher_hrnet/w48_640_adam_lr1e-3.yaml", "official_fp16",
                 "COCO val2017", 69.9, 72.1, _OFFICIAL_README,
                 page=_OFFICIAL_PAGE, filename="pose_higher_hrnet_w48_640.pth.tar"),
    # mmpose 0.x. URLs and AP: higherhrnet_coco.md / higherhrnet_coco.yml (single-scale, flip_test=True in
    # the configs; multi-scale with scales [2, 1, 0.5]). mmpose released w32-512, w32-640 and w48-512 on COCO
    # (no w48-640), and w32-512 on CrowdPose. The 8 hex digits in a file name are sha256[:8] of the file
    # (tools/misc/publish_model.py: `sha256sum`, then f'-{sha[:8]}_{date}.pth').
    WeightsEntry("mmpose_higherhrnet_w32_512", "experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml", "mmpose",
                 "COCO val2017", 67.7, 70.6, _MMPOSE_COCO_MD,
                 url=_MMPOSE_DOWNLOAD + "higher_hrnet32_coco_512x512-8ae85183_20200713.pth", sha256="8ae85183"),
    WeightsEntry("mmpose_higherhrnet_w32_640", "experiments/coco/higher_hrnet/w32_640_adam_lr1e-3.yaml", "mmpose",
                 "COCO val2017", 68.6, 70.6, _MMPOSE_COCO_MD,
                 url=_MMPOSE_DOWNLOAD + "higher_hrnet32_coco_640x640-a22fe938_20200712.pth", sha256="a22fe938"),
    WeightsEntry("mmpose_higherhrnet_w48_512", "experiments/coco/mmpose/w48_512.yaml", "mmpose",
                 "COCO val2017", 68.6, 71.6, _MMPOSE_COCO_MD,
                 url=_MMPOSE_DOWNLOAD + "higher_hrnet48_coco_512x512-60fedcbc_20200712.pth", sha256="60fedcbc"),
    # higherhrnet_crowdpose.md / .yml: CrowdPose test, single-scale; multi-scale with scales [2, 1].
    WeightsEntry("mmpose_higherhrnet_w32_512_crowdpose", "experiments/crowd_pose/higher_hrnet/w32_512_adam_lr1e-3.yaml",
                 "mmpose", "CrowdPose test", 65.5, 66.1, _MMPOSE_CROWDPOSE_MD,
                 url=_MMPOSE_DOWNLOAD + "higher_hrnet32_crowdpose_512x512-1aa4a132_20201017.pth", sha256="1aa4a132"),
    # SWAHR (Luo et al., CVPR 2021). AP: README "Main Results" (HigherHRNet + SWAHR rows). The README's test
    # command loads models/pose_coco/pose_higher_hrnet_w32_512.pth; no source names the other files.
    WeightsEntry("swahr_w32_512", "experiments/coco/swahr/w32_512.yaml", "swahr",
                 "COCO val2017", 68.9, 71.4, _SWAHR_README,
                 page=_SWAHR_PAGE, filename="pose_higher_hrnet_w32_512.pth"),
    WeightsEntry("swahr_w48_640", "experiments/coco/swahr/w48_640.yaml", "swahr",
                 "COCO val2017", 70.8, 73.2, _SWAHR_README, page=_SWAHR_PAGE),
    # The README reports CrowdPose test AP and the repository has experiments/crowd_pose/higher_hrnet/
    # w48_640_adam_lr1e-3.yaml, but whether the download folder holds CrowdPose weights is not stated.
    WeightsEntry("swahr_w48_640_crowdpose", "experiments/crowd_pose/swahr/w48_640.yaml", "swahr",
                 "CrowdPose test", 71.6, 73.8, _SWAHR_README, page=_SWAHR_PAGE,
                 note="the SWAHR README reports these results but does not say that the weights are in its "
                      "download folder"),
)

REGISTRY: dict[str, WeightsEntry] = {entry.name: entry for entry in _ENTRIES}


def cache_dir() -> str:
    """$HIGHERHRNET_CACHE, else $XDG_CACHE_HOME/higherhrnet, else ~/.cache/higherhrnet."""
    if os.environ.get("HIGHERHRNET_CACHE"):
        return os.path.expanduser(os.environ["HIGHERHRNET_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "higherhrnet")


def cache_path(entry: WeightsEntry) -> str:
    """Where the entry's file lives in the cache: the URL's file name, or <name>/<published file name>
    for files a person downloads (a folder per entry, because publishers reuse file names)."""
    if entry.url:
        return os.path.join(cache_dir(), _url_filename(entry.url))
    return os.path.join(cache_dir(), entry.name, entry.filename or f"{entry.name}.pth")


def resolve_weights(value: str, progress: bool = True) -> str:
    """A local weights file for `value`: an existing path, an http(s) URL or a name in `REGISTRY`.

    URLs and registered files are downloaded once into `cache_dir()` and checked against their sha256
    (registered hash, or the hash prefix in an mmpose / torch.hub style file name). Raises WeightsError.
    """
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        if urllib.parse.urlparse(value).scheme.lower() not in ("http", "https"):
            raise WeightsError(f"cannot fetch weights from {value}: only http(s) URLs are supported")
        return _cached_download(value, _hash_in_filename(_url_filename(value)), progress)
    path = os.path.expanduser(value)
    if os.path.isfile(path):
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


def _looks_like_path(value: str) -> bool:
    # Registered names have no dots and no separators, so either one means a file was meant.
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return any(s in value for s in separators) or value.startswith(("~", ".")) or "." in value


def _resolve_entry(entry: WeightsEntry, progress: bool) -> str:
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
        actual = _sha256_of(path)
        if not actual.startswith(entry.sha256.lower()):
            raise WeightsError(f"{path} does not match weights {entry.name!r}: sha256 {actual}, expected "
                               f"{entry.sha256}. Delete it and download it again from {entry.page}")
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
    download(url, path, sha256, progress)
    return path


def download(url: str, path: str, sha256: Optional[str] = None, progress: bool = True) -> None:
    """Stream `url` into a temporary file next to `path`, check size and (when given) the sha256 or its
    leading digits, then rename it to `path`. Whatever stops it (bad hash, network, Ctrl-C), nothing stays
    behind, under either name. Raises WeightsError."""
    with atomic_write(path) as f:
        received, actual = _stream(url, f, os.path.basename(path), progress)
        if sha256 is not None and not actual.startswith(sha256.lower()):
            raise WeightsError(f"download of {url} is corrupt or not the expected file: sha256 {actual}, "
                               f"expected {sha256} ({received} bytes received)")


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
