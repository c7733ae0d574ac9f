"""What several apps use and none of them owns: the archive writers (``archive``) and the API's
error types and JSON error answers (``errors``).

It sits below every app: it imports Django, DRF and the libraries, never ``repos``, ``ocl_export``,
``read_cache``, ``operations`` or ``mirror``, so any of them can use it without an import that
runs back up the layers (``tests/test_layers.py`` holds the order).
"""
