"""Training recipe of the embedded default model: generated data, QAT BitNet, export.

The data generators need only the standard library; training and export need PyTorch
(``pip install "bitnet-backend[train]"``).
"""
