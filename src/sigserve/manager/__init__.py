"""Manager stage: which model versions serve now, and moving to new ones without a gap.

Sources say where a URI points, loaders make a model of it; a `ModelManager` holds one model's
current `Servable` and a `ReloadPoller` swaps in new versions of URIs that can move (`@alias`,
`/latest`, `/<stage>`) once they have loaded and scored their own example.

Imports `scoring` and the layers below it; never `server`, `cli` or `admin`.
"""

from sigserve.manager.manager import ModelManager, release_memory_of_retired_models
from sigserve.manager.poller import ReloadPoller
from sigserve.manager.servable import LoadEvents, Servable, alias_of, load_servable

__all__ = ["LoadEvents", "ModelManager", "ReloadPoller", "Servable", "alias_of", "load_servable",
           "release_memory_of_retired_models"]
