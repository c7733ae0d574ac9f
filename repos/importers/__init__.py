"""Importers of OCL export files (v1 and v2 shapes; .tgz, .tar.gz, .zip, .json)."""

from repos.importers.errors import ImportFileError
from repos.importers.loader import CHANGED, CREATED, UNCHANGED, ImportSummary, import_file

__all__ = ["CHANGED", "CREATED", "UNCHANGED", "ImportFileError", "ImportSummary", "import_file"]
