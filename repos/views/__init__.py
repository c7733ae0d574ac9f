"""The read API of the terminology core (routes in :mod:`repos.urls`, with or without the slash).

Owners are ``/orgs/:org/``, ``/users/:user/`` or ``/user/`` (the caller; anonymous: 401).

- ``:owner/sources/``, ``:owner/collections/``: the owner's repositories the caller may see.
- ``:owner/:repoType/:repo/``: the repository; with includeConcepts/includeMappings, HEAD's items.
- ``:repo/versions``: GET newest first, HEAD last; POST creates a version (repository admins).
- ``:repo/:version/`` (``HEAD`` and ``latest`` too): GET the body the export equals; DELETE (admins).
- ``:repo/[:version/]concepts/[:id/[:uuid/]]`` and the same for mappings.

Query parameters: :mod:`repos.params`; page headers: :mod:`repos.views.base`; bodies come from
:mod:`repos.representation` only. Private repositories are 404 to whoever may not see them.
"""
