"""A local-feature store built in parts, so that every rank of a distributed job (``index.py
trainer.devices=8 trainer.num_nodes=4``) extracts its share with its own process pool, and one store comes out.

Part ``p`` holds the images at positions ``[p * part_size, (p + 1) * part_size)`` of the list, ``part_size`` a
whole number of store shards (of :data:`STORE_SHARD_SIZE` images, or ``part_size`` if smaller): it is a store of its own in ``part_PPPPP/`` (built, and resumed after a kill, by
:func:`retrieval.local.store.build_feature_store`), complete once ``part_PPPPP/COMPLETE`` exists. A compact
store's Hamming embedding is decided once for all parts (``codec.npz`` beside them). :meth:`StoreParts.join`
then renames the parts' shard files, in part order, into one store: no feature is copied, and the result does
not depend on how many ranks built the parts.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Collection, Sequence
from pathlib import Path

from retrieval.local.features import LocalExtractor
from retrieval.local.hamming import HammingEmbedding
from retrieval.local.store import (
    CODEC_FILE,
    METADATA_FILE,
    FeatureStore,
    StoreMetadata,
    build_feature_store,
    train_codec,
)

logger = logging.getLogger(__name__)

STORE_SHARD_SIZE = 512
DEFAULT_PART_SIZE = 8 * STORE_SHARD_SIZE
_COMPLETE = "COMPLETE"


class StoreParts:
    """The parts of the store of ``images`` (id, path pairs, in order) being built under ``root``.

    Args:
        root: the folder of the parts (created).
        images: (image id, image path) of every image the store will hold, in store order.
        extractor: the local features.
        part_size: images per part (the unit of work dealt to the ranks).
    """

    def __init__(
        self,
        root: str | Path,
        images: Sequence[tuple[str, str]],
        extractor: LocalExtractor,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        self.store_shard_size = min(STORE_SHARD_SIZE, part_size)
        if part_size < 1 or part_size % self.store_shard_size:
            raise ValueError(
                f"part_size must be a positive multiple of {STORE_SHARD_SIZE} (or smaller), got {part_size}"
            )
        self.root = Path(root)
        self.images = list(images)
        self.extractor = extractor
        self.part_size = part_size

    @property
    def num_parts(self) -> int:
        return -(-len(self.images) // self.part_size)

    def part_dir(self, part: int) -> Path:
        return self.root / f"part_{part:05d}"

    def part_images(self, part: int) -> list[tuple[str, str]]:
        """The (id, path) pairs part ``part`` holds."""
        return self.images[part * self.part_size : (part + 1) * self.part_size]

    def pending(self) -> list[int]:
        """The parts not complete yet, in order."""
        return [part for part in range(self.num_parts) if not (self.part_dir(part) / _COMPLETE).is_file()]

    def prepare_codec(self, reuse: FeatureStore | None, num_workers: int = 0) -> None:
        """Decide a compact store's embedding once, before any part: the one already here, else ``reuse``'s (the
        previous build's codes stay valid), else one trained on a sample of all the images. Rank 0 calls it; the
        others wait, then every part uses it."""
        compact = self.extractor.compact
        path = self.root / CODEC_FILE
        if compact is None or path.is_file():
            return
        metadata = StoreMetadata.from_extractor(self.extractor)
        if reuse is not None and not reuse.metadata.mismatches(metadata):
            codec = reuse.codec
        else:
            codec = train_codec(
                self.extractor, [image_path for _, image_path in self.images], compact, num_workers
            )
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.root / f".codec.{os.getpid()}.tmp.npz"
        codec.save(temporary)
        os.replace(temporary, path)

    def codec(self) -> HammingEmbedding | None:
        if self.extractor.compact is None:
            return None
        if not (self.root / CODEC_FILE).is_file():
            raise ValueError(f"{self.root}: the parts' Hamming embedding is not decided yet (prepare_codec)")
        return HammingEmbedding.load(self.root / CODEC_FILE)

    def build(
        self,
        part: int,
        num_workers: int = 0,
        reuse: FeatureStore | None = None,
        reuse_ids: Collection[str] = (),
        progress: bool = True,
    ) -> None:
        """Build (or resume) one part, then mark it complete."""
        build_feature_store(
            self.part_dir(part),
            dict(self.part_images(part)),
            self.extractor,
            num_workers=num_workers,
            shard_size=self.store_shard_size,
            progress=progress,
            reuse=reuse,
            reuse_ids=reuse_ids,
            codec=self.codec(),
        )
        (self.part_dir(part) / _COMPLETE).write_text("")

    def join(self, target: str | Path) -> FeatureStore:
        """One store at ``target`` (which must not exist) holding every part's shards, renumbered in part order:
        hard links to the parts' files (copies across file systems), so the parts stay whole and a join killed
        half-way is simply done again.

        Raises:
            ValueError: a part is not complete.
        """
        target = Path(target)
        missing = self.pending()
        if missing:
            raise ValueError(
                f"{self.root}: {len(missing)} of {self.num_parts} parts are not built (first: {missing[0]})"
            )
        metadata = StoreMetadata.from_extractor(self.extractor)
        if not self.num_parts:  # no image: an empty store
            return build_feature_store(target, {}, self.extractor, codec=self.codec(), progress=False)
        target.mkdir(parents=True)
        _link(self.part_dir(0) / METADATA_FILE, target / METADATA_FILE)
        if metadata.codec is not None:
            _link(self.root / CODEC_FILE, target / CODEC_FILE)
        shard = 0
        for part in range(self.num_parts):
            for index_file in sorted(self.part_dir(part).glob("shard_*.index.json")):
                stem = index_file.name.removesuffix(".index.json")
                for suffix in (".keypoints.bin", ".descriptors.bin", ".index.json"):  # the index last
                    _link(self.part_dir(part) / f"{stem}{suffix}", target / f"shard_{shard:05d}{suffix}")
                shard += 1
        return FeatureStore(target, expected=metadata)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
