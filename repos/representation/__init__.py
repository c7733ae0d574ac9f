"""The one representation of OCL JSON, one concept a module.

- :mod:`~repos.representation.encoding`: JSON bytes and UTC timestamps.
- :mod:`~repos.representation.shapes`: the contract's shapes (version, repository, concept, mapping).
- :mod:`~repos.representation.items`: concepts and mappings (:class:`ItemKind`), which a version
  holds (:class:`ItemFilter`) and reading their stored JSON text.
- :mod:`~repos.representation.rendering`: the write path that stores each item's rendering.
- :mod:`~repos.representation.body`: a version's body streamed, and its exact size.

Importers, the read API and the export all use these, so the archive's ``export.json`` equals
the REST body by construction.
"""
