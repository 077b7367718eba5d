"""Plain SMTP with Python's smtplib: greeting, EHLO features, send, rejected recipients,
VRFY/HELP/NOOP/RSET/QUIT."""
import smtplib

from mrtest import *

s = smtplib.SMTP(timeout=15)
code, msg = s.connect(HOST, SMTP_PORT)
check_eq((code, msg), (220, f"{SERVER_NAME} ESMTP mailroom".encode()), "greeting")
code, msg = s.ehlo("client.example.org")
check_eq(code, 250, "EHLO code")
for ext in ["pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking", "starttls"]:
    check(s.has_extn(ext), f"EHLO does not advertise {ext}: {s.esmtp_features}")

# 1. Low level, to see the registration number.
tok = token("plain")
content = message(tok)
check_eq(s.mail("py@client.example.org"), (250, b"2.1.0 Sender OK"), "MAIL")
check_eq(s.rcpt("support@example.com"), (250, b"2.1.5 Recipient OK"), "RCPT")
code, resp = s.data(content)
check_eq(code, 250, f"DATA final reply {resp!r}")
registered(number_from(resp), tok, content)

# 2. sendmail() as applications use it (adds SIZE=; must be accepted in lower case).
tok2 = token("sendmail")
refused = s.sendmail("py@client.example.org", ["sales@example.com"], message(tok2))
check_eq(refused, {}, "sendmail refused")
unnumbered(tok2)

# 3. One good, one unknown recipient: delivered, and the refusal is reported per recipient.
tok3 = token("partial")
refused = s.sendmail("py@client.example.org", ["support@example.com", "nobody@example.com", "x@other.org"], message(tok3))
check_eq(
    refused,
    {"nobody@example.com": (550, b"5.1.1 Mailbox unknown"), "x@other.org": (550, b"5.7.1 Relay access denied")},
    "sendmail refused recipients",
)
unnumbered(tok3)

# 4. All recipients refused: nothing sent.
try:
    s.sendmail("py@client.example.org", ["nobody@example.com"], message(token("none")))
    fail("sendmail to only unknown recipients must raise SMTPRecipientsRefused")
except smtplib.SMTPRecipientsRefused as e:
    check_eq(e.recipients, {"nobody@example.com": (550, b"5.1.1 Mailbox unknown")}, "refused")

# 5. A message with a line starting with a dot (smtplib dot-stuffs it).
tok5 = token("dots")
content5 = message(tok5, body=".leading dot\r\n..two\r\n.\r\nend\r\n")
check_eq(s.mail("py@client.example.org")[0], 250, "MAIL")
check_eq(s.rcpt("support@example.com")[0], 250, "RCPT")
code, resp = s.data(content5)
check_eq(code, 250, f"DATA {resp!r}")
registered(number_from(resp), tok5, content5)

check_eq(s.verify("support"), (252, b"2.5.0 Cannot verify user; will accept message and attempt delivery"), "VRFY")
check_eq(s.docmd("EXPN", "staff"), (502, b"5.5.1 EXPN not supported"), "EXPN")
check_eq(s.help(), b"2.0.0 mailroom: see https://www.rfc-editor.org/rfc/rfc5321", "HELP")
check_eq(s.noop(), (250, b"2.0.0 OK"), "NOOP")
check_eq(s.rset(), (250, b"2.0.0 OK"), "RSET")
check_eq(s.quit(), (221, f"2.0.0 {SERVER_NAME} closing connection".encode()), "QUIT")
expect_total(4)
print("plain: ok")
