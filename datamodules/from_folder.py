"""Your own training data in the GLDv2 format: a folder with one subfolder of photos per place becomes
``train.csv``, ``train_clean.csv`` and ``train/<a>/<b>/<c>/<id>.jpg``, which every training config reads::

    python -m datamodules.from_folder <photos> --root data/mine
    python train.py data.split.root=data/mine

Ids are the first 16 hex digits of the SHA-1 of each photo's path relative to the folder (stable across runs);
landmark ids number the subfolders in sorted order. JPEGs are linked (or copied across file systems), photos in
the other decodable formats are converted to JPEG; files that cannot be read are skipped and counted.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from datamodules.formats.gldv2 import image_path
from retrieval.collection import list_images
from retrieval.images import ImageLoadError, load_rgb

log = logging.getLogger(__name__)

# The subfolder of photos of no place, as in the folder benchmarks: not a landmark to train on.
DISTRACTORS = "distractors"


@dataclass(frozen=True)
class Conversion:
    """What :func:`folder_to_gldv2` wrote: images per landmark id, and the files it skipped with the reason."""

    landmarks: dict[str, int]
    images: int
    skipped: dict[str, str]


def image_id(relative_path: str) -> str:
    """A GLDv2-style id: 16 hex digits, the same for the same relative path."""
    return hashlib.sha1(relative_path.encode("utf-8")).hexdigest()[:16]


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix.lower() in (".jpg", ".jpeg"):
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    else:
        load_rgb(source).save(target, format="JPEG", quality=95)


def folder_to_gldv2(folder: str | Path, root: str | Path) -> Conversion:
    """Write the photos of ``folder`` (one subfolder per place; photos directly in ``folder`` or in ``distractors/``
    have no place and are skipped) into ``root`` in the GLDv2 training format.

    Raises:
        ValueError: ``folder`` has no photos in subfolders, or ``root`` already holds a train.csv.
    """
    folder, root = Path(folder), Path(root)
    if (root / "train.csv").exists():
        raise ValueError(f"{root} already holds a train.csv; choose another --root")
    listing = list_images(folder)
    skipped = dict(listing.skipped)
    places = sorted(
        {Path(relative).parts[0] for relative in listing.images if len(Path(relative).parts) > 1}
        - {DISTRACTORS}
    )
    if not places:
        raise ValueError(f"{folder}: put the photos of each place in a subfolder of its own")
    landmark_of = {place: number for number, place in enumerate(places)}
    rows: list[tuple[str, int]] = []
    for path in listing.images.values():
        relative = path.relative_to(folder).as_posix()
        if len(Path(relative).parts) < 2 or Path(relative).parts[0] == DISTRACTORS:
            skipped[relative] = "not in a place's subfolder (distractors are no training place)"
            continue
        new_id = image_id(relative)
        try:
            _place(path, image_path(root, "train", new_id))
        except ImageLoadError as error:
            skipped[relative] = str(error)
            continue
        rows.append((new_id, landmark_of[Path(relative).parts[0]]))
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "url", "landmark_id"])
        writer.writerows((identifier, "", landmark) for identifier, landmark in rows)
    images_of: dict[int, list[str]] = {}
    for identifier, landmark in rows:
        images_of.setdefault(landmark, []).append(identifier)
    with open(root / "train_clean.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["landmark_id", "images"])
        writer.writerows(
            [landmark, " ".join(images_of[landmark])]
            for landmark in landmark_of.values()
            if landmark in images_of
        )
    with open(root / "landmarks.csv", "w", newline="") as handle:  # a place may be named "Paris, Louvre"
        writer = csv.writer(handle)
        writer.writerow(["landmark_id", "place"])
        writer.writerows((number, place) for place, number in landmark_of.items())
    if skipped:
        log.warning("%d files skipped (first: %s)", len(skipped), next(iter(skipped.items())))
    return Conversion(landmark_of, len(rows), skipped)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datamodules.from_folder", description=__doc__.splitlines()[0]
    )
    parser.add_argument("folder", type=Path, help="one subfolder of photos per place")
    parser.add_argument("--root", type=Path, required=True, help="the GLDv2-format folder to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        conversion = folder_to_gldv2(args.folder, args.root)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"{conversion.images} photos of {len(conversion.landmarks)} places written to {args.root} "
        f"({len(conversion.skipped)} files skipped); train with: python train.py data.split.root={args.root}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
