"""List the registered weights: publisher, published AP, config, and whether the file is here.

    higherhrnet weights             a table; the default model (used when no --weights is given) is marked *
    higherhrnet weights --json      the same as JSON

Whether the file is here: bundled (shipped inside the package), cached (in the cache folder; checked against
its hash when used), downloads when used, or download by hand (using the name prints the page and the exact
path to save the file at). Any name works wherever --weights is taken.
"""
from __future__ import annotations

import argparse
import json

from .common import CommandError

__all__ = ["add_arguments", "run", "rows"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON instead of a table")


def rows() -> list[dict]:
    """One dict per registered name: name, default, publisher, ap, ap_multiscale, ap_split, config, status,
    path (the bundled or cached file, else where it will be or should be saved)."""
    from ..zoo import DEFAULT_MODEL, REGISTRY, cache_path, package_file, weights_status

    return [{"name": entry.name, "default": entry.name == DEFAULT_MODEL, "publisher": entry.publisher,
             "ap": entry.ap, "ap_multiscale": entry.ap_multiscale, "ap_split": entry.ap_split,
             "config": entry.config, "status": weights_status(entry),
             "path": package_file(entry.packaged) if entry.packaged else cache_path(entry)}
            for entry in REGISTRY.values()]


_STATUS_WORDS = {"bundled": "bundled", "cached": "cached", "download": "downloads when used",
                 "manual": "download by hand"}


def _ap(row: dict) -> str:
    values = " / ".join("-" if ap is None else f"{ap:.1f}" for ap in (row["ap"], row["ap_multiscale"]))
    return f"{values} ({row['ap_split']})"


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from ..zoo import cache_dir

    if overrides:
        raise CommandError(f"weights takes no config overrides, got {' '.join(overrides)}")
    table = rows()
    if args.json:
        print(json.dumps({"cache": cache_dir(), "weights": table}, indent=2))
        return 0
    columns = [("name", lambda r: r["name"] + (" *" if r["default"] else "")), ("publisher", lambda r: r["publisher"]),
               ("AP single / multi-scale", _ap), ("config", lambda r: r["config"]), ("here", lambda r: _STATUS_WORDS[r["status"]])]
    cells = [[name for name, _ in columns]] + [[cell(row) for _, cell in columns] for row in table]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip())
    print(f"\n* the default model. Cache folder: {cache_dir()} (set HIGHERHRNET_CACHE to move it)")
    return 0
