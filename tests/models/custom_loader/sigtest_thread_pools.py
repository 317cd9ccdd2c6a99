"""A custom loader_module model that answers with the native thread pool sizes its scoring
thread would use, as scikit-learn's tree models see them."""

import sklearn.ensemble  # noqa: F401 - loads scikit-learn's OpenMP runtime, as a tree model would
from threadpoolctl import threadpool_info


class ThreadPools:
    def predict(self, model_input, params=None):
        pools = {}
        for pool in threadpool_info():
            pools[pool["user_api"]] = max(pools.get(pool["user_api"], 0), pool["num_threads"])
        return pools


def _load_pyfunc(path):
    return ThreadPools()
