"""RQ1 — what characterises a landmark retrieval training set? Analyse any GLDv2-format folder (the demo included):

    python experiments/analyze_dataset.py                       # the demo: data=demo, i.e. data/demo
    python experiments/analyze_dataset.py data=gldv2            # ${paths.data_dir}/gldv2
    python experiments/analyze_dataset.py data_root=/big/gldv2 num_workers=16 ckpt_path=<model.ckpt>
    python experiments/analyze_dataset.py resume_dir=outputs/analyze/runs/<time>   # finish an interrupted run

``data=`` picks one of the training data configs (``conf/data/``) and analyses its ``root``; ``data_root=`` names a
folder directly. Writes into the run folder (with ``resume_dir``: into that earlier run's folder, reusing its
finished chunks) ``report.md`` with PNG plots, ``flags.csv`` (one row per ``train.csv`` row: what training filters
act on, see :class:`datamodules.filters.DataFilters`) and ``summary.json``, and logs them to the configured
loggers (``logger=wandb``, offline without an API key, by default; ``logger=none`` for none).

Images per landmark (long tail, head / tail shares, Gini), ``train_clean.csv`` coverage, missing / truncated /
undecodable files, grayscale, near-grayscale and sepia, CMYK, 16-bit, sizes and aspect ratios, EXIF time (year,
season, the thesis' times of day) and cameras, near-duplicates (perceptual hash within a Hamming radius), and,
given a checkpoint, noisy-label candidates: images far from their landmark's medoid descriptor.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from hydra.utils import instantiate
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, WandbLogger

from datamodules.analysis.flags import FLAG_COLUMNS, write_flags
from datamodules.analysis.image_properties import ImageAnalysisSettings
from datamodules.analysis.noisy_labels import NoisyLabelSettings, noisy_label_scores
from datamodules.analysis.scan import iter_chunk_rows, scan_images
from datamodules.analysis.statistics import DatasetStatistics
from datamodules.formats.gldv2 import read_train_clean_csv
from experiments.app import app_main
from experiments.study_outputs import settings_of
from experiments.tables import markdown_table
from lightning_modules.loggers import finishing_wandb
from retrieval.descriptor.extract import ExtractionSettings
from retrieval.descriptor.network import resolve_device
from retrieval.duplicates import choose_num_bands, duplicate_representatives, near_duplicate_pairs

log = logging.getLogger("analyze_dataset")

FLAGS_FILE = "flags.csv"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"
_TOP_ROWS = 15  # rows of the camera and noisy-label tables
DEFAULT_IMAGE_ANALYSIS = ImageAnalysisSettings()
# One scale at 512 pixels: outliers stand out at a fraction of the cost of the evaluation's three scales.
DEFAULT_EXTRACTION = ExtractionSettings(max_side=512, scales=(1.0,))
DEFAULT_NOISY_LABELS = NoisyLabelSettings()


@dataclass(frozen=True)
class AnalysisOutputs:
    """What :func:`analyze_dataset` wrote: ``summary`` is the content of ``summary.json``; ``plots`` maps a
    plot name to its PNG file."""

    output_dir: Path
    summary: dict[str, Any]
    flags_file: Path
    report_file: Path
    summary_file: Path
    plots: dict[str, Path]


# ----------------------------------------------------------------------------------------------------------------
# Analysis steps
# ----------------------------------------------------------------------------------------------------------------


def near_duplicate_sources(statistics: DatasetStatistics, radius: int) -> np.ndarray:
    """For every row (N,): the row of the image kept from its near-duplicate group (the most pixels, then the
    first in ``train.csv``), or -1 when the row is kept or has no near-duplicate."""
    decodable_rows = np.flatnonzero(statistics.decodable_mask)
    hashes = np.frombuffer(statistics.hashes, dtype=np.uint64)
    pixels = np.frombuffer(statistics.widths, dtype=np.int64) * np.frombuffer(
        statistics.heights, dtype=np.int64
    )
    representatives = duplicate_representatives(near_duplicate_pairs(hashes, radius), pixels)
    is_copy = representatives != np.arange(len(representatives))
    sources = np.full(statistics.num_rows, -1, dtype=np.int64)
    sources[decodable_rows[is_copy]] = decodable_rows[representatives[is_copy]]
    return sources


def analyze_dataset(
    data_root: str | Path,
    output_dir: str | Path,
    image_analysis: ImageAnalysisSettings = DEFAULT_IMAGE_ANALYSIS,
    near_duplicate_radius: int = 4,
    chunk_size: int = 500,
    num_workers: int | None = None,
    ckpt_path: str | Path | None = None,
    extraction: ExtractionSettings = DEFAULT_EXTRACTION,
    noisy_labels: NoisyLabelSettings = DEFAULT_NOISY_LABELS,
    device: str = "auto",
    progress: bool = True,
) -> AnalysisOutputs:
    """Analyse the GLDv2-format training set under ``data_root``; write flags, summary, plots and report into
    ``output_dir``. Partial results already in ``output_dir`` (an interrupted run) are reused.

    Args:
        image_analysis: per-image decoding size and grayscale tolerances.
        near_duplicate_radius: the largest Hamming distance (of 64 bits) between near-duplicate hashes.
        chunk_size: images per resumable scan chunk.
        num_workers: scan processes; ``None`` is one per CPU core, 0 scans in this process.
        ckpt_path: a training checkpoint or :meth:`GlobalDescriptorNet.save` file; enables noisy-label scores.
        extraction: descriptor extraction for the noisy-label scores.
        device: ``auto``, ``cpu``, ``cuda``, ... for the extraction.
    """
    start = time.perf_counter()
    root, output_dir = Path(data_root), Path(output_dir)
    if not 0 <= near_duplicate_radius <= 32:
        raise ValueError(f"near_duplicate_radius must be in [0, 32] bits, got {near_duplicate_radius}")
    output_dir.mkdir(parents=True, exist_ok=True)
    chunk_paths = scan_images(root, output_dir, image_analysis, chunk_size, num_workers, progress)
    statistics = DatasetStatistics()
    for row in iter_chunk_rows(chunk_paths):
        statistics.add(row)
    summary = {"data_root": str(root.resolve()), **statistics.summary()}
    if "clean" in summary:
        listed = sum(len(ids) for ids in read_train_clean_csv(root / "train_clean.csv").values())
        summary["clean"]["listed_ids_not_in_train_csv"] = listed - summary["clean"]["images"]

    duplicate_sources = near_duplicate_sources(statistics, near_duplicate_radius)
    summary["near_duplicates"] = {
        "radius": near_duplicate_radius,
        "bands": choose_num_bands(int(statistics.decodable_mask.sum()), near_duplicate_radius),
        "images_flagged": int(np.sum(duplicate_sources >= 0)),
        "groups": len(np.unique(duplicate_sources[duplicate_sources >= 0])),
    }
    scores, threshold = None, math.inf
    if ckpt_path is not None:
        scores = noisy_label_scores(
            chunk_paths,
            root,
            statistics,
            Path(ckpt_path),
            extraction,
            noisy_labels,
            resolve_device(device),
            output_dir,
            progress,
        )
        threshold = noisy_labels.threshold_for(scores)
        scored = scores[~np.isnan(scores)]
        summary["noisy_labels"] = {
            "checkpoint": str(ckpt_path),
            "threshold": threshold,
            "threshold_rule": "fixed"
            if noisy_labels.threshold is not None
            else f"median + {noisy_labels.outlier_deviations:g} robust standard deviations",
            "scored": len(scored),
            "candidates": int(np.sum(scored > threshold)),
            "score_quantiles": dict(
                zip(
                    ("p50", "p90", "p99", "max"),
                    np.percentile(scored, [50, 90, 99, 100]).tolist(),
                    strict=True,
                )
            )
            if len(scored)
            else {},
        }
    flags_path = output_dir / FLAGS_FILE
    ids = [row["id"] for row in iter_chunk_rows(chunk_paths)]
    kept_instead = ["" if source < 0 else ids[source] for source in duplicate_sources.tolist()]
    write_flags(flags_path, iter_chunk_rows(chunk_paths), kept_instead, scores, threshold)
    plots = draw_plots(statistics, summary, scores, threshold, output_dir)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    summary_path = output_dir / SUMMARY_FILE
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    report_path = output_dir / REPORT_FILE
    report_path.write_text(render_report(summary, plots, flags_path, scores, threshold))
    log.info("analysis of %s written to %s in %.1f s", root, output_dir, summary["seconds"])
    return AnalysisOutputs(output_dir, summary, flags_path, report_path, summary_path, plots)


# ----------------------------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------------------------


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _bar(axes: plt.Axes, counts: Mapping[Any, int], title: str, horizontal: bool = False) -> None:
    """Bars of ``label → count`` in the mapping's order (top to bottom when ``horizontal``)."""
    labels = [str(label) for label in counts]
    positions = np.arange(len(labels))
    if horizontal:
        bars = axes.barh(positions, list(counts.values()), color="tab:blue")
        axes.set_yticks(positions, labels)
        axes.invert_yaxis()
    else:
        bars = axes.bar(positions, list(counts.values()), color="tab:blue")
        axes.set_xticks(positions, labels, rotation=45 if len(labels) > 6 else 0)
    axes.bar_label(bars, padding=2, fontsize=8)  # the counts themselves, not only their bars
    axes.set_title(title)


def _readable_log_axes(*axes: plt.Axes) -> None:
    """Log axes with plain numbers at 1, 2, 5 × 10^k (matplotlib's default labels only the powers of ten, two
    ticks on a small dataset)."""
    for axis in axes:
        for scaled in (axis.xaxis, axis.yaxis):
            if scaled.get_scale() == "log":
                scaled.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                scaled.set_major_formatter(ScalarFormatter())
                scaled.set_minor_formatter(NullFormatter())


def draw_plots(
    statistics: DatasetStatistics,
    summary: Mapping[str, Any],
    scores: np.ndarray | None,
    threshold: float,
    output_dir: Path,
) -> dict[str, Path]:
    """The report's PNG figures, written into ``output_dir``; returns name → file."""
    plots: dict[str, Path] = {}

    figure, (histogram, ranks) = plt.subplots(1, 2, figsize=(11, 4))
    series = {"train.csv": np.fromiter(statistics.images_per_landmark.values(), np.int64)}
    if statistics.has_clean_list:
        series["train_clean.csv"] = np.fromiter(statistics.clean_images_per_landmark.values(), np.int64)
    largest = max(int(counts.max()) for counts in series.values())
    bins = np.unique(np.geomspace(1, largest + 1, 40).astype(np.int64))
    for name, counts in series.items():
        histogram.hist(counts, bins=bins, histtype="step", linewidth=1.5, label=name)
        ranks.loglog(np.arange(1, len(counts) + 1), np.sort(counts)[::-1], label=name)
    histogram.set(xscale="log", yscale="log", xlabel="images per landmark", ylabel="landmarks")
    histogram.set_title("Images per landmark (long tail)")
    ranks.set(xlabel="landmark rank", ylabel="images", title="Rank-frequency")
    histogram.legend()
    ranks.legend()
    _readable_log_axes(histogram, ranks)
    plots["landmark_long_tail"] = _save(figure, output_dir / "landmark_long_tail.png")

    figure, axes = plt.subplots(figsize=(8, 4))
    defects = {
        **summary["files"],
        **summary["colour"],
        "near_duplicate": summary["near_duplicates"]["images_flagged"],
    }
    if "noisy_labels" in summary:
        defects["noisy_label"] = summary["noisy_labels"]["candidates"]
    _bar(axes, defects, f"Flagged images (of {summary['rows']} rows)", horizontal=True)
    plots["flags"] = _save(figure, output_dir / "flags.png")

    widths = np.frombuffer(statistics.widths, dtype=np.int64)
    heights = np.frombuffer(statistics.heights, dtype=np.int64)
    if len(widths):
        figure, (sizes, aspects) = plt.subplots(1, 2, figsize=(11, 4))
        sizes.hist(np.maximum(widths, heights), bins=40, color="tab:blue")
        sizes.set(xlabel="longest side (pixels)", ylabel="images", title="Image size")
        aspects.hist(np.log2(widths / np.maximum(heights, 1)), bins=40, color="tab:orange")
        ticks = np.log2([1 / 2, 2 / 3, 3 / 4, 1, 4 / 3, 3 / 2, 2])
        aspects.set_xticks(ticks, ["1:2", "2:3", "3:4", "1:1", "4:3", "3:2", "2:1"])
        aspects.set(xlabel="aspect ratio width:height (log scale)", ylabel="images", title="Aspect ratio")
        plots["image_sizes"] = _save(figure, output_dir / "image_sizes.png")

    exif = summary["exif"]
    if exif["with_datetime"]:
        figure, axes = plt.subplots(2, 2, figsize=(11, 7))
        _bar(axes[0, 0], exif["years"], "Year (EXIF DateTimeOriginal)")
        _bar(axes[0, 1], exif["seasons"], "Season (northern hemisphere)")
        _bar(axes[1, 0], exif["time_of_day"], "Time of day")
        _bar(axes[1, 1], exif["hours"], "Hour")
        plots["exif_time"] = _save(figure, output_dir / "exif_time.png")

    if exif["makes"]:
        figure, (makes, models) = plt.subplots(1, 2, figsize=(12, 5))
        _bar(makes, dict(itertools.islice(exif["makes"].items(), _TOP_ROWS)), "Camera make", horizontal=True)
        _bar(
            models, dict(itertools.islice(exif["models"].items(), _TOP_ROWS)), "Camera model", horizontal=True
        )
        plots["cameras"] = _save(figure, output_dir / "cameras.png")

    if scores is not None and np.any(~np.isnan(scores)):
        figure, axes = plt.subplots(figsize=(8, 4))
        axes.hist(scores[~np.isnan(scores)], bins=50, color="tab:blue")
        axes.axvline(threshold, color="tab:red", linestyle="--", label=f"threshold {threshold:.3f}")
        axes.set(
            xlabel="cosine distance to the landmark's medoid", ylabel="images", title="Noisy-label scores"
        )
        axes.legend()
        plots["noisy_label_scores"] = _save(figure, output_dir / "noisy_label_scores.png")
    return plots


# ----------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------


def _share(count: int, total: int) -> str:
    return f"{count} ({100 * count / total:.1f} %)" if total else str(count)


def _statistic(name: str, value: float) -> str:
    """Shares in percent, other fractional numbers with three decimals, counts as they are."""
    if name.endswith("share"):
        return f"{100 * value:.1f} %"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _figure(plots: Mapping[str, Path], name: str, caption: str) -> str:
    return f"![{caption}]({plots[name].name})\n" if name in plots else ""


def render_report(
    summary: Mapping[str, Any],
    plots: Mapping[str, Path],
    flags_path: Path,
    scores: np.ndarray | None,
    threshold: float,
) -> str:
    """``report.md``: the summary's tables, with the plots embedded by relative path."""
    rows = summary["rows"]
    landmarks = summary["landmarks"]
    sections = [
        f"# Dataset analysis of `{summary['data_root']}`\n",
        markdown_table(
            [
                "train.csv rows",
                "decodable images",
                "landmarks",
                "images per landmark (median / mean / max)",
                "Gini",
            ],
            [
                [
                    rows,
                    _share(summary["decodable"], rows),
                    landmarks["landmarks"],
                    f"{landmarks['median']:g} / {landmarks['mean']:.1f} / {landmarks['max']}",
                    f"{landmarks['gini']:.3f}",
                ]
            ],
        ),
        "\n## Images per landmark\n",
        _figure(plots, "landmark_long_tail", "images per landmark"),
        markdown_table(
            ["statistic", "value"],
            [[name, _statistic(name, value)] for name, value in landmarks.items()],
        ),
        "\nhead_f%: share of images in the largest f % of landmarks; tail_<=k: share of landmarks with at most k "
        "images, and of the images they hold.\n",
    ]
    clean = summary.get("clean")
    if clean is not None:
        sections += [
            "\n## Coverage of train_clean.csv\n",
            markdown_table(
                ["", "train.csv", "train_clean.csv", "share"],
                [
                    ["images", rows, clean["images"], f"{100 * clean['image_share']:.1f} %"],
                    [
                        "landmarks",
                        landmarks["landmarks"],
                        clean["landmarks"],
                        f"{100 * clean['landmark_share']:.1f} %",
                    ],
                    [
                        "Gini",
                        f"{landmarks['gini']:.3f}",
                        f"{clean['distribution']['gini']:.3f}" if clean["distribution"] else "",
                        "",
                    ],
                ],
            ),
            f"\n{clean['listed_ids_not_in_train_csv']} ids of train_clean.csv are not in train.csv.\n",
        ]
    defects = {
        **summary["files"],
        **summary["colour"],
        "near_duplicate": summary["near_duplicates"]["images_flagged"],
    }
    sections += [
        "\n## Defects\n",
        _figure(plots, "flags", "flagged images"),
        markdown_table(["flag", "images"], [[name, _share(count, rows)] for name, count in defects.items()]),
        "\nmissing: no file; undecodable: unreadable by `retrieval.images.load_rgb` (truncated: its header is readable, "
        "its pixel data is not; not_an_image: the rest); grayscale: one channel, or three equal ones; near_grayscale: "
        "colour explained by luminance (sepia, toned, faded, nearly colourless); near_duplicate: within "
        f"{summary['near_duplicates']['radius']} bits of a larger image's perceptual hash "
        f"({summary['near_duplicates']['groups']} groups).\n",
        "\n## Image sizes\n",
        _figure(plots, "image_sizes", "image sizes"),
        markdown_table(
            ["", *summary["sizes"]["width"].keys()],
            [
                [name, *(f"{value:.3g}" for value in summary["sizes"][name].values())]
                for name in ("width", "height", "megapixels", "aspect_ratio")
            ],
        ),
        f"\nlandscape {summary['sizes']['landscape']}, portrait {summary['sizes']['portrait']}, "
        f"square (within 5 %) {summary['sizes']['square']}; formats {summary['formats']}; modes {summary['modes']}.\n",
    ]
    exif = summary["exif"]
    decodable = summary["decodable"]
    sections += [
        "\n## When: EXIF DateTimeOriginal\n",
        f"{_share(exif['with_datetime'], decodable)} decodable images carry a valid DateTimeOriginal "
        f"({exif['invalid_datetime']} more an invalid one).\n",
        _figure(plots, "exif_time", "EXIF time"),
        markdown_table(["time of day", "images"], list(exif["time_of_day"].items())),
        "\nmorning 6-11 h, noon 11-14 h, afternoon 14-19 h, night otherwise.\n",
        markdown_table(["season", "images"], list(exif["seasons"].items())),
        "\n## Cameras: EXIF Make and Model\n",
        f"{_share(exif['with_make'], decodable)} decodable images name a camera make, "
        f"{_share(exif['with_model'], decodable)} a model ({exif['distinct_makes']} makes, "
        f"{exif['distinct_models']} models).\n",
        _figure(plots, "cameras", "cameras"),
        markdown_table(["make", "images"], list(itertools.islice(exif["makes"].items(), _TOP_ROWS))),
        "",
        markdown_table(["model", "images"], list(itertools.islice(exif["models"].items(), _TOP_ROWS))),
    ]
    noisy = summary.get("noisy_labels")
    if noisy is not None and scores is not None:
        sections += [
            "\n## Noisy-label candidates\n",
            f"Descriptors of `{noisy['checkpoint']}`; score: cosine distance to the landmark's medoid. "
            f"{noisy['candidates']} of {noisy['scored']} scored images exceed the threshold {threshold:.3f} "
            f"({noisy['threshold_rule']}).\n",
            _figure(plots, "noisy_label_scores", "noisy-label scores"),
            _top_noisy_table(flags_path, scores),
        ]
    if noisy is None:
        sections += [
            "\n## Noisy-label candidates\n",
            "Not computed: no checkpoint was given. With `ckpt_path=<model.ckpt>` every image is scored by the "
            "cosine distance of its descriptor to its landmark's medoid, and the outliers are flagged.\n",
        ]
    sections += [
        "\n## Files\n",
        f"- `{flags_path.name}`: one row per train.csv row: {', '.join(FLAG_COLUMNS)}.\n"
        f"- `{SUMMARY_FILE}`: every number above.\n"
        "- Train on the filtered set: `python train.py filters=clean "
        f"filters.flags_file={flags_path.resolve()}`.\n",
        f"\nAnalysis time {summary['seconds']:.1f} s.\n",
    ]
    return "\n".join(sections)


def _top_noisy_table(flags_path: Path, scores: np.ndarray) -> str:
    """The ``_TOP_ROWS`` highest-scored images (id, landmark, score)."""
    ranked = np.argsort(np.nan_to_num(scores, nan=-1.0))[::-1][:_TOP_ROWS]
    wanted = {int(position): rank for rank, position in enumerate(ranked) if not np.isnan(scores[position])}
    found: list[tuple[int, str, str]] = []
    with open(flags_path, newline="", encoding="utf-8") as handle:
        for position, row in enumerate(csv.DictReader(handle)):
            if position in wanted:
                found.append((wanted[position], row["id"], row["landmark_id"]))
    return markdown_table(
        ["id", "landmark_id", "score"],
        [[image_id, landmark, f"{scores[ranked[rank]]:.3f}"] for rank, image_id, landmark in sorted(found)],
    )


# ----------------------------------------------------------------------------------------------------------------
# Loggers and the command line
# ----------------------------------------------------------------------------------------------------------------


def _numbers(tree: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The numeric leaves of a nested summary as ``prefix/key/...`` → value."""
    flat: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}"
        if isinstance(value, Mapping):
            flat.update(_numbers(value, name))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            flat[name] = float(value)
    return flat


def log_outputs(
    loggers: Sequence[Logger], outputs: AnalysisOutputs, hyperparameters: Mapping[str, Any]
) -> None:
    """Summary numbers to every logger; plots as images and all files as an artifact to W&B."""
    metrics = _numbers(outputs.summary, "analysis")
    for logger in loggers:
        logger.log_hyperparams(dict(hyperparameters))
        logger.log_metrics(metrics)
        if isinstance(logger, WandbLogger):
            import wandb

            run = logger.experiment
            run.log({f"analysis/{name}": wandb.Image(str(path)) for name, path in outputs.plots.items()})
            artifact = wandb.Artifact("dataset-analysis", type="analysis")
            for path in (
                outputs.report_file,
                outputs.summary_file,
                outputs.flags_file,
                *outputs.plots.values(),
            ):
                artifact.add_file(str(path))
            run.log_artifact(artifact)
        logger.save()


def run(cfg: DictConfig) -> AnalysisOutputs:
    """The command line's work: analyse ``cfg.data_root`` into the run folder (or ``cfg.resume_dir``) and log."""
    if cfg.resume_dir is not None and not Path(cfg.resume_dir).is_dir():
        raise ValueError(f"resume_dir={cfg.resume_dir!r} is not the folder of an earlier analysis run")
    settings = settings_of(
        cfg,
        [
            "data_root",
            "resume_dir",
            "chunk_size",
            "num_workers",
            "near_duplicate_radius",
            "image_analysis",
            "ckpt_path",
            "device",
            "extraction",
            "noisy_labels",
        ],
    )
    loggers = [instantiate(logger) for logger in cfg.get("logger", {}).values()]
    with finishing_wandb():
        outputs = analyze_dataset(
            data_root=cfg.data_root,
            output_dir=cfg.resume_dir or cfg.paths.output_dir,
            image_analysis=instantiate(cfg.image_analysis),
            near_duplicate_radius=cfg.near_duplicate_radius,
            chunk_size=cfg.chunk_size,
            num_workers=cfg.num_workers,
            ckpt_path=cfg.ckpt_path,
            extraction=instantiate(cfg.extraction, scales=tuple(cfg.extraction.scales)),
            noisy_labels=instantiate(cfg.noisy_labels),
            device=cfg.device,
        )
        log_outputs(loggers, outputs, settings)
    return outputs


@app_main("analyze")
def main(cfg: DictConfig) -> None:
    outputs = run(cfg)
    summary = outputs.summary
    print(
        f"{summary['rows']} rows, {summary['landmarks']['landmarks']} landmarks (Gini "
        f"{summary['landmarks']['gini']:.3f}); missing {summary['files']['missing']}, undecodable "
        f"{summary['files']['undecodable']}, grayscale {summary['colour']['grayscale']}, near-grayscale "
        f"{summary['colour']['near_grayscale']}, CMYK {summary['colour']['cmyk']}, near-duplicates "
        f"{summary['near_duplicates']['images_flagged']}; report: {outputs.report_file}"
    )


if __name__ == "__main__":
    main()
