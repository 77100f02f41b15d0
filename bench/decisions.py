"""Scenario `decisions`: the policy decision and template validation of a realistic
request, each beside the library call it wraps, measured in the same run.

- Policy: `PolicySet.decide()` for a DE-BFJ -> US-OIA MLA request (LED Chapter V
  transfer under the EU-US Umbrella Agreement; allowed, with obligations): decisions/s
  and p50/p99 latency, beside `cedarpy.is_authorized` evaluating the same request,
  context and entities against the whole policy set with no wrapper. The engine's
  memory of Cedar results is off for this figure (every decision evaluates Cedar); a
  second row gives the same request decided again with it on, as a node deciding a
  request of a shape it has seen does.
- Templates: `Template.validate()` of the example MLA and preservation payloads
  (docs/examples) beside jsonschema's validator on the compiled schema alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cedarpy
from jsonschema import Draft202012Validator

from bench.options import Options
from bench.report import Results, Row, echo
from broker.policy import PolicyRequest, engine, load_policy_set
from broker.templating import load_registry
from broker.templating.compiler import FORMAT_CHECKER

REPO = Path(__file__).resolve().parent.parent
DECLARED = {"justification": "criminal investigation 2026-0412",
            "agreement_ref": "EU-US Umbrella Agreement; DE-US MLA Treaty"}


def _latencies(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(500, n)):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return sorted(out)


def _rate(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(200, n)):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def _policy_rows(opts: Options, results: Results) -> None:
    ps = load_policy_set(REPO / "policy")
    registry = load_registry(REPO / "templates")
    template = registry.default_for_message_type("mla_request")
    payload = json.loads((REPO / "docs" / "examples" / "mla_request.json").read_text())
    request = PolicyRequest(
        action="send", sender_node="DE-BFJ", sender_jurisdiction="DE",
        sender_roles=frozenset({"central_authority"}), recipient_node="US-OIA",
        recipient_jurisdiction="US", recipient_roles=frozenset({"central_authority"}),
        template_id=template.id, template_version=template.version, message_type="mla_request",
        data_categories=template.data_categories(payload),
        legal_basis=ps.legal_basis_for(template.id, payload),
        declared={**ps.declared_from_payload(template.id, payload), **DECLARED})
    at = datetime.now(UTC)
    decision = ps.decide(request, at)
    if decision.outcome != "allow":
        raise RuntimeError(f"benchmark request is not allowed: {decision.reasons}")
    raw_request, entities = _raw_cedar_request(ps, request, at)
    everything = cedarpy.PolicySet.from_str("\n".join(r.text for r in ps.rules))
    n = 500 if opts.smoke else 5000
    remembered = _latencies(lambda: ps.decide(request, at), n)
    cache, engine.RESULT_CACHE = engine.RESULT_CACHE, 0
    try:
        ours = _latencies(lambda: ps.decide(request, at), n)
    finally:
        engine.RESULT_CACHE = cache
    raw = _latencies(lambda: cedarpy.is_authorized(raw_request, everything, entities), n)
    ours_rate, raw_rate = len(ours) / sum(ours), len(raw) / sum(raw)
    p50, p99 = ours[len(ours) // 2] * 1000, ours[int(len(ours) * 0.99)] * 1000
    raw_p99 = raw[int(len(raw) * 0.99)] * 1000
    echo(f"  policy: {ours_rate:,.0f} decisions/s p50 {p50:.3f} ms p99 {p99:.3f} ms; "
         f"raw cedarpy {raw_rate:,.0f}/s p99 {raw_p99:.3f} ms")
    results.rows.append(Row("decisions", "policy decision, DE->US MLA request (allow)",
                            ours_rate, "decisions/s", baseline=raw_rate,
                            baseline_name="cedarpy.is_authorized, whole policy set, no wrapper",
                            ratio=ours_rate / raw_rate,
                            note=f"{len(decision.obligations)} obligations"))
    results.rows.append(Row("decisions", "policy decision p99 latency", p99, "ms",
                            baseline=raw_p99, baseline_name="cedarpy p99", target="< 1 ms",
                            met=p99 < 1.0, note=f"p50 {p50:.3f} ms"))
    hit_rate = len(remembered) / sum(remembered)
    hit_p99 = remembered[int(len(remembered) * 0.99)] * 1000
    echo(f"  policy, Cedar result remembered: {hit_rate:,.0f} decisions/s p99 {hit_p99:.3f} ms")
    results.rows.append(Row("decisions", "policy decision, same request again (Cedar result "
                            "remembered)", hit_rate, "decisions/s", baseline=raw_rate,
                            baseline_name="cedarpy.is_authorized", ratio=hit_rate / raw_rate,
                            note=f"p99 {hit_p99:.3f} ms; no target: the figure above is the "
                                 "judged one"))


def _raw_cedar_request(ps: Any, req: PolicyRequest, at: datetime) -> tuple[dict[str, Any], Any]:
    """The Cedar request the engine builds for `req` (the engine's own steps, so the
    baseline evaluates exactly the same input)."""
    sender, recipient, instrument, template = ps._inputs(req)
    record, carried = ps.vocabulary.check_declared(req.declared)
    day = at.date()
    entities, states = ps.entities_at(day)
    context = ps._context(req, s=states[sender.code], r=states[recipient.code],
                          template=template, record=record, carried=carried, day=day)
    del instrument
    return ({"principal": f'Jurisdiction::"{sender.code}"', "action": f'Action::"{req.action}"',
             "resource": f'Jurisdiction::"{recipient.code}"', "context": context}, entities)


def _template_rows(opts: Options, results: Results) -> None:
    registry = load_registry(REPO / "templates")
    n = 2000 if opts.smoke else 20000
    for message_type in ("mla_request", "preservation"):
        template = registry.default_for_message_type(message_type)
        payload = json.loads((REPO / "docs" / "examples" / f"{message_type}.json").read_text())
        plain = Draft202012Validator(template.json_schema, format_checker=FORMAT_CHECKER)
        ours = _rate(lambda t=template, p=payload: t.validate(p), n)
        raw = _rate(lambda v=plain, p=payload: v.is_valid(p), max(200, n // 20))
        echo(f"  template {template.id}: {ours:,.0f} validations/s; jsonschema {raw:,.0f}/s")
        results.rows.append(Row("decisions", f"template validation, {template.id}", ours,
                                "payloads/s", baseline=raw,
                                baseline_name="jsonschema on the compiled schema alone",
                                ratio=ours / raw, target=">= 0.5", met=ours / raw >= 0.5))


def run(opts: Options, results: Results) -> None:
    _policy_rows(opts, results)
    _template_rows(opts, results)
