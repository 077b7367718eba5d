"""The staff IMAP view with Python's imaplib (driven by tests/imap.rs::python_imaplib).

Environment: those of mrtest.py (MAILROOM_HOST, MAILROOM_SMTP_PORT, MAILROOM_LMTP_PORT),
MAILROOM_IMAP_PORT (STARTTLS),
MAILROOM_IMAPS_PORT (implicit TLS), MAILROOM_CERT (the server's self-signed certificate, valid
for localhost), MAILROOM_PASSWORD (of users anna: support-agent, and sam: sales-agent).

Prints `READ <number>` for every message whose content it fetched (the driver checks the audit
log); exits non-zero with a `FAIL:` line on the first wrong answer.
"""
import imaplib
import os
import re
import smtplib
import ssl
import time

from mrtest import HOST, SMTP_PORT, check, check_eq, fail, number_from

IMAP_PORT = int(os.environ["MAILROOM_IMAP_PORT"])
IMAPS_PORT = int(os.environ["MAILROOM_IMAPS_PORT"])
CERT = os.environ["MAILROOM_CERT"]
PASSWORD = os.environ["MAILROOM_PASSWORD"]


def deliver(to, subject, body):
    """Sends a message by SMTP and returns its registration number."""
    msg = f"From: Kim Customer <kim@customer.example>\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    s = smtplib.SMTP(HOST, SMTP_PORT, timeout=15)
    s.ehlo("client.example.org")
    s.mail("kim@customer.example")
    s.rcpt(to)
    code, resp = s.data(msg.encode())
    s.quit()
    check_eq(code, 250, f"DATA {resp!r}")
    return number_from(resp)


def context():
    """Verifies the server certificate like a real client would (it is issued for localhost)."""
    return ssl.create_default_context(cafile=CERT)


offer = deliver("support@example.com", "Special offer inside", "Buy now.")
question = deliver("support@example.com", "Where is my parcel?", "Tracking number please.")
deliver("sales@example.com", "For sales only", "Not for support.")

# --- STARTTLS listener: LOGIN refused in clear, accepted after STARTTLS ------------------------
c = imaplib.IMAP4("localhost", IMAP_PORT, timeout=15)
check("IMAP4REV1" in c.capabilities, f"capabilities {c.capabilities}")
check("STARTTLS" in c.capabilities and "LOGINDISABLED" in c.capabilities, f"capabilities {c.capabilities}")
try:
    c.login("anna", PASSWORD)
    fail("LOGIN accepted without TLS")
except imaplib.IMAP4.error as e:
    check("PRIVACYREQUIRED" in str(e), f"LOGIN in clear: {e}")
c.starttls(ssl_context=context())
check("AUTH=PLAIN" in c.capabilities and "LOGINDISABLED" not in c.capabilities, f"after STARTTLS {c.capabilities}")
typ, _ = c.login("anna", PASSWORD)
check_eq(typ, "OK", "LOGIN after STARTTLS")

typ, boxes = c.list()
check_eq((typ, boxes), ("OK", [b'(\\HasNoChildren) "/" support']), "LIST")
typ, data = c.status("support", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
check(re.fullmatch(rb"support \(MESSAGES 2 UIDNEXT 4 UIDVALIDITY \d+ UNSEEN 2\)", data[0]), f"STATUS {data}")
typ, data = c.select("sales")
check_eq(typ, "NO", "SELECT of a queue without a grant")
typ, data = c.select("support")
check_eq((typ, data), ("OK", [b"2"]), "SELECT")

# Headers of both: our fields first.
typ, data = c.fetch("1:2", "(UID BODY.PEEK[HEADER])")
check_eq(typ, "OK", "FETCH headers")
headers = [part[1].decode() for part in data if isinstance(part, tuple)]
check_eq(len(headers), 2, "FETCH 1:2 header count")
check(headers[0].startswith(f"X-Mailroom-Registration: {offer}\r\nX-Mailroom-Category: BZZX (Business enquiry)\r\nX-Mailroom-Priority: urgent\r\nX-Mailroom-Due: "), f"header 1: {headers[0]!r}")
check(headers[1].startswith(f"X-Mailroom-Registration: {question}\r\nX-Mailroom-Priority: normal\r\nX-Mailroom-Due: "), f"header 2: {headers[1]!r}")
check(re.search(r"X-Mailroom-Due: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\r\n", headers[0]), f"due date: {headers[0]!r}")
for h in headers:
    print("READ " + h.split("\r\n")[0].split(": ")[1], flush=True)

typ, data = c.search(None, "UNSEEN")
check_eq(data, [b"1 2"], "SEARCH UNSEEN after BODY.PEEK")

# UID FETCH of the whole message sets \Seen; its size is RFC822.SIZE.
typ, data = c.uid("FETCH", "2", "(RFC822.SIZE BODY[])")
check_eq(typ, "OK", "UID FETCH")
meta, body = data[0]
size = int(re.search(rb"RFC822.SIZE (\d+)", meta).group(1))
check_eq(len(body), size, "BODY[] length vs RFC822.SIZE")
check(body.startswith(f"X-Mailroom-Registration: {question}\r\n".encode()), f"body {body[:80]!r}")
check(body.endswith(b"Tracking number please.\r\n"), f"body end {body[-40:]!r}")
typ, data = c.fetch("2", "(FLAGS)")
check(b"\\Seen" in data[0], f"flags after BODY[] {data}")
typ, data = c.uid("SEARCH", None, "SEEN")
check_eq(data, [b"2"], "UID SEARCH SEEN")
typ, data = c.search(None, "SUBJECT", '"offer"')
check_eq(data, [b"1"], "SEARCH SUBJECT")

typ, data = c.store("1", "+FLAGS", "(\\Flagged)")
# The case shows as keywords: category, priority, status (read-only).
check_eq((typ, data), ("OK", [b"1 (FLAGS (\\Flagged $BZZX $urgent $new))"]), "STORE +FLAGS")
typ, data = c.search(None, "FLAGGED")
check_eq(data, [b"1"], "SEARCH FLAGGED")
typ, data = c.store("1", "+FLAGS", "(\\Deleted)")
check_eq(typ, "NO", "STORE \\Deleted")
check(data[0].startswith(b"[CANNOT]"), f"STORE \\Deleted: {data}")
typ, data = c.expunge()
check_eq(typ, "NO", "EXPUNGE")
typ, data = c.append("support", None, None, b"Subject: injected\r\n\r\nno\r\n")
check_eq(typ, "NO", "APPEND")
typ, data = c.copy("1", "support")
check_eq(typ, "NO", "COPY")
c.close()
c.logout()

# --- Implicit TLS: IDLE sees a new delivery ----------------------------------------------------
c = imaplib.IMAP4_SSL("localhost", IMAPS_PORT, ssl_context=context(), timeout=15)
c.login("anna", PASSWORD)
typ, data = c.select("support", readonly=True)
check_eq((typ, data), ("OK", [b"2"]), "EXAMINE")
tag = c._new_tag().decode()
c.send(f"{tag} IDLE\r\n".encode())
check(c.readline().startswith(b"+"), "IDLE continuation")
started = time.monotonic()
third = deliver("support@example.com", "Another question", "Hello again.")
c.sock.settimeout(10)
line = c.readline()
check_eq(line, b"* 3 EXISTS\r\n", "IDLE notification")
check(time.monotonic() - started < 5, f"IDLE notified after {time.monotonic() - started:.1f} s")
c.send(b"DONE\r\n")
line = c.readline()
check(line.startswith(f"{tag} OK".encode()), f"IDLE end {line!r}")
typ, data = c.fetch("3", "(BODY.PEEK[HEADER.FIELDS (X-Mailroom-Registration)])")
check_eq(data[0][1], f"X-Mailroom-Registration: {third}\r\n\r\n".encode(), "the new message")
print("READ " + third, flush=True)
typ, data = c.fetch("3", "(FLAGS)")
check(b"\\Seen" not in data[0], "EXAMINE must not set \\Seen")
c.logout()

# --- Another user sees another queue -----------------------------------------------------------
c = imaplib.IMAP4_SSL("localhost", IMAPS_PORT, ssl_context=context(), timeout=15)
try:
    c.login("sam", "not the password")
    fail("wrong password accepted")
except imaplib.IMAP4.error as e:
    check("AUTHENTICATIONFAILED" in str(e), f"wrong password: {e}")
c.login("sam", PASSWORD)
check_eq(c.list(), ("OK", [b'(\\HasNoChildren) "/" sales']), "LIST for sam")
check_eq(c.select("support")[0], "NO", "sam selects support")
c.logout()
print("OK", flush=True)
