"""The SDK compatibility scenario through Debian's python3-stripe (5.0.0, run with /usr/bin/python3).

Run by TestSDKCompat: IDENTITYD_BASE is the daemon's base URL, SDK_API_KEY a test key of an account of its
own. Every check prints one JSON line on stdout - {check, schema, ok, message, body} - and the Go test
validates each body against Stripe's OpenAPI schema named by `schema`. Nothing else goes to stdout.
"""

import http.server
import json
import os
import sys
import threading
import time

import stripe

stripe.api_key = os.environ["SDK_API_KEY"]
stripe.api_base = os.environ["IDENTITYD_BASE"]
stripe.max_network_retries = 0
stripe.enable_telemetry = False

SESSION = "identity.verification_session"
REPORT = "identity.verification_report"
SESSION_LIST = "GET /v1/identity/verification_sessions"
REPORT_LIST = "GET /v1/identity/verification_reports"
VS = stripe.identity.VerificationSession
VR = stripe.identity.VerificationReport


def emit(check, schema, ok, message, body):
    sys.stdout.write(json.dumps({"check": check, "schema": schema, "ok": ok, "message": message, "body": body}) + "\n")
    sys.stdout.flush()


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def run(check, schema, fn):
    """Runs one check: fn returns the object to validate (or raises); a failure is reported and the scenario
    goes on, so one deviation does not hide the others."""
    try:
        body = fn()
        emit(check, schema, True, "", body)
        return body
    except Exception as err:  # noqa: BLE001 - every failure is a reported check
        emit(check, schema, False, "%s: %s" % (type(err).__name__, err), getattr(err, "json_body", None))
        return None


def failing(check, call, inspect):
    """call must fail with a Stripe error; inspect checks it, and the body as sent is validated."""

    def fn():
        try:
            call()
        except stripe.error.StripeError as err:
            inspect(err)
            return err.json_body
        raise AssertionError("the call did not fail")

    return run(check, "error", fn)


def poll(what, fn, cond, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if cond(v):
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


class Receiver(http.server.BaseHTTPRequestHandler):
    """A merchant's webhook endpoint on loopback: it keeps every request's raw body and Stripe-Signature."""

    deliveries = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Receiver.deliveries.append({"body": body.decode("utf-8"), "signature": self.headers.get("Stripe-Signature")})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):  # keep stdout for check lines only
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tag = "python-%x" % time.time_ns()

    def create_endpoint():
        ep = stripe.WebhookEndpoint.create(
            url="http://127.0.0.1:%d/hooks" % server.server_address[1],
            enabled_events=["identity.verification_session.verified", "identity.verification_session.redacted"],
        )
        expect(ep.secret.startswith("whsec_"), "secret is not whsec_...")
        return ep

    endpoint = run("webhook_endpoint_create", "webhook_endpoint", create_endpoint)

    def create():
        vs = VS.create(
            type="document",
            client_reference_id=tag + "-main",
            metadata={"sdk": "python", "order": "1234"},
            options={"document": {"allowed_types": ["passport", "id_card"], "require_matching_selfie": True}},
            provided_details={"email": "ada@example.com"},
            return_url="https://example.com/return",
        )
        expect(vs.id.startswith("vs_") and vs.status == "requires_input", "not a new requires_input session")
        expect(vs.metadata["order"] == "1234" and vs.client_reference_id == tag + "-main", "metadata or reference lost")
        expect(vs.options.document.require_matching_selfie is True, "options not echoed")
        expect(vs.options.document.allowed_types == ["passport", "id_card"], "allowed_types not echoed")
        expect((vs.last_response.request_id or "").startswith("req_"), "no Request-Id: %s" % vs.last_response.request_id)
        return vs

    created = run("session_create", SESSION, create)
    sid = created.id if created else "vs_missing"

    def retrieve():
        vs = VS.retrieve(sid)
        expect(vs.id == sid and vs.metadata["sdk"] == "python", "retrieve differs from create")
        return vs

    run("session_retrieve", SESSION, retrieve)

    paged = []

    def create_page():
        last = None
        for _ in range(25):
            last = VS.create(type="id_number", client_reference_id=tag + "-page")
            paged.append(last.id)
        return last

    run("session_create_page_of_25", SESSION, create_page)

    def first_page():
        page = VS.list(limit=10, client_reference_id=tag + "-page")
        expect(len(page.data) == 10 and page.has_more is True, "want 10 sessions and has_more")
        expect(page.data[0].id == paged[-1], "the newest session comes first")
        return page

    run("session_list_first_page", SESSION_LIST, first_page)

    def auto_paging():
        seen = [vs.id for vs in VS.list(limit=10, client_reference_id=tag + "-page").auto_paging_iter()]
        expect(seen == list(reversed(paged)), "auto-pagination saw %d sessions, want the 25 newest first" % len(seen))
        return None  # the pages are the SDK's own; the first page's shape is checked above

    run("session_list_auto_pagination", "", auto_paging)

    def update():
        vs = VS.modify(sid, metadata={"step": "updated"})
        expect(vs.metadata["step"] == "updated" and vs.metadata["order"] == "1234", "metadata not merged")
        return vs

    run("session_update", SESSION, update)

    def cancel():
        vs = VS.cancel(paged[3])
        expect(vs.status == "canceled", "status is " + vs.status)
        return vs

    run("session_cancel", SESSION, cancel)

    def filters():
        page = VS.list(client_reference_id=tag + "-page", status="canceled",
                       created={"gte": created.created - 1 if created else 0})
        expect(len(page.data) == 1 and page.data[0].id == paged[3], "status+created filter wants the canceled one")
        none = VS.list(client_reference_id=tag + "-nobody")
        expect(len(none.data) == 0 and none.has_more is False, "an unknown reference lists nothing")
        return page

    run("session_list_filters", SESSION_LIST, filters)

    def submit():
        # The test-mode helper is identityd's own endpoint: called through the SDK's requestor.
        resp, _ = stripe.api_requestor.APIRequestor().request(
            "post", "/v1/test_helpers/identity/verification_sessions/%s/submit" % sid, {
                "verified_outputs": {"first_name": "Ada", "last_name": "Lovelace",
                                     "dob": {"day": 10, "month": 12, "year": 1985}},
                "document": {"type": "passport", "number": "P1234567", "issuing_country": "GB"},
            })
        expect(resp.data["status"] == "processing", "status after submit is " + resp.data["status"])
        return resp.data

    run("session_submit_test_helper", SESSION, submit)

    def verified_expanded():
        vs = poll("verified", lambda: VS.retrieve(sid, expand=["last_verification_report", "verified_outputs"]),
                  lambda v: v.status != "processing")
        expect(vs.status == "verified", "status is " + vs.status)
        expect(vs.verified_outputs and vs.verified_outputs.first_name == "Ada", "verified_outputs not expanded")
        expect(vs.last_verification_report and vs.last_verification_report.object == REPORT, "report not expanded")
        return vs

    verified = run("session_verified_expanded", SESSION, verified_expanded)
    report_id = verified.last_verification_report.id if verified else "vr_missing"

    def report_retrieve():
        vr = VR.retrieve(report_id)
        expect(vr.verification_session == sid and vr.document.status == "verified", "report does not match")
        return vr

    run("report_retrieve", REPORT, report_retrieve)

    def report_list():
        page = VR.list(verification_session=sid)
        expect(len(page.data) == 1 and page.data[0].id == report_id, "want the one report")
        return page

    run("report_list", REPORT_LIST, report_list)

    def redact():
        vs = VS.redact(sid)
        expect(vs.redaction and vs.redaction.status in ("processing", "redacted"), "redaction not requested")
        return vs

    run("session_redact", SESSION, redact)

    def redacted():
        vs = poll("redacted", lambda: VS.retrieve(sid), lambda v: v.redaction and v.redaction.status == "redacted")
        expect(len(vs.metadata) == 0, "metadata survived the redaction")
        return vs

    run("session_redacted", SESSION, redacted)

    def missing(e):
        expect(isinstance(e, stripe.error.InvalidRequestError) and e.http_status == 404,
               "got %s %s" % (type(e).__name__, e.http_status))
        expect(e.code == "resource_missing" and e.param == "id", "code %s, param %s" % (e.code, e.param))

    failing("error_404_missing_id", lambda: VS.retrieve("vs_doesnotexist000000000000"), missing)

    def bad_param(e):
        expect(isinstance(e, stripe.error.InvalidRequestError) and e.http_status == 400,
               "got %s %s" % (type(e).__name__, e.http_status))
        expect(e.param == "type", "param %s" % e.param)

    failing("error_400_bad_param", lambda: VS.create(type="fingerprint"), bad_param)

    key = tag + "-idem"

    def idempotent():
        first = VS.create(type="document", metadata={"try": "1"}, idempotency_key=key)
        again = VS.create(type="document", metadata={"try": "1"}, idempotency_key=key)
        expect(first.id == again.id, "a retry with the same key made a second session")
        expect(again.last_response.idempotency_key == key, "the answer does not repeat the Idempotency-Key")
        return again

    run("idempotent_retry_same_object", SESSION, idempotent)

    def idem_error(e):
        expect(isinstance(e, stripe.error.IdempotencyError) and e.http_status == 400,
               "got %s %s" % (type(e).__name__, e.http_status))

    failing("idempotency_key_reused_with_other_params", lambda: VS.create(type="id_number", idempotency_key=key),
            idem_error)

    secret = endpoint.secret if endpoint else "whsec_missing"
    for etype in ("identity.verification_session.verified", "identity.verification_session.redacted"):

        def signature(etype=etype):
            d = poll("a delivery of " + etype,
                     lambda: next((x for x in Receiver.deliveries if json.loads(x["body"])["type"] == etype), None),
                     lambda x: x is not None)
            ev = stripe.Webhook.construct_event(d["body"], d["signature"], secret)
            expect(ev.type == etype and ev.data.object.id == sid, "the event is about another session")
            try:
                stripe.Webhook.construct_event(d["body"], d["signature"], "whsec_not0the0secret")
                rejected = False
            except stripe.error.SignatureVerificationError:
                rejected = True
            expect(rejected, "a wrong secret verified")
            return json.loads(d["body"])

        delivery = run("webhook_%s_signature" % etype.split(".")[-1], "event", signature)
        if etype.endswith("redacted"):
            run("webhook_event_object", SESSION, lambda: delivery["data"]["object"])

            def event_retrieve():
                ev = stripe.Event.retrieve(delivery["id"])
                expect(ev.id == delivery["id"] and ev.type == etype, "retrieved another event")
                return ev

            run("event_retrieve", "event", event_retrieve)
    server.shutdown()


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # noqa: BLE001
        emit("scenario", "", False, "%s: %s" % (type(err).__name__, err), None)
        sys.exit(1)
