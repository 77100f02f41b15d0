"""Scenario `crypto`: raw primitives for reference, and our recipes against their sum.

Raw (pyca/cryptography and hashlib called directly, keys and AEAD objects made once):
Ed25519 sign and verify of a 60-byte to-be-signed message, HPKE (X25519 / HKDF-SHA256
/ AES-256-GCM, base mode) seal+open of 2 KiB, AES-256-GCM over a 1 MiB chunk, SHA-256
over 1 MiB.

Recipes (broker/): `build_envelope` + `verify_envelope` of the ~2 KiB preservation
payload, against 1 / (sign + verify + HPKE seal+open) from the raw figures, i.e. the
ratio is the share of the round spent in the primitives (1.0 = no overhead); receipts
(issue + verify) against sign + verify; STREAM seal/open of a 1 MiB chunk against the
raw AES-GCM call. All functions are timed in turn, three rounds, median per function.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench import cluster as cl
from bench.options import MIB, Options
from bench.payload import preservation_payload, template_ids
from bench.report import Results, Row, echo
from broker.config import EnvelopeLimits
from broker.crypto import KemPrivateKey, SigningKey, StreamOpener, StreamSealer, new_stream_key
from broker.envelope import build_envelope, verify_envelope
from broker.model import MessageId, ReceiptStatus
from broker.receipts import issue_receipt, verify_receipt
from nodes.config import load_config
from nodes.node import load_trust

MB = 1_000_000
TBS = b"rogatory/v1/envelope-header\x00" + bytes(32)


def _batch(fn: Callable[[], object]) -> int:
    """Calls per batch so that one batch takes about 10 ms."""
    batch = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        if time.perf_counter() - t0 >= 0.01 or batch >= 1 << 20:
            return batch
        batch *= 2


def rates(fns: dict[str, Callable[[], object]], budget_s: float,
          reps: int = 3) -> dict[str, float]:
    """Calls per second of each function: `reps` rounds, each timing every function in
    turn for `budget_s`, median per function. Taking turns makes any drift of the
    machine (another process starting) hit raw primitives and recipes alike."""
    batches = {name: _batch(fn) for name, fn in fns.items()}
    seen: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            calls, t0 = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < budget_s or calls == 0:
                for _ in range(batches[name]):
                    fn()
                calls += batches[name]
            seen[name].append(calls / elapsed)
    return {name: statistics.median(values) for name, values in seen.items()}


def _raw() -> dict[str, Callable[[], object]]:
    ed = Ed25519PrivateKey.generate()
    pub = ed.public_key()
    sig = ed.sign(TBS)
    kem = X25519PrivateKey.generate()
    kem_pub = kem.public_key()
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    body, info = os.urandom(2048), b"rogatory/v1/body\x00" + bytes(32)
    aead, nonce, chunk = AESGCM(os.urandom(32)), os.urandom(12), os.urandom(MIB)
    sealed_chunk = aead.encrypt(nonce, chunk, b"aad")

    def hpke_round() -> None:
        suite.decrypt(suite.encrypt(body, kem_pub, info=info), kem, info=info)

    return {
        "ed25519_sign": lambda: ed.sign(TBS),
        "ed25519_verify": lambda: pub.verify(sig, TBS),
        "hpke_seal_open_2k": hpke_round,
        "aes256gcm_encrypt_1m": lambda: aead.encrypt(nonce, chunk, b"aad"),
        "aes256gcm_decrypt_1m": lambda: aead.decrypt(nonce, sealed_chunk, b"aad"),
        "sha256_1m": lambda: hashlib.sha256(chunk).digest(),
    }


def _recipes(workdir: Path) -> tuple[dict[str, Callable[[], object]], int]:
    with tempfile.TemporaryDirectory(prefix="rogatory-bench-crypto-", dir=workdir) as tmp:
        configs = {k: load_config(v) for k, v in cl.make_federation(Path(tmp)).items()}
        sender_cfg, receiver_cfg = configs[cl.SENDER], configs[cl.RECEIVER]
        now = time.time_ns() // 1_000_000
        trust = load_trust(sender_cfg, now, 0)
        signer = SigningKey.from_pem(sender_cfg.signing_key.read_bytes())
        receiver_signer = SigningKey.from_pem(receiver_cfg.signing_key.read_bytes())
        kem = KemPrivateKey.from_pem(receiver_cfg.kem_key.read_bytes())
    payload = preservation_payload()
    template_id, template_version = template_ids()
    limits = EnvelopeLimits()

    def build() -> Any:
        return build_envelope(
            signer=signer, trust=trust, sender=cl.SENDER, recipient=cl.RECEIVER,
            message_type="preservation", template_id=template_id,
            template_version=template_version, payload=payload, now_ms=now, ttl_ms=3_600_000)

    def verify(env: Any) -> Any:
        return verify_envelope(env, trust=trust, me=cl.RECEIVER, kem_key=kem,
                               peer_identity=cl.SENDER, now_ms=now, limits=limits)

    env, _ = build()
    verified = verify(env)

    def receipt_round() -> None:
        r = issue_receipt(signer=receiver_signer, header=verified.header,
                          header_sha256=verified.header_sha256, status=ReceiptStatus.ACCEPTED,
                          received_at_ms=now, trust_list_version=trust.version)
        verify_receipt(r, trust=trust, receiver=cl.RECEIVER, sender=cl.SENDER,
                       envelope_id=verified.envelope_id, header_sha256=verified.header_sha256,
                       now_ms=now)

    key, eid, chunk = new_stream_key(), MessageId.new().raw, os.urandom(MIB)
    big = 1 << 40  # a manifest size whose chunk count never runs out during the timing
    sealer = StreamSealer(key, envelope_id=eid, index=0, size=big, chunk_size=MIB)
    sealed = StreamSealer(key, envelope_id=eid, index=0, size=big, chunk_size=MIB).seal(chunk)

    def stream_open() -> None:
        StreamOpener(key, envelope_id=eid, index=0, size=big, chunk_size=MIB).open(0, sealed)

    fns: dict[str, Callable[[], object]] = {
        "envelope_round": lambda: verify(build()[0]),
        "envelope_build": build,
        "envelope_verify": lambda: verify(env),
        "receipt_round": receipt_round,
        "stream_seal_1m": lambda: sealer.seal(chunk),
        "stream_open_1m": stream_open,
    }
    return fns, len(env.header) + len(env.signature) + len(env.sealed_body)


def _combined(*rates: float) -> float:
    """The rate of doing each of several operations once: 1 / sum of their times."""
    return 1.0 / sum(1.0 / r for r in rates)


def run(opts: Options, results: Results) -> None:
    recipe_fns, envelope_bytes = _recipes(opts.workdir)
    measured = rates({**_raw(), **recipe_fns}, opts.crypto_budget_s)
    per_s = {k: v for k, v in measured.items() if not k.endswith("_1m")}
    mb_s = {k: v * MIB / MB for k, v in measured.items() if k.endswith("_1m")}
    results.details["crypto"] = {"per_s": per_s, "mb_s": mb_s, "envelope_bytes": envelope_bytes,
                                 "budget_s": opts.crypto_budget_s, "rounds": 3}
    for name, value in per_s.items():
        echo(f"  crypto {name}: {value:,.0f}/s")
    for name, value in mb_s.items():
        echo(f"  crypto {name}: {value:,.0f} MB/s")
    rows = results.rows
    rows.append(Row("crypto", "Ed25519 sign (raw)", per_s["ed25519_sign"], "ops/s"))
    rows.append(Row("crypto", "Ed25519 verify (raw)", per_s["ed25519_verify"], "ops/s"))
    rows.append(Row("crypto", "HPKE seal+open 2 KiB (raw)", per_s["hpke_seal_open_2k"],
                    "ops/s"))
    rows.append(Row("crypto", "AES-256-GCM encrypt 1 MiB (raw)", mb_s["aes256gcm_encrypt_1m"],
                    "MB/s"))
    rows.append(Row("crypto", "SHA-256 1 MiB (raw)", mb_s["sha256_1m"], "MB/s"))
    primitives = _combined(per_s["ed25519_sign"], per_s["ed25519_verify"],
                           per_s["hpke_seal_open_2k"])
    rows.append(Row("crypto", "build_envelope + verify_envelope, 2 KiB payload",
                    per_s["envelope_round"], "rounds/s", baseline=primitives,
                    baseline_name="sign + verify + HPKE seal+open",
                    ratio=per_s["envelope_round"] / primitives,
                    note=f"build alone {per_s['envelope_build']:,.0f}/s, verify alone "
                    f"{per_s['envelope_verify']:,.0f}/s; envelope {envelope_bytes} bytes"))
    sign_verify = _combined(per_s["ed25519_sign"], per_s["ed25519_verify"])
    rows.append(Row("crypto", "issue_receipt + verify_receipt", per_s["receipt_round"],
                    "rounds/s", baseline=sign_verify, baseline_name="sign + verify",
                    ratio=per_s["receipt_round"] / sign_verify))
    for what, raw_name in (("seal", "encrypt"), ("open", "decrypt")):
        value, base = mb_s[f"stream_{what}_1m"], mb_s[f"aes256gcm_{raw_name}_1m"]
        rows.append(Row("crypto", f"STREAM {what} 1 MiB chunk", value, "MB/s",
                        baseline=base, baseline_name=f"AES-256-GCM {raw_name}",
                        ratio=value / base))
