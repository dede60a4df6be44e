"""The results store: results/<run_id>/samples.parquet + meta.json, written atomically."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import TextIO

from bench.atomic import STAGING_PREFIX  # the run's staging dir holds its journal too
from bench.errors import UsageError

SCHEMA_VERSION = 1
COLUMNS = ["run_id", "suite", "workload", "runner", "iteration", "metric", "value", "unit", "ok", "error", "n"]
ADDED = {"n": 1}  # columns added since schema 1, and what a run stored before them means


def new_run_id() -> str:
    """Sortable by time, unique across concurrent runs."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def samples_frame(run_id: str, samples: list[dict]):
    import pandas as pd

    df = pd.DataFrame(samples, columns=COLUMNS[1:])
    df.insert(0, "run_id", run_id)
    return df.fillna(ADDED).astype({"iteration": "int64", "value": "float64", "ok": "bool", "n": "int64"})


def write_run(results_dir: Path, run_id: str, samples: list[dict], meta: dict, latest: bool = True) -> Path:
    """Write into a staging folder, then rename: a crash leaves no half run under its real name.
    latest: point results/latest at it (not for a run recovered after the fact)."""
    staging = staging_dir(results_dir, run_id)
    final = results_dir / run_id
    try:
        staging.mkdir(parents=True, exist_ok=True)  # the journal may have made it
        samples_frame(run_id, samples).to_parquet(staging / "samples.parquet", index=False)
        _write_synced(staging / "meta.json", json.dumps(meta, indent=2, default=str).encode())
        _fsync_path(staging / "samples.parquet")
        (staging / Journal.NAME).unlink(missing_ok=True)
        (staging / Journal.HEAD).unlink(missing_ok=True)
        os.rename(staging, final)
        _fsync_path(results_dir)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write results to {results_dir}: {exc.strerror or exc}") from None
        raise
    if latest:
        point_latest(results_dir, run_id)
    return final


def recover(staging: Path) -> Path | None:
    """The run a killed `bench run` left in its staging dir (its journal and its head), stored as an
    incomplete run beside the others; None when there is nothing to recover (no head, no sample).
    A last line cut short by the kill is no sample."""
    try:
        meta = json.loads((staging / Journal.HEAD).read_text())
        lines = (staging / Journal.NAME).read_text().split("\n")
    except (OSError, ValueError):
        return None
    samples = []
    for line in lines[:-1]:  # whatever follows the last newline was being written
        try:
            samples.append(json.loads(line))
        except ValueError:
            break
    if not samples:
        return None
    meta.update(incomplete=True, interrupted_by="killed", recovered_by="bench clean",
                recovered=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return write_run(staging.parent, meta["run_id"], samples, meta, latest=False)


def staging_dir(results_dir: Path, run_id: str) -> Path:
    return results_dir / f"{STAGING_PREFIX}{run_id}"


class Journal:
    """The samples of a run in progress, a JSON line each as it completes, in the run's staging dir:
    progress that a test or a person can watch (`tail -f`). Best effort: a journal that cannot be
    written is dropped, and the run goes on; write_run removes it once the run is whole."""

    NAME = "samples.jsonl"
    HEAD = "meta.head.json"  # what the run knew of itself when it began measuring

    def __init__(self, results_dir: Path, run_id: str) -> None:
        self.path = staging_dir(results_dir, run_id) / self.NAME
        self.file: TextIO | None = None
        self.dropped = False
        self.head: dict | None = None

    def begin(self, meta: dict) -> None:
        """Kept beside the samples once the first one comes: with them, `bench clean` makes an
        incomplete run of a `bench run` that was killed before it could store one (recover())."""
        self.head = meta

    def add(self, samples: list[dict]) -> None:
        """Opened with the first sample: a run that measures nothing writes nothing."""
        if self.file is None and not self.dropped:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.head is not None:
                    _write_synced(self.path.with_name(self.HEAD), json.dumps(self.head, default=str).encode())
                self.file = open(self.path, "a")  # noqa: SIM115 -- kept open across add() calls, closed by close()
            except OSError:
                self.drop()
        if self.file is None:
            return
        try:
            self.file.write("".join(json.dumps(s) + "\n" for s in samples))
            self.file.flush()
        except OSError:
            self.drop()

    def drop(self) -> None:
        self.close()
        self.dropped = True
        shutil.rmtree(self.path.parent, ignore_errors=True)

    def close(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
            self.file = None


def point_latest(results_dir: Path, run_id: str) -> None:
    tmp = results_dir / f"{STAGING_PREFIX}latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_id)
    os.replace(tmp, results_dir / "latest")


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve_run(arg: str, results_dir: Path) -> Path:
    """A run folder, or a run id (or 'latest') under results_dir."""
    for candidate in (Path(arg), results_dir / arg):
        if (candidate / "meta.json").is_file() or (candidate / "samples.parquet").is_file():
            return candidate.resolve()
    raise UsageError(f"no run {arg!r}: give a run folder or a run id under {results_dir}")


# What a reader of a run cannot do without in its meta.json (the rest is read with defaults).
REQUIRED_META = ("host",)  # which machine: compare refuses another host's, a baseline is kept per host


def load_meta(path: Path) -> dict:
    """A stored run's meta.json alone; UsageError when it is missing, corrupt, lacks what readers
    rely on, or comes from a newer isobench."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read run {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if not isinstance(meta, dict) or "schema_version" not in meta:
        raise UsageError(f"run {path} is not an isobench run (missing schema_version)")
    if not isinstance(meta["schema_version"], int) or meta["schema_version"] > SCHEMA_VERSION:
        raise UsageError(f"run {path} has schema {meta['schema_version']!r}; this isobench reads up to {SCHEMA_VERSION}")
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise UsageError(f"run {path} is not whole: its meta.json lacks {', '.join(missing)}")
    return meta


def load_run(path: Path):
    """(samples DataFrame, meta dict) of a stored run; UsageError when it is missing or corrupt."""
    import pandas as pd

    meta = load_meta(path)
    try:
        df = pd.read_parquet(path / "samples.parquet")
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read run {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    for column, before in ADDED.items():
        if column not in df.columns:
            df[column] = before
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UsageError(f"run {path} is not an isobench run (missing {', '.join(missing)})")
    return df, meta
