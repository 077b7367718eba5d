"""PIPELINING (RFC 2920). smtplib never pipelines, so: smtplib for a baseline, then a raw
socket burst: envelope + DATA in one write, message + next envelope in one write."""
import smtplib

from mrtest import *

s = smtplib.SMTP(HOST, SMTP_PORT, timeout=15)
s.ehlo("client.example.org")
check(s.has_extn("pipelining"), "PIPELINING not advertised")
s.quit()

r = Raw(SMTP_PORT, "ESMTP")
r.send(
    b"EHLO client.example.org\r\n"
    b"MAIL FROM:<py@client.example.org>\r\n"
    b"RCPT TO:<support@example.com>\r\n"
    b"RCPT TO:<nobody@example.com>\r\n"
    b"RCPT TO:<sales@example.com>\r\n"
    b"DATA\r\n"
)
code, lines = r.reply()
check_eq((code, lines[0]), (250, f"250-{SERVER_NAME}"), "EHLO")
check("250-PIPELINING" in lines, f"EHLO: {lines}")
r.expect("250 2.1.0 Sender OK")
r.expect("250 2.1.5 Recipient OK")
r.expect("550 5.1.1 Mailbox unknown")
r.expect("250 2.1.5 Recipient OK")
r.expect("354 End data with <CR><LF>.<CR><LF>")

tok1, tok2, tok3 = token("pipe1"), token("pipe2"), token("pipe3")
m1, m2, m3 = message(tok1), message(tok2, body=".dot line\r\nx\r\n"), message(tok3)
r.send(dot_stuff(m1) + b"MAIL FROM:<py@client.example.org>\r\nRCPT TO:<complaints@example.com>\r\nDATA\r\n")
code, lines = r.reply()
registered(number_from(lines[0][4:]), tok1, m1)
r.expect("250 2.1.0 Sender OK")
r.expect("250 2.1.5 Recipient OK")
r.expect("354 End data with <CR><LF>.<CR><LF>")
# Message 2, then a whole BDAT transaction and RSET/NOOP in the same write.
r.send(
    dot_stuff(m2)
    + b"MAIL FROM:<py@client.example.org>\r\nRCPT TO:<support@example.com>\r\n"
    + f"BDAT {len(m3)} LAST\r\n".encode() + m3
    + b"RSET\r\nNOOP\r\n"
)
code, lines = r.reply()
registered(number_from(lines[0][4:]), tok2, m2)
r.expect("250 2.1.0 Sender OK")
r.expect("250 2.1.5 Recipient OK")
code, lines = r.reply()
registered(number_from(lines[0][4:]), tok3, m3)
r.expect("250 2.0.0 OK")
r.expect("250 2.0.0 OK")
r.cmd("QUIT", f"221 2.0.0 {SERVER_NAME} closing connection")
r.close()
expect_total(3)
print("pipelining: ok")
