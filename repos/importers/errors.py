"""The one error the importer raises for a file it cannot load."""


class ImportFileError(Exception):
    """A malformed, truncated or unsupported export file; the message names the file and the place."""
