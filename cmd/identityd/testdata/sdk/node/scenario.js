// The SDK compatibility scenario through Stripe's Node SDK (the `stripe` package pinned in package.json).
// Run by TestSDKCompat: IDENTITYD_BASE is the daemon's base URL, SDK_API_KEY a test key of an account of its
// own. Every check prints one JSON line on stdout — {check, schema, ok, message, body} — and the Go test
// validates each body against Stripe's OpenAPI schema named by `schema`. Nothing else goes to stdout.
'use strict';

const http = require('node:http');
const Stripe = require('stripe');

const base = new URL(process.env.IDENTITYD_BASE);
const stripe = new Stripe(process.env.SDK_API_KEY, {
  host: base.hostname,
  port: base.port,
  protocol: base.protocol.replace(':', ''),
  maxNetworkRetries: 0,
  telemetry: false,
});

const SESSION = 'identity.verification_session';
const REPORT = 'identity.verification_report';
const SESSION_LIST = 'GET /v1/identity/verification_sessions';
const REPORT_LIST = 'GET /v1/identity/verification_reports';

function emit(check, schema, ok, message, body) {
  process.stdout.write(JSON.stringify({check, schema, ok, message, body: body === undefined ? null : body}) + '\n');
}

function expect(cond, message) {
  if (!cond) throw new Error(message);
}

// errorBody is the answer's JSON as the server sent it: the SDK adds headers, statusCode and requestId to it.
function errorBody(err) {
  if (!err || !err.raw) return null;
  const {headers, statusCode, requestId, ...error} = err.raw; // eslint-disable-line no-unused-vars
  return {error};
}

// run runs one check: fn returns the object to validate (or throws); a failure is reported and the scenario
// goes on, so one deviation does not hide the others.
async function run(check, schema, fn) {
  try {
    const body = await fn();
    emit(check, schema, true, '', body);
    return body;
  } catch (err) {
    emit(check, schema, false, String(err && err.message ? err.message : err), errorBody(err));
    return null;
  }
}

// failing runs call, which must fail with a Stripe error; check inspects the error and the body is validated.
async function failing(check, call, inspect) {
  return run(check, 'error', async () => {
    let caught = null;
    try {
      await call();
    } catch (err) {
      caught = err;
    }
    expect(caught && caught.raw, 'the call did not fail with a Stripe error');
    inspect(caught);
    return errorBody(caught);
  });
}

async function poll(what, fn, cond, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (cond(v)) return v;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// A merchant's webhook endpoint on loopback: it keeps every request's raw body and Stripe-Signature header.
function startReceiver() {
  const deliveries = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      deliveries.push({body: Buffer.concat(chunks).toString('utf8'), signature: req.headers['stripe-signature']});
      res.writeHead(200).end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({server, deliveries})));
}

async function main() {
  const receiver = await startReceiver();
  const tag = 'node-' + Date.now().toString(36);
  const endpoint = await run('webhook_endpoint_create', 'webhook_endpoint', async () => {
    const ep = await stripe.webhookEndpoints.create({
      url: `http://127.0.0.1:${receiver.server.address().port}/hooks`,
      enabled_events: ['identity.verification_session.verified', 'identity.verification_session.redacted'],
    });
    expect(ep.secret && ep.secret.startsWith('whsec_'), 'secret is not whsec_…');
    return ep;
  });

  const created = await run('session_create', SESSION, async () => {
    const vs = await stripe.identity.verificationSessions.create({
      type: 'document',
      client_reference_id: tag + '-main',
      metadata: {sdk: 'node', order: '1234'},
      options: {document: {allowed_types: ['passport', 'id_card'], require_matching_selfie: true}},
      provided_details: {email: 'ada@example.com'},
      return_url: 'https://example.com/return',
    });
    expect(vs.id.startsWith('vs_') && vs.status === 'requires_input', 'not a new requires_input session');
    expect(vs.metadata.order === '1234' && vs.client_reference_id === tag + '-main', 'metadata or reference lost');
    expect(vs.options.document.require_matching_selfie === true, 'options not echoed');
    expect(vs.options.document.allowed_types.join() === 'passport,id_card', 'allowed_types not echoed');
    expect(/^req_/.test(vs.lastResponse.requestId), 'no Request-Id: ' + vs.lastResponse.requestId);
    return vs;
  });
  const id = created ? created.id : 'vs_missing';

  await run('session_retrieve', SESSION, async () => {
    const vs = await stripe.identity.verificationSessions.retrieve(id);
    expect(vs.id === id && vs.metadata.sdk === 'node', 'retrieve differs from create');
    return vs;
  });

  const paged = [];
  await run('session_create_page_of_25', SESSION, async () => {
    let last;
    for (let i = 0; i < 25; i++) {
      last = await stripe.identity.verificationSessions.create({type: 'id_number', client_reference_id: tag + '-page'});
      paged.push(last.id);
    }
    return last;
  });

  await run('session_list_first_page', SESSION_LIST, async () => {
    const page = await stripe.identity.verificationSessions.list({limit: 10, client_reference_id: tag + '-page'});
    expect(page.data.length === 10 && page.has_more === true, 'want 10 sessions and has_more');
    expect(page.data[0].id === paged[24], 'the newest session comes first');
    return page;
  });

  await run('session_list_auto_pagination', '', async () => {
    const seen = [];
    for await (const vs of stripe.identity.verificationSessions.list({limit: 10, client_reference_id: tag + '-page'})) {
      seen.push(vs.id);
    }
    expect(seen.join() === [...paged].reverse().join(), `auto-pagination saw ${seen.length} sessions, want the 25 newest first`);
    return null; // the pages are the SDK's own; the first page's shape is checked above
  });

  await run('session_update', SESSION, async () => {
    const vs = await stripe.identity.verificationSessions.update(id, {metadata: {step: 'updated'}});
    expect(vs.metadata.step === 'updated' && vs.metadata.order === '1234', 'metadata not merged');
    return vs;
  });

  await run('session_cancel', SESSION, async () => {
    const vs = await stripe.identity.verificationSessions.cancel(paged[3]);
    expect(vs.status === 'canceled', 'status is ' + vs.status);
    return vs;
  });

  await run('session_list_filters', SESSION_LIST, async () => {
    const page = await stripe.identity.verificationSessions.list({
      client_reference_id: tag + '-page', status: 'canceled', created: {gte: created ? created.created - 1 : 0},
    });
    expect(page.data.length === 1 && page.data[0].id === paged[3], 'status+created filter wants the canceled one');
    const none = await stripe.identity.verificationSessions.list({client_reference_id: tag + '-nobody'});
    expect(none.data.length === 0 && none.has_more === false, 'an unknown reference lists nothing');
    return page;
  });

  await run('session_submit_test_helper', SESSION, async () => {
    const vs = await stripe.rawRequest('POST', `/v1/test_helpers/identity/verification_sessions/${id}/submit`, {
      'verified_outputs[first_name]': 'Ada', 'verified_outputs[last_name]': 'Lovelace',
      'verified_outputs[dob][day]': '10', 'verified_outputs[dob][month]': '12', 'verified_outputs[dob][year]': '1985',
      'document[type]': 'passport', 'document[number]': 'P1234567', 'document[issuing_country]': 'GB',
    });
    expect(vs.status === 'processing', 'status after submit is ' + vs.status);
    return vs;
  });

  const verified = await run('session_verified_expanded', SESSION, async () => {
    const vs = await poll('verified', () => stripe.identity.verificationSessions.retrieve(id,
      {expand: ['last_verification_report', 'verified_outputs']}), (v) => v.status !== 'processing');
    expect(vs.status === 'verified', 'status is ' + vs.status);
    expect(vs.verified_outputs && vs.verified_outputs.first_name === 'Ada', 'verified_outputs not expanded');
    expect(vs.last_verification_report && vs.last_verification_report.object === REPORT, 'report not expanded');
    return vs;
  });
  const reportId = verified ? verified.last_verification_report.id : 'vr_missing';

  await run('report_retrieve', REPORT, async () => {
    const vr = await stripe.identity.verificationReports.retrieve(reportId);
    expect(vr.verification_session === id && vr.document.status === 'verified', 'report does not match');
    return vr;
  });

  await run('report_list', REPORT_LIST, async () => {
    const page = await stripe.identity.verificationReports.list({verification_session: id});
    expect(page.data.length === 1 && page.data[0].id === reportId, 'want the one report');
    return page;
  });

  await run('session_redact', SESSION, async () => {
    const vs = await stripe.identity.verificationSessions.redact(id);
    expect(vs.redaction && ['processing', 'redacted'].includes(vs.redaction.status), 'redaction not requested');
    return vs;
  });

  await run('session_redacted', SESSION, async () => {
    const vs = await poll('redacted', () => stripe.identity.verificationSessions.retrieve(id),
      (v) => v.redaction && v.redaction.status === 'redacted');
    expect(Object.keys(vs.metadata).length === 0, 'metadata survived the redaction');
    return vs;
  });

  await failing('error_404_missing_id', () => stripe.identity.verificationSessions.retrieve('vs_doesnotexist000000000000'), (e) => {
    expect(e.statusCode === 404 && e.type === 'StripeInvalidRequestError', `got ${e.statusCode} ${e.type}`);
    expect(e.code === 'resource_missing' && e.param === 'id', `code ${e.code}, param ${e.param}`);
  });

  await failing('error_400_bad_param', () => stripe.identity.verificationSessions.create({type: 'fingerprint'}), (e) => {
    expect(e.statusCode === 400 && e.type === 'StripeInvalidRequestError', `got ${e.statusCode} ${e.type}`);
    expect(e.param === 'type', 'param ' + e.param);
  });

  const key = tag + '-idem';
  await run('idempotent_retry_same_object', SESSION, async () => {
    const first = await stripe.identity.verificationSessions.create({type: 'document', metadata: {try: '1'}}, {idempotencyKey: key});
    const again = await stripe.identity.verificationSessions.create({type: 'document', metadata: {try: '1'}}, {idempotencyKey: key});
    expect(first.id === again.id, 'a retry with the same key made a second session');
    expect(again.lastResponse.idempotencyKey === key, 'the answer does not repeat the Idempotency-Key');
    return again;
  });

  await failing('idempotency_key_reused_with_other_params',
    () => stripe.identity.verificationSessions.create({type: 'id_number'}, {idempotencyKey: key}), (e) => {
      expect(e.statusCode === 400 && e.type === 'StripeIdempotencyError', `got ${e.statusCode} ${e.type}`);
    });

  const secret = endpoint ? endpoint.secret : 'whsec_missing';
  for (const type of ['identity.verification_session.verified', 'identity.verification_session.redacted']) {
    const delivery = await run(`webhook_${type.split('.').pop()}_signature`, 'event', async () => {
      const d = await poll('a delivery of ' + type, async () => receiver.deliveries.find((x) => JSON.parse(x.body).type === type), Boolean);
      const ev = stripe.webhooks.constructEvent(d.body, d.signature, secret);
      expect(ev.type === type && ev.data.object.id === id, 'the event is about another session');
      let rejected = false;
      try {
        stripe.webhooks.constructEvent(d.body, d.signature, 'whsec_not0the0secret');
      } catch (err) {
        rejected = err.type === 'StripeSignatureVerificationError';
      }
      expect(rejected, 'a wrong secret verified');
      return JSON.parse(d.body);
    });
    if (type.endsWith('redacted')) {
      await run('webhook_event_object', SESSION, async () => {
        expect(delivery, 'no delivery');
        return delivery.data.object;
      });
      await run('event_retrieve', 'event', async () => {
        expect(delivery, 'no delivery');
        const ev = await stripe.events.retrieve(delivery.id);
        expect(ev.id === delivery.id && ev.type === type, 'retrieved another event');
        return ev;
      });
    }
  }
  receiver.server.close();
}

main().catch((err) => {
  emit('scenario', '', false, String(err && err.stack ? err.stack : err), null);
  process.exitCode = 1;
});
