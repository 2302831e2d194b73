"""The demo agencies' content (adapters/demo) against the demo schemas, checked by libxml2.

mezhved-demo writes its XML with its own small writer and never validates it; lxml
(libxml2's XML Schema implementation) is the independent judge here:

- every schema under schemas/demo compiles from its file path, imports resolved from
  sibling files, nothing fetched from the network;
- every sample the crate writes (`write_samples`: requests and data responses of each
  kind, through every form the schemas allow) is valid against the schema of its root
  namespace, and its root is the kind's request or response element;
- the kinds in deploy/demo/registry.toml are exactly the schemas' request elements, and
  the demo certificates it names exist;
- broken samples (a bad SNILS, INN or amount, a missing or unqualified element, an
  unknown code) are rejected.

The samples come from the `write_samples` example of mezhved-demo: the binary beside
MEZHVED_BIN (tests/run.sh builds every target first), else `cargo run`.
"""

import os
import pathlib
import re
import shutil
import subprocess
import tomllib

import lxml.etree as etree
import pytest

from conftest import ROOT

SCHEMAS = ROOT / "schemas" / "demo"
REGISTRY = ROOT / "deploy" / "demo" / "registry.toml"
COMMON_NS = "urn://mezhved/demo/common/1.0"

# namespace -> (schema file, request root, response root, file slug)
KINDS = {
    "urn://mezhved/demo/zags/birth-record/1.0": (
        "zags-birth-record-1.0.xsd", "BirthRecordRequest", "BirthRecordResponse", "zags-birth-record"),
    "urn://mezhved/demo/fns/income/1.0": (
        "fns-income-1.0.xsd", "IncomeCertificateRequest", "IncomeCertificateResponse", "fns-income"),
    "urn://mezhved/demo/sfr/disability/1.0": (
        "sfr-disability-1.0.xsd", "DisabilityStatusRequest", "DisabilityStatusResponse", "sfr-disability"),
}
COUNT = 12


class _NoNetwork(etree.Resolver):
    def resolve(self, url, pubid, context):
        if url and re.match(r"(?i)^[a-z][a-z0-9+.-]*://", url) and not url.lower().startswith("file:"):
            raise AssertionError(f"schema loading tried to fetch {url}")
        return None


def parser() -> etree.XMLParser:
    p = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities=False)
    p.resolvers.add(_NoNetwork())
    return p


def compile_xsd(path: pathlib.Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(path), parser()))


def write_samples_command(out: pathlib.Path) -> list:
    args = [str(out), "--count", str(COUNT)]
    env_bin = os.environ.get("MEZHVED_BIN")
    if env_bin:
        example = pathlib.Path(env_bin).parent / "examples" / "write_samples"
        if example.is_file() and os.access(example, os.X_OK):
            return [str(example), *args]
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.exit("neither target/*/examples/write_samples nor cargo found: "
                    "run tests/run.sh (or cargo build -p mezhved-demo --examples)", 2)
    return [cargo, "run", "-q", "-p", "mezhved-demo", "--example", "write_samples", "--", *args]


@pytest.fixture(scope="module")
def schemas() -> dict:
    return {ns: compile_xsd(SCHEMAS / spec[0]) for ns, spec in KINDS.items()}


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("demo-samples")
    cmd = write_samples_command(out)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr}"
    files = {p.name: p.read_bytes() for p in sorted(out.glob("*.xml"))}
    assert files, f"{' '.join(cmd)} wrote no samples"
    return files


def validate(schemas: dict, data: bytes):
    """(valid, root QName, error text) of a document under the schema of its root's namespace."""
    doc = etree.ElementTree(etree.fromstring(data, parser()))
    root = etree.QName(doc.getroot())
    schema = schemas.get(root.namespace)
    if schema is None:
        return False, root, f"no demo schema for the namespace {root.namespace!r}"
    ok = schema.validate(doc)
    return ok, root, "\n".join(f"  line {e.line}: {e.message}" for e in schema.error_log)


# ------------------------------------------------------------------------ schemas

@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.xsd")), ids=lambda p: p.name)
def test_schema_compiles_offline(path):
    compile_xsd(path)
    doc = etree.parse(str(path), parser())
    xs = "http://www.w3.org/2001/XMLSchema"
    assert doc.getroot().get("elementFormDefault") == "qualified", path.name
    for imp in doc.iter(f"{{{xs}}}import", f"{{{xs}}}include"):
        loc = imp.get("schemaLocation")
        assert loc and "/" not in loc and (path.parent / loc).is_file(), f"{path.name}: {loc!r}"


def test_every_kind_has_a_schema_and_the_readme_names_it():
    readme = (SCHEMAS / "README.md").read_text(encoding="utf-8")
    for ns, (xsd, request, response, _) in KINDS.items():
        assert (SCHEMAS / xsd).is_file()
        for word in (ns, xsd, request, response):
            assert word in readme, f"schemas/demo/README.md does not mention {word}"


def test_registry_kinds_match_the_schemas(schemas):
    registry = tomllib.loads(REGISTRY.read_text(encoding="utf-8"))
    kinds = {(k["namespace"], k["root_element"]) for k in registry["kind"]}
    assert kinds == {(ns, spec[1]) for ns, spec in KINDS.items()}
    for ns, schema in schemas.items():
        # The registered root is a global element of the kind's schema: an empty one is
        # invalid for its content, not for being unknown.
        root = KINDS[ns][1]
        schema.validate(etree.ElementTree(etree.fromstring(f'<r:{root} xmlns:r="{ns}"/>')))
        assert all("No matching global declaration" not in e.message for e in schema.error_log), root
    by_root = {k["root_element"]: k for k in registry["kind"]}
    assert by_root["DisabilityStatusRequest"]["consent_required"] is True
    grants = {(g["consumer_system"], g["namespace"], g["root_element"]) for g in registry["grant"]}
    assert grants == {("USZN_IS", ns, spec[1]) for ns, spec in KINDS.items()}
    for system in registry["system"]:
        for cert in system["certificates"]:
            assert (REGISTRY.parent / cert).is_file(), f"{system['mnemonic']}: {cert}"


# ------------------------------------------------------------------------ samples

def test_samples_cover_every_kind_and_direction(samples):
    for ns, (_, _, _, slug) in KINDS.items():
        for direction in ("request", "response"):
            names = [n for n in samples if n.startswith(f"{slug}-{direction}-")]
            assert len(names) == COUNT, f"{slug} {direction}: {len(names)} samples"


def test_every_sample_is_valid(schemas, samples):
    failures = []
    for name, data in samples.items():
        ok, root, errors = validate(schemas, data)
        ns_spec = KINDS.get(root.namespace)
        expected = None
        if ns_spec is not None:
            expected = ns_spec[1] if "-request-" in name else ns_spec[2]
            if not name.startswith(ns_spec[3]):
                failures.append(f"{name}: root namespace {root.namespace} is another kind's")
        if root.localname != expected:
            failures.append(f"{name}: root {root.localname}, expected {expected}")
        if not ok:
            failures.append(f"{name}:\n{errors}")
    assert not failures, "\n".join(failures)


def test_samples_use_the_forms_the_schemas_allow(samples):
    def any_with(prefix, needle):
        return any(needle.encode() in d for n, d in samples.items() if n.startswith(prefix))

    for prefix, needle in [
        ("zags-birth-record-response", "Father>"),
        ("fns-income-request", "Inn>"),
        ("fns-income-request", "Snils>"),
        ("fns-income-request", "Person>"),
        ("sfr-disability-response", "Until>"),
        ("sfr-disability-response", "Indefinite/>"),
        ("sfr-disability-response", "NotEstablished/>"),
    ]:
        assert any_with(prefix, needle), f"no {prefix} sample has {needle}"


# ------------------------------------------------------------------------ negative

def _first(samples, prefix):
    name = next(n for n in sorted(samples) if n.startswith(prefix))
    return samples[name].decode("utf-8")


BREAKAGES = [
    # (sample prefix, description, regex, replacement)
    ("sfr-disability-request", "SNILS without the space", r"(<sfr:Snils>\d{3}-\d{3}-\d{3}) (\d{2})", r"\1\2"),
    ("sfr-disability-request", "missing BirthDate", r"<sfr:BirthDate>[^<]*</sfr:BirthDate>", ""),
    ("sfr-disability-request", "Latin surname", r"<sfr:Surname>[^<]*</sfr:Surname>", "<sfr:Surname>Ivanova</sfr:Surname>"),
    ("sfr-disability-response", "unknown disability group", r"<sfr:Group>[^<]*</sfr:Group>", "<sfr:Group>4</sfr:Group>"),
    ("sfr-disability-response", "both Disability and NotEstablished",
     r"</sfr:Snils>", "</sfr:Snils><sfr:NotEstablished/><sfr:NotEstablished/>"),
    ("fns-income-request", "INN of 11 digits", r"<fns:Inn>\d(\d{11})</fns:Inn>", r"<fns:Inn>\1</fns:Inn>"),
    ("fns-income-request", "year before 2000", r"<fns:Year>\d+</fns:Year>", "<fns:Year>1999</fns:Year>"),
    ("fns-income-response", "amount with three decimals", r"(<fns:Amount>\d+\.\d\d)(</fns:Amount>)", r"\g<1>5\2"),
    ("fns-income-response", "month 13", r"<fns:Month>\d+</fns:Month>", "<fns:Month>13</fns:Month>"),
    ("fns-income-response", "organisation INN with 12 digits",
     r"(<fns:TaxAgent><fns:Name>[^<]*</fns:Name><fns:Inn>)(\d{10})", r"\g<1>42\2"),
    ("zags-birth-record-request", "unqualified Surname",
     r"<zags:Surname>([^<]*)</zags:Surname>", r'<Surname xmlns="">\1</Surname>'),
    ("zags-birth-record-request", "no surname", r"<zags:Surname>[^<]*</zags:Surname>", ""),
    ("zags-birth-record-response", "record number of 21 digits",
     r"<zags:RecordNumber>\d(\d{21})</zags:RecordNumber>", r"<zags:RecordNumber>\1</zags:RecordNumber>"),
    ("zags-birth-record-response", "sex X", r"<zags:Sex>[MF]</zags:Sex>", "<zags:Sex>X</zags:Sex>"),
    ("zags-birth-record-response", "invalid date", r"<zags:RecordDate>[^<]*</zags:RecordDate>",
     "<zags:RecordDate>2023-02-30</zags:RecordDate>"),
]


@pytest.mark.parametrize("prefix,what,pattern,replacement", BREAKAGES, ids=[b[1] for b in BREAKAGES])
def test_broken_sample_is_rejected(schemas, samples, prefix, what, pattern, replacement):
    original = _first(samples, prefix)
    ok, _, errors = validate(schemas, original.encode("utf-8"))
    assert ok, f"the original {prefix} sample is invalid:\n{errors}"
    broken, n = re.subn(pattern, replacement, original, count=1)
    assert n == 1, f"{what}: the pattern did not match the {prefix} sample"
    ok, _, _ = validate(schemas, broken.encode("utf-8"))
    assert not ok, f"{what}: the broken sample was accepted:\n{broken}"


def test_the_sample_exchange_request_is_not_demo_content(schemas):
    """deploy/sample/first-exchange.sh sends a Latin surname: not a valid demo request (the
    demo providers answer it UNKNOWN_REQUEST_DESCRIPTION); the same in Cyrillic is valid."""
    ns = "urn://mezhved/demo/zags/birth-record/1.0"
    sent = (f'<b:BirthRecordRequest xmlns:b="{ns}"><b:Surname>Ivanova</b:Surname>'
            '<b:BirthDate>2019-05-14</b:BirthDate></b:BirthRecordRequest>')
    assert not validate(schemas, sent.encode())[0]
    assert validate(schemas, sent.replace("Ivanova", "Иванова").encode())[0]
