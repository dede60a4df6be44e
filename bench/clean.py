"""`bench clean`: find and remove everything of ours left on the host (all named bench-...)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.store import STAGING_PREFIX


@dataclass(frozen=True)
class Residue:
    kind: str
    name: str

    def remove(self) -> None:
        shutil.rmtree(self.name, ignore_errors=True)
        Path(self.name).unlink(missing_ok=True)


def staging_dirs(results_dir: Path, reports_dir: Path, cache_dir: Path) -> list[Residue]:
    """Half-written runs, reports and images a killed `bench` left behind."""
    found = []
    for base in (results_dir, reports_dir, cache_dir / "images"):
        if base.is_dir():
            found += [Residue("staging dir", str(p)) for p in base.glob(f"{STAGING_PREFIX}*")]
    return found


def residues(results_dir: Path, reports_dir: Path, cache_dir: Path) -> list[Residue]:
    return staging_dirs(results_dir, reports_dir, cache_dir)
