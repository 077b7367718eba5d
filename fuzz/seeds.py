#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/seed-*.

The seeds come from the project's own test inputs: the SMTP/LMTP sessions and smuggling
sequences of tests/smtp_*.rs and tests/smuggling.rs, the IMAP commands of tests/imap.rs and
tests/py/imap_imaplib.py, the messages of the intake and record tests, deploy/mailroom.toml and
the test configurations. Run it from anywhere; it is idempotent. After a fuzzing run,
`cargo fuzz cmin` keeps only the inputs that add coverage (see README.md, "Fuzzing").
"""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"

SMTP, LMTP, SMTP_STEP, LMTP_STEP = 0, 1, 2, 3

MESSAGE = (b"From: Ana Customer <ana@customer.org>\r\nTo: support@example.com\r\nSubject: Order 42\r\n"
           b"Message-ID: <abc@customer.org>\r\n\r\nWhere is my order?\r\n")


def smuggling_sequences():
    text = (ROOT / "tests" / "smuggling.rs").read_text()
    block = text[text.index("smuggle_tests! {"):]
    block = block[:block.index("}")]
    return [eval(m.group(1)) for m in re.finditer(r'=> (b"[^"]*"),', block)]  # Rust byte strings are Python's too


def smtp_sessions():
    hello = b"EHLO client.example.org\r\n"
    tx = b"MAIL FROM:<ana@customer.org>\r\nRCPT TO:<support@example.com>\r\n"
    sessions = {
        "plain": hello + tx + b"DATA\r\n" + MESSAGE + b".\r\nQUIT\r\n",
        "helo": b"HELO client.example.org\r\n" + tx + b"DATA\r\n..dot\r\n.\r\nQUIT\r\n",
        "recipients": hello + b"MAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nRCPT TO:<sales+x@example.com>\r\n"
        b"RCPT TO:<nobody@example.com>\r\nRCPT TO:<a@other.org>\r\nRSET\r\nNOOP\r\nQUIT\r\n",
        "bdat": hello + tx + b"BDAT 12\r\nSubject: x\r\n\r\nBDAT 0 LAST\r\nQUIT\r\n",
        "bdat_then_data": hello + tx + b"BDAT 3\r\nabcDATA\r\nNOOP\r\n",
        "size": hello + b"MAIL FROM:<a@b.org> SIZE=99999999999999999999999\r\nMAIL FROM:<a@b.org> SIZE=100 BODY=8BITMIME\r\n"
        b"RCPT TO:<support@example.com>\r\nDATA\r\n" + b"x" * 1100 + b"\r\n.\r\n",
        "utf8": hello + b"MAIL FROM:<j\xc3\xb6rg@customer.org> SMTPUTF8\r\nRCPT TO:<support@example.com>\r\n"
        b"MAIL FROM:<j\xc3\xb6rg@customer.org>\r\nBODY=BINARYMIME\r\n",
        "starttls": hello + b"STARTTLS\r\nMAIL FROM:<evil@x.org>\r\n",
        "long_line": hello + b"NOOP " + b"a" * 600 + b"\r\nNOOP\r\n",
        "informational": b"VRFY x\r\nEXPN x\r\nHELP\r\nAUTH PLAIN\r\nETRN x\r\nDATA x\r\nQUIT now\r\nQUIT\r\n",
        "errors": b"FOO\r\n" * 10,
    }
    out = {}
    for name, body in sessions.items():
        out[f"smtp_{name}"] = bytes([SMTP]) + body
        out[f"smtp_step_{name}"] = bytes([SMTP_STEP]) + body
    lmtp = (b"LHLO client.example.org\r\nMAIL FROM:<ana@customer.org>\r\nRCPT TO:<support@example.com>\r\n"
            b"RCPT TO:<sales@example.com>\r\nRCPT TO:<nobody@example.com>\r\nDATA\r\n" + MESSAGE + b".\r\nQUIT\r\n")
    out["lmtp"] = bytes([LMTP]) + lmtp
    out["lmtp_step"] = bytes([LMTP_STEP]) + lmtp
    out["lmtp_bdat"] = bytes([LMTP_STEP]) + lmtp.replace(b"DATA\r\n" + MESSAGE + b".\r\n", b"BDAT 5 LAST\r\nhello")
    out["lmtp_ehlo"] = bytes([LMTP]) + b"EHLO x\r\nHELO x\r\n" + lmtp
    for i, seq in enumerate(smuggling_sequences()):
        smuggled = (hello + tx + b"DATA\r\nSubject: s\r\n\r\nbody" + seq + b"MAIL FROM:<evil@x.org>\r\n"
                    b"RCPT TO:<sales@example.com>\r\nDATA\r\nsmuggled\r\n.\r\nNOOP\r\n")
        out[f"smuggling_{i}"] = bytes([SMTP_STEP if i % 2 else SMTP]) + smuggled
    return out


def data_inputs():
    payloads = {
        "plain": MESSAGE + b".\r\nQUIT\r\n",
        "empty": b".\r\n",
        "stuffed": b"..leading\r\n...\r\n.x\r\nmid.dle\r\n.\r\n",
        "first_line_dot": b"..\r\n.\r\n",
        "bare": b"a\rb\nc\r\r\n.\r\r\n.\n\r\n.\r\n",
        "long_line": b"a" * 1200 + b"\r\n.\r\n",
        "no_end": b"Subject: x\r\n\r\nno end here\n.\n",
    }
    for i, seq in enumerate(smuggling_sequences()):
        payloads[f"smuggling_{i}"] = b"Subject: s\r\n\r\nbody" + seq + b"MAIL FROM:<evil@x.org>\r\n.\r\n"
    out = {}
    for name, payload in payloads.items():
        for mode in (0, 1, 2):
            out[f"mode{mode}_{name}"] = bytes([mode, 4, 125, 7]) + payload
    return out


def imap_inputs():
    LOGIN, SELECT, STEP = 1, 2, 4
    streams = {
        "anonymous": (0, b"a1 CAPABILITY\r\na2 NOOP\r\na3 STARTTLS\r\na4 SELECT support\r\na5 LOGIN fuzzer wrong\r\n"
                         b"a6 LOGIN {6}\r\nfuzzer {18}\r\nfuzzing-password-1\r\na7 LOGOUT\r\n"),
        "authenticate": (0, b"a1 AUTHENTICATE PLAIN\r\nAGZ1enplcgBmdXp6aW5nLXBhc3N3b3JkLTE=\r\na2 NOOP\r\n"
                            b"a3 AUTHENTICATE PLAIN AGZ1enplcgB3cm9uZw==\r\na4 AUTHENTICATE PLAIN\r\n*\r\n"),
        "literals": (0, b"a1 LOGIN fuzzer {18+}\r\nfuzzing-password-1\r\na2 APPEND support {20}\r\n"
                        b"a3 LOGIN x {100000}\r\na4 ID (\"name\" \"imaplib\")\r\n"),
        "mailboxes": (LOGIN, b"l1 LIST \"\" \"*\"\r\nl2 LIST \"\" \"%\"\r\nl3 LIST \"\" \"\"\r\nl4 LSUB \"\" \"*\"\r\n"
                             b"l5 LIST \"\" \"s*\"\r\ns1 STATUS support (MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT)\r\n"
                             b"s2 STATUS nosuch (MESSAGES)\r\ne1 EXAMINE sales\r\nc1 CREATE x\r\nd1 DELETE x\r\n"
                             b"r1 RENAME a b\r\nu1 SUBSCRIBE support\r\nn1 ENABLE IMAP4rev2\r\nx1 CHECK\r\n"),
        "fetch": (LOGIN | SELECT, b"f1 FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)\r\n"
                                  b"f2 FETCH 1 (BODY.PEEK[HEADER.FIELDS (X-Mailroom-Registration Subject)])\r\n"
                                  b"f3 FETCH 2 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[2] BODY.PEEK[TEXT]<0.4> BODY.PEEK[3])\r\n"
                                  b"f4 FETCH 2 (BODYSTRUCTURE ENVELOPE)\r\nf5 FETCH 3 (BODY[2.1] BODY[2.HEADER] BODY[2.TEXT])\r\n"
                                  b"f6 FETCH 1:2 FULL\r\nf7 FETCH 2 RFC822\r\nf8 UID FETCH 1:* (RFC822.SIZE BODY[])\r\n"
                                  b"f9 FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Received Date)])\r\nf10 FETCH 4 (BODY[])\r\n"),
        "search": (LOGIN | SELECT, b"s1 SEARCH UNSEEN\r\ns2 SEARCH SUBJECT \"order\"\r\ns3 UID SEARCH SEEN\r\n"
                                   b"s4 SEARCH OR FROM ana NOT TO support SINCE 1-Jan-2020\r\n"
                                   b"s5 SEARCH CHARSET UTF-8 TEXT {4}\r\ncaf\xc3\r\ns6 SEARCH LARGER 10 SMALLER 100000 UID 1:*\r\n"
                                   b"s7 SEARCH HEADER X-Mailroom-Priority normal BODY order\r\ns8 SEARCH 2:* KEYWORD $Junk\r\n"
                                   b"s9 SEARCH CHARSET KOI8-R ALL\r\ns10 SEARCH SENTBEFORE 1-Jan-2030 ON 1-Jan-2026\r\n"),
        "store": (LOGIN | SELECT, b"t1 STORE 1 +FLAGS (\\Seen)\r\nt2 STORE 1:* -FLAGS.SILENT (\\Flagged)\r\n"
                                  b"t3 UID STORE 1 FLAGS (\\Deleted)\r\nt4 EXPUNGE\r\nt5 UID EXPUNGE 1\r\nt6 COPY 1 sales\r\n"
                                  b"t7 MOVE 1 sales\r\nt8 CLOSE\r\nt9 FETCH 1 FLAGS\r\nt10 UNSELECT\r\n"),
        "idle": (LOGIN | SELECT, b"i1 IDLE\r\nDONE\r\ni2 IDLE\r\nNOPE\r\ni3 NOOP\r\n"),
        "errors": (LOGIN, b"b1 BOGUS\r\nb2 FETCH 1 (BODY.PEEK[]\r\nb3 FETCH 7 (FLAGS)\r\n* NOOP\r\n+x NOOP\r\n\r\nb4 LOGIN a b\r\n"),
    }
    out = {}
    for name, (mode, stream) in streams.items():
        out[name] = bytes([mode]) + stream
        out[f"{name}_step"] = bytes([mode | STEP]) + stream
    return out


def messages():
    record_test = (b"From: Ana Customer <ana@customer.org>\r\nTo: support@example.com\r\nCc: boss@customer.org, other@customer.org\r\n"
                   b"Subject: =?utf-8?q?Caf=C3=A9?= order [MR-2026-000123-4]\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n"
                   b"Message-ID: <abc@customer.org>\r\nIn-Reply-To: <prev@example.com>\r\nReferences: <first@example.com> <prev@example.com>\r\n"
                   b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
                   b"Hello, order #42, refund\r\n--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\n"
                   b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n")
    nested = (b"From: relay@customer.org\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
              b"--b1\r\nContent-Type: text/html\r\n\r\n<p>see below</p>\r\n--b1\r\nContent-Type: message/rfc822\r\n"
              b"Content-Transfer-Encoding: base64\r\n\r\nRnJvbTogaW5uZXJAeC5vcmcNClN1YmplY3Q6IGlubmVyDQoNCnRleHQNCg==\r\n--b1--\r\n")
    return {
        "plain": MESSAGE,
        "record_test": record_test,
        "nested": nested,
        "report": b"From: MAILER-DAEMON@x.org\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nfailed\r\n--b--\r\n",
        "auto": b"From: a@b.org\r\nAuto-Submitted: auto-replied\r\nPrecedence: bulk\r\nImportance: high\r\nX-Priority: 1\r\nSubject: complaint\r\n\r\nbody\r\n",
        "attachment_only": b"From: a@b.org\r\nSubject: p\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Disposition: attachment; filename=x.pdf\r\n\r\nJVBERi0=\r\n",
        "headers_only": b"Subject: no body",
        "garbage": b"\x00\xff\r\n\r\n\r\n",
    }


def configs():
    deploy = (ROOT / "deploy" / "mailroom.toml").read_bytes()
    minimal = b'[mail]\ndomains = ["example.com"]\n[[queues]]\nname = "support"\naddresses = ["support@example.com"]\n'
    sla = minimal + (b'[sla]\ntimezone = "Europe/Berlin"\nworking_days = ["mon", "tue", "wed", "thu", "fri"]\n'
                     b'hours = "09:00-17:00"\nholidays = ["2026-12-25"]\nurgent = "4 working hours"\nnormal = "2 days"\nlow = "5 working days"\n')
    rules = minimal + (b'[[categories]]\ncode = "TSJJ"\nname = "complaint"\n[[rules]]\nname = "r"\nsubject_regex = "(?i)x"\n'
                       b'header = [{ name = "X", equals = "y" }]\ncategory = "TSJJ"\nqueue = "support"\npriority = "urgent"\ncontinue = true\n')
    registration = minimal + b'[registration]\nformat = "T{seq:04}-{year}{check}"\n'
    return {"deploy": deploy, "minimal": minimal, "sla": sla, "rules": rules, "registration": registration,
            "bad_line": b"[limits]\nmax_recipients = 0\n", "syntax": b"[server]\nhostname = \n"}


def main():
    targets = {
        "smtp_session": smtp_sessions(),
        "data_reader": data_inputs(),
        "imap_command": imap_inputs(),
        "extract": messages(),
        "config": configs(),
    }
    for target, seeds in targets.items():
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (directory / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
