#!/usr/bin/env python3
"""The JavaCard classic API as data: load it, look members up, write compile-only stubs.

The API a JavaCard platform offers is a fixed list of classes, methods, fields and constants
(the specification's javadoc; the converter's export files say the same in binary). This
module reads that list from a text file (``tools/javacard_api/3.0.4.txt``), so the build can
hold the applet to JavaCard 3.0.4 without Oracle's SDK:

* ``stubs DATA OUTDIR`` writes Java sources of every class with exactly the listed members
  (bodies ``throw null``, constants with their values). javac compiles the applet against
  them, so a symbol the platform lacks (``Cipher.PAD_PKCS1_OAEP_SHA256`` of 3.0.5) fails the
  compile, even a constant that javac would inline.
* ``check_javacard_subset.py`` loads the same data and refuses any class file that refers to
  a class or member outside it.
* ``derive API_JAR`` prints the data for an API jar (Oracle's ``lib/api_classic-X.jar`` of a
  JavaCard SDK), which is how the 3.0.4 list was written down; ``compare DATA API_JAR``
  checks them against each other (``ant cap`` does, with the SDK it builds with).

Data format, one line each, members indented under their class::

    class javacard/framework/APDU public final extends java/lang/Object
      field STATE_INITIAL B public static final = 0
      method getBuffer ()[B public
    interface javacard/security/PrivateKey public abstract extends javacard/security/Key

``extends`` lists the superclass of a class, the superinterfaces of an interface;
``implements`` the interfaces of a class; ``throws`` a method's declared exceptions.
"""

from __future__ import annotations

import re
import struct
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

OBJECT = "java/lang/Object"
FLAG_WORDS = ("public", "protected", "static", "final", "abstract")

# In Oracle's API jars for javac's sake, but not in the platform's export files (the
# converter refuses them): javac needs java.lang.Error to compile anything.
SDK_JAR_COMPILE_ONLY = frozenset(
    {
        "java/lang/Error",
        "java/lang/AssertionError",
        "java/lang/StringBuilder",
        "javacard/framework/APDUComm",
    }
)
# What javac needs besides the API; check_javacard_subset.py refuses any class using it.
STUB_COMPILE_ONLY = {"java/lang/Error": "public class Error extends Throwable {\n}\n"}

_PRIMITIVE_JAVA = {"B": "byte", "S": "short", "Z": "boolean", "I": "int", "V": "void"}
_PRIMITIVE_DEFAULT = {"B": "(byte) 0", "S": "(short) 0", "Z": "false", "I": "0"}
_DESCRIPTOR_TOKEN = re.compile(r"\[*(?:[BSZICJFD]|L[^;]+;)")


@dataclass(frozen=True)
class Member:
    """A field or method of an API class."""

    name: str
    descriptor: str
    flags: frozenset[str]
    value: int | None = None  # a constant field's value
    throws: tuple[str, ...] = ()


@dataclass
class ApiClass:
    """One class or interface of the API with its declared members."""

    name: str
    interface: bool
    flags: frozenset[str]
    superclass: str | None
    interfaces: tuple[str, ...]
    fields: dict[str, Member] = field(default_factory=dict)  # by name
    methods: dict[tuple[str, str], Member] = field(default_factory=dict)  # by name, descriptor


class ApiSurface:
    """The classes of one API level and the look-ups a class-file check needs."""

    def __init__(self, classes: Iterable[ApiClass]) -> None:
        self.classes = {api_class.name: api_class for api_class in classes}

    def has_class(self, name: str) -> bool:
        return name in self.classes

    def supertypes(self, name: str) -> Iterator[str]:
        """``name``, then its superclasses and superinterfaces (each once), then Object."""
        seen: set[str] = set()
        pending = [name]
        while pending:
            current = pending.pop(0)
            if current in seen or current not in self.classes:
                continue
            seen.add(current)
            yield current
            api_class = self.classes[current]
            if api_class.superclass:
                pending.append(api_class.superclass)
            pending.extend(api_class.interfaces)
        if OBJECT not in seen and OBJECT in self.classes:
            yield OBJECT

    def find_field(self, owner: str, name: str) -> Member | None:
        for current in self.supertypes(owner):
            member = self.classes[current].fields.get(name)
            if member is not None:
                return member
        return None

    def find_method(self, owner: str, name: str, descriptor: str) -> Member | None:
        candidates = [owner] if name == "<init>" else list(self.supertypes(owner))
        for current in candidates:
            api_class = self.classes.get(current)
            member = api_class.methods.get((name, descriptor)) if api_class else None
            if member is not None:
                return member
        return None


# ----------------------------------------------------------------------------- data file


def load(path: Path) -> ApiSurface:
    """Reads a data file (format in the module docstring)."""
    classes: list[ApiClass] = []
    current: ApiClass | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        words = line.split()
        try:
            if not raw.startswith(" "):
                current = _parse_class(words)
                classes.append(current)
            elif current is None:
                raise ValueError("member before any class")
            elif words[0] == "field":
                member = _parse_member(words)
                current.fields[member.name] = member
            elif words[0] == "method":
                member = _parse_member(words)
                current.methods[(member.name, member.descriptor)] = member
            else:
                raise ValueError(f"unknown entry {words[0]!r}")
        except (ValueError, IndexError) as error:
            raise ValueError(f"{path}:{number}: {error}") from None
    return ApiSurface(classes)


def _parse_class(words: list[str]) -> ApiClass:
    kind, name, rest = words[0], words[1], words[2:]
    if kind not in ("class", "interface"):
        raise ValueError(f"expected class or interface, got {kind!r}")
    flags, lists = _split_keywords(rest, ("extends", "implements"))
    extends = lists.get("extends", [])
    interface = kind == "interface"
    if interface:
        return ApiClass(name, True, flags, None, tuple(extends))
    superclass = extends[0] if extends else None
    if name != OBJECT and superclass is None:
        raise ValueError(f"class {name} without a superclass")
    return ApiClass(name, False, flags, superclass, tuple(lists.get("implements", [])))


def _parse_member(words: list[str]) -> Member:
    name, descriptor, rest = words[1], words[2], words[3:]
    value: int | None = None
    if "=" in rest:
        at = rest.index("=")
        value = int(rest[at + 1])
        rest = rest[:at]
    flags, lists = _split_keywords(rest, ("throws",))
    return Member(name, descriptor, flags, value, tuple(lists.get("throws", [])))


def _split_keywords(
    words: list[str], keywords: tuple[str, ...]
) -> tuple[frozenset[str], dict[str, list[str]]]:
    flags: set[str] = set()
    lists: dict[str, list[str]] = {}
    target: list[str] | None = None
    for word in words:
        if word in keywords:
            target = lists.setdefault(word, [])
        elif target is not None:
            target.append(word)
        elif word in FLAG_WORDS:
            flags.add(word)
        else:
            raise ValueError(f"unexpected {word!r}")
    return frozenset(flags), lists


def dump(surface: ApiSurface) -> str:
    """The data file text for ``surface`` (classes and members sorted)."""
    lines: list[str] = []
    for name in sorted(surface.classes):
        api_class = surface.classes[name]
        head = ["interface" if api_class.interface else "class", name, *_ordered(api_class.flags)]
        extends = (
            api_class.interfaces
            if api_class.interface
            else ((api_class.superclass,) if api_class.superclass else ())
        )
        if extends:
            head += ["extends", *extends]
        if not api_class.interface and api_class.interfaces:
            head += ["implements", *api_class.interfaces]
        lines.append(" ".join(head))
        for _, member in sorted(api_class.fields.items()):
            lines.append("  " + _member_line("field", member))
        for _, member in sorted(api_class.methods.items()):
            lines.append("  " + _member_line("method", member))
    return "\n".join(lines) + "\n"


def _ordered(flags: frozenset[str]) -> list[str]:
    return [word for word in FLAG_WORDS if word in flags]


def _member_line(kind: str, member: Member) -> str:
    words = [kind, member.name, member.descriptor, *_ordered(member.flags)]
    if member.throws:
        words += ["throws", *member.throws]
    if member.value is not None:
        words += ["=", str(member.value)]
    return " ".join(words)


# ----------------------------------------------------------------------------- stubs


def write_stubs(surface: ApiSurface, out_dir: Path) -> int:
    """Writes one Java source per class (plus ``STUB_COMPILE_ONLY``); returns the count."""
    count = 0
    for name, api_class in surface.classes.items():
        _write_source(out_dir, name, _class_source(surface, api_class))
        count += 1
    for name, source in STUB_COMPILE_ONLY.items():
        if name not in surface.classes:
            package = name.rsplit("/", 1)[0].replace("/", ".")
            _write_source(out_dir, name, f"package {package};\n\n{source}")
            count += 1
    return count


def _write_source(out_dir: Path, name: str, source: str) -> None:
    path = out_dir / f"{name}.java"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


def _java_type(descriptor: str) -> str:
    dims = len(descriptor) - len(descriptor.lstrip("["))
    element = descriptor[dims:]
    base = _PRIMITIVE_JAVA.get(element) or element[1:-1].replace("/", ".")
    return base + "[]" * dims


def _parameters(descriptor: str) -> list[str]:
    return _DESCRIPTOR_TOKEN.findall(descriptor[1 : descriptor.index(")")])


def _default(descriptor: str) -> str:
    return _PRIMITIVE_DEFAULT.get(descriptor) or f"({_java_type(descriptor)}) null"


def _modifiers(flags: frozenset[str], drop: tuple[str, ...] = ()) -> str:
    return " ".join(word for word in _ordered(flags) if word not in drop)


def _class_source(surface: ApiSurface, api_class: ApiClass) -> str:
    package, simple = api_class.name.rsplit("/", 1)
    head = _modifiers(api_class.flags, drop=("abstract",) if api_class.interface else ())
    if api_class.interface:
        head += f" interface {simple}"
        if api_class.interfaces:
            head += " extends " + ", ".join(_java_type(f"L{i};") for i in api_class.interfaces)
    else:
        head += f" class {simple}"
        if api_class.superclass:
            head += f" extends {_java_type('L' + api_class.superclass + ';')}"
        if api_class.interfaces:
            head += " implements " + ", ".join(_java_type(f"L{i};") for i in api_class.interfaces)
    body: list[str] = []
    for _, member in sorted(api_class.fields.items()):
        value = ""
        if member.value is not None:
            value = " = " + _constant(member)
        elif "final" in member.flags:
            value = " = " + _default(member.descriptor)
        java_type = _java_type(member.descriptor)
        body.append(f"    {_modifiers(member.flags)} {java_type} {member.name}{value};")
    constructors = [m for (name, _), m in api_class.methods.items() if name == "<init>"]
    if not api_class.interface and not constructors:
        # No accessible constructor in the API: keep javac from adding a public one.
        body.append(f"    private {simple}() {{{_super_call(surface, api_class)} }}")
    for (name, descriptor), member in sorted(api_class.methods.items()):
        parameters = ", ".join(
            f"{_java_type(p)} a{index}" for index, p in enumerate(_parameters(descriptor))
        )
        throws = ""
        if member.throws:
            throws = " throws " + ", ".join(_java_type(f"L{t};") for t in member.throws)
        if name == "<init>":
            signature = f"{_modifiers(member.flags)} {simple}({parameters}){throws}"
            body.append(f"    {signature} {{{_super_call(surface, api_class)} }}")
            continue
        returns = _java_type(descriptor[descriptor.index(")") + 1 :])
        flags = member.flags - {"abstract"} if api_class.interface else member.flags
        signature = f"{_modifiers(flags)} {returns} {name}({parameters}){throws}"
        abstract = api_class.interface or "abstract" in member.flags
        body.append(f"    {signature};" if abstract else f"    {signature} {{ throw null; }}")
    return f"package {package.replace('/', '.')};\n\n{head} {{\n" + "\n".join(body) + "\n}\n"


def _constant(member: Member) -> str:
    assert member.value is not None
    if member.descriptor == "Z":
        return "true" if member.value else "false"
    if member.descriptor == "B":
        return f"(byte) {member.value}"
    if member.descriptor == "S":
        return f"(short) {member.value}"
    return str(member.value)


def _super_call(surface: ApiSurface, api_class: ApiClass) -> str:
    superclass = surface.classes.get(api_class.superclass or "")
    if superclass is None:
        return ""
    constructors = sorted(d for (n, d) in superclass.methods if n == "<init>")
    if not constructors or "()V" in constructors:
        return ""
    arguments = ", ".join(_default(p) for p in _parameters(constructors[0]))
    return f" super({arguments});"


# ----------------------------------------------------------------------------- derive


ACC_PUBLIC, ACC_PROTECTED, ACC_STATIC, ACC_FINAL = 0x0001, 0x0004, 0x0008, 0x0010
ACC_INTERFACE, ACC_ABSTRACT = 0x0200, 0x0400


def derive(api_jar: Path) -> ApiSurface:
    """The public API of an SDK's API jar (minus ``SDK_JAR_COMPILE_ONLY``)."""
    classes = []
    with zipfile.ZipFile(api_jar) as jar:
        for entry in sorted(jar.namelist()):
            if not entry.endswith(".class"):
                continue
            parsed = _read_class(jar.read(entry))
            if parsed is not None and parsed.name not in SDK_JAR_COMPILE_ONLY:
                classes.append(parsed)
    return ApiSurface(classes)


def _flag_words(access: int) -> frozenset[str]:
    bits = {
        "public": ACC_PUBLIC,
        "protected": ACC_PROTECTED,
        "static": ACC_STATIC,
        "final": ACC_FINAL,
        "abstract": ACC_ABSTRACT,
    }
    return frozenset(word for word, bit in bits.items() if access & bit)


def _read_class(data: bytes) -> ApiClass | None:
    position = 8
    (pool_count,) = struct.unpack_from(">H", data, position)
    position += 2
    utf8: dict[int, str] = {}
    class_names: dict[int, int] = {}
    integers: dict[int, int] = {}
    index = 1
    while index < pool_count:
        tag = data[position]
        position += 1
        if tag == 1:
            (length,) = struct.unpack_from(">H", data, position)
            utf8[index] = data[position + 2 : position + 2 + length].decode("utf-8")
            position += 2 + length
        elif tag == 3:
            (integers[index],) = struct.unpack_from(">i", data, position)
            position += 4
        elif tag == 7:
            (class_names[index],) = struct.unpack_from(">H", data, position)
            position += 2
        elif tag in (5, 6):
            position += 8
            index += 1
        elif tag in (4, 9, 10, 11, 12, 17, 18):
            position += 4
        elif tag in (8, 16, 19, 20):
            position += 2
        elif tag == 15:
            position += 3
        else:
            raise ValueError(f"unknown constant pool tag {tag}")
        index += 1

    def u2() -> int:
        nonlocal position
        (value,) = struct.unpack_from(">H", data, position)
        position += 2
        return int(value)

    def u4() -> int:
        nonlocal position
        (value,) = struct.unpack_from(">I", data, position)
        position += 4
        return int(value)

    access = u2()
    name = utf8[class_names[u2()]]
    super_index = u2()
    superclass = utf8[class_names[super_index]] if super_index else None
    interfaces = tuple(utf8[class_names[u2()]] for _ in range(u2()))
    if not access & ACC_PUBLIC:
        return None
    interface = bool(access & ACC_INTERFACE)
    api_class = ApiClass(
        name,
        interface,
        _flag_words(access) - {"static"},
        None if interface else superclass,
        interfaces,
    )
    for kind in ("field", "method"):
        for _ in range(u2()):
            member_access, member_name, descriptor = u2(), utf8[u2()], utf8[u2()]
            value: int | None = None
            throws: tuple[str, ...] = ()
            for _ in range(u2()):
                attribute, length = utf8[u2()], u4()
                start = position
                if attribute == "ConstantValue":
                    value = integers.get(u2())
                elif attribute == "Exceptions":
                    throws = tuple(utf8[class_names[u2()]] for _ in range(u2()))
                position = start + length
            if not member_access & (ACC_PUBLIC | ACC_PROTECTED) or member_name == "<clinit>":
                continue
            flags = _flag_words(member_access)
            if interface:
                flags -= {"abstract"}
            member = Member(member_name, descriptor, flags, value, throws)
            if kind == "field":
                api_class.fields[member_name] = member
            else:
                api_class.methods[(member_name, descriptor)] = member
    return api_class


def differences(written: ApiSurface, derived: ApiSurface) -> list[str]:
    """Lines of the data that only one of the two has, each saying which."""
    ours = _entries(written)
    theirs = _entries(derived)
    return [f"only in the data: {line}" for line in sorted(ours - theirs)] + [
        f"only in the API jar: {line}" for line in sorted(theirs - ours)
    ]


def _entries(surface: ApiSurface) -> set[str]:
    entries: set[str] = set()
    current = ""
    for line in dump(surface).splitlines():
        if line.startswith(" "):
            kind, rest = line.strip().split(" ", 1)
            entries.add(f"{kind} {current} {rest}")
        else:
            current = line.split()[1]
            entries.add(line)
    return entries


# ----------------------------------------------------------------------------- command line


def main(argv: list[str]) -> int:
    """``stubs``, ``derive`` or ``compare``; exit status 0, 1 when ``compare`` differs, 2 on a
    usage error."""
    if len(argv) == 4 and argv[1] == "stubs":
        count = write_stubs(load(Path(argv[2])), Path(argv[3]))
        print(f"{count} stub sources for {argv[2]} in {argv[3]}")
        return 0
    if len(argv) == 3 and argv[1] == "derive":
        sys.stdout.write(dump(derive(Path(argv[2]))))
        return 0
    if len(argv) == 4 and argv[1] == "compare":
        found = differences(load(Path(argv[2])), derive(Path(argv[3])))
        for line in found:
            print(line, file=sys.stderr)
        if found:
            print(f"{argv[2]} and {argv[3]} differ", file=sys.stderr)
            return 1
        print(f"{argv[2]}: the same API as {argv[3]}")
        return 0
    print(
        "usage: javacard_api.py stubs DATA OUTDIR | derive API_JAR | compare DATA API_JAR",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
