"""Sources: where a model URI points now.

A source turns a URI (`models:/…`, `runs:/…`, a path) into a `ResolvedModel` — the version it
wants served and its local directory — and is asked again by the manager's poller for URIs
that can move. It knows nothing of loading or serving.

Imports only `model` and the base modules; never `loaders` (its sibling), `admin` or anything above.
"""
