"""Training recipe of the embedded default model: generated data, QAT BitNet, export.

The data generators need only the standard library; training and export need PyTorch
(``pip install "bitnet-backend[train]"``).

Not part of the runtime: no module outside ``bitnet_backend.training`` imports it (checked by
tests/test_import_graph.py), so loading and serving a model never pulls in the recipe or
PyTorch.
"""
