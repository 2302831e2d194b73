#!/usr/bin/env python3
"""libxml2/libxmlsec1 baselines for mezhved's signature benches (docs/performance.md).

Reads the fixtures the Rust bench wrote (target/bench-data/manifest.json: SMEV
SendRequest envelopes of ~2 KiB, 64 KiB and 1 MiB, signed by mezhved) and measures, on
the very same files, with python-xmlsec (libxmlsec1) and lxml (libxml2):

  lxml_parse/{size}                  etree.fromstring alone
  lxml_c14n_digest/exc-c14n/{size}   fromstring + find the signed element + libxml2's
                                     exclusive c14n of it + SHA-256 (checked against the
                                     DigestValue in the file, so it is the same work)
  xmlsec_verify/{alg}/{size}         full libxmlsec1 verify as a gateway would run it:
                                     fromstring, register Id, SignatureContext over a
                                     KeysManager holding the CA certificates; libxmlsec1
                                     reads the X509Certificate from KeyInfo and checks its
                                     chain, then the Reference digest and SignatureValue
  xmlsec_verify_key/{alg}/{size}     the same with the signer's key preset (no KeyInfo
                                     certificate, no chain): libxmlsec1's lower bound

for alg in rsa, ecdsa (libxmlsec1 has no GOST here) on the exc-c14n files. Timing: each
case is calibrated to batches of >= 20 ms, then all cases run round-robin for --rounds
rounds (default 3) of --min-time/--rounds seconds each (default 1.2 s per case in all),
timed with time.perf_counter_ns and with the garbage collector off. A round's result is
the median per-call time of its batches; a case's result is its best round, so a burst
of outside load (on a shared VM it can last seconds, invisible from inside) costs one
round rather than the whole case.

    python tests/bench/xmlsec_bench.py --manifest target/bench-data/manifest.json \\
        --out target/bench-data/xmlsec.json
"""

import argparse
import base64
import gc
import hashlib
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import lxml.etree as etree
import xmlsec

DS = "http://www.w3.org/2000/09/xmldsig#"


def calibrate(fn, batch_ns: int = 20_000_000) -> int:
    """Calls per batch so that one batch takes at least `batch_ns` (at least one call)."""
    fn()  # warm-up (and any lazy initialisation)
    n = 1
    while True:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        dt = time.perf_counter_ns() - t0
        if dt >= batch_ns:
            return n
        n = max(n * 2, int(n * batch_ns / max(dt, 1)))


def run_round(fn, n: int, time_s: float, min_batches: int = 3):
    """Per-call ns of each batch of `n` calls, for at least `time_s` and `min_batches`."""
    samples, total = [], 0
    while total < time_s * 1e9 or len(samples) < min_batches:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        dt = time.perf_counter_ns() - t0
        samples.append(dt / n)
        total += dt
    return samples


def measure_all(cases, min_time_s: float, rounds: int):
    """Round-robin: every case runs for min_time_s/rounds in each of `rounds` rounds, so a
    burst of outside load (on a shared VM it can last seconds and be invisible from
    inside) hits one round of many cases rather than the whole measurement of one. A
    case's result is its best round's median."""
    batch = {name: calibrate(fn) for name, (fn, _) in cases.items()}
    per_round = {name: [] for name in cases}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            for name, (fn, _) in cases.items():
                per_round[name].append(run_round(fn, batch[name], min_time_s / rounds))
            print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    finally:
        if gc_was_enabled:
            gc.enable()
    results = {}
    for name, (_, nbytes) in cases.items():
        medians = [statistics.median(s) for s in per_round[name]]
        best = min(range(rounds), key=lambda i: medians[i])
        r = {
            "median_ns": medians[best],
            "round_medians_ns": medians,
            "samples_ns": per_round[name][best],
            "calls": batch[name] * sum(len(s) for s in per_round[name]),
            "bytes": nbytes,
        }
        r["bytes_per_s"] = nbytes / (r["median_ns"] / 1e9)
        results[name] = r
        print(f"{name:40s} {r['median_ns'] / 1e3:12.1f} us  {r['bytes_per_s'] / 1e6:9.1f} MB/s"
              f"  rounds: {' '.join(f'{m / 1e3:.1f}' for m in medians)} us", file=sys.stderr)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", required=True, type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path, help="JSON output (default: stdout)")
    ap.add_argument("--min-time", type=float, default=1.2,
                    help="seconds per case, split over the rounds (default 1.2)")
    ap.add_argument("--rounds", type=int, default=3, help="round-robin rounds (default 3)")
    ap.add_argument("--filter", default="", help="only cases whose name contains this")
    args = ap.parse_args()

    manifest = json.loads(args.manifest.read_text())
    signed_id = manifest["signed_id"]
    target_path = "/".join(manifest["target_path"])
    sig_path = "/".join(manifest["signature_parent_path"]) + "/{%s}Signature" % DS
    files = [f for f in manifest["files"] if f["profile"] == "exc-c14n"]

    # Parse as a gateway must: no entity expansion, no network; huge_tree only lifts
    # libxml2's 10 MB text-node cap (our 1 MiB files are far from it).
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)

    cases = {}

    def record(name, fn, nbytes):
        if not args.filter or args.filter in name:
            cases[name] = (fn, nbytes)

    # --- parse and canonicalise + digest (the RSA files; the signed element is the same
    # in every algorithm's file) ---------------------------------------------------------
    for f in (f for f in files if f["alg"] == "rsa"):
        data = pathlib.Path(f["path"]).read_bytes()
        size = f["size"]

        def c14n_digest(data=data):
            root = etree.fromstring(data, parser)
            el = root.find(target_path)
            canonical = etree.tostring(el, method="c14n", exclusive=True, with_comments=False)
            return hashlib.sha256(canonical).digest()

        # Same work as ours: the digest must be the one the file was signed with.
        root = etree.fromstring(data, parser)
        want = base64.b64decode(root.find(sig_path + "/{%s}SignedInfo/{%s}Reference/{%s}DigestValue"
                                          % (DS, DS, DS)).text)
        got = c14n_digest()
        if got != want:
            sys.exit(f"{f['path']}: lxml exc-c14n digest differs from the signed DigestValue")

        record(f"lxml_parse/{size}", lambda data=data: etree.fromstring(data, parser), len(data))
        record(f"lxml_c14n_digest/exc-c14n/{size}", c14n_digest, len(data))

    # --- full verification ----------------------------------------------------------------
    for f in (f for f in files if f["alg"] in ("rsa", "ecdsa")):
        data = pathlib.Path(f["path"]).read_bytes()
        alg, size = f["alg"], f["size"]
        pki = manifest["pki"][alg]

        manager = xmlsec.KeysManager()
        manager.load_cert(pki["root"], xmlsec.constants.KeyDataFormatPem,
                          xmlsec.constants.KeyDataTypeTrusted)
        manager.load_cert(pki["intermediate"], xmlsec.constants.KeyDataFormatPem,
                          xmlsec.constants.KeyDataTypeNone)
        key = xmlsec.Key.from_file(pki["cert"], xmlsec.constants.KeyDataFormatCertPem)

        def verify_chain(data=data, manager=manager):
            root = etree.fromstring(data, parser)
            xmlsec.tree.add_ids(root, ["Id"])
            ctx = xmlsec.SignatureContext(manager)
            ctx.verify(root.find(sig_path))  # raises xmlsec.VerificationError
            return root.find(target_path)

        def verify_key(data=data, key=key):
            root = etree.fromstring(data, parser)
            xmlsec.tree.add_ids(root, ["Id"])
            ctx = xmlsec.SignatureContext()
            ctx.key = key
            ctx.verify(root.find(sig_path))
            return root.find(target_path)

        # Both must refuse a tampered copy, or they would be measuring nothing.
        tampered = data.replace("Иванов".encode(), "Петров".encode(), 1)
        for fn in (verify_chain, verify_key):
            assert fn().get("Id") == signed_id
            try:
                fn(tampered)
            except xmlsec.Error:
                pass
            else:
                sys.exit(f"{f['path']}: libxmlsec1 verified a tampered document")

        record(f"xmlsec_verify/{alg}/{size}", verify_chain, len(data))
        record(f"xmlsec_verify_key/{alg}/{size}", verify_key, len(data))

    results = measure_all(cases, args.min_time, max(1, args.rounds))
    out = {
        "meta": {
            "python": platform.python_version(),
            "lxml": ".".join(map(str, etree.LXML_VERSION)),
            "libxml2": ".".join(map(str, etree.LIBXML_VERSION)),
            "libxmlsec1": ".".join(map(str, xmlsec.get_libxmlsec_version())),
            "python-xmlsec": getattr(xmlsec, "__version__", "?"),
            "min_time_s": args.min_time,
            "rounds": args.rounds,
            "pid": os.getpid(),
        },
        "results": results,
    }
    text = json.dumps(out, indent=2, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
