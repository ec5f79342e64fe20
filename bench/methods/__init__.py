"""The method registry (``registry``: one distiller interface, found by name), method configs and
their overrides (``config``), and the index of built-in methods read without importing them (``index``).
"""
