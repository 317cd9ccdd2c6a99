"""The embedded registry's write side (`sigserve registry …`): registering models and moving
aliases in a SQLite file MLflow can read. Serving only reads registries, through `sources`.

Imports only `sources`, `model` and the base modules; only `cli` and `demo` import it.
"""
