"""Generators for the offline mini tasks' data: `python -m ftbench.generate` rewrites ftbench/data/mini/**.

What it guarantees: the files are a pure function of the seeds in each task module (no numpy, no clock, no
environment), so regenerating reproduces the shipped bytes exactly; a test checks that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ftbench.generate import hallmarks, notes, ordering, sentiment
from ftbench.generate.common import GeneratedTask

__all__ = ["DEFAULT_OUT", "GENERATORS", "compare", "render", "write"]

#: Task folder name -> generator. Folder names match the task names 'mini/<folder>'.
GENERATORS: dict[str, Callable[[], GeneratedTask]] = {
    "sentiment": sentiment.generate,
    "hallmarks": hallmarks.generate,
    "notes": notes.generate,
    "ordering": ordering.generate,
}

#: Where the shipped mini task data lives.
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "mini"


def render(tasks: Iterable[str] | None = None) -> dict[str, bytes]:
    """'<task>/<file>' -> exact bytes, for the named tasks (all by default). Raises KeyError for an unknown task."""
    out: dict[str, bytes] = {}
    for task in tasks if tasks is not None else GENERATORS:
        for name, data in GENERATORS[task]().render().items():
            out[f"{task}/{name}"] = data
    return out


def write(out_root: Path = DEFAULT_OUT, tasks: Iterable[str] | None = None) -> list[Path]:
    """Write the files under `out_root` (each atomically: temp file, then rename). Returns the paths written."""
    written = []
    for rel, data in render(tasks).items():
        path = out_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        written.append(path)
    return written


def compare(out_root: Path = DEFAULT_OUT, tasks: Iterable[str] | None = None) -> list[str]:
    """Differences between freshly generated files and those under `out_root` (empty when identical)."""
    chosen = list(tasks) if tasks is not None else list(GENERATORS)
    expected = render(chosen)
    problems = []
    for rel, data in expected.items():
        path = out_root / rel
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif path.read_bytes() != data:
            problems.append(f"differs: {path}")
    for task in chosen:
        folder = out_root / task
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if f"{task}/{path.name}" not in expected:
                    problems.append(f"unexpected: {path}")
    return problems
