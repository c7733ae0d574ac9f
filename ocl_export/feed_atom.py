"""The release feed as Atom, with the link model of HL7's FHIR Terminology Syndication IG.

Syndication clients (FHIR terminology servers, the Australian NCTS tooling) read an Atom feed
whose entries link each downloadable package with its ``length`` and an ``ncts:sha256Hash``,
and name the content item and its version. Here an entry is a released version; its links are
its exports (``rel="alternate"``) and its delta from its predecessor (``rel="related"``), each
pointing at the resource that answers with the archive. Built with ElementTree, so every value
is escaped.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

ATOM = "http://www.w3.org/2005/Atom"
NCTS = "http://ns.electronichealth.net.au/ncts/syndication/asf/extensions/1.0.0"
CATEGORY_SCHEME = "http://ns.electronichealth.net.au/ncts/syndication/asf/scheme/1.0.0"
MEDIA = {"tgz": "application/gzip", "zip": "application/zip"}
EPOCH = "1970-01-01T00:00:00Z"

ElementTree.register_namespace("", ATOM)
ElementTree.register_namespace("ncts", NCTS)


def _add(parent: ElementTree.Element, tag: str, text: str | None = None, **attributes: str) -> ElementTree.Element:
    element = ElementTree.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _link(entry: ElementTree.Element, rel: str, archive: dict[str, Any], title: str) -> None:
    attributes = {"rel": rel, "href": archive["url"], "type": MEDIA.get(archive["format"], "application/octet-stream")}
    attributes["title"] = title
    if archive.get("size") is not None:
        attributes["length"] = str(archive["size"])
    if archive.get("sha256"):
        attributes[f"{{{NCTS}}}sha256Hash"] = archive["sha256"]
    _add(entry, f"{{{ATOM}}}link", **attributes)


def atom(document: dict[str, Any]) -> bytes:
    """The feed document of ``ocl_export.feed.feed`` as Atom XML bytes."""
    root = ElementTree.Element(f"{{{ATOM}}}feed")
    _add(root, f"{{{ATOM}}}id", document["url"])
    _add(root, f"{{{ATOM}}}title", document["title"])
    _add(root, f"{{{ATOM}}}updated", document["updated"] or EPOCH)
    _add(root, f"{{{ATOM}}}link", rel="self", href=document["url"])
    for item in document["entries"]:
        entry = _add(root, f"{{{ATOM}}}entry")
        _add(entry, f"{{{ATOM}}}id", item["url"])
        _add(entry, f"{{{ATOM}}}title", f"{item['repository']} {item['id']}")
        _add(entry, f"{{{ATOM}}}updated", item["updated_on"] or EPOCH)
        _add(entry, f"{{{ATOM}}}published", item["created_on"] or EPOCH)
        summary = f"{item['concepts']} concepts, {item['mappings']} mappings"
        _add(entry, f"{{{ATOM}}}summary", summary)
        _add(entry, f"{{{ATOM}}}category", term="OCL_EXPORT", label="OCL export", scheme=CATEGORY_SCHEME)
        _add(entry, f"{{{NCTS}}}contentItemIdentifier", item["repository"])
        _add(entry, f"{{{NCTS}}}contentItemVersion", item["url"])
        for archive in item["exports"]:
            _link(entry, "alternate", archive, f"{item['id']} ({archive['format']})")
        delta = item["delta"]
        for archive in delta["archives"] if delta else []:
            _link(entry, "related", archive, f"delta from {delta['from']} ({archive['format']})")
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
