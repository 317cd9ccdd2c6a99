"""Loaders: a model directory to a callable model, as MLflow's `python_function` flavor loads it.

`loader.py` reads MLmodel and picks a flavor from `flavors/` (native scikit-learn, xgboost,
LightGBM, CatBoost, custom modules, else MLflow itself); `code_paths.py` imports each version's
own code afresh. Loaders know nothing of registries or serving.

Imports only `model` and the base modules; never `sources` (its sibling), `codecs` or anything above.
"""
