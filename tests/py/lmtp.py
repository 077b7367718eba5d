"""LMTP with Python's smtplib.LMTP: LHLO, multi-recipient delivery (one reply per recipient
after the data), plus a raw-socket check that 3 RCPTs produce exactly 3 replies after the dot."""
import smtplib

from mrtest import *

RCPTS = ["support@example.com", "sales@example.com", "complaints@example.com"]


def lmtp_number(text, rcpt):
    return number_from(text, prefix=f"2.0.0 <{rcpt}> Registered ")


s = smtplib.LMTP(HOST, LMTP_PORT, timeout=15)
code, msg = s.ehlo("client.example.org")  # smtplib.LMTP sends LHLO
check_eq(code, 250, f"LHLO {msg!r}")
for ext in ["pipelining", "enhancedstatuscodes", "chunking", "8bitmime", "smtputf8"]:
    check(s.has_extn(ext), f"LHLO does not advertise {ext}: {s.esmtp_features}")

# sendmail() with one recipient: no refusals.
tok = token("lmtp1")
check_eq(s.sendmail("py@client.example.org", ["support@example.com"], message(tok)), {}, "sendmail 1 rcpt")
unnumbered(tok)

# sendmail() with three recipients: it reads only the first per-recipient reply itself;
# the other two follow and are read with getreply(), as LMTP users of smtplib do.
tok = token("lmtp3")
content = message(tok)
check_eq(s.sendmail("py@client.example.org", RCPTS, content), {}, "sendmail 3 rcpts")
for rcpt in RCPTS[1:]:
    code, text = s.getreply()
    check_eq(code, 250, f"reply for {rcpt}: {text!r}")
    registered(lmtp_number(text, rcpt), tok, content)
check_eq(s.noop(), (250, b"2.0.0 OK"), "NOOP after the per-recipient replies")

# Low level: every per-recipient reply, with an unknown recipient in the middle.
tok = token("lmtp-mixed")
content = message(tok)
check_eq(s.mail("py@client.example.org"), (250, b"2.1.0 Sender OK"), "MAIL")
check_eq(s.rcpt("support@example.com"), (250, b"2.1.5 Recipient OK"), "RCPT 1")
check_eq(s.rcpt("nobody@example.com"), (550, b"5.1.1 Mailbox unknown"), "RCPT unknown")
check_eq(s.rcpt("sales@example.com"), (250, b"2.1.5 Recipient OK"), "RCPT 2")
code, text = s.data(content)
check_eq(code, 250, f"DATA reply 1 {text!r}")
registered(lmtp_number(text, "support@example.com"), tok, content)
code, text = s.getreply()
check_eq(code, 250, f"DATA reply 2 {text!r}")
registered(lmtp_number(text, "sales@example.com"), tok, content)
check_eq(s.noop(), (250, b"2.0.0 OK"), "NOOP (no extra reply for the refused recipient)")
s.quit()

# Raw socket: 3 RCPTs -> exactly 3 replies after the dot, in RCPT order.
r = Raw(LMTP_PORT, "LMTP")
r.send(b"LHLO client.example.org\r\n")
code, lines = r.reply()
check_eq(code, 250, "LHLO")
tok = token("lmtp-raw")
content = message(tok)
r.send(
    b"MAIL FROM:<py@client.example.org>\r\n"
    + b"".join(f"RCPT TO:<{x}>\r\n".encode() for x in RCPTS)
    + b"DATA\r\n"
)
r.expect("250 2.1.0 Sender OK")
for _ in RCPTS:
    r.expect("250 2.1.5 Recipient OK")
r.expect("354 End data with <CR><LF>.<CR><LF>")
r.send(dot_stuff(content) + b"NOOP\r\n")
for rcpt in RCPTS:
    code, lines = r.reply()
    check_eq((code, len(lines)), (250, 1), f"reply for {rcpt}: {lines}")
    registered(lmtp_number(lines[0][4:], rcpt), tok, content)
r.expect("250 2.0.0 OK")
r.cmd("QUIT", f"221 2.0.0 {SERVER_NAME} closing connection")
r.close()
print("lmtp: ok")
