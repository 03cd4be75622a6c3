"""`quench cache verify` and `quench cache gc`: what in a cache is damaged, what no run uses.

Both take the output folder (`--root DIR`, the recipe's output.dir) or a recipe whose
output.dir they use. `verify` checks every file's full sha256 (`--fast`: the check a run does
on a cache hit) and exits 1 while a damaged entry remains; `--remove` deletes damaged entries.
`gc` lists the entries no `<output>/<run>/run.json` references, and deletes them only with
`--yes`, and only when no run is using the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from quench.contract.locks import Busy, file_lock
from quench.contract.manifest import Manifest
from quench.contract.processes import pid_alive
from quench.errors import QuenchError
from quench.runner.store import RUNS_LOCK, TMP_PREFIX, Store
from quench.runner.verify import entry_problems

EXIT_DAMAGED = 1


@dataclass
class Entry:
    """One cache folder `<cache>/<stage>/<key>`."""

    dir: Path

    @property
    def stage(self) -> str:
        return self.dir.parent.name

    @property
    def key(self) -> str:
        return self.dir.name

    @property
    def label(self) -> str:
        return f"{self.stage}/{self.key}"

    def size(self) -> int:
        return folder_size(self.dir)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `cache verify` and `cache gc` to the CLI."""
    cache = sub.add_parser("cache", help="check the stage cache, or delete what no run uses")
    actions = cache.add_subparsers(dest="cache_command", required=True)
    verify = actions.add_parser("verify", help="list damaged cache entries (exit 1 if any)")
    gc = actions.add_parser("gc", help="list (or, with --yes, delete) entries no run.json uses")
    for parser in (verify, gc):
        parser.add_argument("recipe", nargs="?", help="a recipe: its output.dir is used")
        parser.add_argument("overrides", nargs="*", help="key.sub=value recipe overrides")
        parser.add_argument("--root", help="the output folder (holding cache/ and run folders)")
    verify.add_argument("--fast", action="store_true",
                        help="sizes and first/last MiB only, as a run checks a cache hit")
    verify.add_argument("--remove", action="store_true", help="delete the damaged entries")
    gc.add_argument("--yes", action="store_true", help="delete (default: only list, a dry run)")
    verify.set_defaults(func=verify_command)
    gc.set_defaults(func=gc_command)


def verify_command(args: argparse.Namespace) -> int:
    """`quench cache verify`'s handler; the exit code says whether a damaged entry remains."""
    out = output_folder(args.root, args.recipe, args.overrides)
    return verify(out, full=not args.fast, remove=args.remove)


def gc_command(args: argparse.Namespace) -> int:
    """`quench cache gc`'s handler: lists, or with --yes deletes, what no run uses."""
    return gc(output_folder(args.root, args.recipe, args.overrides), delete=args.yes)


def output_folder(root: str | None, recipe: str | None, overrides: list[str]) -> Path:
    """The output folder from --root or a recipe's output.dir; it must hold a cache/."""
    if (root is None) == (recipe is None):
        raise QuenchError("cache: give either --root DIR (an output folder) or a recipe file")
    if root is not None:
        out = Path(root).expanduser()
        if out.name == "cache" and not (out / "cache").is_dir():
            out = out.parent
    else:
        from quench.recipe import load_recipe

        out = Path(load_recipe(recipe, overrides).output.dir).expanduser()
    out = out.resolve()
    if not (out / "cache").is_dir():
        raise QuenchError(f"cache: {out} holds no cache/ folder (is it an output.dir?)")
    return out


def entries(cache: Path) -> list[Entry]:
    """Every finished-looking entry folder (temporaries and locks excluded)."""
    return [Entry(d) for stage in sorted(cache.iterdir()) if _visible(stage) and stage.is_dir()
            for d in sorted(stage.iterdir()) if _visible(d) and d.is_dir()]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def problems(entry: Entry, full: bool) -> list[str]:
    """Why an entry cannot be reused: an unreadable manifest, a wrong key, damaged files."""
    manifest = Manifest.read(entry.dir)
    if manifest is None:
        return ["manifest.json missing or unreadable"]
    if manifest.data.get("key") != entry.key:
        return [f"manifest.json key {manifest.data.get('key')!r} != folder {entry.key}"]
    return list(entry_problems(manifest, full))


def verify(out: Path, full: bool = True, remove: bool = False) -> int:
    """Prints each damaged entry with its reasons; 1 while one remains, else 0."""
    found = entries(out / "cache")
    damaged = 0
    for entry in found:
        reasons = problems(entry, full)
        if not reasons:
            continue
        gone = remove and _delete(out / "cache", entry)
        damaged += not gone
        print(f"{'removed' if gone else 'damaged'}  {entry.label}  {'; '.join(reasons[:5])}"
              + (f" (+{len(reasons) - 5} more)" if len(reasons) > 5 else ""))
    check = "full sha256" if full else "fast"
    print(f"{len(found)} entries checked ({check}) in {out / 'cache'}: "
          f"{damaged} damaged" + ("" if remove or not damaged else "; --remove deletes them"))
    return EXIT_DAMAGED if damaged else 0


def referenced(out: Path) -> set[tuple[str, str]]:
    """(stage, key) of every node in every `<out>/<run>/run.json`."""
    used = set()
    for path in sorted(out.glob("*/run.json")):
        try:
            nodes = json.loads(path.read_text())["nodes"]
            used.update((n["stage"], n["key"]) for n in nodes.values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise QuenchError(f"cache gc: {path} is unreadable ({type(exc).__name__}), so what "
                              "it references is unknown; nothing deleted") from None
    return used


def gc(out: Path, delete: bool = False) -> int:
    """Lists (or deletes) entries no run.json references, and dead runs' temporaries."""
    cache = out / "cache"
    used = referenced(out)
    unused = [e for e in entries(cache) if (e.stage, e.key) not in used]
    leftovers = _dead_temporaries(cache)
    total = sum(e.size() for e in unused) + sum(folder_size(t) for t in leftovers)
    if not delete:
        for entry in unused:
            print(f"unused  {entry.label}  {human(entry.size())}")
        for tmp in leftovers:
            print(f"leftover  {tmp.relative_to(cache)}  {human(folder_size(tmp))}")
        print(f"{len(unused)} unused entries, {len(leftovers)} leftovers, {human(total)} in "
              f"{cache} (dry run: --yes deletes them)")
        return 0
    try:
        with file_lock(Store(cache).lock_path(RUNS_LOCK), blocking=False):
            deleted = [e for e in unused if _delete(cache, e)]
            for tmp in leftovers:
                shutil.rmtree(tmp, ignore_errors=True)
    except Busy:
        raise QuenchError(f"cache gc: a quench run is using {cache}; nothing deleted (try "
                          "again when it has finished)") from None
    for entry in deleted:
        print(f"deleted  {entry.label}")
    print(f"deleted {len(deleted)} unused entries and {len(leftovers)} leftovers, "
          f"{human(total)} freed")
    return 0


def _dead_temporaries(cache: Path) -> list[Path]:
    """Temporary folders whose writing process has died."""
    found = []
    for tmp in sorted(cache.glob(f"*/{TMP_PREFIX}*")):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            found.append(tmp)
    return found


def _delete(cache: Path, entry: Entry) -> bool:
    """Deletes an entry (moved aside first, so it vanishes at once) unless a run holds it."""
    try:
        with Store(cache).entry_lock(entry.stage, entry.key, blocking=False):
            aside = entry.dir.with_name(f"{TMP_PREFIX}gc-{entry.key}-{os.getpid()}")
            entry.dir.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
    except Busy:
        print(f"busy  {entry.label}  (a run is writing it; kept)")
        return False
    return True


def folder_size(folder: Path) -> int:
    """Bytes held by the files under a folder."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def human(size: float) -> str:
    """A byte count for people: 12.3 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"
