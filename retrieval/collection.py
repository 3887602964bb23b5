"""A searchable collection on disk: global descriptors in a faiss index, local features in a store, the network
that made them — written by :func:`retrieval.collection_build.build_collection` (``index.py``), opened by
:class:`retrieval.search_engine.SearchEngine`; this module names its parts and reads them.

Layout of a collection folder::

    CURRENT                    the generation readers open, replaced atomically once a build is complete
    cache/                     work kept until a build succeeds (global descriptors in shards, a local store
                               being built): a failed or killed build resumes from it
    generations/<name>/        one complete build:
        collection.json        settings, descriptor id, images root, number of images, skipped files and why
        images.npz             image ids, paths relative to the images root, file stats (retrieval.image_table)
        net.pt                 the global network (config + weights, readable with weights_only=True)
        global/                the faiss index (retrieval.descriptor.index.DescriptorIndex)
        descriptors.npy        the indexed images' global descriptors: a rebuild reuses those of unchanged files
        local/                 the local-feature store (retrieval.local.store), when local features were asked
                               for; its metadata is the one record of the local-feature settings

A build writes a new generation under a temporary name, renames it when complete and only then switches
``CURRENT``: a build killed at any moment leaves the previous collection untouched and searchable, and a reader
opens one consistent generation (the previous one is kept, so a server opened on it keeps working). Every file
below the images folder is indexed or named in ``skipped`` with the reason. Image paths are stored relative to
the images folder, so both can be moved (``images_root=`` when opening).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.image_table import ImageTable
from retrieval.images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

COLLECTION_FILE = "collection.json"
CURRENT_FILE = "CURRENT"
GENERATIONS = "generations"
# Work kept until a build succeeds: global-descriptor shards and local-feature stores being built.
CACHE = "cache"
LOCAL_STORE = "local"
GLOBAL_INDEX = "global"
NETWORK_FILE = "net.pt"
# The global descriptors (N, D) float32 of the indexed images, in the order of collection.json's "images".
DESCRIPTORS_FILE = "descriptors.npy"
# The image ids, relative paths and file stats, as columns (retrieval.image_table.ImageTable); format 2 kept
# them in collection.json.
IMAGES_FILE = "images.npz"
COLLECTION_FORMAT_VERSION = 3
PARTIAL_SUFFIX = ".partial"
# Characters an image id cannot hold (ids are written one a line).
_ID_BREAKS = re.compile(r"[\r\n\x00]")


class CollectionError(ValueError):
    """A collection folder that is missing, incomplete or whose parts disagree; the message says which."""


@dataclass(frozen=True, eq=False)
class ImageListing:
    """The images of a folder by id, and every other file with the reason it is not indexed.

    Attributes:
        root: the folder.
        images: id → path. An id is the path relative to ``root`` without its suffix, or with it when two files
            differ only by their suffix (``a.jpg`` and ``a.png`` become ids ``a.jpg`` and ``a.png``).
        skipped: file path (relative to ``root``) → why it is not indexed.
    """

    root: Path
    images: dict[str, Path]
    skipped: dict[str, str]


def list_images(folder: str | Path) -> ImageListing:
    """Every file below ``folder`` (recursively, hidden files and folders excluded): the images of
    :data:`retrieval.images.IMAGE_SUFFIXES` by id, the rest named with a reason (a warning line counts them).

    Raises:
        ValueError: the folder does not exist or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"image folder not found: {folder}")
    candidates: dict[str, list[Path]] = {}
    skipped: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        name = relative.as_posix()
        if _ID_BREAKS.search(name):
            skipped[name] = "the file name contains a line break or NUL; rename the file"
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            kind = "HEIC/HEIF" if path.suffix.lower() in (".heic", ".heif") else path.suffix or "no suffix"
            skipped[name] = f"unsupported file type ({kind}; images are {', '.join(IMAGE_SUFFIXES)})"
        else:
            candidates.setdefault(relative.with_suffix("").as_posix(), []).append(path)
    images: dict[str, Path] = {}
    for stem, paths in candidates.items():
        if len(paths) == 1:
            images[stem] = paths[0]
        else:
            log.warning(
                "%s: %s differ only by their suffix; their ids keep it", folder, [p.name for p in paths]
            )
            images.update({path.relative_to(folder).as_posix(): path for path in paths})
    if not images:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) below {folder}")
    if skipped:
        first = next(iter(skipped.items()))
        log.warning(
            "%s: %d files are not images and are not indexed (first: %s: %s)", folder, len(skipped), *first
        )
    return ImageListing(folder, images, skipped)


def generation_dir(collection_dir: str | Path) -> Path:
    """The folder of the generation ``CURRENT`` names (or, for a collection of the first layout, the folder itself).

    Raises:
        CollectionError: no collection is there, or ``CURRENT`` names a missing generation.
    """
    root = Path(collection_dir)
    current = root / CURRENT_FILE
    if current.is_file():
        generation = root / GENERATIONS / current.read_text().strip()
        if not (generation / COLLECTION_FILE).is_file():
            raise CollectionError(
                f"{root}: {CURRENT_FILE} names {generation.name}, which is missing or incomplete"
            )
        return generation
    if (root / COLLECTION_FILE).is_file():
        return root
    raise CollectionError(f"{root} is not a collection folder (no {CURRENT_FILE}); build it with index.py")


def read_manifest(generation: Path) -> dict[str, Any]:
    """A generation's ``collection.json`` with its ``images`` (id → relative path, from ``images.npz``), older
    formats brought to it (format 2 listed the images in the JSON; the first, absolute paths and skips without
    reasons)."""
    manifest: dict[str, Any] = json.loads((generation / COLLECTION_FILE).read_text())
    if (generation / IMAGES_FILE).is_file():
        table = ImageTable.load(generation / IMAGES_FILE)
        manifest["images"] = dict(zip(table.ids, table.paths, strict=True))
    if "images_root" not in manifest:  # the first layout: absolute paths, skipped ids without reasons
        manifest["images_root"] = None
        manifest["skipped"] = dict.fromkeys(manifest.get("skipped", []), "unreadable")
    return manifest


def image_paths(manifest: Mapping[str, Any], images_root: str | Path | None = None) -> dict[str, str]:
    """Image id → absolute path, the stored relative paths resolved under ``images_root`` (default: where the
    images were when indexed)."""
    root = images_root or manifest["images_root"]
    if root is None:
        return dict(manifest["images"])
    # One string concatenation per image: a million pathlib joins took seconds when a collection opened.
    prefix = os.path.join(str(Path(root)), "")
    return {image_id: prefix + relative for image_id, relative in manifest["images"].items()}
