"""A snapshot of the first message of queue `support` as Python's imaplib sees it (driven by
tests/imap_sync.rs: it takes one, changes the case through the HTTP API, and takes another).

Environment: MAILROOM_IMAPS_PORT (implicit TLS), MAILROOM_CERT (the server's certificate, valid
for localhost), MAILROOM_PASSWORD (of anna, support-agent).

Prints one JSON object: uid, flags (in the server's order, without \\Seen/\\Flagged), modseq
(CONDSTORE), body_sha256 (of BODY.PEEK[]) and header (its first 300 characters).
"""
import hashlib
import imaplib
import json
import os
import re
import ssl
import sys

imap = imaplib.IMAP4_SSL("localhost", int(os.environ["MAILROOM_IMAPS_PORT"]),
                         ssl_context=ssl.create_default_context(cafile=os.environ["MAILROOM_CERT"]))
imap.login("anna", os.environ["MAILROOM_PASSWORD"])
if "CONDSTORE" not in imap.capabilities:
    sys.exit(f"no CONDSTORE in {imap.capabilities}")
typ, _ = imap.select("support", readonly=True)
assert typ == "OK", typ
typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS MODSEQ)")
assert typ == "OK", (typ, data)
m = re.match(rb"1 \(UID (\d+) FLAGS \(([^)]*)\) MODSEQ \((\d+)\)\)", data[0])
assert m, data
uid = int(m.group(1))
typ, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
assert typ == "OK" and isinstance(data[0], tuple), (typ, data)
body = data[0][1]
imap.logout()
print(json.dumps({
    "uid": uid,
    "flags": [f for f in m.group(2).decode().split() if not f.startswith("\\")],
    "modseq": int(m.group(3)),
    "body_sha256": hashlib.sha256(body).hexdigest(),
    "header": body[:300].decode("utf-8", "replace"),
}))
