"""How many threads a model's native libraries (OpenMP, BLAS) may use per predict call.

A worker already scores requests concurrently and `-w` adds processes, so a library that also
fans each call out over every core oversubscribes them, and OpenMP's spinning threads then take
the CPU from the event loop. Serving a HistGradientBoosting model on 2 cores, one thread per
pool gave 4x the throughput of OpenMP's default at 1 row and still 1.1x at 10 000 rows. One
thread per pool also means no OpenMP pool exists in the master when gunicorn forks it.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("sigserve.server")

DEFAULT_THREADS = 1
THREAD_COUNT_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def default_native_threads() -> int:
    """A thread count the user already gave OpenMP is kept; otherwise one."""
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(configured) if configured.isdigit() and int(configured) > 0 else DEFAULT_THREADS


def limit_native_threads(threads: int) -> None:
    """Before the model loads: libraries loaded later (OpenMP with scikit-learn, torch, xgboost)
    read the environment when they start; those already loaded (numpy's BLAS) are limited
    through threadpoolctl, which comes with scikit-learn, when it is installed."""
    for name in THREAD_COUNT_ENV_VARS:
        os.environ[name] = str(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        logger.debug("threadpoolctl is not installed: libraries already loaded keep their thread pools")
        return
    threadpool_limits(threads)
