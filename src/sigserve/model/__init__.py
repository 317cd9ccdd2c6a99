"""Model stage: find a model directory, read its MLmodel, load its python_function flavor."""
