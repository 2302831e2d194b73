"""Our SMEV transform equals the PyPI smev-transform package on 240 generated documents.

The generator mixes prefixes (the same namespace under several prefixes, the same prefix
re-bound), default namespaces and their undeclaration, attributes in several namespaces
and none, whitespace-only and mixed text, processing instructions, comments, empty
elements, an XML declaration and pretty-printing. Values carry no markup characters:
smev-transform writes `&`, `<` and `"` unescaped (protocol.md section 4), so escaping is
tested against the rules in gateway/xml/tests/smev_rules.rs instead. Two more quirks of
the package are kept out of the generated documents: it deletes every LF inside text it
keeps, and it merges text on both sides of a comment before the whitespace check (the
Java reference, and we, check each side on its own). docs/protocol.md lists them.
"""

import random

import pytest
from smev_transform import Transform

from conftest import mezhved

NAMESPACES = ["urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1",
              "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1",
              "urn:a", "http://example.org/b", "urn://mezhved/demo/zags/1.0"]
PREFIXES = ["ns", "ns2", "a", "b", "req", "ns1", "tns"]
NAMES = ["Request", "Data", "MessageID", "item", "Surname", "e"]
TEXT = ["value", "Иванов Иван", "  padded  ", "2026-11-24T12:00:00+03:00", "x y z", " "]
ATTR_VALUES = ["1", "two words", "Ж", " lead", "trail ", "SIGNED_BY_CONSUMER", ""]


def element(rng: random.Random, depth: int, scope: dict) -> str:
    scope = dict(scope)
    decls = {}
    for _ in range(rng.randint(0, 2)):
        p, u = rng.choice(PREFIXES), rng.choice(NAMESPACES)
        decls[p] = u
    r = rng.random()
    if r < 0.25:
        decls[""] = rng.choice(NAMESPACES)
    elif r < 0.32 and scope.get(""):
        decls[""] = ""
    scope.update(decls)
    prefixed = [p for p, u in scope.items() if p and u]
    prefix = rng.choice(prefixed) if prefixed and rng.random() < 0.6 else ""
    name = (prefix + ":" if prefix else "") + rng.choice(NAMES)
    attrs, seen = [], set()
    for _ in range(rng.randint(0, 3)):
        ap = rng.choice(prefixed) if prefixed and rng.random() < 0.5 else ""
        local = rng.choice(["Id", "kind", "b", "a", "z"])
        key = (scope[ap] if ap else "", local)
        if key in seen:
            continue
        seen.add(key)
        attrs.append(f'{ap + ":" if ap else ""}{local}="{rng.choice(ATTR_VALUES)}"')
    head = "<" + name + "".join(
        f' xmlns="{u}"' if p == "" else f' xmlns:{p}="{u}"' for p, u in decls.items()
    ) + "".join(" " + a for a in attrs)
    if depth >= 4 or rng.random() < 0.15:
        return head + ("/>" if rng.random() < 0.7 else f"></{name}>")
    # Two kinds of content: mixed (elements and text) written compactly, or element-only
    # content with indentation, comments and PIs between the elements. The PyPI package
    # deletes every LF inside kept text and merges text across comments, so the two are
    # not mixed (see the module docstring).
    parts = []
    if rng.random() < 0.4:
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.5:
                parts.append(element(rng, depth + 1, scope))
            elif not parts or not parts[-1].startswith(("v", "И", " ", "2", "x")):
                parts.append(rng.choice(TEXT))
    else:
        indent = rng.random() < 0.7
        for _ in range(rng.randint(0, 4)):
            if indent:
                parts.append("\n" + "  " * (depth + 1))
            r = rng.random()
            if r < 0.7:
                parts.append(element(rng, depth + 1, scope))
            elif r < 0.85:
                parts.append("<!-- comment -->")
            else:
                parts.append("<?processing instruction?>")
        if indent:
            parts.append("\n" + "  " * depth)
    return head + ">" + "".join(parts) + f"</{name}>"


def documents():
    rng = random.Random(3_2026)
    docs = []
    for i in range(240):
        prolog = rng.choice(["", '<?xml version="1.0" encoding="UTF-8"?>\n', "<?xml-stylesheet href='x'?>"])
        docs.append((f"doc-{i:03d}", prolog + element(rng, 0, {})))
    return docs


DOCS = documents()


def test_enough_documents():
    assert len(DOCS) >= 200


@pytest.mark.parametrize("name,doc", DOCS, ids=[d[0] for d in DOCS])
def test_smev_transform_equals_pypi_smev_transform(tmp_path, name, doc):
    src = tmp_path / "doc.xml"
    src.write_text(doc, encoding="utf-8")
    ours = mezhved("xml", "smev-transform", src).stdout.decode()
    theirs = Transform().process(doc)
    assert ours == theirs, f"{name}:\n{doc}"
