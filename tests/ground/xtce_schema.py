"""The XTCE 1.2 schema (``SpaceSystem.xsd``, namespace
http://www.omg.org/spec/XTCE/20180204) as shipped by space-packet-parser, loaded
offline: its one import, the W3C ``xml.xsd`` (xml:base, xml:lang), is answered
by a minimal local declaration of those attributes instead of a download."""

from __future__ import annotations

from pathlib import Path

import space_packet_parser
from lxml import etree

XSD = Path(space_packet_parser.__file__).parent / "xtce" / "schemas" / "SpaceSystem.xsd"
XML_NS_URL = "http://www.w3.org/2001/03/xml.xsd"
_XML_XSD = b"""<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
           targetNamespace="http://www.w3.org/XML/1998/namespace" xml:lang="en">
  <xs:attribute name="lang" type="xs:language"/>
  <xs:attribute name="space"><xs:simpleType><xs:restriction base="xs:NCName">
    <xs:enumeration value="default"/><xs:enumeration value="preserve"/>
  </xs:restriction></xs:simpleType></xs:attribute>
  <xs:attribute name="base" type="xs:anyURI"/>
  <xs:attribute name="id" type="xs:ID"/>
</xs:schema>
"""


class _Offline(etree.Resolver):
    def resolve(self, url, pubid, context):
        if url == XML_NS_URL:
            return self.resolve_string(_XML_XSD, context)
        if url.startswith(("http:", "https:")):
            raise OSError(f"no network: {url}")
        return None


def xtce_schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_Offline())
    return etree.XMLSchema(etree.parse(str(XSD), parser))
