"""CHUNKING/BDAT (RFC 3030) over a raw socket: several chunks, a large chunk written in small
pieces, BDAT 0 LAST, exact bytes (no dot-stuffing)."""
import time

from mrtest import *

r = Raw(SMTP_PORT, "ESMTP")
r.send(b"EHLO client.example.org\r\n")
code, lines = r.reply()
check("250-CHUNKING" in lines, f"CHUNKING not advertised: {lines}")

# 1. Three chunks, the middle one large and trickled in.
tok = token("bdat")
c1 = f"From: py@client.example.org\r\nSubject: {tok}\r\n\r\n".encode()
c2 = b"".join(b"line %06d .\r\n.starts with dot\r\n" % i for i in range(4000))
c3 = b"\r\n.\r\nthe end\r\n"
r.cmd("MAIL FROM:<py@client.example.org>", "250 2.1.0 Sender OK")
r.cmd("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK")
r.send(f"BDAT {len(c1)}\r\n".encode() + c1)
r.expect(f"250 2.0.0 {len(c1)} octets received")
r.send(f"BDAT {len(c2)}\r\n".encode())
for i in range(0, len(c2), 7919):
    r.send(c2[i:i + 7919])
    if i % (7919 * 8) == 0:
        time.sleep(0.01)
r.expect(f"250 2.0.0 {len(c2)} octets received")
r.send(f"BDAT {len(c3)} LAST\r\n".encode() + c3)
code, lines = r.reply()
registered(number_from(lines[0][4:]), tok, c1 + c2 + c3)

# 2. BDAT 0 LAST closing a message.
tok2 = token("bdat0")
m = f"Subject: {tok2}\r\n\r\nbody\r\n".encode()
r.cmd("MAIL FROM:<py@client.example.org>", "250 2.1.0 Sender OK")
r.cmd("RCPT TO:<sales@example.com>", "250 2.1.5 Recipient OK")
r.send(f"BDAT {len(m)}\r\n".encode() + m)
r.expect(f"250 2.0.0 {len(m)} octets received")
r.send(b"BDAT 0 LAST\r\n")
code, lines = r.reply()
registered(number_from(lines[0][4:]), tok2, m)

# 3. DATA after BDAT is refused.
r.cmd("MAIL FROM:<py@client.example.org>", "250 2.1.0 Sender OK")
r.cmd("RCPT TO:<sales@example.com>", "250 2.1.5 Recipient OK")
r.send(b"BDAT 3\r\nabc")
r.expect("250 2.0.0 3 octets received")
r.cmd("DATA", "503 5.5.1 DATA not allowed after BDAT")
r.cmd("RSET", "250 2.0.0 OK")
r.cmd("QUIT", f"221 2.0.0 {SERVER_NAME} closing connection")
r.close()
expect_total(2)
print("bdat: ok")
