"""What to run on: images, folders, glob patterns, http(s) URLs, video files and webcams, named the way a user
names them, turned into an ordered list of `Source`s.

    sources, notes = collect_sources(["photos/", "clip.mp4", "0", "https://example.com/street.jpg"])

Local paths are taken as they are (a `#` or `?` in a file name is part of the name); only words starting with
http:// or https:// are URLs. A URL is downloaded into a temporary folder when it is read (`local_file`).
"""
from __future__ import annotations

import glob
import os
import urllib.parse
from dataclasses import dataclass
from typing import Mapping, Sequence

from .images import IMAGE_EXTENSIONS
from .zoo import WeightsError, download

__all__ = ["Source", "SourceError", "VIDEO_EXTENSIONS", "collect_sources", "kind_of", "is_url", "local_file"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")


class SourceError(ValueError):
    """A named source names nothing that can be read (no such file, an empty folder, a glob without match)."""


def is_url(location) -> bool:
    return isinstance(location, str) and location.lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class Source:
    """One thing to run on: kind "image", "video" or "webcam"; location: a local path, an http(s) URL or a
    webcam index."""

    kind: str
    location: str | int

    @property
    def name(self) -> str:
        """The file name shown and used for outputs: the path's last part, the URL path's last part, or
        "webcam<N>"."""
        if self.kind == "webcam":
            return f"webcam{self.location}"
        if is_url(self.location):
            return os.path.basename(urllib.parse.urlparse(self.location).path) or str(self.location)
        return os.path.basename(str(self.location)) or str(self.location)

    @property
    def is_stream(self) -> bool:
        """True for videos and webcams: their results come frame by frame."""
        return self.kind in ("video", "webcam")


def kind_of(path: str) -> str | None:
    """"image" or "video" by the file name's extension, None for other files."""
    lower = path.lower()
    if lower.endswith(VIDEO_EXTENSIONS):
        return "video"
    if lower.endswith(IMAGE_EXTENSIONS):
        return "image"
    return None


def collect_sources(words: Sequence[str | int | os.PathLike], kinds: Mapping[str, str] | None = None,
                    recursive: bool = False) -> tuple[list[Source], list[str]]:
    """The sources `words` name, in order, and notes on what was left out (one line each).

    A word is a webcam index (an int, or a string of digits that is no file), an http(s) URL, a folder (its
    image and video files, sorted; subfolders with `recursive`), an existing file, or a glob pattern.
    kinds: a word -> the kind the user said it is ("image", "video"), which wins over its extension.
    SourceError for a word that names nothing.
    """
    kinds = kinds or {}
    sources: list[Source] = []
    notes: list[str] = []
    for word in words:
        if isinstance(word, int):
            sources.append(Source("webcam", word))
            continue
        word = os.fspath(word)
        told = kinds.get(word)
        if told is None and word.isdigit() and not os.path.exists(word):
            sources.append(Source("webcam", int(word)))
        elif is_url(word):
            sources.append(Source(told or kind_of(urllib.parse.urlparse(word).path) or "image", word))
        elif os.path.isdir(word):
            found, note = _list_folder(word, recursive)
            if not found:
                raise SourceError(f"{word}: no image or video files" + (f" ({note})" if note else ""))
            sources += found
            if note:
                notes.append(f"{word}: {note}")
        elif os.path.exists(word) or told:
            sources.append(Source(told or kind_of(word) or "image", word))
        elif glob.has_magic(word):
            files = [p for p in glob.glob(word, recursive=True) if os.path.isfile(p)]
            matches = sorted(p for p in files if kind_of(p))
            if not matches:
                raise SourceError(f"{word}: no image or video file matches")
            sources += [Source(kind_of(p), p) for p in matches]
            if len(files) > len(matches):
                notes.append(f"{word}: skipped {len(files) - len(matches)} files of other types")
        else:
            raise SourceError(f"{word}: no such file, folder, glob match, URL or webcam index")
    return sources, notes


def _list_folder(folder: str, recursive: bool) -> tuple[list[Source], str]:
    """A folder's image and video files (sorted), and a note on what was skipped."""
    found, hidden, subfolders, other = [], 0, 0, 0
    for root, dirs, files in os.walk(folder):
        hidden += sum(d.startswith(".") for d in dirs) + sum(f.startswith(".") for f in files)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if not recursive:
            subfolders += len(dirs)
            dirs[:] = []
        for name in sorted(f for f in files if not f.startswith(".")):
            kind = kind_of(name)
            if kind is None:
                other += 1
            else:
                found.append(Source(kind, os.path.join(root, name)))
    skipped = [f"{n} {what}" for n, what in ((hidden, "hidden"), (subfolders, "subfolders (see --recursive)"),
                                             (other, "files of other types")) if n]
    return found, ("skipped " + ", ".join(skipped)) if skipped else ""


def local_file(source: Source, work_dir: str) -> str | int:
    """Where to read `source` from: its path or webcam index, or for a URL a file downloaded into `work_dir`
    (a fresh name each time). OSError naming the URL when the download fails."""
    if not is_url(source.location):
        return source.location
    target = os.path.join(work_dir, f"{len(os.listdir(work_dir))}_{source.name or 'download'}")
    try:
        download(source.location, target, progress=False)
    except WeightsError as e:
        raise OSError(str(e).replace("weights", "file")) from None
    return target
