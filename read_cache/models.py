"""No tables of its own. The module exists so that Django sends this app ``post_migrate``, after
which the triggers are installed (``read_cache.apps``)."""
