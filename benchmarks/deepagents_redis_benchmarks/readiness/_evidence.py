"""Reading the evidence: junit results, the benchmark history, the chaos report, git.

Every reader returns plain data and raises `EvidenceError` for a file it cannot use (a broken
XML or JSON file is a generation failure, never a silently empty result). A missing optional
input (no junit given) is the caller's business: the items it would prove are "no evidence".
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Commit",
    "EvidenceError",
    "HistoryRun",
    "TestCase",
    "commits_since",
    "head_commit",
    "load_chaos",
    "load_history",
    "load_junit",
    "record_run",
]


class EvidenceError(ValueError):
    """An evidence file exists but cannot be read (the message names it)."""


@dataclass(frozen=True)
class TestCase:
    """One testcase of a junit run.

    Attributes:
        module: Its dotted module (junit ``classname``), e.g. ``packages.fs.tests.test_backend``.
        name: The test's name with its parameters, e.g. ``test_read[cluster]``.
        outcome: ``passed``, ``failed`` (failure or error) or ``skipped``.
        run: The junit file's name without its suffix (``junit-valkey``): which run it was
            in, for items that count one run only (evidence option ``run``).
    """

    __test__ = False  # not a pytest test class, despite the name

    module: str
    name: str
    outcome: str
    run: str = ""

    @property
    def id(self) -> str:
        """``module::name``, what an item's ``match`` strings are looked for in."""
        return f"{self.module}::{self.name}"


def load_junit(path: Path) -> list[TestCase]:
    """Every testcase of a junit XML file (pytest's ``--junitxml``)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise EvidenceError(f"junit file {path}: {exc}") from exc
    cases = []
    for case in root.iter("testcase"):
        children = {child.tag for child in case}
        if children & {"failure", "error"}:
            outcome = "failed"
        elif "skipped" in children:
            outcome = "skipped"
        else:
            outcome = "passed"
        cases.append(TestCase(case.get("classname", ""), case.get("name", ""), outcome, path.stem))
    return cases


@dataclass(frozen=True)
class HistoryRun:
    """One recorded full benchmark run.

    Attributes:
        path: Its file in ``benchmarks/history/``.
        commit: The commit it measured (short hash; ``+dirty`` when the tree had changes).
        date: When it ran (UTC, ISO 8601).
        results: The runner's result rows (``Result.to_json()``), suite filled in.
        meta: The runner's meta (python, cpus, server).
    """

    path: Path
    commit: str
    date: str
    results: list[dict[str, Any]]
    meta: dict[str, Any]


def load_history(folder: Path) -> list[HistoryRun]:
    """Every recorded run in `folder`, oldest first (by date, then file name)."""
    runs = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            runs.append(
                HistoryRun(
                    path, data["commit"], data["date"], list(data["results"]), data.get("meta", {})
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise EvidenceError(f"benchmark history {path}: {exc!r}") from exc
    return sorted(runs, key=lambda run: (run.date, run.path.name))


def record_run(latest: Path, folder: Path, *, commit: str, suites: list[str] | None = None) -> Path:
    """Copy a full run's ``latest.json`` into the history as ``<date>-<commit>.json``.

    Args:
        latest: The runner's ``latest.json``.
        folder: ``benchmarks/history/``.
        commit: The commit the run measured.
        suites: Keep only these suites' rows (None: all).

    Returns:
        The file written.

    Raises:
        EvidenceError: The run is a ``--smoke`` run (not a measurement), had a failed suite, or
            the file cannot be read.
    """
    try:
        data = json.loads(latest.read_text())
    except (OSError, ValueError) as exc:
        raise EvidenceError(f"{latest}: {exc}") from exc
    meta = data.get("meta", {})
    if meta.get("smoke"):
        raise EvidenceError(f"{latest} is a --smoke run: its numbers are not measurements")
    if meta.get("failed_suites"):
        raise EvidenceError(f"{latest}: suites failed ({meta['failed_suites']}); not recorded")
    results = [r for r in data["results"] if suites is None or r["suite"] in suites]
    date = meta["time"]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{date[:10]}T{date[11:13]}{date[14:16]}-{commit.replace('+', '-')}.json"
    record = {"commit": commit, "date": date, "meta": meta, "results": results}
    out.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return out


def load_chaos(path: Path) -> list[dict[str, Any]]:
    """The rows of a chaos report (``chaos.json``)."""
    try:
        rows = json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvidenceError(f"chaos report {path}: {exc!r}") from exc
    return list(rows)


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True
    ).stdout


def head_commit(root: Path) -> str:
    """The short hash of HEAD, with ``+dirty`` when tracked files have changes."""
    commit = _git(root, "rev-parse", "--short", "HEAD").strip()
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no").strip()
    return f"{commit}+dirty" if dirty else commit


@dataclass(frozen=True)
class Commit:
    """One commit for the digest.

    Attributes:
        short: Short hash.
        date: Author date (``YYYY-MM-DD``).
        subject: First line of the message.
        files: Paths it touched.
    """

    short: str
    date: str
    subject: str
    files: tuple[str, ...]


def commits_since(root: Path, since: str | None, *, most: int = 200) -> list[Commit]:
    """Commits after `since` up to HEAD, newest first (the last `most` when `since` is None
    or unknown to this clone)."""
    spec = ["-n", str(most), "HEAD"]
    if since:
        try:
            _git(root, "cat-file", "-e", f"{since.split('+')[0]}^{{commit}}")
            spec = [f"{since.split('+')[0]}..HEAD"]
        except subprocess.CalledProcessError:
            pass
    out = _git(root, "log", "--date=short", "--format=%x1e%h%x09%ad%x09%s", "--name-only", *spec)
    commits = []
    for block in out.split("\x1e")[1:]:
        lines = [line for line in block.splitlines() if line.strip()]
        short, date, subject = lines[0].split("\t", 2)
        commits.append(Commit(short, date, subject, tuple(lines[1:])))
    return commits
