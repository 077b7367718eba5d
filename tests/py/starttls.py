"""STARTTLS with Python's smtplib and ssl (self-signed certificate, verification off)."""
import smtplib
import ssl

from mrtest import *

s = smtplib.SMTP(HOST, SMTP_PORT, timeout=15)
s.ehlo("client.example.org")
check(s.has_extn("starttls"), f"STARTTLS not advertised: {s.esmtp_features}")
check_eq(s.starttls(context=tls_context()), (220, b"2.0.0 Ready to start TLS"), "STARTTLS")
check(isinstance(s.sock, ssl.SSLSocket), "socket not wrapped in TLS")
check(s.sock.version() in ("TLSv1.2", "TLSv1.3"), f"TLS version {s.sock.version()}")
# smtplib forgets the EHLO state itself; the server must require a new EHLO too.
check_eq(s.docmd("MAIL", "FROM:<py@client.example.org>"), (503, b"5.5.1 Send EHLO first"), "MAIL before EHLO after TLS")
code, _ = s.ehlo("client.example.org")
check_eq(code, 250, "EHLO after TLS")
check(not s.has_extn("starttls"), f"STARTTLS advertised again inside TLS: {s.esmtp_features}")
check_eq(s.docmd("STARTTLS"), (503, b"5.5.1 TLS already active"), "second STARTTLS")

tok = token("tls")
content = message(tok, body="Sent over TLS.\r\n")
check_eq(s.mail("py@client.example.org")[0], 250, "MAIL")
check_eq(s.rcpt("support@example.com")[0], 250, "RCPT")
code, resp = s.data(content)
check_eq(code, 250, f"DATA {resp!r}")
registered(number_from(resp), tok, content, tls=True)

tok2 = token("tls-sendmail")
check_eq(s.sendmail("py@client.example.org", ["complaints@example.com"], message(tok2)), {}, "sendmail")
unnumbered(tok2)
s.quit()

# TLS 1.3 and TLS 1.2 explicitly.
for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
    ctx = tls_context()
    ctx.minimum_version = version
    ctx.maximum_version = version
    s = smtplib.SMTP(HOST, SMTP_PORT, timeout=15)
    s.starttls(context=ctx)
    check_eq(s.sock.version(), {ssl.TLSVersion.TLSv1_3: "TLSv1.3", ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[version], "version")
    tok = token("tls-" + s.sock.version())
    content = message(tok)
    s.ehlo("client.example.org")
    s.mail("py@client.example.org")
    s.rcpt("support@example.com")
    code, resp = s.data(content)
    check_eq(code, 250, f"DATA {resp!r}")
    registered(number_from(resp), tok, content, tls=True)
    s.quit()

expect_total(4)
print("starttls: ok")
