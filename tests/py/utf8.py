"""8BITMIME bodies and SMTPUTF8 addresses with Python's smtplib (and a raw check that a
non-ASCII address without SMTPUTF8 gets 553 5.6.7)."""
import smtplib
from email.message import EmailMessage
from email import policy

from mrtest import *

s = smtplib.SMTP(HOST, SMTP_PORT, timeout=15)
s.ehlo("client.example.org")
check(s.has_extn("8bitmime") and s.has_extn("smtputf8"), f"features {s.esmtp_features}")

# 1. 8-bit body (UTF-8 and a raw Latin-1 byte), ASCII envelope, BODY=8BITMIME.
tok = token("8bit")
content = (
    f"From: py@client.example.org\r\nTo: support@example.com\r\nSubject: {tok}\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    "Grüße, こんにちは, Ça va.\r\n"
).encode("utf-8") + b"latin-1 byte: \xe9\r\n"
check_eq(s.mail("py@client.example.org", ["BODY=8BITMIME"]), (250, b"2.1.0 Sender OK"), "MAIL BODY=8BITMIME")
check_eq(s.rcpt("support@example.com")[0], 250, "RCPT")
code, resp = s.data(content)
check_eq(code, 250, f"DATA {resp!r}")
registered(number_from(resp), tok, content)

# 2. SMTPUTF8 sender via sendmail(mail_options=[...]) (smtplib adds size=N too).
tok = token("utf8-sendmail")
content2 = (
    f"From: José <josé@example.org>\r\nTo: support@example.com\r\nSubject: {tok} Grüße\r\n\r\nolé\r\n"
).encode("utf-8")
check_eq(
    s.sendmail("josé@example.org", ["support@example.com"], content2, mail_options=["SMTPUTF8", "BODY=8BITMIME"]),
    {},
    "sendmail SMTPUTF8",
)
unnumbered(tok)

# 3. Low level with SMTPUTF8, to see the number.
tok = token("utf8")
content3 = f"From: josé@example.org\r\nSubject: {tok} ñ\r\n\r\n日本語\r\n".encode("utf-8")
check_eq(s.mail("josé@example.org", ["SMTPUTF8"]), (250, b"2.1.0 Sender OK"), "MAIL SMTPUTF8")
check_eq(s.rcpt("support@example.com")[0], 250, "RCPT")
code, resp = s.data(content3)
check_eq(code, 250, f"DATA {resp!r}")
registered(number_from(resp), tok, content3)
s.quit()

# 4. send_message() with an international address: smtplib picks SMTPUTF8 by itself.
tok = token("utf8-send-message")
m = EmailMessage(policy=policy.SMTPUTF8)
m["From"] = "Zoë <zoë@example.org>"
m["To"] = "support@example.com"
m["Subject"] = tok
m.set_content("Merci beaucoup, ça marche.\n")
s = smtplib.SMTP(HOST, SMTP_PORT, timeout=15)
check_eq(s.send_message(m), {}, "send_message international")
unnumbered(tok)
s.quit()

# 5. Without SMTPUTF8 a non-ASCII address is refused (smtplib would not even send it).
r = Raw(SMTP_PORT, "ESMTP")
r.send(b"EHLO client.example.org\r\n")
r.reply()
r.cmd("MAIL FROM:<josé@example.org>", "553 5.6.7 Non-ASCII address requires SMTPUTF8")
r.cmd("MAIL FROM:<jose@example.org>", "250 2.1.0 Sender OK")
r.cmd("RCPT TO:<josé@example.com>", "553 5.6.7 Non-ASCII address requires SMTPUTF8")
r.cmd("QUIT", f"221 2.0.0 {SERVER_NAME} closing connection")
expect_total(4)
print("utf8: ok")
