"""The Jinja template of the audit report (rendered with autoescaping by `report.py`).

Standalone and printable: inline CSS and SVG, no script, no external asset; a
Content-Security-Policy forbids scripts in case a value ever escaped the escaping.
Element ids, classes and colours come from the code, never from record fields.
"""
# ruff: noqa: E501  (HTML markup: a table row reads better on one line than wrapped)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Rogatory audit report {{ generated_at_ms | utc }}</title>
<style>
  :root { --ink: #1b1f24; --muted: #57606a; --line: #d0d7de; --bad: #b42318;
          --good: #1a7f37; --warn: #9a6700; --band: #f6f8fa; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         color: var(--ink); margin: 0 auto; max-width: 1100px; padding: 24px; }
  h1 { font-size: 24px; margin: 0 0 4px; }
  h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px;
       border-bottom: 2px solid var(--line); }
  h3 { font-size: 15px; margin: 20px 0 6px; }
  .muted, caption { color: var(--muted); }
  .mono, td.id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
                 font-size: 12px; overflow-wrap: anywhere; }
  table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
  caption { text-align: left; font-size: 12px; padding-bottom: 4px; }
  th, td { text-align: left; vertical-align: top; padding: 4px 8px;
           border-bottom: 1px solid var(--line); }
  th { background: var(--band); font-weight: 600; font-size: 13px; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.time { font-variant-numeric: tabular-nums; }
  .nw { white-space: nowrap; }
  .verdict { display: inline-block; padding: 6px 12px; border-radius: 6px;
             font-weight: 700; color: #fff; margin: 8px 0; }
  .verdict.ok { background: var(--good); } .verdict.bad { background: var(--bad); }
  .status { font-weight: 600; }
  .status.delivered { color: var(--good); }
  .status.refused, .status.expired, .status.rejected { color: var(--bad); }
  .status.pending, .status.received, .status.unknown { color: var(--warn); }
  .finding td:first-child { color: var(--bad); font-weight: 600; }
  .facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px;
           margin: 6px 0; }
  .facts dt { color: var(--muted); } .facts dd { margin: 0; }
  .case { page-break-inside: avoid; break-inside: avoid; }
  .note { background: var(--band); border-left: 4px solid var(--line); padding: 8px 12px; }
  svg text { font: 11px system-ui, sans-serif; fill: var(--ink); }
  @media print {
    body { max-width: none; padding: 0; font-size: 11px; }
    h2 { page-break-after: avoid; break-after: avoid; }
    tr { page-break-inside: avoid; break-inside: avoid; }
    .verdict { border: 2px solid #000; color: #000; background: none !important; }
  }
</style>
</head>
<body>
<header>
  <h1>Rogatory audit report</h1>
  <div class="muted">Generated {{ generated_at_ms | utc }} from
  {% for s in sources %}<span class="mono">{{ s }}</span>{{ ", " if not loop.last }}{% else %}(no source named){% endfor %}.</div>
  {% if ok %}
  <div class="verdict ok">Verified: no findings</div>
  {% else %}
  <div class="verdict bad">{{ verification.findings | length }} finding{{ "s" if verification.findings | length != 1 }}: the log cannot be fully trusted</div>
  {% endif %}
</header>

<section id="summary">
<h2>1. Summary</h2>
<dl class="facts">
  <dt>Records read</dt><dd>{{ verification.records }} ({{ verification.duplicates }} harmless duplicates)</dd>
  <dt>Nodes</dt><dd>{{ history.nodes | length }}</dd>
  <dt>Requests (envelopes)</dt><dd>{{ history.lifecycles | length }} in {{ history.cases | length }} case{{ "s" if history.cases | length != 1 }}</dd>
  <dt>Awaiting delivery</dt><dd>{{ verification.awaiting_delivery }}</dd>
  <dt>Findings</dt><dd>{{ verification.findings | length }}</dd>
</dl>
<table>
  <caption>Per node: each node's own log, as replayed.</caption>
  <thead><tr><th>Node</th><th class="num">Records</th><th class="num">Verified tree size</th>
    <th>First record</th><th>Last record</th><th class="num">Sent</th><th class="num">Received</th>
    <th class="num">Consultations</th><th class="num">Rejections</th></tr></thead>
  <tbody>
  {% for node, a in history.nodes.items() %}
  <tr><td class="nw">{{ node }}</td><td class="num">{{ a.records }}</td>
    <td class="num">{{ verification.verified_tree_sizes.get(node, 0) }}</td>
    <td class="time">{{ a.first_ms | utc_cell }}</td><td class="time">{{ a.last_ms | utc_cell }}</td>
    <td class="num">{{ a.events.get("envelope.sent", 0) }}</td>
    <td class="num">{{ a.events.get("envelope.received", 0) }}</td>
    <td class="num">{{ consulted[node] }}</td>
    <td class="num">{{ a.events.get("envelope.rejected", 0) }}</td></tr>
  {% endfor %}
  </tbody>
</table>
</section>

<section id="findings">
<h2>2. Verification findings</h2>
{% if verification.findings %}
<p>Each finding names the node, the sequence number of the record concerned and where
that record was read (store row or Kafka partition and offset).</p>
<table>
  <thead><tr><th>Finding</th><th>Node</th><th class="num">Sequence</th><th>Position</th><th>Detail</th></tr></thead>
  <tbody>
  {% for f in verification.findings %}
  <tr class="finding"><td>{{ f.code }}</td><td>{{ f.node_id }}</td><td class="num">{{ f.sequence }}</td>
    <td class="mono">{{ f.position }}</td><td>{{ f.detail }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% else %}
<p>None. Every hash chain, signed checkpoint and receipt tree head verified against the
trust list, and every delivered request has its matching receive.</p>
{% endif %}
</section>

<section id="volumes">
<h2>3. Volumes</h2>
{% if chart.bars %}
<svg xmlns="http://www.w3.org/2000/svg" role="img" width="100%" viewBox="0 0 {{ chart.width }} {{ chart.height }}"
     aria-label="Messages sent and received per day and node">
  <title>Messages sent and received per day and node (UTC days)</title>
  {% for y, v in chart.y_ticks %}
  <line x1="{{ chart.left }}" x2="{{ chart.width - 12 }}" y1="{{ '%.1f' % y }}" y2="{{ '%.1f' % y }}" stroke="#d0d7de" stroke-width="1"/>
  <text x="{{ chart.left - 6 }}" y="{{ '%.1f' % (y + 4) }}" text-anchor="end">{{ v }}</text>
  {% endfor %}
  {% for b in chart.bars %}
  <rect x="{{ '%.2f' % b.x }}" y="{{ '%.2f' % b.y }}" width="{{ '%.2f' % b.width }}" height="{{ '%.2f' % b.height }}" fill="{{ b.colour }}"><title>{{ b.title }}</title></rect>
  {% endfor %}
  {% for x, label in chart.x_labels %}
  <text x="{{ '%.1f' % x }}" y="{{ chart.top + chart.plot_height + 16 }}" text-anchor="middle">{{ label[5:] }}</text>
  {% endfor %}
  <text x="{{ chart.left }}" y="{{ chart.height - 4 }}">UTC day (MM-DD) · messages sent + received per node</text>
</svg>
<p>{% for colour, node in chart.legend %}<svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" fill="{{ colour }}"/></svg> {{ node }}&emsp;{% endfor %}</p>
{% else %}
<p>No message was sent or received in the log.</p>
{% endif %}
</section>

<section id="response-times">
<h2>4. Response times per agency</h2>
<p class="muted">Delivery: from the request's commit to the sender's outbox until the
agency's signed receipt was verified (both on the sender's clock). Transit: until the
agency logged it as received (the agency's clock, so it includes clock skew).
Percentiles are nearest-rank over the requests that got that far.</p>
{% if agencies %}
<table>
  <thead><tr><th>Agency (addressee)</th><th class="num">Requests</th><th class="num">Open</th>
    <th class="num">Delivery p50</th><th class="num">p90</th><th class="num">max</th>
    <th class="num">Transit p50</th><th class="num">p90</th><th class="num">max</th></tr></thead>
  <tbody>
  {% for a in agencies %}
  <tr><td>{{ a.agency }}</td><td class="num">{{ a.requests }}</td><td class="num">{{ a.open_requests }}</td>
    <td class="num">{{ a.delivery.p50 | duration }}</td><td class="num">{{ a.delivery.p90 | duration }}</td>
    <td class="num">{{ a.delivery.max | duration }}</td>
    <td class="num">{{ a.transit.p50 | duration }}</td><td class="num">{{ a.transit.p90 | duration }}</td>
    <td class="num">{{ a.transit.max | duration }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% else %}
<p>No request was sent.</p>
{% endif %}

<h3>Against legal deadlines</h3>
<p class="muted">Deadlines come from the templates (<span class="mono">deadlines</span>),
as reviewed legal data. Their clock starts at the addressee's receipt unless the
template says otherwise. Whether a deadline was met needs the answer (acknowledgement,
decision, execution), and the audit log does not link answers to requests yet: no
compliance figure is given where the log cannot support one.</p>
{% for note in deadline_notes %}<p class="note">{{ note }}</p>{% endfor %}
{% if deadlines %}
<table>
  <thead><tr><th>Request</th><th>Agency</th><th>Deadline</th><th>Clock start</th><th>Due</th><th>Assessment</th></tr></thead>
  <tbody>
  {% for d in deadlines %}
  <tr><td><span class="mono nw" title="{{ d.envelope_id }}">{{ d.envelope_id[:12] }}…</span><br><span class="muted">{{ d.template }}</span></td>
    <td class="nw">{{ d.agency }}</td>
    <td><b>{{ d.name }}</b> {{ d.kind }} {{ d.value }}<br><span class="muted">{{ d.basis }} ({{ d.verification }})</span></td>
    <td class="time">{{ d.start_ms | utc_cell }}<br><span class="muted">{{ d.starts }}</span></td>
    <td class="time">{{ d.due_ms | utc_cell }}</td><td>{{ d.status }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% else %}
<p>None of the replayed requests uses a template that defines a legal deadline.</p>
{% endif %}
</section>

<section id="requests">
<h2>5. Requests</h2>
<table>
  <thead><tr><th>Envelope</th><th>From → to</th><th>Type / template</th><th>Status</th>
    <th>Sent</th><th>Delivered</th><th>Received</th><th class="num">Retries</th><th class="num">Read</th></tr></thead>
  <tbody>
  {% for lc in history.lifecycles %}
  <tr><td class="id nw" title="{{ lc.envelope_id }}">{{ lc.envelope_id[:12] }}…</td>
    <td><span class="nw">{{ lc.sender or "?" }} →</span> <span class="nw">{{ lc.recipient or "?" }}</span></td>
    <td>{{ lc.message_type }}<br><span class="muted">{{ lc.template }}</span></td>
    <td class="status {{ lc.status }}">{{ lc.status }}</td>
    <td class="time">{{ lc.sent_ms | utc_cell }}</td><td class="time">{{ lc.delivered_ms | utc_cell }}</td>
    <td class="time">{{ lc.received_ms | utc_cell }}</td>
    <td class="num">{{ lc.retries }}</td><td class="num">{{ lc.consultations | length }}</td></tr>
  {% else %}
  <tr><td colspan="9">No request in the log.</td></tr>
  {% endfor %}
  </tbody>
</table>
</section>

<section id="timelines">
<h2>6. Case timelines</h2>
<p class="muted">Each node's clock; a case groups the requests that share a case id
(a request without one is its own case).</p>
{% for case in history.cases %}
<div class="case" id="case-{{ loop.index }}">
<h3>{% if case.case_id %}Case {{ case.case_id }}{% else %}Request <span class="mono">{{ case.lifecycles[0].envelope_id }}</span>{% endif %}</h3>
{% for lc in case.lifecycles %}
<dl class="facts">
  {% if case.case_id %}<dt>Envelope</dt><dd class="mono">{{ lc.envelope_id }}</dd>{% endif %}
  <dt>From → to</dt><dd>{{ lc.sender or "?" }} → {{ lc.recipient or "?" }}</dd>
  <dt>What</dt><dd>{{ lc.message_type }} ({{ lc.template or "no template" }})</dd>
  <dt>Status</dt><dd class="status {{ lc.status }}">{{ lc.status }}{% if lc.refused_reason %} ({{ lc.refused_reason }}){% endif %}</dd>
  <dt>Delivery</dt><dd>{{ lc.delivery_ms | duration }} to receipt, {{ lc.transit_ms | duration }} to receive;
    {{ lc.retries }} retr{{ "y" if lc.retries == 1 else "ies" }}
    {%- if lc.retry_reasons %} ({% for reason, n in lc.retry_reasons.items() %}{{ reason }} ×{{ n }}{{ ", " if not loop.last }}{% endfor %}){% endif %}
    {%- if lc.duplicates %}, {{ lc.duplicates }} duplicate deliver{{ "y" if lc.duplicates == 1 else "ies" }}{% endif %}
    {%- if lc.invalid_receipts %}, {{ lc.invalid_receipts }} invalid receipt(s){% endif %}</dd>
  {% if lc.consultations %}<dt>Consulted by</dt><dd>{% for c in lc.consultations %}{{ c.actor }} at {{ c.node_id }} ({{ c.what }}, {{ c.time_ms | utc_cell }}){{ "; " if not loop.last }}{% endfor %}</dd>{% endif %}
  {% if lc.policy_decision_ids %}<dt>Policy decisions</dt><dd class="mono">{{ lc.policy_decision_ids | join(", ") }}</dd>{% endif %}
  {% if lc.citations %}<dt>Citations</dt><dd>{{ lc.citations | join("; ") }}</dd>{% endif %}
</dl>
{% endfor %}
<table>
  <thead><tr><th>Time</th><th>Node</th>{% if case.lifecycles | length > 1 %}<th>Envelope</th>{% endif %}<th>Event</th><th>Actor</th><th>Detail</th></tr></thead>
  <tbody>
  {% for eid, e in case.timeline %}
  <tr><td class="time">{{ e.time_ms | utc_cell }}</td><td class="nw">{{ e.node_id }}<span class="muted"> #{{ e.sequence }}</span></td>
    {% if case.lifecycles | length > 1 %}<td class="id">{{ eid[:8] }}…</td>{% endif %}
    <td>{{ e.event_type }}{% if e.count > 1 %} ×{{ e.count }}{% endif %}</td><td>{{ e.actor }}</td>
    <td>{{ e.detail }}{% if e.count > 1 %} <span class="muted">(last {{ e.until_ms | utc_cell }})</span>{% endif %}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% for lc in case.lifecycles if lc.omitted_events %}
<p class="note">{{ lc.omitted_events }} further events of {{ lc.envelope_id }} are not shown.</p>
{% endfor %}
</div>
{% else %}
<p>No request in the log.</p>
{% endfor %}
</section>

{% if history.stray_rejections %}
<section id="rejections">
<h2>7. Rejections before any envelope was authenticated</h2>
<p class="muted">Transport-level refusals (certificate, quota, framing) and envelopes
that failed verification carry no trustworthy envelope id.</p>
<table>
  <thead><tr><th>Node</th><th>Peer (transport identity)</th><th>Reason</th><th class="num">Count</th><th>First</th><th>Last</th></tr></thead>
  <tbody>
  {% for r in history.stray_rejections %}
  <tr><td>{{ r.node_id }}</td><td>{{ r.peer or "?" }}</td><td>{{ r.reason }}</td><td class="num">{{ r.count }}</td>
    <td class="time">{{ r.first_ms | utc_cell }}</td><td class="time">{{ r.last_ms | utc_cell }}</td></tr>
  {% endfor %}
  </tbody>
</table>
</section>
{% endif %}

<footer class="muted">
<p>Replayed {{ history.records }} records ({{ history.repeated_records }} repeated, {{ history.malformed_records }} malformed).
Records carry ids, digests, codes and references only: no personal data and no content.</p>
</footer>
</body>
</html>
"""
