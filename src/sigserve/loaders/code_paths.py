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
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Iterable
from types import ModuleType

from sigserve.model.mlmodel import ModelMeta

_lock = threading.Lock()
_generation = 0  # loads begun in this process: only the latest may put the previous code back
_live_roots: tuple[str, ...] = ()  # directories whose modules may be in sys.modules now
_live_path_roots: tuple[str, ...] = ()  # code dirs that may be on sys.path now


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

    def __init__(self, module_roots: tuple[str, ...], path_roots: tuple[str, ...], generation: int,
                 displaced: dict[str, ModuleType], removed_path: list[tuple[int, str]],
                 previous_roots: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
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
        global _live_roots, _live_path_roots
        with _lock:
            if self._settled:
                return
            self._settled = True
            if self.generation == _generation:
                _live_roots, _live_path_roots = self.module_roots, self.path_roots
            for _, entry in self._removed_path:
                sys.path_importer_cache.pop(entry, None)
            self._displaced, self._removed_path = {}, []

    def withdraw(self) -> None:
        """The version is refused: its modules and code dirs go, the serving version's come back."""
        global _live_roots, _live_path_roots
        with _lock:
            if self._settled:
                return
            self._settled = True
            _set_aside(self.module_roots)
            for entry in _take_off_path(self.path_roots):
                sys.path_importer_cache.pop(entry[1], None)
            if self.generation == _generation:  # no later load has set these aside again
                sys.modules.update(self._displaced)
                for index, entry in self._removed_path:
                    sys.path.insert(index, entry)
                _live_roots, _live_path_roots = self._previous_roots
            importlib.invalidate_caches()
            self._displaced, self._removed_path = {}, []


def import_afresh(meta: ModelMeta) -> VersionCode:
    """Make way for this version's code: earlier versions' modules out of `sys.modules`, their
    code dirs off `sys.path`, this version's code dirs first. Settle the result with `keep` or
    `withdraw`."""
    global _generation, _live_roots, _live_path_roots
    dirs = code_dirs(meta)
    module_roots = _roots([str(meta.path), *dirs])
    path_roots = _roots(dirs)
    with _lock:
        previous = _live_roots, _live_path_roots
        _live_roots = tuple(dict.fromkeys((*_live_roots, *module_roots)))
        _live_path_roots = tuple(dict.fromkeys((*_live_path_roots, *path_roots)))
        displaced = _set_aside(_live_roots)
        removed = _take_off_path(_live_path_roots)
        sys.path[0:0] = dirs
        importlib.invalidate_caches()
        _generation += 1
        return VersionCode(module_roots, path_roots, _generation, displaced, removed, previous)


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


def _set_aside(roots: tuple[str, ...]) -> dict[str, ModuleType]:
    """Take every module imported from under `roots` out of `sys.modules`; return them."""
    taken: dict[str, ModuleType] = {}
    if not roots:
        return taken
    for name, module in list(sys.modules.items()):
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
