"""The central journal's proofs, checked by an independent verifier.

`mezhved serve` runs with the sample configuration (deploy/sample/mezhved.toml, whose
auditor `sample-auditor` has the bearer token "sample-auditor-token") on port 0 with a
fresh data directory. Everything below talks to its auditor API (/api/v1/journal) over
HTTP and checks the answers with code written here from the specifications, never with
mezhved's own:

- RFC 9162 section 2.1 (Merkle tree hash, inclusion and consistency proofs):
  MTH({}) = SHA-256(""), leaf hash = SHA-256(0x00 || leaf), node hash =
  SHA-256(0x01 || left || right); the proofs as 2.1.3.1 / 2.1.4.1 generate them and
  the verifiers of 2.1.3.2 / 2.1.4.2, each shown not to be vacuous by tampered proofs;
- the leaf encoding (canonical JSON: sorted keys, no whitespace, integers only, `seq`
  equal to the leaf's position);
- C2SP tlog-checkpoint in a C2SP signed note (ECDSA P-256: signature type 0x02, key ID
  SHA-256(SPKI DER)[:4], a DER ECDSA-SHA256 signature over the note text, one
  `time-ms` extension line), verified with the `cryptography` package against the
  certificate GET /key publishes;
- attestation end to end: a real signed exchange (SendRequest, GetRequest, Ack with a
  receiver's registration number), the checksum derived from what the consumer holds
  (SHA-256 of its own signature's SHA-256 digest of the block, docs/protocol.md
  "The checksum"), then POST /attest and the returned inclusion proof verified here
  against the returned signed checkpoint.

Every auditor request appends one `auditor.query` event, so the journal grows by one per
request: the module first grows it to MIN_SIZE events with GET /key. Leaves never
change, so the root of size n is the same whenever it is asked for; the tests share one
gateway and do not depend on their order.
"""

import base64
import datetime
import hashlib
import json
import re
import uuid

import pytest
import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

import gateway as G
from conftest import DS, NS
from gateway import MZ, q

AUDITOR_TOKEN = "sample-auditor-token"
AUDITOR_NAME = "sample-auditor"
OPERATOR_TOKEN = "sample-operator-token"
API = "/api/v1/journal"
MIN_SIZE = 70
PROBLEM_JSON = "application/problem+json"


# ------------------------------------------------------------------------ RFC 9162 §2.1

def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(leaf: bytes) -> bytes:
    return sha256(b"\x00" + leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


EMPTY_ROOT = sha256(b"")


def split(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    assert n > 1
    return 1 << ((n - 1).bit_length() - 1)


def mth(hs: list) -> bytes:
    """MTH(D[n]) over the leaf hashes `hs` (§2.1.1)."""
    n = len(hs)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hs[0]
    k = split(n)
    return node_hash(mth(hs[:k]), mth(hs[k:]))


def inclusion_path(m: int, hs: list) -> list:
    """PATH(m, D[n]) (§2.1.3.1)."""
    n = len(hs)
    assert 0 <= m < n
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return inclusion_path(m, hs[:k]) + [mth(hs[k:])]
    return inclusion_path(m - k, hs[k:]) + [mth(hs[:k])]


def consistency_path(m: int, hs: list) -> list:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) (§2.1.4.1), 0 < m <= n."""
    def subproof(m, hs, b):
        n = len(hs)
        if m == n:
            return [] if b else [mth(hs)]
        k = split(n)
        if m <= k:
            return subproof(m, hs[:k], b) + [mth(hs[k:])]
        return subproof(m - k, hs[k:], False) + [mth(hs[:k])]
    assert 0 < m <= len(hs)
    return subproof(m, hs, True)


def verify_inclusion(index: int, size: int, lhash: bytes, proof: list, root: bytes) -> bool:
    """§2.1.3.2, step by step."""
    if index >= size:
        return False
    fn, sn = index, size - 1
    r = lhash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes, proof: list) -> bool:
    """§2.1.4.2, step by step. RFC 9162 leaves first == second to the caller (its
    step 1 fails every empty path, and PROOF(n, D[n]) is empty): like transparency-dev's
    verifier, equal sizes need an empty path and equal roots. first == 0 is not defined."""
    if first < 1 or first > second:
        return False
    if first == second:
        return not proof and first_hash == second_hash
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of 2
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    if fn & 1:
        while fn & 1:
            fn >>= 1
            sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_hash and sr == second_hash


def flip_bit(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


def test_rfc9162_helpers_on_known_values():
    """The helpers themselves, on the RFC 6962/9162 test vectors (those of the
    reference implementations: certificate-transparency-go and transparency-dev/merkle),
    so that agreement with the gateway is agreement with the RFC."""
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    leaves = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                         "606162636465666768696a6b6c6d6e6f")]
    hs = [leaf_hash(x) for x in leaves]
    assert hs[0].hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    roots = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
             "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
             "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
             "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
             "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
             "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
    for n, root in enumerate(roots, 1):
        assert mth(hs[:n]).hex() == root, n
    # Inclusion proofs of (index, size) from the same vectors.
    assert [p.hex() for p in inclusion_path(0, hs)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]
    assert [p.hex() for p in inclusion_path(5, hs[:8])] == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]
    # Consistency proofs from the same vectors.
    assert [p.hex() for p in consistency_path(1, hs[:8])] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]
    assert [p.hex() for p in consistency_path(6, hs[:8])] == [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]
    assert [p.hex() for p in consistency_path(2, hs[:5])] == [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]
    # And the verifiers accept everything the generators make over these 8 leaves.
    for n in range(1, 9):
        for i in range(n):
            assert verify_inclusion(i, n, hs[i], inclusion_path(i, hs[:n]), mth(hs[:n]))
        for m in range(1, n + 1):
            assert verify_consistency(m, n, mth(hs[:m]), mth(hs[:n]), consistency_path(m, hs[:n]))


# ------------------------------------------------------------------------ the auditor client

class Journal:
    """The auditor API of one gateway, plus a cache of the leaves read so far (leaves
    never change, so a leaf read once is the leaf)."""

    def __init__(self, gw: G.Gateway):
        self.gw = gw
        self.events = []  # event JSON objects in seq order, as GET /events returned them

    def request(self, method: str, path: str, token=AUDITOR_TOKEN, **kw) -> requests.Response:
        self.gw._check_alive()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = self.gw.base + API + path
        try:
            return self.gw.session.request(method, url, headers=headers, timeout=(5, G.CALL_TIMEOUT), **kw)
        except requests.exceptions.Timeout:
            raise self.gw._hang(f"{method} {url}") from None

    def ok(self, method: str, path: str, **kw) -> dict:
        r = self.request(method, path, **kw)
        assert r.status_code == 200, f"{method} {path} {kw}: HTTP {r.status_code}: {r.text[:2000]}"
        assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
        return r.json()

    def get(self, path: str, **params) -> dict:
        return self.ok("GET", path, params=params)

    def problem(self, path: str, status: int, **params) -> dict:
        """GET that must be refused with `status` and an RFC 9457 problem document."""
        r = self.request("GET", path, params=params)
        assert r.status_code == status, f"GET {path} {params}: HTTP {r.status_code}, not {status}: {r.text[:2000]}"
        assert r.headers.get("Content-Type", "").split(";")[0].strip() == PROBLEM_JSON, r.headers
        body = r.json()
        assert body.get("status") == status and body.get("title") and body.get("detail"), body
        return body

    def size(self) -> int:
        """The size before this request's own event (which makes it one more)."""
        return self.get("/events", **{"from": 0, "limit": 1})["size"]

    def grow_to(self, n: int):
        size = self.size() + 1
        for _ in range(max(0, n - size)):
            self.get("/key")
        return self.size()

    def fetch(self, n: int) -> list:
        """The first n events (fetched as needed, at most 1000 a page)."""
        while len(self.events) < n:
            start = len(self.events)
            page = self.get("/events", **{"from": start, "limit": 1000})
            assert page["size"] >= n, f"asked for {n} events, the journal has {page['size']}"
            got = page["events"]
            assert got, f"GET /events?from={start} returned nothing (size {page['size']})"
            assert len(got) <= 1000
            assert [e["seq"] for e in got] == list(range(start, start + len(got))), "events are not dense from `from`"
            self.events.extend(got)
        return self.events[:n]

    def leaves(self, n: int) -> list:
        return [e["leaf"].encode("utf-8") for e in self.fetch(n)]

    def hashes(self, n: int) -> list:
        return [leaf_hash(x) for x in self.leaves(n)]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with G.started(tmp_path_factory.mktemp("journal-gateway")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def auditor(gw):
    """The auditor client, the journal grown to MIN_SIZE events first."""
    j = Journal(gw)
    with G.hang_guard(gw):
        assert j.grow_to(MIN_SIZE) >= MIN_SIZE
    return j


@pytest.fixture
def journal(gw, auditor):
    """Every test: fail at once (not after another timeout) once the gateway hung."""
    with G.hang_guard(gw):
        yield auditor


def hx(h: str) -> bytes:
    b = bytes.fromhex(h)
    assert len(b) == 32, h
    return b


# ------------------------------------------------------------------------ 1. leaves and roots

def no_float(text):
    raise AssertionError(f"a journal leaf holds the non-integer number {text}")


def test_each_request_appends_one_auditor_query(journal):
    before = journal.size()  # that GET /events is event number `before`
    journal.get("/key")
    after = journal.size()
    assert after == before + 2, "each auditor request must append exactly one event"
    events = journal.fetch(after)
    for e, query in ((events[before], "events"), (events[before + 1], "key")):
        leaf = json.loads(e["leaf"])
        assert (e["type"], e["actor"], leaf["type"], leaf["actor"], leaf["query"]) == \
            ("auditor.query", AUDITOR_NAME, "auditor.query", AUDITOR_NAME, query), e


def test_leaves_are_canonical_json_and_leaf_hashes_are_rfc9162(journal):
    size = journal.size()
    assert size >= MIN_SIZE
    for position, e in enumerate(journal.fetch(size)):
        check_leaf(e, position)


def check_leaf(e: dict, position: int):
    """An event as the API shows it: leaf_hash, canonical JSON leaf, seq = position."""
    text = e["leaf"]
    raw = text.encode("utf-8")
    assert e["seq"] == position
    assert hx(e["leaf_hash"]) == leaf_hash(raw), f"event {position}: leaf_hash is not SHA-256(0x00 || leaf)"
    leaf = json.loads(text, parse_float=no_float, parse_constant=no_float)
    assert isinstance(leaf, dict), f"event {position}: the leaf is not a JSON object"
    assert leaf["seq"] == position and type(leaf["seq"]) is int, f"event {position}: seq {leaf['seq']!r}"
    assert leaf["v"] == 1 and leaf["type"] == e["type"] and leaf["actor"] == e["actor"], leaf
    assert leaf.get("global_id") == e["global_id"], leaf
    canonical = json.dumps(leaf, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical.encode("utf-8") == raw, \
        f"event {position}: the leaf is not canonical JSON\nleaf:      {text}\ncanonical: {canonical}"


def test_roots_equal_the_python_mth(journal):
    size = journal.size()
    hs = journal.hashes(size)
    sizes = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, size]
    for n in sizes:
        expected = mth(hs[:n]).hex()
        inc = journal.get("/proof/inclusion", seq=n - 1, size=n)
        con = journal.get("/proof/consistency", old=n, new=n)
        assert inc["root"] == expected, f"size {n}: the inclusion answer's root is not MTH"
        assert con["old_root"] == con["new_root"] == expected, f"size {n}: the consistency answer's root is not MTH"
    # The default size of a proof is the journal's current size.
    now = journal.size() + 1  # the next request is answered at this size
    inc = journal.get("/proof/inclusion", seq=0)
    assert inc["size"] == now and inc["root"] == mth(journal.hashes(now)).hex()


# ------------------------------------------------------------------------ 2. inclusion

INCLUSION_SIZES = [1, 2, 4, 8, 16, 32, 3, 5, 7, 33]


def tampered_inclusion(index, size, lh, proof, root, hs=None):
    """Every way of breaking the proof we try; each must fail the verifier. With `hs`
    (the leaf hashes), also the proof presented for another size with that size's true
    root (with the same root a wrong size can verify: the size is bound by the signed
    checkpoint, not by the proof)."""
    cases = []
    for size2 in (size - 1, size + 1):
        if hs is not None and index < size2 <= len(hs):
            cases.append((f"size {size2} and its root instead of {size}", index, size2, lh, proof, mth(hs[:size2])))
    for i, p in enumerate(proof):
        for bit in (0, 7, 255):
            cases.append((f"bit {bit} of element {i} flipped", index, size, lh,
                          proof[:i] + [flip_bit(p, bit)] + proof[i + 1:], root))
    for j in range(size + 1):
        if j != index:
            cases.append((f"index {j} instead of {index}", j, size, lh, proof, root))
    if proof:
        cases.append(("last element dropped", index, size, lh, proof[:-1], root))
        cases.append(("first element dropped", index, size, lh, proof[1:], root))
    if len(proof) > 1 and proof[0] != proof[-1]:
        cases.append(("elements reversed", index, size, lh, proof[::-1], root))
    cases.append(("an extra element", index, size, lh, proof + [sha256(b"extra")], root))
    cases.append(("an extra copy of the root", index, size, lh, proof + [root], root))
    cases.append(("another leaf", index, size, leaf_hash(b"{}"), proof, root))
    cases.append(("a flipped root", index, size, lh, proof, flip_bit(root, 3)))
    return cases


def test_inclusion_proofs_for_every_leaf(journal):
    hs = journal.hashes(max(INCLUSION_SIZES))
    checked = 0
    for size in INCLUSION_SIZES:
        root = mth(hs[:size])
        for index in range(size):
            a = journal.get("/proof/inclusion", seq=index, size=size)
            assert (a["seq"], a["size"]) == (index, size)
            assert hx(a["root"]) == root, f"({index}, {size}): root"
            assert a["leaf"].encode() == journal.leaves(index + 1)[index], f"({index}, {size}): leaf"
            assert hx(a["leaf_hash"]) == hs[index] == leaf_hash(a["leaf"].encode())
            proof = [hx(p) for p in a["proof"]]
            assert proof == inclusion_path(index, hs[:size]), f"({index}, {size}): not PATH(m, D[n])"
            assert verify_inclusion(index, size, hs[index], proof, root), f"({index}, {size}) does not verify"
            for what, *args in tampered_inclusion(index, size, hs[index], proof, root, hs):
                assert not verify_inclusion(*args), f"({index}, {size}) with {what} still verifies"
            checked += 1
    assert checked == sum(INCLUSION_SIZES)


def test_inclusion_proof_of_the_last_leaf_at_the_current_size(journal):
    size = journal.size()
    a = journal.get("/proof/inclusion", seq=size - 1, size=size)
    hs = journal.hashes(size)
    assert verify_inclusion(size - 1, size, hs[-1], [hx(p) for p in a["proof"]], mth(hs))
    assert [hx(p) for p in a["proof"]] == inclusion_path(size - 1, hs)


def test_inclusion_requests_out_of_range_are_refused(journal):
    journal.problem("/proof/inclusion", 400, seq=3, size=3)
    journal.problem("/proof/inclusion", 400, seq=0, size=0)
    journal.problem("/proof/inclusion", 400, seq=0, size=journal.size() + 1000)


# ------------------------------------------------------------------------ 3. consistency

def tampered_consistency(m, n, old, new, proof, hs):
    """Every way of breaking the proof we try; each must fail the verifier. A proof
    taken for another pair of sizes comes with the true roots of those sizes (`hs`, the
    leaf hashes): the RFC 9162 verifier does not bind the new size by itself (the proof
    of (1, 3) also verifies as (1, 4) with the root of size 3, since both trees have the
    same shape from leaf 0); a signed checkpoint binds size and root together."""
    cases = []
    for i, p in enumerate(proof):
        for bit in (0, 7, 255):
            cases.append((f"bit {bit} of element {i} flipped", m, n, old, new,
                          proof[:i] + [flip_bit(p, bit)] + proof[i + 1:]))
    for m2 in (m - 1, m + 1):
        if 1 <= m2 <= n:
            cases.append((f"old size {m2} instead of {m}", m2, n, old, new, proof))
            cases.append((f"old size {m2} and its root instead of {m}", m2, n, mth(hs[:m2]), new, proof))
    for n2 in (n - 1, n + 1):
        if m <= n2 <= len(hs):
            cases.append((f"new size {n2} and its root instead of {n}", m, n2, old, mth(hs[:n2]), proof))
    if proof:
        cases.append(("last element dropped", m, n, old, new, proof[:-1]))
        cases.append(("first element dropped", m, n, old, new, proof[1:]))
    cases.append(("an extra element", m, n, old, new, proof + [sha256(b"extra")]))
    cases.append(("a flipped old root", m, n, flip_bit(old, 9), new, proof))
    cases.append(("a flipped new root", m, n, old, flip_bit(new, 9), proof))
    if old != new:
        cases.append(("the roots swapped", m, n, new, old, proof))
    cases.append(("old size 0", 0, n, EMPTY_ROOT, new, proof))
    return cases


def check_consistency(journal, hs, m, n):
    a = journal.get("/proof/consistency", old=m, new=n)
    assert (a["old"], a["new"]) == (m, n)
    old, new = mth(hs[:m]), mth(hs[:n])
    assert (hx(a["old_root"]), hx(a["new_root"])) == (old, new), f"({m}, {n}): roots"
    proof = [hx(p) for p in a["proof"]]
    assert proof == consistency_path(m, hs[:n]), f"({m}, {n}): not PROOF(m, D[n])"
    if m == n:
        assert proof == [], f"({n}, {n}): the proof must be empty"
    assert verify_consistency(m, n, old, new, proof), f"({m}, {n}) does not verify"
    for what, *args in tampered_consistency(m, n, old, new, proof, hs):
        assert not verify_consistency(*args), f"({m}, {n}) with {what} still verifies"


def test_consistency_proofs_for_all_pairs_up_to_20(journal):
    hs = journal.hashes(20)
    pairs = [(m, n) for n in range(1, 21) for m in range(1, n + 1)]
    for m, n in pairs:
        check_consistency(journal, hs, m, n)
    assert len(pairs) == 210


def test_consistency_proofs_to_the_current_size(journal):
    size = journal.size()
    hs = journal.hashes(size)
    olds = {1, size - 1, size} | {1 << k for k in range(size.bit_length()) if 1 << k <= size}
    for m in sorted(olds):
        check_consistency(journal, hs, m, size)
    # Without `new`: to the current size.
    now = journal.size() + 1
    a = journal.get("/proof/consistency", old=1)
    assert a["new"] == now
    assert verify_consistency(1, now, hs[0], mth(journal.hashes(now)), [hx(p) for p in a["proof"]])


def test_consistency_requests_outside_rfc9162_are_refused(journal):
    size = journal.size()
    journal.problem("/proof/consistency", 400, old=0, new=3)
    journal.problem("/proof/consistency", 400, old=0, new=0)
    journal.problem("/proof/consistency", 400, old=5, new=4)
    journal.problem("/proof/consistency", 400, old=1, new=size + 1000)


# ------------------------------------------------------------------------ 4. checkpoints

SIGNATURE_LINE = re.compile(r"^\u2014 (\S+) ([A-Za-z0-9+/]+=*)$")


class Key:
    """The journal's verifier key, from GET /key."""

    def __init__(self, answer: dict):
        self.origin = answer["origin"]
        self.vkey = answer["vkey"]
        cert = x509.load_pem_x509_certificate(answer["certificate"].encode())
        self.public = cert.public_key()
        assert isinstance(self.public, ec.EllipticCurvePublicKey), type(self.public)
        assert isinstance(self.public.curve, ec.SECP256R1), self.public.curve.name
        self.spki = self.public.public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        self.key_id = sha256(self.spki)[:4]

    def verifies(self, body: bytes, signature: bytes) -> bool:
        try:
            self.public.verify(signature, body, ec.ECDSA(hashes.SHA256()))
            return True
        except InvalidSignature:
            return False


def split_note(note: str):
    """(body text with its final newline, [(name, key ID, signature)]) of a signed note."""
    assert note.endswith("\n"), f"a signed note ends with a newline: {note!r}"
    at = note.rfind("\n\n")
    assert at >= 0, f"no blank line in the note: {note!r}"
    body, sigs = note[:at + 1], note[at + 2:]
    out = []
    for line in sigs[:-1].split("\n"):
        m = SIGNATURE_LINE.match(line)
        assert m, f"not a signature line: {line!r}"
        raw = base64.b64decode(m.group(2), validate=True)
        assert len(raw) > 4
        out.append((m.group(1), raw[:4], raw[4:]))
    return body, out


def parse_checkpoint(body: str) -> dict:
    lines = body[:-1].split("\n")
    assert len(lines) == 4, f"origin, size, root and one time-ms line expected: {body!r}"
    origin, size, root, time = lines
    assert origin and not re.search(r"[\x00-\x1f\s+]", origin), origin
    assert re.fullmatch(r"0|[1-9][0-9]*", size), f"size {size!r}"
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", root), f"root {root!r}"
    raw_root = base64.b64decode(root, validate=True)
    assert len(raw_root) == 32 and base64.b64encode(raw_root).decode() == root
    m = re.fullmatch(r"time-ms (0|[1-9][0-9]*)", time)
    assert m, f"extension line {time!r}"
    return {"origin": origin, "size": int(size), "root": raw_root, "time_ms": int(m.group(1))}


def open_checkpoint(key: Key, note: str) -> dict:
    """Verifies a checkpoint note with the journal's key; returns the parsed checkpoint."""
    body, sigs = split_note(note)
    assert len(sigs) == 1, f"one signature expected: {sigs}"
    name, key_id, signature = sigs[0]
    assert name == key.origin, f"key name {name!r}, origin {key.origin!r}"
    assert key_id == key.key_id, f"key ID {key_id.hex()}, SHA-256(SPKI)[:4] = {key.key_id.hex()}"
    assert key.verifies(body.encode("utf-8"), signature), f"the note's signature does not verify:\n{note}"
    cp = parse_checkpoint(body)
    assert cp["origin"] == key.origin
    return cp


def checked_checkpoint(journal, key: Key, answer: dict) -> dict:
    """A checkpoint answer ({size, root, made_at, note}): signature, and the root is MTH."""
    cp = open_checkpoint(key, answer["note"])
    assert cp["size"] == answer["size"] and cp["root"].hex() == answer["root"], answer
    assert cp["root"] == mth(journal.hashes(cp["size"])), f"the checkpoint root of size {cp['size']} is not MTH"
    made_at = answer["made_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", made_at), made_at
    t = datetime.datetime.fromisoformat(made_at.replace("Z", "+00:00"))
    assert int(t.timestamp() * 1000 + 0.5) == cp["time_ms"], (made_at, cp["time_ms"])
    return cp


@pytest.fixture
def key(journal):
    return Key(journal.get("/key"))


def test_key_is_published_as_a_signed_note_vkey(key):
    ecdsa_type = b"\x02"  # signed-note signature type of ECDSA P-256
    published = base64.b64encode(ecdsa_type + key.spki).decode()
    assert key.vkey == f"{key.origin}+{key.key_id.hex()}+{published}", key.vkey


def test_checkpoint_is_a_signed_tlog_checkpoint(journal, key):
    before = journal.size()
    answer = journal.ok("POST", "/checkpoints")
    cp = checked_checkpoint(journal, key, answer)
    # The POST is journaled before it signs, so its own event is covered.
    assert cp["size"] == before + 2, (before, cp["size"])

    # Tampering with the signed text breaks the signature: a digit of the size, the root,
    # the time, the origin.
    body, [(name, key_id, signature)] = split_note(answer["note"])
    lines = body.split("\n")
    size_line = lines[1]
    d = str((int(size_line[-1]) + 1) % 10)
    tampered = [
        "\n".join([lines[0], size_line[:-1] + d] + lines[2:]),
        "\n".join(lines[:2] + [base64.b64encode(flip_bit(cp["root"], 0)).decode()] + lines[3:]),
        "\n".join(lines[:3] + [f"time-ms {cp['time_ms'] + 1}"] + lines[4:]),
        "\n".join([lines[0] + "x"] + lines[1:]),
        body[:-1],  # without its final newline
    ]
    for text in tampered:
        assert text != body
        assert not key.verifies(text.encode(), signature), f"the signature still verifies over {text!r}"
    assert not key.verifies(body.encode(), signature[:-1] + bytes([signature[-1] ^ 1]))
    with pytest.raises(AssertionError, match="does not verify"):
        open_checkpoint(key, "\n".join([lines[0], size_line[:-1] + d] + lines[2:]) + "\n\u2014 "
                        + name + " " + base64.b64encode(key_id + signature).decode() + "\n")

    # It is listed, and it is the latest.
    listed = journal.get("/checkpoints", after=cp["size"] - 1, limit=10)["checkpoints"]
    assert listed and listed[0] == answer, listed
    latest = journal.get("/checkpoint")
    assert latest["size"] >= cp["size"]
    checked_checkpoint(journal, key, latest)


def test_successive_checkpoints_are_consistent(journal, key):
    first = checked_checkpoint(journal, key, journal.ok("POST", "/checkpoints"))
    journal.get("/key")
    second = checked_checkpoint(journal, key, journal.ok("POST", "/checkpoints"))
    assert second["size"] > first["size"]
    a = journal.get("/proof/consistency", old=first["size"], new=second["size"])
    assert verify_consistency(first["size"], second["size"], first["root"], second["root"],
                              [hx(p) for p in a["proof"]]), "the signed checkpoints are not consistent"
    every = journal.get("/checkpoints", limit=1000)["checkpoints"]
    sizes = [c["size"] for c in every]
    assert sizes == sorted(set(sizes)) and first["size"] in sizes and second["size"] in sizes
    for c in every:
        checked_checkpoint(journal, key, c)


# ------------------------------------------------------------------------ 5. attestation

def test_attestation_of_a_real_exchange(gw, journal, key):
    schemas = G.Schemas()
    consumer, provider = G.Party(gw, "USZN_IS", schemas), G.Party(gw, "ZAGS_IS", schemas)
    tag = uuid.uuid4().hex[:8]
    sender_number, receiver_number = f"USZN-JP/{tag}", f"ZAGS-JP/{tag}"

    sent = consumer.ok(G.send_request(G.birth_request(), card=G.request_card(number=sender_number)))
    gid = sent.text(NS, "MessageId")
    assert G.UUID_RE.match(gid or ""), sent.describe()
    got = provider.ok(G.get_request())
    assert got.text(NS, "MessageId") == gid, got.describe()
    provider.ok(G.ack(gid, receiver_registration=(receiver_number, G.xs_datetime())))

    # The checksum of the copy the consumer holds, from its own signature: the SHA-256
    # digest of the signed block (SMEV transform), hashed once more (no attachments).
    signature = G.parse(sent.request).find(f".//{{{NS}}}CallerInformationSystemSignature/{{{DS}}}Signature")
    ref = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    assert ref.get("URI") == "#SIGNED_BY_CONSUMER"
    assert ref.find(f"{{{DS}}}DigestMethod").get("Algorithm") == "http://www.w3.org/2001/04/xmlenc#sha256"
    checksum = sha256(base64.b64decode(ref.findtext(f"{{{DS}}}DigestValue")))
    reg = sent.registration()
    assert reg is not None and base64.b64decode(reg.findtext(q(MZ, "Checksum"))) == checksum, \
        "the mz:Registration checksum is not SHA-256(SHA-256(B))"

    card = journal.get(f"/cards/{gid}")
    assert card["card"]["global_id"] == gid and card["card"]["checksum"] == checksum.hex(), card["card"]
    for e in card["events"]:
        check_leaf(e, e["seq"])
        assert e["global_id"] == gid and journal.fetch(e["seq"] + 1)[e["seq"]] == e, e
    accepted = [e for e in card["events"] if e["type"] == "message.accepted"]
    assert len(accepted) == 1, card["events"]

    answer = journal.ok("POST", "/attest", json={"global_id": gid, "checksum": checksum.hex()})
    assert answer["verdict"] == "match", answer
    [m] = answer["messages"]
    assert m["verdict"] == "match" and m["registered_checksum"] == checksum.hex(), m
    assert m["card"]["global_id"] == gid
    event = m["event"]
    assert event == accepted[0], (event, accepted[0])
    leaf_bytes = event["leaf"].encode("utf-8")
    leaf = json.loads(event["leaf"])
    assert (leaf["type"], leaf["global_id"], leaf["seq"], leaf["checksum"]) == \
        ("message.accepted", gid, event["seq"], checksum.hex()), leaf
    assert hx(event["leaf_hash"]) == leaf_hash(leaf_bytes)

    cp = checked_checkpoint(journal, key, m["checkpoint"])
    assert cp["size"] > event["seq"]
    assert journal.leaves(event["seq"] + 1)[event["seq"]] == leaf_bytes, "the attested leaf is not the journal's"
    proof = [hx(p) for p in m["inclusion_proof"]]
    assert verify_inclusion(event["seq"], cp["size"], leaf_hash(leaf_bytes), proof, cp["root"]), \
        "the attestation's inclusion proof does not verify against its signed checkpoint"
    for what, *args in tampered_inclusion(event["seq"], cp["size"], leaf_hash(leaf_bytes), proof, cp["root"]):
        assert not verify_inclusion(*args), what
    # A leaf with another checksum is not in the signed tree.
    forged = json.dumps({**leaf, "checksum": "00" * 32}, sort_keys=True, separators=(",", ":"),
                        ensure_ascii=False).encode()
    assert not verify_inclusion(event["seq"], cp["size"], leaf_hash(forged), proof, cp["root"])

    # By the sender's and by the receiver's registration number.
    for number in (sender_number, receiver_number):
        by_number = journal.ok("POST", "/attest", json={"registration_number": number, "checksum": checksum.hex()})
        assert by_number["verdict"] == "match", (number, by_number)
        assert [x["card"]["global_id"] for x in by_number["messages"]] == [gid], (number, by_number)

    # A copy that differs.
    other = bytearray(checksum)
    other[0] ^= 0x10
    wrong = journal.ok("POST", "/attest", json={"global_id": gid, "checksum": bytes(other).hex()})
    assert wrong["verdict"] == "mismatch", wrong
    [w] = wrong["messages"]
    assert w["verdict"] == "mismatch" and w["registered_checksum"] == checksum.hex(), w
    assert verify_inclusion(w["event"]["seq"], w["checkpoint"]["size"], leaf_hash(w["event"]["leaf"].encode()),
                            [hx(p) for p in w["inclusion_proof"]], hx(w["checkpoint"]["root"]))

    # A message the journal does not know.
    unknown = journal.ok("POST", "/attest", json={"global_id": str(uuid.uuid1()), "checksum": checksum.hex()})
    assert unknown == {"verdict": "unknown", "messages": []}, unknown


# ------------------------------------------------------------------------ access

def test_only_auditors_read_the_journal(journal):
    before = journal.size()
    r = journal.request("GET", "/cards", token=None)
    assert r.status_code == 401, r.text
    assert r.headers.get("Content-Type", "").split(";")[0] == PROBLEM_JSON
    r = journal.request("GET", "/cards", token=OPERATOR_TOKEN)
    assert r.status_code == 403, r.text
    assert r.headers.get("Content-Type", "").split(";")[0] == PROBLEM_JSON
    r = journal.request("GET", "/cards", token="not-a-token")
    assert r.status_code == 401, r.text
    r = journal.request("GET", "/cards", token=AUDITOR_TOKEN)
    assert r.status_code == 200, r.text
    assert journal.size() == before + 2, "only the auditor's two requests are journaled"
    # And an auditor's token does not open the operator's API (docs/journal.md, "Access").
    r = journal.gw.session.get(journal.gw.base + "/api/v1/registry", timeout=(5, G.CALL_TIMEOUT),
                               headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"})
    assert r.status_code == 403, r.text


# ------------------------------------------------------------------------ bad positions and parameters

def test_bad_query_strings_are_problem_documents(journal):
    journal.problem("/cards", 400, bogus=1)
    journal.problem("/cards", 400, limit="abc")
    journal.problem("/proof/inclusion", 400, seq="abc")
    journal.problem("/proof/consistency", 400, old=-1)


def test_positions_beyond_i64_do_not_wrap(journal):
    journal.ok("POST", "/checkpoints")
    for big in (2**63, 2**64 - 1):
        assert journal.get("/events", **{"from": big, "limit": 2})["events"] == [], big
        assert journal.get("/checkpoints", after=big)["checkpoints"] == [], big
