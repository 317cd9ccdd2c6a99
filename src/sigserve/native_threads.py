"""How many threads a model's native libraries (OpenMP, BLAS) may use per predict call.

A worker already scores requests concurrently and `-w` adds processes, so a library that also
fans each call out over every core oversubscribes them, and OpenMP's spinning threads then take
the CPU from the event loop. Serving a HistGradientBoosting model on 2 cores, one thread per
pool gave 4x the throughput of OpenMP's default at 1 row and still 1.1x at 10 000 rows.

With several workers it is always one: the master loads and warms up the model before gunicorn
forks it, and a forked GNU OpenMP team deadlocks the child's first parallel call.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("sigserve.server")

DEFAULT_THREADS = 1
OPENMP_ENV_VAR = "OMP_NUM_THREADS"
BLAS_ENV_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
OTHER_ENV_VARS = ("NUMEXPR_NUM_THREADS",)


def default_native_threads() -> int:
    """A thread count the user already gave OpenMP is kept (its first level, for a nested
    list like "4,2"); otherwise one."""
    first_level = os.environ.get(OPENMP_ENV_VAR, "").split(",")[0].strip()
    try:
        threads = int(first_level)
    except ValueError:
        return DEFAULT_THREADS
    return threads if threads > 0 else DEFAULT_THREADS


def threads_for(requested: int, workers: int) -> int:
    if workers > 1 and requested > 1:
        logger.warning(
            "--native-threads %d ignored with %d workers: each worker's native pools get one thread "
            "(OpenMP cannot be forked once it has started threads, and the workers use the cores)",
            requested, workers,
        )
        return 1
    return requested


def limit_native_threads(threads: int) -> None:
    """Before the model loads: libraries loaded later (OpenMP with scikit-learn, torch, xgboost)
    read the environment when they start; those already loaded (numpy's BLAS) are limited
    through threadpoolctl, which comes with scikit-learn, when it is installed. A BLAS thread
    count the user set explicitly is left alone, and so is pyarrow's pool, which reads
    OMP_NUM_THREADS too but blocks rather than spins."""
    import pyarrow

    arrow_threads = pyarrow.cpu_count()
    user_set_blas = any(name in os.environ for name in BLAS_ENV_VARS)
    os.environ[OPENMP_ENV_VAR] = str(threads)
    for name in (*BLAS_ENV_VARS, *OTHER_ENV_VARS):
        os.environ.setdefault(name, str(threads))
    pyarrow.set_cpu_count(arrow_threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        logger.debug("threadpoolctl is not installed: libraries already loaded keep their thread pools")
        return
    threadpool_limits(threads, user_api="openmp" if user_set_blas else None)
