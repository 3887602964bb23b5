"""The demo's settings (:class:`DemoConfig`, the sizes of :data:`DEMO_SCALES`), the file names it writes, and
the record of what it planted (:class:`DemoManifest`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

MARKER_FILE = ".complete"
SOLUTION_FILE = "retrieval_solution_v2.1.csv"
RDEMO_NAME = "rdemo"
URL_TEMPLATE = "https://example.invalid/gldv2-demo/{image_id}.jpg"
MAX_LANDMARK_ID = 200_000
TRUNCATED_FRACTION = 0.6
CAMERAS: tuple[tuple[str, str], ...] = (
    ("Canon", "Canon EOS 5D Mark II"),
    ("NIKON CORPORATION", "NIKON D7000"),
    ("Apple", "iPhone 6"),
    ("SONY", "DSC-RX100"),
    ("samsung", "SM-G930F"),
    ("FUJIFILM", "X-T2"),
)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo dataset. The defaults give ~400 train, ~140 index, ~40 test and ~120 rdemo images.

    Train rows are the ``train_images_per_landmark`` genuine views of each landmark plus the extra noise rows
    (mislabelled, distractor, corrupt, missing, near-duplicate); grayscale, near-grayscale and CMYK images are
    genuine views saved differently.
    """

    num_train_landmarks: int = 40
    min_train_images_per_landmark: int = 6
    max_train_images_per_landmark: int = 20
    num_mislabelled: int = 12
    num_train_distractors: int = 8
    num_grayscale_single_channel: int = 3
    num_grayscale_rgb: int = 3
    num_near_grayscale: int = 2
    num_missing: int = 3
    num_near_duplicates: int = 6
    exif_datetime_fraction: float = 0.7
    exif_camera_fraction: float = 0.6
    num_index_landmarks: int = 12
    min_index_images_per_landmark: int = 6
    max_index_images_per_landmark: int = 10
    num_index_distractors: int = 40
    min_test_queries_per_landmark: int = 2
    max_test_queries_per_landmark: int = 3
    num_test_non_landmark: int = 8
    public_fraction: float = 1 / 3
    num_rdemo_landmarks: int = 8
    rdemo_easy_per_landmark: int = 4
    rdemo_hard_per_landmark: int = 3
    rdemo_junk_per_landmark: int = 2
    num_rdemo_distractors: int = 30
    rdemo_queries_per_landmark: int = 2
    min_long_side: int = 320
    max_long_side: int = 480

    def __post_init__(self) -> None:
        for config_field in fields(self):
            value = getattr(self, config_field.name)
            if value < 0:
                raise ValueError(f"DemoConfig.{config_field.name} must be non-negative, got {value}")
        for name in ("exif_datetime_fraction", "exif_camera_fraction", "public_fraction"):
            if getattr(self, name) > 1:
                raise ValueError(f"DemoConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        for low, high in (
            ("min_train_images_per_landmark", "max_train_images_per_landmark"),
            ("min_index_images_per_landmark", "max_index_images_per_landmark"),
            ("min_test_queries_per_landmark", "max_test_queries_per_landmark"),
            ("min_long_side", "max_long_side"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(
                    f"DemoConfig.{low}={getattr(self, low)} exceeds DemoConfig.{high}={getattr(self, high)}"
                )
        if self.num_train_landmarks < 2 and self.num_mislabelled > 0:
            raise ValueError(
                f"mislabelled images need at least 2 train landmarks, got num_train_landmarks={self.num_train_landmarks}"
            )
        if self.min_train_images_per_landmark < 1:
            raise ValueError(
                f"DemoConfig.min_train_images_per_landmark must be at least 1, got {self.min_train_images_per_landmark}"
            )
        recoloured = self.num_grayscale_single_channel + self.num_grayscale_rgb + self.num_near_grayscale + 1
        minimum_genuine = self.num_train_landmarks * self.min_train_images_per_landmark
        if recoloured + self.num_near_duplicates > minimum_genuine:
            raise ValueError(
                f"{recoloured} grayscale/near-grayscale/CMYK images plus {self.num_near_duplicates} near-duplicate "
                f"sources need more than the {minimum_genuine} genuine train views that "
                f"num_train_landmarks={self.num_train_landmarks} and "
                f"min_train_images_per_landmark={self.min_train_images_per_landmark} guarantee"
            )
        if self.min_long_side < 64:
            raise ValueError(f"DemoConfig.min_long_side must be at least 64 pixels, got {self.min_long_side}")


_SMALL = DemoConfig(
    num_train_landmarks=5,
    min_train_images_per_landmark=6,
    max_train_images_per_landmark=8,
    num_mislabelled=2,
    num_train_distractors=2,
    num_grayscale_single_channel=1,
    num_grayscale_rgb=1,
    num_near_grayscale=1,
    num_missing=1,
    num_near_duplicates=2,
    num_index_landmarks=3,
    min_index_images_per_landmark=3,
    max_index_images_per_landmark=4,
    num_index_distractors=3,
    num_test_non_landmark=2,
    num_rdemo_landmarks=3,
    rdemo_easy_per_landmark=2,
    rdemo_hard_per_landmark=1,
    rdemo_junk_per_landmark=1,
    num_rdemo_distractors=3,
)
DEMO_SCALES: dict[str, DemoConfig] = {
    "default": DemoConfig(),
    "small": _SMALL,
    # The test suite's dataset: more landmarks than "small", fewer and smaller photos each.
    "tiny": replace(
        _SMALL,
        num_train_landmarks=10,
        min_train_images_per_landmark=4,
        max_train_images_per_landmark=6,
        num_near_duplicates=1,
        num_index_distractors=4,
        rdemo_queries_per_landmark=1,
        min_long_side=160,
        max_long_side=200,
    ),
}


@dataclass(frozen=True)
class DemoManifest:
    """What :func:`generate_demo` wrote: the dataset counts and every defect injected into ``train``.

    The noise fields are written to ``noise_manifest.json`` under the same names. ``train_clean.csv`` lists, per
    landmark, the genuine views that are in none of ``mislabelled``, ``grayscale``, ``near_grayscale``,
    ``distractor``, ``corrupt``, ``missing`` and ``near_duplicate`` (CMYK images are clean), and only landmarks
    with at least two of them.
    """

    root: Path
    seed: int
    counts: Mapping[str, int]
    mislabelled: tuple[str, ...]
    grayscale: tuple[str, ...]
    near_grayscale: tuple[str, ...]
    distractor: tuple[str, ...]
    corrupt: tuple[str, ...]
    cmyk: tuple[str, ...]
    missing: tuple[str, ...]
    near_duplicate: Mapping[str, str]
    exif_datetime: Mapping[str, str]
    camera: Mapping[str, str]
    true_landmark: Mapping[str, int]

    def noise_json(self) -> dict[str, object]:
        """The content of ``noise_manifest.json``: lists sorted, mappings sorted by id, then ``counts``."""
        return {
            "mislabelled": list(self.mislabelled),
            "grayscale": list(self.grayscale),
            "near_grayscale": list(self.near_grayscale),
            "distractor": list(self.distractor),
            "corrupt": list(self.corrupt),
            "cmyk": list(self.cmyk),
            "missing": list(self.missing),
            "near_duplicate": dict(sorted(self.near_duplicate.items())),
            "exif_datetime": dict(sorted(self.exif_datetime.items())),
            "camera": dict(sorted(self.camera.items())),
            "true_landmark": dict(sorted(self.true_landmark.items())),
            "counts": dict(self.counts),
        }
