"""The tables the apps print and write: markdown tables, a benchmark's metrics, and a before → after comparison.

Metrics come as fractions in the order the protocol produces them (mAP, then mP@k by k; Easy, Medium, Hard for
Revisited) and are shown in percent with two decimals, as in papers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from retrieval.metrics import REVISITED_SETTINGS


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; every cell is written with ``str``."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells for {len(header)} columns: {list(row)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def percent(value: float) -> str:
    """A fraction as a percentage with two decimals (``0.95547`` → ``95.55``)."""
    return f"{100 * value:.2f}"


def metrics_table(metrics: Mapping[str, float]) -> str:
    """One benchmark's metrics in percent, in their order: a row per Revisited setting (E, M, H) with a column per
    metric, else a single row."""
    settings = [setting for setting in REVISITED_SETTINGS if f"{setting}/mAP" in metrics]
    if settings:
        names = [key.split("/", 1)[1] for key in metrics if key.startswith(f"{settings[0]}/")]
        rows = [
            [setting[0].upper(), *(percent(metrics[f"{setting}/{name}"]) for name in names)]
            for setting in settings
        ]
        return markdown_table(["", *names], rows)
    return markdown_table(list(metrics), [[percent(value) for value in metrics.values()]])


def before_after_table(before: Mapping[str, float], after: Mapping[str, float], monitor: str) -> str:
    """The metrics both runs share, ``monitor`` first, with their change: four decimals, as logged."""
    names = [name for name in after if name in before]
    names.sort(key=lambda name: name != monitor)  # stable: the rest keeps its order
    rows = [
        [
            f"**{name}**" if name == monitor else name,
            f"{before[name]:.4f}",
            f"{after[name]:.4f}",
            f"{after[name] - before[name]:+.4f}",
        ]
        for name in names
    ]
    return markdown_table(["metric", "before", "after", "change"], rows)


def single_run_table(metrics: Mapping[str, float], monitor: str) -> str:
    """Validation metrics of one run, ``monitor`` first: four decimals, as logged."""
    names = sorted(metrics, key=lambda name: name != monitor)
    rows = [[f"**{name}**" if name == monitor else name, f"{metrics[name]:.4f}"] for name in names]
    return markdown_table(["metric", "value"], rows)


def reranked_table(global_metrics: Mapping[str, float], reranked: Mapping[str, float]) -> str:
    """Global and re-ranked metrics side by side (percent), with the re-ranking's cost."""
    names = list(global_metrics)
    return "\n".join(
        [
            markdown_table(
                ["", *names],
                [
                    ["global", *(percent(global_metrics[name]) for name in names)],
                    ["re-ranked", *(percent(reranked[name]) for name in names)],
                ],
            ),
            "",
            f"Re-ranking: {reranked['ms_per_query']:.0f} ms per query (median), local features "
            f"{reranked['bytes_per_image'] / 1024:.0f} KB per image.",
        ]
    )
