"""The three parts of the dataset, each in its real format: GLDv2 train (with planted noise), the GLDv2
retrieval split (index, test, solution) and the Revisited-format ``rdemo`` benchmark; :func:`generate_demo`
writes them all.
"""

from __future__ import annotations

import enum
import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from datamodules.demo.camera import render_landmark_photo, render_non_landmark_photo
from datamodules.demo.config import (
    CAMERAS,
    MARKER_FILE,
    MAX_LANDMARK_ID,
    RDEMO_NAME,
    SOLUTION_FILE,
    TRUNCATED_FRACTION,
    URL_TEMPLATE,
    DemoConfig,
    DemoManifest,
)
from datamodules.demo.files import (
    Ids,
    encode_jpeg,
    exif_of,
    image_path,
    jpeg_quality,
    remove_previous_output,
    sample_datetime,
    write_file,
    write_lines,
)
from datamodules.demo.rng import Stream, pick, randint, stream_rng, uniform_between
from datamodules.demo.scene import render_landmark_scene
from retrieval.images import load_rgb

# The Usage column of the retrieval solution.
_PUBLIC, _PRIVATE, _IGNORED = "Public", "Private", "Ignored"


class _Kind(enum.Enum):
    """What a train.csv row really is."""

    CLEAN = "clean"
    CMYK = "cmyk"
    GRAYSCALE_SINGLE_CHANNEL = "grayscale_single_channel"
    GRAYSCALE_RGB = "grayscale_rgb"
    NEAR_GRAYSCALE = "near_grayscale"
    MISLABELLED = "mislabelled"
    DISTRACTOR = "distractor"
    TRUNCATED = "truncated"
    ZERO_BYTE = "zero_byte"
    TEXT = "text"
    MISSING = "missing"
    NEAR_DUPLICATE = "near_duplicate"


_CLEAN_KINDS = frozenset({_Kind.CLEAN, _Kind.CMYK})
_CORRUPT_KINDS = (_Kind.TRUNCATED, _Kind.ZERO_BYTE, _Kind.TEXT)
_NO_IMAGE_KINDS = frozenset({*_CORRUPT_KINDS, _Kind.MISSING})
_SEPIA = np.array([1.07, 0.95, 0.76], np.float32)
_NOT_AN_IMAGE = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n"


@dataclass(frozen=True)
class _TrainRow:
    """One train.csv row: ``landmark_id`` as listed, ``scene`` the train landmark really shown (None: none)."""

    image_id: str
    landmark_id: int
    kind: _Kind
    scene: int | None
    source_id: str | None = None  # near-duplicates: the image they copy


@dataclass(frozen=True)
class _TrainPart:
    landmark_ids: list[int]
    rows: list[_TrainRow]
    exif_datetime: dict[str, str]
    camera: dict[str, tuple[str, str]]


def _plan_train(rng: np.random.Generator, config: DemoConfig, ids: Ids) -> _TrainPart:
    """Landmark ids, every train row with what it really is, and the EXIF of every decodable image."""
    num_landmarks = config.num_train_landmarks
    landmark_ids = sorted(
        int(value) + 1 for value in rng.choice(MAX_LANDMARK_ID, num_landmarks, replace=False)
    )
    spread = config.max_train_images_per_landmark - config.min_train_images_per_landmark + 1
    genuine: list[_TrainRow] = []
    for scene, landmark_id in enumerate(landmark_ids):
        count = config.min_train_images_per_landmark + min(spread - 1, int(spread * rng.random() ** 3))
        genuine += [_TrainRow(ids.new(), landmark_id, _Kind.CLEAN, scene) for _ in range(count)]
    recoloured = (
        [_Kind.GRAYSCALE_SINGLE_CHANNEL] * config.num_grayscale_single_channel
        + [_Kind.GRAYSCALE_RGB] * config.num_grayscale_rgb
        + [_Kind.NEAR_GRAYSCALE] * config.num_near_grayscale
        + [_Kind.CMYK]
    )
    chosen = [
        int(position)
        for position in rng.choice(len(genuine), len(recoloured) + config.num_near_duplicates, replace=False)
    ]
    for position, kind in zip(chosen, recoloured, strict=False):
        row = genuine[position]
        genuine[position] = _TrainRow(row.image_id, row.landmark_id, kind, row.scene)
    extra = [
        _TrainRow(
            ids.new(),
            genuine[position].landmark_id,
            _Kind.NEAR_DUPLICATE,
            genuine[position].scene,
            genuine[position].image_id,
        )
        for position in chosen[len(recoloured) :]
    ]
    for _ in range(config.num_mislabelled):
        shown = randint(rng, 0, num_landmarks - 1)
        listed = (shown + randint(rng, 1, num_landmarks - 1)) % num_landmarks
        extra.append(_TrainRow(ids.new(), landmark_ids[listed], _Kind.MISLABELLED, shown))
    for _ in range(config.num_train_distractors):
        extra.append(_TrainRow(ids.new(), pick(rng, landmark_ids), _Kind.DISTRACTOR, None))
    for kind in (*_CORRUPT_KINDS, *[_Kind.MISSING] * config.num_missing):
        scene = randint(rng, 0, num_landmarks - 1)
        extra.append(
            _TrainRow(ids.new(), landmark_ids[scene], kind, scene if kind is not _Kind.ZERO_BYTE else None)
        )
    rows = genuine + extra
    exif_datetime: dict[str, str] = {}
    camera: dict[str, tuple[str, str]] = {}
    for row in rows:
        if row.kind in _NO_IMAGE_KINDS:
            continue
        if row.source_id is not None:
            if row.source_id in exif_datetime:
                exif_datetime[row.image_id] = exif_datetime[row.source_id]
            if row.source_id in camera:
                camera[row.image_id] = camera[row.source_id]
            continue
        if rng.random() < config.exif_datetime_fraction:
            exif_datetime[row.image_id] = sample_datetime(rng)
        if rng.random() < config.exif_camera_fraction:
            camera[row.image_id] = pick(rng, CAMERAS)
    return _TrainPart(landmark_ids, rows, exif_datetime, camera)


def _as_saved(rgb: np.ndarray, kind: _Kind) -> Image.Image:
    """The picture that a train row of ``kind`` stores for the photo ``rgb`` (H, W, 3) uint8."""
    if kind is _Kind.CMYK:
        return Image.fromarray(rgb).convert("CMYK")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if kind is _Kind.GRAYSCALE_SINGLE_CHANNEL:
        return Image.fromarray(gray)
    if kind is _Kind.GRAYSCALE_RGB:
        return Image.fromarray(np.dstack([gray, gray, gray]))
    if kind is _Kind.NEAR_GRAYSCALE:
        return Image.fromarray(np.clip(gray[..., None] * _SEPIA + 6, 0, 255).astype(np.uint8))
    return Image.fromarray(rgb)


def _write_train(
    root: Path, config: DemoConfig, seed: int, part: _TrainPart, scenes: Sequence[np.ndarray]
) -> dict[int, list[str]]:
    """Render and save every train image (near-duplicates last, from their saved source), write train.csv and
    train_clean.csv; return the clean image ids per landmark written to train_clean.csv."""
    for position, row in enumerate(part.rows):
        if row.kind is _Kind.MISSING or row.kind is _Kind.NEAR_DUPLICATE:
            continue
        path = image_path(root, "train", row.image_id)
        if row.kind is _Kind.ZERO_BYTE:
            write_file(path, b"")
            continue
        if row.kind is _Kind.TEXT:
            write_file(path, _NOT_AN_IMAGE)
            continue
        rng = stream_rng(seed, Stream.TRAIN, position)
        if row.scene is None:
            rgb = render_non_landmark_photo(rng, config)
        else:
            rgb, _ = render_landmark_photo(scenes[row.scene], rng, "medium", config)
        quality = jpeg_quality(rng)
        exif = exif_of(part.exif_datetime.get(row.image_id), part.camera.get(row.image_id))
        if row.kind is _Kind.TRUNCATED:
            encoded = encode_jpeg(Image.fromarray(rgb), quality)
            write_file(path, encoded[: int(len(encoded) * TRUNCATED_FRACTION)])
            continue
        picture = _as_saved(rgb, row.kind)
        write_file(path, encode_jpeg(picture, quality, exif))
    for position, row in enumerate(part.rows):
        if row.kind is _Kind.NEAR_DUPLICATE and row.source_id is not None:
            rng = stream_rng(seed, Stream.TRAIN, position)
            source = load_rgb(image_path(root, "train", row.source_id))
            factor = uniform_between(rng, 0.6, 0.85)
            resized = source.resize(
                (round(source.width * factor), round(source.height * factor)), Image.Resampling.LANCZOS
            )
            exif = exif_of(part.exif_datetime.get(row.image_id), part.camera.get(row.image_id))
            write_file(image_path(root, "train", row.image_id), encode_jpeg(resized, jpeg_quality(rng), exif))
    rows = sorted(part.rows, key=lambda row: row.image_id)
    write_lines(
        root / "train.csv",
        "id,url,landmark_id",
        [f"{row.image_id},{URL_TEMPLATE.format(image_id=row.image_id)},{row.landmark_id}" for row in rows],
    )
    clean: dict[int, list[str]] = {}
    for row in rows:
        if row.kind in _CLEAN_KINDS:
            clean.setdefault(row.landmark_id, []).append(row.image_id)
    clean = {landmark_id: clean[landmark_id] for landmark_id in sorted(clean) if len(clean[landmark_id]) >= 2}
    write_lines(
        root / "train_clean.csv",
        "landmark_id,images",
        [f"{landmark_id},{' '.join(image_ids)}" for landmark_id, image_ids in clean.items()],
    )
    return clean


def _write_index_and_test(
    root: Path,
    config: DemoConfig,
    seed: int,
    rng: np.random.Generator,
    ids: Ids,
    scenes: Sequence[np.ndarray],
) -> dict[str, int]:
    """Index images of landmarks never seen in train plus distractors, test queries plus non-landmark images,
    index.csv, test.csv and the retrieval solution; returns their counts."""
    index_scene: dict[str, int | None] = {}
    test_scene: dict[str, int | None] = {}
    for landmark in range(len(scenes)):
        num_index = randint(rng, config.min_index_images_per_landmark, config.max_index_images_per_landmark)
        num_queries = randint(rng, config.min_test_queries_per_landmark, config.max_test_queries_per_landmark)
        index_scene.update((ids.new(), landmark) for _ in range(num_index))
        test_scene.update((ids.new(), landmark) for _ in range(num_queries))
    index_scene.update((ids.new(), None) for _ in range(config.num_index_distractors))
    test_scene.update((ids.new(), None) for _ in range(config.num_test_non_landmark))
    queries = [image_id for image_id, shown in test_scene.items() if shown is not None]
    num_public = round(config.public_fraction * len(queries))
    public = {queries[int(position)] for position in rng.choice(len(queries), num_public, replace=False)}
    for split, stream, members in (("index", Stream.INDEX, index_scene), ("test", Stream.TEST, test_scene)):
        for position, (image_id, shown) in enumerate(members.items()):
            view_rng = stream_rng(seed, stream, position)
            if shown is None:
                rgb = render_non_landmark_photo(view_rng, config)
            else:
                rgb, _ = render_landmark_photo(scenes[shown], view_rng, "medium", config)
            write_file(
                image_path(root, split, image_id),
                encode_jpeg(Image.fromarray(rgb), jpeg_quality(view_rng)),
            )
    write_lines(root / "index.csv", "id", sorted(index_scene))
    write_lines(root / "test.csv", "id", sorted(test_scene))
    solution = []
    for image_id in sorted(test_scene):
        shown = test_scene[image_id]
        if shown is None:
            solution.append(f"{image_id},None,{_IGNORED}")
            continue
        matches = " ".join(
            sorted(index_id for index_id, index_of in index_scene.items() if index_of == shown)
        )
        solution.append(f"{image_id},{matches},{_PUBLIC if image_id in public else _PRIVATE}")
    write_lines(root / SOLUTION_FILE, "id,images,Usage", solution)
    return {
        "index_images": len(index_scene),
        "index_landmarks": len(scenes),
        "index_distractors": config.num_index_distractors,
        "test_images": len(test_scene),
        "test_public": num_public,
        "test_private": len(queries) - num_public,
        "test_ignored": config.num_test_non_landmark,
    }


def _write_rdemo(
    root: Path, config: DemoConfig, seed: int, rng: np.random.Generator, scenes: Sequence[np.ndarray]
) -> dict[str, int]:
    """The Revisited-Oxford-format benchmark: database photos labelled easy, hard or junk per landmark,
    distractors, and queries with the landmark's bounding box; returns its counts."""
    difficulties = (
        ["easy"] * config.rdemo_easy_per_landmark
        + ["hard"] * config.rdemo_hard_per_landmark
        + ["junk"] * config.rdemo_junk_per_landmark
    )
    database: list[tuple[int | None, str]] = [
        (scene, difficulty) for scene in range(len(scenes)) for difficulty in difficulties
    ]
    database += [(None, "distractor")] * config.num_rdemo_distractors
    num_queries = len(scenes) * config.rdemo_queries_per_landmark
    numbers = rng.permutation(len(database) + num_queries)
    names = [f"{RDEMO_NAME}_{int(number):06d}" for number in numbers]
    database_names, query_names = names[: len(database)], names[len(database) :]
    imlist = sorted(database_names)
    position_of = {name: position for position, name in enumerate(imlist)}
    folder = root / "revisited" / RDEMO_NAME
    for position, (name, (scene, difficulty)) in enumerate(zip(database_names, database, strict=True)):
        view_rng = stream_rng(seed, Stream.RDEMO, position)
        if scene is None:
            rgb = render_non_landmark_photo(view_rng, config)
        else:
            rgb, _ = render_landmark_photo(scenes[scene], view_rng, difficulty, config)
        write_file(folder / "jpg" / f"{name}.jpg", encode_jpeg(Image.fromarray(rgb), jpeg_quality(view_rng)))
    ground_truth: list[dict[str, list[int] | list[float]]] = []
    for query, name in enumerate(query_names):
        scene = query // config.rdemo_queries_per_landmark
        view_rng = stream_rng(seed, Stream.RDEMO_QUERY, query)
        rgb, box = render_landmark_photo(scenes[scene], view_rng, "query", config)
        write_file(folder / "jpg" / f"{name}.jpg", encode_jpeg(Image.fromarray(rgb), jpeg_quality(view_rng)))
        entry: dict[str, list[int] | list[float]] = {
            difficulty: sorted(
                position_of[database_name]
                for database_name, (database_scene, database_difficulty) in zip(
                    database_names, database, strict=True
                )
                if database_scene == scene and database_difficulty == difficulty
            )
            for difficulty in ("easy", "hard", "junk")
        }
        entry["bbx"] = [float(value) for value in box]
        ground_truth.append(entry)
    ground = {"imlist": imlist, "qimlist": query_names, "gnd": ground_truth}
    (folder / f"gnd_{RDEMO_NAME}.pkl").write_bytes(pickle.dumps(ground, protocol=4))
    return {
        "rdemo_database_images": len(database),
        "rdemo_landmarks": len(scenes),
        "rdemo_distractors": config.num_rdemo_distractors,
        "rdemo_queries": num_queries,
    }


def _readme(manifest: DemoManifest, config: DemoConfig) -> str:
    counts = manifest.counts
    return f"""# Demo dataset (generated by `python -m datamodules.demo`, seed {manifest.seed})

A deterministic mini Google-Landmarks-v2 in the exact GLDv2 file formats, plus a Revisited-Oxford-format
benchmark. Every landmark is a procedural façade; every photo a random perspective view of it over a random
background, with occluders, lighting changes, blur, noise and JPEG compression. Regenerate with
`python -m datamodules.demo --root <this folder> --force`; the same seed gives byte-identical files.

| part | content |
| --- | --- |
| `train.csv`, `train/` | {counts["train_rows"]} rows of {counts["train_landmarks"]} landmarks ({counts["train_files"]} files) |
| `train_clean.csv` | {counts["train_clean_images"]} clean images of {counts["train_clean_landmarks"]} landmarks |
| `index.csv`, `index/` | {counts["index_images"]} images: {counts["index_landmarks"]} landmarks not in train, {counts["index_distractors"]} distractors |
| `test.csv`, `test/`, `{SOLUTION_FILE}` | {counts["test_images"]} queries: {counts["test_public"]} Public, {counts["test_private"]} Private, {counts["test_ignored"]} Ignored (no landmark) |
| `revisited/{RDEMO_NAME}/` | {counts["rdemo_database_images"]} database images ({counts["rdemo_landmarks"]} landmarks, easy/hard/junk, {counts["rdemo_distractors"]} distractors), {counts["rdemo_queries"]} queries with a bounding box |

## Noise in train (all listed in `noise_manifest.json`)

- mislabelled: {counts["mislabelled"]} views of one landmark listed under another (`true_landmark` gives the truth);
- grayscale: {counts["grayscale"]} ({config.num_grayscale_single_channel} single-channel JPEGs, {config.num_grayscale_rgb} RGB with equal channels); near-grayscale (sepia): {counts["near_grayscale"]};
- distractor: {counts["distractor"]} images of no landmark listed under a landmark;
- corrupt: {counts["corrupt"]} (a truncated JPEG, a zero-byte file, a text file named .jpg); cmyk: {counts["cmyk"]} valid CMYK JPEG;
- missing: {counts["missing"]} rows without a file; near_duplicate: {counts["near_duplicate"]} resized, re-encoded copies (id -> original id);
- EXIF: {counts["exif_datetime"]} images carry DateTimeOriginal (`exif_datetime`), {counts["camera"]} Make and Model (`camera`).

`train_clean.csv` lists per landmark the images in none of mislabelled, grayscale, near_grayscale, distractor,
corrupt, missing and near_duplicate (CMYK images are clean), for landmarks with at least two such images.
"""


def generate_demo(root: Path, config: DemoConfig | None = None, seed: int = 0) -> DemoManifest:
    """Write the whole demo dataset under ``root`` (replacing an earlier one), the marker ``.complete`` last;
    ``config`` None is the default size.

    Raises:
        ValueError: ``seed`` is negative.
    """
    config = config or DemoConfig()
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    root = Path(root)
    remove_previous_output(root)
    root.mkdir(parents=True, exist_ok=True)
    plan_rng = stream_rng(seed, Stream.PLAN, 0)
    ids = Ids(plan_rng)
    train = _plan_train(plan_rng, config, ids)
    num_scenes = config.num_train_landmarks + config.num_index_landmarks + config.num_rdemo_landmarks
    scenes = [render_landmark_scene(stream_rng(seed, Stream.SCENE, scene)) for scene in range(num_scenes)]
    train_end, index_end = config.num_train_landmarks, config.num_train_landmarks + config.num_index_landmarks
    clean = _write_train(root, config, seed, train, scenes[:train_end])
    index_counts = _write_index_and_test(root, config, seed, plan_rng, ids, scenes[train_end:index_end])
    rdemo_counts = _write_rdemo(root, config, seed, plan_rng, scenes[index_end:])
    rows_of = {kind: sorted(row.image_id for row in train.rows if row.kind is kind) for kind in _Kind}
    noise = {
        "mislabelled": tuple(rows_of[_Kind.MISLABELLED]),
        "grayscale": tuple(sorted(rows_of[_Kind.GRAYSCALE_SINGLE_CHANNEL] + rows_of[_Kind.GRAYSCALE_RGB])),
        "near_grayscale": tuple(rows_of[_Kind.NEAR_GRAYSCALE]),
        "distractor": tuple(rows_of[_Kind.DISTRACTOR]),
        "corrupt": tuple(sorted(image_id for kind in _CORRUPT_KINDS for image_id in rows_of[kind])),
        "cmyk": tuple(rows_of[_Kind.CMYK]),
        "missing": tuple(rows_of[_Kind.MISSING]),
    }
    near_duplicate = {row.image_id: row.source_id for row in train.rows if row.source_id is not None}
    true_landmark = {
        row.image_id: train.landmark_ids[row.scene]
        for row in train.rows
        if row.kind is _Kind.MISLABELLED and row.scene is not None
    }
    counts = {
        "train_rows": len(train.rows),
        "train_files": len(train.rows) - len(noise["missing"]),
        "train_landmarks": config.num_train_landmarks,
        "train_clean_landmarks": len(clean),
        "train_clean_images": sum(len(image_ids) for image_ids in clean.values()),
        **index_counts,
        **rdemo_counts,
        **{name: len(image_ids) for name, image_ids in noise.items()},
        "grayscale_single_channel": config.num_grayscale_single_channel,
        "grayscale_rgb": config.num_grayscale_rgb,
        "near_duplicate": len(near_duplicate),
        "exif_datetime": len(train.exif_datetime),
        "camera": len(train.camera),
    }
    manifest = DemoManifest(
        root=root,
        seed=seed,
        counts=counts,
        near_duplicate=near_duplicate,
        exif_datetime=dict(train.exif_datetime),
        camera={image_id: f"{make} {model}" for image_id, (make, model) in train.camera.items()},
        true_landmark=true_landmark,
        **noise,
    )
    (root / "noise_manifest.json").write_text(
        json.dumps(manifest.noise_json(), indent=1) + "\n", encoding="utf-8"
    )
    (root / "README.md").write_text(_readme(manifest, config), encoding="utf-8")
    (root / MARKER_FILE).write_bytes(b"")
    return manifest
