"""Progress that tells the truth: one bar per stage of a long job, advanced as its work items are done (not as
they are read), left on screen at the end, and a final log line with the count and the time taken.

    with stage("realphotos: database", total=len(paths)) as bar:
        for batch in batches:
            work(batch)
            bar.update(len(batch))
    # realphotos: database: 187 images in 1 min 12 s (2.6 images/s)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, whole_seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {whole_seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@contextmanager
def stage(description: str, total: int, unit: str = "images", enabled: bool = True) -> Iterator[tqdm]:
    """A progress bar over ``total`` work items for the ``with`` block, with an ETA; at the end the bar stays and
    one line is logged: ``<description>: <done> <unit> in <time> (<rate> <unit>/s)``. Disabled (an inner step of
    a stage that reports, e.g. one block of many), the line is logged at DEBUG only.

    Raises:
        ValueError: ``total`` is negative.
    """
    if total < 0:
        raise ValueError(f"a stage has a non-negative number of work items, got {total}")
    start = time.perf_counter()
    # Disabled, the bar still counts (a tqdm with disable=True does not), drawn to nowhere.
    with (
        open(os.devnull, "w") if not enabled else contextlib.nullcontext(sys.stderr) as output,
        tqdm(
            total=total,
            desc=description,
            unit=f" {unit}",
            leave=True,
            dynamic_ncols=True,
            file=output,
        ) as bar,
    ):
        yield bar
        done = bar.n
    seconds = time.perf_counter() - start
    rate = f" ({done / seconds:.1f} {unit}/s)" if done and seconds > 0 else ""
    log.log(
        logging.INFO if enabled else logging.DEBUG,
        "%s: %d %s in %s%s",
        description,
        done,
        unit,
        format_duration(seconds),
        rate,
    )
