"""A model version's files on disk: their layout and names, durable writes, checksums.

Layout under a registry's ``root``::

    root/
      20261126T231500Z-ab12cd/   one version: written in a hidden temp dir, then renamed
        model.npz                the compiled model's arrays (read with allow_pickle=False)
        model.json               its feature names, offset, tree layout and description
        pipeline.json            table models: how a table row becomes the feature vector
        report.json              the full training report, when one was given
        manifest.json            what it is, how it was trained, a drift reference sample,
                                 and the sha256 of every other file
      champion.json              the champion pointer and its history (per segment:
      champion.<segment>.json    one file each)
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PIPELINE_FILE = "pipeline.json"
REPORT_FILE = "report.json"
MANIFEST_FILE = "manifest.json"
#: The model file of the layout before compiled models (a skops archive); never loaded.
OLD_MODEL_FILE = "model.skops"


def sha256(path: Path) -> str:
    """The sha256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8 and fsync the file."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def fsync(path: Path) -> None:
    """Flush a file's or a directory's entries to disk (a rename is durable once its dir is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
