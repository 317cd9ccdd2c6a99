"""Each model version imports its own code (the MLmodel's `code` directories), afresh on every load.

Python keeps one `sys.modules` per process. Left alone, a new version whose modules share names
with the serving version's gets the old modules back from `import`, and a version whose code no
longer imports loads the old code instead. So before a version loads, every module imported from
an earlier version's directories is set aside and those code dirs leave `sys.path`; the new
version's code dirs go first, as MLflow puts them. Pickled classes, `loader_module` and lazy
imports inside `predict` then all resolve to the new version's files.

The serving model keeps answering meanwhile: its functions and classes hold their own module
globals. A version that is refused puts the serving version's modules and path entries back; a
version that is kept lets them go, so the retired model can be freed.

Several models in one server are separate lineages: a load sets aside the earlier versions of
its own model, and of other models only the modules whose names its own code provides, so it
imports its own (a challenger's `helper.py`, not the champion's). Python has one `sys.modules`:
both models' loaded objects keep their own modules, but an `import` run inside `predict` finds
the one loaded last, which is logged.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Iterable
from types import ModuleType

from sigserve.model.mlmodel import ModelMeta

logger = logging.getLogger("sigserve.loader")

_lock = threading.Lock()
_generation: dict[str, int] = {}  # loads begun per lineage: only the latest may put the previous code back
# Per lineage: directories whose modules may be in sys.modules now, and code dirs that may be on sys.path.
_live: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
_provides: dict[str, frozenset[str]] = {}  # per lineage: the top-level modules its kept code dirs provide


def code_dirs(meta: ModelMeta) -> list[str]:
    """The `code` directory of every flavor (python_function's and the flavor MLflow loads)."""
    dirs: dict[str, None] = {}
    for flavor in meta.flavors.values():
        code = flavor.get("code") if isinstance(flavor, dict) else None
        if isinstance(code, str) and code:
            dirs[os.path.abspath(meta.path / code)] = None
    return list(dirs)


class VersionCode:
    """One version's code on the import path, and what its load set aside until it is settled."""

    def __init__(self, lineage: str, module_roots: tuple[str, ...], path_roots: tuple[str, ...], generation: int,
                 displaced: dict[str, ModuleType], removed_path: list[tuple[int, str]],
                 previous_roots: tuple[tuple[str, ...], tuple[str, ...]], provides: frozenset[str]) -> None:
        self.lineage = lineage
        self.provides = provides
        self.module_roots = module_roots
        self.path_roots = path_roots
        self.generation = generation
        self._displaced = displaced
        self._removed_path = removed_path
        self._previous_roots = previous_roots
        self._settled = False

    def keep(self) -> None:
        """The version serves: the previous version's modules are let go (its model, while it
        finishes its last requests, still holds what it uses)."""
        with _lock:
            if self._settled:
                return
            self._settled = True
            if self.generation == _generation.get(self.lineage):
                _live[self.lineage] = self.module_roots, self.path_roots
                _provides[self.lineage] = self.provides
            for _, entry in self._removed_path:
                sys.path_importer_cache.pop(entry, None)
            self._displaced, self._removed_path = {}, []

    def withdraw(self) -> None:
        """The version is refused: its modules and code dirs go, the serving version's come back."""
        with _lock:
            if self._settled:
                return
            self._settled = True
            _set_aside(self.module_roots)
            for entry in _take_off_path(self.path_roots):
                sys.path_importer_cache.pop(entry[1], None)
            if self.generation == _generation.get(self.lineage):  # no later load has set these aside again
                sys.modules.update(self._displaced)
                for index, entry in self._removed_path:
                    sys.path.insert(index, entry)
                _live[self.lineage] = self._previous_roots
            importlib.invalidate_caches()
            self._displaced, self._removed_path = {}, []


def import_afresh(meta: ModelMeta, lineage: str = "") -> VersionCode:
    """Make way for this version's code: earlier versions' (of the same `lineage`, the served
    model) modules out of `sys.modules`, their code dirs off `sys.path`, this version's code dirs
    first. Settle the result with `keep` or `withdraw`."""
    dirs = code_dirs(meta)
    provides = _top_level_modules(dirs)
    module_roots = _roots([str(meta.path), *dirs])
    path_roots = _roots(dirs)
    with _lock:
        shadowed: dict[str, None] = {}
        for other, names in _provides.items():
            shared = provides & names
            if other != lineage and shared:
                logger.warning("the code of %s and of the served model %s both provide %s: an import inside "
                               "predict finds the one loaded last", meta.path, other, ", ".join(sorted(shared)))
                shadowed.update(dict.fromkeys(_live.get(other, ((), ()))[0]))
        previous = _live.get(lineage, ((), ()))
        live_roots = tuple(dict.fromkeys((*previous[0], *module_roots)))
        live_path_roots = tuple(dict.fromkeys((*previous[1], *path_roots)))
        _live[lineage] = live_roots, live_path_roots
        displaced = _set_aside(live_roots)
        displaced.update(_set_aside(tuple(shadowed), only=provides))
        removed = _take_off_path(live_path_roots)
        sys.path[0:0] = dirs
        importlib.invalidate_caches()
        _generation[lineage] = generation = _generation.get(lineage, 0) + 1
        return VersionCode(lineage, module_roots, path_roots, generation, displaced, removed, previous, provides)


def _top_level_modules(dirs: Iterable[str]) -> frozenset[str]:
    """The importable names a model's code dirs put on `sys.path`."""
    names: set[str] = set()
    for directory in dirs:
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            stem, suffix = os.path.splitext(entry)
            if suffix == ".py" and stem.isidentifier():
                names.add(stem)
            elif not suffix and entry.isidentifier() and os.path.isdir(os.path.join(directory, entry)):
                names.add(entry)
    return frozenset(names - {"__pycache__"})


def _roots(dirs: Iterable[str]) -> tuple[str, ...]:
    """Each directory as an absolute and a real path, ending in a separator for prefix tests.
    A directory holding Python itself or sigserve is never treated as a model's."""
    protected = [place + os.sep for place in _protected_places()]
    roots: dict[str, None] = {}
    for directory in dirs:
        for form in (os.path.abspath(directory), os.path.realpath(directory)):
            root = form.rstrip(os.sep) + os.sep
            if not any(place.startswith(root) for place in protected):
                roots[root] = None
    return tuple(roots)


def _protected_places() -> set[str]:
    sigserve_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    places = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sigserve_dir)}
    return {os.path.abspath(place) for place in places} | {os.path.realpath(place) for place in places}


def _set_aside(roots: tuple[str, ...], only: frozenset[str] | None = None) -> dict[str, ModuleType]:
    """Take every module imported from under `roots` (and, given `only`, named by one of those
    top-level names) out of `sys.modules`; return them."""
    taken: dict[str, ModuleType] = {}
    if not roots:
        return taken
    for name, module in list(sys.modules.items()):
        if only is not None and name.split(".", 1)[0] not in only:
            continue
        if _imported_from(module, roots) and sys.modules.get(name) is module:
            del sys.modules[name]
            taken[name] = module
    return taken


def _imported_from(module: object, roots: tuple[str, ...]) -> bool:
    if not isinstance(module, ModuleType):
        return False
    try:
        namespace = object.__getattribute__(module, "__dict__")  # a lazy module is not forced to load
    except AttributeError:  # an extension's own module type (cffi's `Lib`) has no __dict__
        return False
    if not isinstance(namespace, dict):
        return False
    origin = namespace.get("__file__")
    if isinstance(origin, str):
        return origin.startswith(roots)
    locations = namespace.get("__path__")  # a namespace package: only directories, no file
    if locations is None:
        return False
    try:
        entries = [entry for entry in locations if isinstance(entry, str)]
    except Exception:  # a package's own idea of __path__: not ours to judge
        return False
    return bool(entries) and all((entry.rstrip(os.sep) + os.sep).startswith(roots) for entry in entries)


def _take_off_path(roots: tuple[str, ...]) -> list[tuple[int, str]]:
    """Remove the `sys.path` entries under `roots` (MLflow may have added some twice); return
    them with their positions, for putting back."""
    if not roots:
        return []
    snapshot = list(sys.path)
    removed = [
        (index, entry) for index, entry in enumerate(snapshot)
        if isinstance(entry, str) and entry and (os.path.abspath(entry).rstrip(os.sep) + os.sep).startswith(roots)
    ]
    if removed:
        positions = {index for index, _ in removed}
        sys.path[:] = [entry for index, entry in enumerate(snapshot) if index not in positions]
    return removed
