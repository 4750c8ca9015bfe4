#!/usr/bin/env python3
"""Print the sizes of a CAP file's components and of the load file a card receives.

A CAP file is a JAR holding one file per component (JavaCard VM specification, chapter 6):
each is ``tag (1) | size (2) | info (size)``. GlobalPlatform's LOAD sends the Load File Data
Block, the components concatenated in the order below (Debug is never loaded; Descriptor is
optional, GlobalPlatformPro sends it unless told otherwise). What a card keeps after linking is
about the Method, Class, Static Field image, Constant Pool, Export and Applet components
(Header, Directory, Import, RefLocation and Descriptor are mostly used while linking and then
dropped); the exact figure is the card's, read with GET DATA (free memory) before and after.

Usage: ``cap_size.py CAP_FILE [--json]``.
"""

from __future__ import annotations

import json
import struct
import sys
import zipfile
from pathlib import Path

# Load order of GlobalPlatform's Load File Data Block (JCVM 3.0.4, section 6.2).
LOAD_ORDER = (
    "Header",
    "Directory",
    "Import",
    "Applet",
    "Class",
    "Method",
    "StaticField",
    "Export",
    "ConstantPool",
    "RefLocation",
    "Descriptor",
)
KEPT_AFTER_LINKING = ("Applet", "Class", "Method", "StaticField", "Export", "ConstantPool")


def component_sizes(cap: Path) -> dict[str, int]:
    """Bytes of each component file (tag, size and info) found in the CAP."""
    sizes: dict[str, int] = {}
    with zipfile.ZipFile(cap) as archive:
        for entry in archive.namelist():
            if "/javacard/" in entry and entry.endswith(".cap"):
                name = entry.rsplit("/", 1)[1][: -len(".cap")]
                sizes[name] = len(archive.read(entry))
    return sizes


def static_image_size(cap: Path) -> int:
    """The Static Field component's image size: bytes of the package's static fields."""
    with zipfile.ZipFile(cap) as archive:
        for entry in archive.namelist():
            if entry.endswith("/javacard/StaticField.cap"):
                data = archive.read(entry)
                (image_size,) = struct.unpack_from(">H", data, 3)
                return int(image_size)
    return 0


def summary(cap: Path) -> dict[str, object]:
    sizes = component_sizes(cap)
    loaded = sum(sizes.get(name, 0) for name in LOAD_ORDER)
    return {
        "cap": str(cap),
        "components": {name: sizes[name] for name in LOAD_ORDER if name in sizes},
        "load_file_bytes": loaded,
        "load_file_bytes_without_descriptor": loaded - sizes.get("Descriptor", 0),
        "kept_after_linking_bytes": sum(sizes.get(name, 0) for name in KEPT_AFTER_LINKING),
        "static_field_image_bytes": static_image_size(cap),
        "debug_bytes_not_loaded": sizes.get("Debug", 0),
    }


def main(argv: list[str]) -> int:
    arguments = [a for a in argv[1:] if a != "--json"]
    if len(arguments) != 1:
        print("usage: cap_size.py CAP_FILE [--json]", file=sys.stderr)
        return 2
    cap = Path(arguments[0])
    if not cap.is_file():
        print(f"cap_size.py: {cap}: no such file", file=sys.stderr)
        return 1
    result = summary(cap)
    if "--json" in argv:
        print(json.dumps(result, indent=2))
        return 0
    components = result["components"]
    assert isinstance(components, dict)
    for name, size in components.items():
        print(f"  {name:<13} {size:>6} B")
    print(
        f"  load file data block       {result['load_file_bytes']:>6} B "
        f"({result['load_file_bytes_without_descriptor']} B without Descriptor)"
    )
    print(
        f"  kept after linking, about  {result['kept_after_linking_bytes']:>6} B "
        f"(Applet, Class, Method, StaticField, Export, ConstantPool)"
    )
    print(f"  static field image         {result['static_field_image_bytes']:>6} B")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
