"""Serving stage: the HTTP app and the process runner.

The top of the serving stack: imports `manager`, `scoring` and everything below them,
but never `cli`, `demo`, `dockerfile` or `admin`.
"""
