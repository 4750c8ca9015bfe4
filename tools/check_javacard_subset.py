#!/usr/bin/env python3
"""Check compiled applet classes against the JavaCard classic language subset.

javac, run against a JavaCard-only boot class path, already refuses most of what a card
cannot run (String, java.util, ...). It still accepts the types JavaCard classic lacks:
int, long, float, double and char. This script reads the class files themselves and fails
when any of these holds:

* a field, a method parameter or return type, or a local variable (from the
  LocalVariableTable, so classes must be compiled with ``-g``) has type int (I),
  long (J), float (F), double (D) or char (C), or an array of them;
* the constant pool refers to a class outside java/lang (the JavaCard 3.0.4 subset of
  it), javacard/, javacardx/ or sealcard/, or holds a String, Float, Long or Double
  constant, a method handle or an invokedynamic entry, or an Integer constant outside
  the short range;
* the class file is newer than Java 7 (major version 51);
* it refers to a class, field, method or constructor of the JavaCard API that the JavaCard
  3.0.4 API (``tools/javacard_api/3.0.4.txt``, see ``tools/javacard_api.py``) does not have,
  directly or through a member inherited by one of the checked classes. (javac inlines
  constants, so a missing constant is caught by compiling against the stubs of that same
  list, which ``ant applet`` does; this check catches the rest in any class file, whatever it
  was compiled against.)

Arithmetic on the operand stack is int in every class file (the JVM has no short
arithmetic); the JavaCard converter checks that part. Usage:
``check_javacard_subset.py CLASSES_DIR [--api API_DATA]`` (exit status 0 when clean, 1
otherwise, 2 on a usage error).
"""

from __future__ import annotations

import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from javacard_api import ApiSurface, load

DEFAULT_API = Path(__file__).resolve().parent / "javacard_api" / "3.0.4.txt"

MAX_MAJOR_VERSION = 51
FORBIDDEN_PRIMITIVES = frozenset("IJFDC")
SHORT_MIN = -0x8000
SHORT_MAX = 0x7FFF

ALLOWED_PACKAGE_PREFIXES = ("javacard/", "javacardx/", "sealcard/")
# The java.lang package of the JavaCard 3.0.4 classic API.
ALLOWED_JAVA_LANG = frozenset(
    "java/lang/" + name
    for name in (
        "Object",
        "Throwable",
        "Exception",
        "RuntimeException",
        "ArithmeticException",
        "ArrayIndexOutOfBoundsException",
        "ArrayStoreException",
        "ClassCastException",
        "IndexOutOfBoundsException",
        "NegativeArraySizeException",
        "NullPointerException",
        "SecurityException",
    )
)

# Constant pool tags (JVMS 4.4).
UTF8, INTEGER, FLOAT, LONG, DOUBLE, CLASS, STRING = 1, 3, 4, 5, 6, 7, 8
FIELDREF, METHODREF, IFACE_METHODREF, NAME_AND_TYPE = 9, 10, 11, 12
METHOD_HANDLE, METHOD_TYPE, DYNAMIC, INVOKE_DYNAMIC, MODULE, PACKAGE = 15, 16, 17, 18, 19, 20
FORBIDDEN_TAGS = {
    STRING: "String constant",
    FLOAT: "float constant",
    LONG: "long constant",
    DOUBLE: "double constant",
    METHOD_HANDLE: "method handle",
    METHOD_TYPE: "method type",
    DYNAMIC: "dynamic constant",
    INVOKE_DYNAMIC: "invokedynamic",
}

CLASS_IN_DESCRIPTOR = re.compile(r"L([^;]+);")


class ClassFileError(Exception):
    """The file is not a class file this script understands."""


@dataclass
class ClassReport:
    """What one class file violates."""

    name: str
    problems: list[str] = field(default_factory=list)
    super_name: str | None = None
    interfaces: list[str] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)
    methods: set[tuple[str, str]] = field(default_factory=set)
    # (kind, owner, name, descriptor) of every field and method reference
    references: list[tuple[int, str, str, str]] = field(default_factory=list)
    classes: set[str] = field(default_factory=set)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u1(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u2(self) -> int:
        (value,) = struct.unpack_from(">H", self.data, self.pos)
        self.pos += 2
        return int(value)

    def u4(self) -> int:
        (value,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return int(value)

    def s4(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(value)

    def take(self, length: int) -> bytes:
        chunk = self.data[self.pos : self.pos + length]
        self.pos += length
        return chunk


def descriptor_primitives(descriptor: str) -> set[str]:
    """The forbidden primitive letters used in a field or method descriptor."""
    without_classes = CLASS_IN_DESCRIPTOR.sub("", descriptor)
    return {letter for letter in without_classes if letter in FORBIDDEN_PRIMITIVES}


def class_allowed(internal_name: str) -> bool:
    """Whether a class (internal name, possibly an array descriptor) is in the subset."""
    if internal_name.startswith("["):
        element = internal_name.lstrip("[")
        if element.startswith("L") and element.endswith(";"):
            return class_allowed(element[1:-1])
        return not descriptor_primitives(element)
    if internal_name in ALLOWED_JAVA_LANG:
        return True
    return internal_name.startswith(ALLOWED_PACKAGE_PREFIXES)


def _check_descriptor(report: ClassReport, what: str, descriptor: str) -> None:
    bad = descriptor_primitives(descriptor)
    if bad:
        report.problems.append(f"{what}: type {''.join(sorted(bad))} in {descriptor}")
    for referenced in CLASS_IN_DESCRIPTOR.findall(descriptor):
        if not class_allowed(referenced):
            report.problems.append(f"{what}: refers to {referenced}")


def check_class(data: bytes) -> ClassReport:
    """Checks one class file's bytes."""
    reader = _Reader(data)
    if reader.u4() != 0xCAFEBABE:
        raise ClassFileError("bad magic")
    reader.u2()  # minor version
    major = reader.u2()
    pool_count = reader.u2()
    utf8: dict[int, str] = {}
    classes: dict[int, int] = {}
    descriptors: list[int] = []
    member_refs: list[tuple[int, int, int]] = []  # tag, class index, name-and-type index
    names_and_types: dict[int, tuple[int, int]] = {}
    report = ClassReport(name="?")
    index = 1
    while index < pool_count:
        tag = reader.u1()
        if tag == UTF8:
            utf8[index] = reader.take(reader.u2()).decode("utf-8", errors="replace")
        elif tag == INTEGER:
            value = reader.s4()
            if not SHORT_MIN <= value <= SHORT_MAX:
                report.problems.append(f"int constant {value} outside the short range")
        elif tag == FLOAT:
            reader.u4()
        elif tag in (LONG, DOUBLE):
            reader.take(8)
            index += 1
        elif tag == CLASS:
            classes[index] = reader.u2()
        elif tag in (STRING, METHOD_TYPE, MODULE, PACKAGE):
            reader.u2()
        elif tag in (FIELDREF, METHODREF, IFACE_METHODREF):
            member_refs.append((tag, reader.u2(), reader.u2()))
        elif tag == NAME_AND_TYPE:
            name_index = reader.u2()
            descriptor_index = reader.u2()
            names_and_types[index] = (name_index, descriptor_index)
            descriptors.append(descriptor_index)
        elif tag == METHOD_HANDLE:
            reader.u1()
            reader.u2()
        elif tag in (DYNAMIC, INVOKE_DYNAMIC):
            reader.u2()
            reader.u2()
        else:
            raise ClassFileError(f"unknown constant pool tag {tag}")
        if tag in FORBIDDEN_TAGS:
            report.problems.append(FORBIDDEN_TAGS[tag])
        index += 1

    reader.u2()  # access flags
    report.name = utf8[classes[reader.u2()]]
    if major > MAX_MAJOR_VERSION:
        report.problems.append(f"class file version {major} is newer than Java 7 (51)")
    for name_index in classes.values():
        name = utf8[name_index]
        if not class_allowed(name):
            report.problems.append(f"constant pool refers to {name}")
    for descriptor_index in descriptors:
        _check_descriptor(report, "member reference", utf8[descriptor_index])

    report.classes = {utf8[name_index] for name_index in classes.values()}
    for tag, class_index, name_and_type in member_refs:
        name_index, descriptor_index = names_and_types[name_and_type]
        report.references.append(
            (tag, utf8[classes[class_index]], utf8[name_index], utf8[descriptor_index])
        )

    super_index = reader.u2()
    report.super_name = utf8[classes[super_index]] if super_index else None
    report.interfaces = [utf8[classes[reader.u2()]] for _ in range(reader.u2())]
    for _ in range(reader.u2()):  # fields
        reader.u2()
        field_name = utf8[reader.u2()]
        report.fields.add(field_name)
        _check_descriptor(report, f"field {field_name}", utf8[reader.u2()])
        _skip_attributes(reader)
    for _ in range(reader.u2()):  # methods
        reader.u2()
        method_name = utf8[reader.u2()]
        method_descriptor = utf8[reader.u2()]
        report.methods.add((method_name, method_descriptor))
        _check_descriptor(report, f"method {method_name}", method_descriptor)
        for _ in range(reader.u2()):
            attribute_name = utf8[reader.u2()]
            body = reader.take(reader.u4())
            if attribute_name == "Code":
                _check_code(report, method_name, body, utf8)
    return report


def _skip_attributes(reader: _Reader) -> None:
    for _ in range(reader.u2()):
        reader.u2()
        reader.take(reader.u4())


def _check_code(report: ClassReport, method: str, body: bytes, utf8: dict[int, str]) -> None:
    code = _Reader(body)
    code.u2()  # max stack
    max_locals = code.u2()
    code.take(code.u4())  # bytecode
    code.take(code.u2() * 8)  # exception table
    found_table = False
    for _ in range(code.u2()):
        attribute_name = utf8[code.u2()]
        attribute = _Reader(code.take(code.u4()))
        if attribute_name != "LocalVariableTable":
            continue
        found_table = True
        for _ in range(attribute.u2()):
            attribute.take(4)  # start pc, length
            local_name = utf8[attribute.u2()]
            local_descriptor = utf8[attribute.u2()]
            attribute.u2()  # slot
            _check_descriptor(report, f"local {local_name} in {method}", local_descriptor)
    if max_locals > 0 and not found_table:
        report.problems.append(f"method {method}: no LocalVariableTable (compile with -g)")


def check_directory(root: Path, api: ApiSurface | None = None) -> list[ClassReport]:
    """Checks every class file under ``root`` (against ``api`` when given); returns the
    reports with problems."""
    failures: list[ClassReport] = []
    class_files = sorted(root.rglob("*.class"))
    if not class_files:
        failures.append(ClassReport(name=str(root), problems=["no class files found"]))
    reports = [check_class(path.read_bytes()) for path in class_files]
    if api is not None:
        check_api_use(reports, api)
    failures.extend(report for report in reports if report.problems)
    return failures


def check_api_use(reports: list[ClassReport], api: ApiSurface) -> None:
    """Adds a problem for every class or member outside ``api`` that the classes use."""
    own = {report.name: report for report in reports}
    for report in reports:
        for name in sorted(report.classes):
            element = name.lstrip("[")
            if element.startswith("L") and element.endswith(";"):
                element = element[1:-1]
            elif name.startswith("["):
                continue
            if element not in own and class_allowed(element) and not api.has_class(element):
                report.problems.append(f"{element} is not in the JavaCard API")
        for tag, owner, name, descriptor in report.references:
            if owner.startswith("["):
                continue  # array methods (clone) are the language's
            if not _resolves(own, api, tag, owner, name, descriptor):
                kind = "field" if tag == FIELDREF else "method"
                report.problems.append(
                    f"{kind} {owner}.{name} {descriptor} is not in the JavaCard API"
                )


def _resolves(
    own: dict[str, ClassReport],
    api: ApiSurface,
    tag: int,
    owner: str,
    name: str,
    descriptor: str,
) -> bool:
    """Whether a reference finds its member in the checked classes or in the API."""
    pending = [owner]
    seen: set[str] = set()
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.add(current)
        report = own.get(current)
        if report is None:
            if not api.has_class(current):
                continue
            if tag == FIELDREF:
                found = api.find_field(current, name) is not None
            else:
                found = api.find_method(current, name, descriptor) is not None
            if found:
                return True
            continue
        if tag == FIELDREF and name in report.fields:
            return True
        if tag != FIELDREF and (name, descriptor) in report.methods:
            return True
        if name == "<init>":
            return False  # constructors are not inherited
        if report.super_name:
            pending.append(report.super_name)
        pending.extend(report.interfaces)
    return False


def main(argv: list[str]) -> int:
    """Command-line entry: prints problems, returns the exit status."""
    arguments = argv[1:]
    api_path = DEFAULT_API
    if len(arguments) == 3 and arguments[1] == "--api":
        api_path = Path(arguments[2])
        arguments = arguments[:1]
    if len(arguments) != 1:
        print("usage: check_javacard_subset.py CLASSES_DIR [--api API_DATA]", file=sys.stderr)
        return 2
    root = Path(arguments[0])
    failures = check_directory(root, load(api_path))
    for report in failures:
        for problem in sorted(set(report.problems)):
            print(f"{report.name}: {problem}", file=sys.stderr)
    if failures:
        print("JavaCard subset check FAILED", file=sys.stderr)
        return 1
    count = len(list(root.rglob("*.class")))
    print(f"JavaCard subset check passed: {count} classes in {root} (API: {api_path.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
