"""Probe every IMAP and HTTP entry point as one user; print what was allowed, as JSON.

Driven by tests/access_matrix.rs, which decides what each role SHOULD be allowed and compares.
Reads a JSON spec on stdin:
  {"imap_port": N, "imaps_port": N, "http": "http://127.0.0.1:N", "user": "...", "password": "...",
   "queues": {"support": {"case": 1, "number": "MR-...", "marker": "..."}, ...},
   "assignee": "name of a user who may read every queue",
   "own_role": "a queue role the user holds, or null"}
Prints one JSON object: {"imap_login": bool, "http_login": bool, "queues": {queue: {probe: result}},
"global": {probe: status}}. A probe's result is True/False (IMAP) or the HTTP status code; content
probes are True only if the queue's marker (unique text in its message) came back.
"""
import imaplib
import json
import sys
import urllib.error
import urllib.request

from mrtest import tls_context

spec = json.load(sys.stdin)
queues = spec["queues"]
out = {"queues": {q: {} for q in queues}, "global": {}}


# ------------------------------------------------------------------------------------------ IMAP
def imap_probe(conn, label):
    ok, listed = conn.list('""', "*")
    names = set()
    for line in listed or []:
        if line is None:
            continue
        text = line.decode() if isinstance(line, bytes) else str(line)
        names.add(text.rsplit(" ", 1)[-1].strip('"'))
    for q, info in queues.items():
        r = out["queues"][q]
        r[f"{label}_list"] = q in names
        typ, _ = conn.status(q, "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
        r[f"{label}_status"] = typ == "OK"
        typ, _ = conn.select(q, readonly=True)
        r[f"{label}_examine"] = typ == "OK"
        if typ == "OK":
            conn.close()
        typ, _ = conn.select(q)
        r[f"{label}_select"] = typ == "OK"
        fetched = False
        searched = False
        if typ == "OK":
            typ, data = conn.uid("SEARCH", None, "ALL")
            searched = typ == "OK" and bool(data and data[0] and data[0].split())
            typ, data = conn.fetch("1:*", "(BODY.PEEK[])")
            if typ == "OK":
                blob = b"".join(part[1] for part in data if isinstance(part, tuple))
                fetched = info["marker"].encode() in blob
            conn.close()
        r[f"{label}_search"] = searched
        r[f"{label}_fetch"] = fetched


def imap_login(conn):
    try:
        conn.login(spec["user"], spec["password"])
        return True
    except imaplib.IMAP4.error:
        return False


conn = imaplib.IMAP4_SSL("127.0.0.1", spec["imaps_port"], ssl_context=tls_context())
out["imap_login"] = imap_login(conn)
if out["imap_login"]:
    imap_probe(conn, "imaps")
conn.logout()

conn = imaplib.IMAP4("127.0.0.1", spec["imap_port"])
conn.starttls(ssl_context=tls_context())
if imap_login(conn):
    imap_probe(conn, "imap")
conn.logout()


# ------------------------------------------------------------------------------------------ HTTP
BASE = spec["http"]


def call(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, raw
    except urllib.error.HTTPError as e:
        raw = e.read()
        # Every error must be JSON with a reason.
        try:
            parsed = json.loads(raw)
            assert "reason" in parsed and "error" in parsed, raw
        except Exception:
            print(f"FAIL: non-JSON error from {method} {path}: {e.code} {raw!r}", file=sys.stderr)
            sys.exit(1)
        return e.code, raw


status, raw = call("POST", "/api/login", {"user": spec["user"], "password": spec["password"], "mode": "bearer"})
out["http_login"] = status == 200
token = json.loads(raw)["token"] if status == 200 else None
if token:
    status, raw = call("GET", "/api/queues", token=token)
    listed = set()
    if status == 200:
        listed = {q["name"] for q in json.loads(raw)["queues"]}
    for q, info in queues.items():
        r = out["queues"][q]
        r["http_queues"] = q in listed
        r["http_cases"] = call("GET", f"/api/queues/{q}/cases", token=token)[0]
        status, raw = call("GET", f"/api/cases/{info['case']}", token=token)
        r["http_case"] = status
        status, raw = call("GET", f"/api/messages/{info['number']}/raw", token=token)
        r["http_raw"] = status
        r["http_raw_content"] = status == 200 and info["marker"].encode() in raw
        case = info["case"]
        r["http_note"] = call("POST", f"/api/cases/{case}/notes", {"text": "probe note"}, token)[0]
        r["http_status"] = call("POST", f"/api/cases/{case}/status", {"status": "open"}, token)[0]
        r["http_priority"] = call("POST", f"/api/cases/{case}/priority", {"priority": "normal"}, token)[0]
        r["http_tags"] = call("POST", f"/api/cases/{case}/tags", {"add": ["probe"], "remove": []}, token)[0]
        r["http_claim"] = call("POST", f"/api/cases/{case}/claim", None, token)[0]
        r["http_assign"] = call("POST", f"/api/cases/{case}/assign", {"user": spec["assignee"]}, token)[0]
        # Transferring to a queue that does not exist: a permitted user learns the queue is
        # unknown (422); everyone else is refused before that (403/404). Nothing moves either way.
        r["http_transfer"] = call("POST", f"/api/cases/{case}/transfer", {"queue": "no-such-queue"}, token)[0]
    out["global"]["http_stats"] = call("GET", "/api/stats", token=token)[0]
    out["global"]["http_admin_users"] = call("GET", "/api/admin/users", token=token)[0]
    out["global"]["http_admin_roles"] = call("GET", "/api/admin/roles", token=token)[0]
    out["global"]["http_admin_audit"] = call("GET", "/api/admin/audit?limit=5", token=token)[0]
    out["global"]["http_admin_add_role"] = call("POST", "/api/admin/roles", {"name": "probe-" + spec["user"], "description": ""}, token)[0]
    # Separation of duties (issue #8): nobody changes his own access; an account with a reading
    # role waits for a second person; nobody chooses another's password; who sees pending changes.
    me = spec["user"]
    g = out["global"]
    g["http_self_supervisor"] = call("POST", "/api/admin/roles/supervisor/members", {"user": me}, token)[0]
    g["http_self_reset"] = call("POST", f"/api/admin/users/{me}/password", {}, token)[0]
    g["http_self_lock"] = call("POST", f"/api/admin/users/{me}/lock", None, token)[0]
    if spec.get("own_role"):
        g["http_grant_own_role"] = call("POST", f"/api/admin/roles/{spec['own_role']}/grants",
                                        {"queue": "complaints", "permissions": ["read"]}, token)[0]
    g["http_add_supervisor_user"] = call("POST", "/api/admin/users", {"name": "probe-new-" + me, "roles": ["supervisor"]}, token)[0]
    g["http_add_password_user"] = call("POST", "/api/admin/users",
                                       {"name": "probe-pw-" + me, "password": "chosen by the officer"}, token)[0]
    g["http_changes"] = call("GET", "/api/admin/changes", token=token)[0]
    g["http_approve_unknown"] = call("POST", "/api/admin/changes/999999/approve", {}, token)[0]
    call("POST", "/api/logout", token=token)
    out["global"]["http_after_logout"] = call("GET", "/api/me", token=token)[0]

print(json.dumps(out))
