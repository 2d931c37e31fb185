"""The points of a sweep: each one a run in a worker process, each kept on disk when it finishes
(``path_of(point)``, a JSON file), so that a stopped sweep resumes where it was and a repeated
sweep reruns nothing. Used by the online-training sweeps and the CNN bit-width sweep."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os

from rrambnn.fileio import atomic_write, json_text


def _indexed(work, item):
    i, point = item
    return i, work(point)


def _read_kept(path) -> dict | None:
    """A kept point's result; None when there is none, or it cannot be read (it is run again)."""
    try:
        row = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return row if isinstance(row, dict) else None


def run_points(points: list, path_of, work, *, jobs: int, desc: str, progress: bool = False) -> list[dict]:
    """Every point's result, in the order of ``points``: kept ones read back, the others computed
    by ``work(point)`` (in ``jobs`` spawned processes, one BLAS thread each) and kept."""
    from tqdm import tqdm

    results: dict[int, dict] = {}
    bar = tqdm(total=len(points), desc=desc, unit="point", disable=not progress)
    todo = []
    for i, pt in enumerate(points):
        kept = _read_kept(path_of(pt))
        if kept is not None:
            results[i] = kept
            bar.update()
        else:
            todo.append(i)

    def keep(i, row):
        atomic_write(path_of(points[i]), lambda f: f.write(json_text(row).encode()))
        results[i] = row
        bar.update()

    if jobs == 1 or len(todo) <= 1:
        for i in todo:
            keep(i, work(points[i]))
    else:
        # fresh interpreters with single-threaded BLAS: several workers each spinning a BLAS thread
        # pool on the same cores slow each other down
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RRAMBNN_THREADS"):
            os.environ.setdefault(var, "1")
        from rrambnn.studies import ignore_interrupts
        # a pool's exit terminates its workers: Ctrl-C stops the sweep at once (finished points stay kept)
        with multiprocessing.get_context("spawn").Pool(min(jobs, os.cpu_count() or 1, len(todo)),
                                                       initializer=ignore_interrupts) as pool:
            for i, row in pool.imap_unordered(functools.partial(_indexed, work), [(i, points[i]) for i in todo]):
                keep(i, row)  # as each finishes: a stopped sweep keeps every point done
    bar.close()
    return [results[i] for i in range(len(points))]
