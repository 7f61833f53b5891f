"""Built-in backends: ``cpu`` (the C++ engine) and ``reference`` (NumPy)."""
