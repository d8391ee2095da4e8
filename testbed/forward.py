#!/usr/bin/env python3
"""The lemonade forward-without-download (RFC 4550 / RFC 5550 profile, section 2), run from
lg-client through the gateway: alice has a message in her INBOX; she builds a forward on the
server with CATENATE (her text plus the original's body, by URL), authorizes it for the
submission server with GENURLAUTH, and submits it with BURL ... LAST; the submission server
fetches it from the IMAP server itself (URLFETCH as its submit identity) and delivers it to
bob, whose INBOX must then hold it byte for byte as assembled. The client never downloads the
original. Exit status 0 when everything checks out.
usage: forward.py [SERVER_ADDR]"""
import imaplib
import smtplib
import ssl
import sys
import time

imaplib.Commands.setdefault("GENURLAUTH", ("AUTH", "SELECTED"))  # RFC 4467, unknown to imaplib
SERVER = sys.argv[1] if len(sys.argv) > 1 else "198.51.100.2"
HOST = "server.lg.test"  # the name in URLs: the servers know themselves by it


def tls():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the testbed's self-signed certificate
    return ctx


def say(*a):
    print(*a, flush=True)


def main():
    stamp = "%d" % (time.time() * 1000)
    a = imaplib.IMAP4(SERVER, 143)
    a.starttls(ssl_context=tls())
    a.login("alice", "secret")
    original = ("From: bob@lg.test\r\nTo: alice@lg.test\r\nSubject: quarterly report %s\r\n\r\n"
                "(imagine a 20 MB attachment here)\r\n" % stamp).encode()
    typ, data = a.append("INBOX", None, None, original)
    uidv, ouid = [int(x) for x in data[0].split(b"APPENDUID ")[1].split(b"]")[0].split()]
    say("IMAP  alice has the original in INBOX (UID %d) and will never download it" % ouid)
    a.create("Drafts")
    head = ("From: alice@lg.test\r\nTo: bob@lg.test\r\nSubject: Fwd: quarterly report %s\r\n\r\n"
            "Bob, see below.\r\n\r\n" % stamp).encode()
    tag = a._new_tag()
    a.send(b"%s APPEND Drafts (\\Draft $Forwarded) CATENATE (TEXT {%d+}\r\n" % (tag, len(head)) + head +
           b' URL "/INBOX;UIDVALIDITY=%d/;UID=%d/;SECTION=TEXT")\r\n' % (uidv, ouid))
    while True:
        line = a.readline()
        if line.startswith(tag):
            break
    if not line.startswith(tag + b" OK [APPENDUID"):
        say("CATENATE failed:", line)
        return 1
    duidv, duid = [int(x) for x in line.split(b"APPENDUID ")[1].split(b"]")[0].split()]
    say("IMAP  APPEND Drafts CATENATE (TEXT ... URL .../;SECTION=TEXT) -> UID %d" % duid)
    rump = "imap://alice@%s/Drafts;UIDVALIDITY=%d/;UID=%d;URLAUTH=submit+alice" % (HOST, duidv, duid)
    typ, data = a._simple_command("GENURLAUTH", '"%s"' % rump, "INTERNAL")
    url = a.untagged_responses.pop("GENURLAUTH", [b""])[-1].decode().strip('"')
    if typ != "OK" or not url.startswith(rump + ":INTERNAL:"):
        say("GENURLAUTH failed:", typ, data)
        return 1
    say("IMAP  GENURLAUTH -> %s...%s" % (url[:60], url[-12:]))
    a.logout()

    s = smtplib.SMTP(SERVER, 587, local_hostname="client.lg.test")
    s.starttls(context=tls())
    s.login("alice", "secret")
    s.ehlo("client.lg.test")
    if "imap" not in s.esmtp_features.get("burl", ""):
        say("the submission server does not offer BURL imap")
        return 1
    s.mail("alice@lg.test")
    s.rcpt("bob@lg.test")
    code, msg = s.docmd("BURL", url + " LAST")
    say("SMTP  BURL <url> LAST -> %d %s" % (code, msg.decode()))
    s.quit()
    if code != 250:
        return 1

    b = imaplib.IMAP4(SERVER, 143)
    b.starttls(ssl_context=tls())
    b.login("bob", "secret")
    b.select("INBOX")
    typ, data = b.uid("SEARCH", None, "HEADER", "Subject", '"Fwd: quarterly report %s"' % stamp)
    uids = data[0].split()
    if not uids:
        say("bob has no forward")
        return 1
    typ, data = b.uid("FETCH", uids[-1], "(BODY.PEEK[])")
    got = data[0][1]
    b.logout()
    expected = head + original.split(b"\r\n\r\n", 1)[1]
    same = got.endswith(expected)
    say("IMAP  bob's INBOX holds the forward (%d bytes): %s" %
        (len(got), "byte for byte as assembled" if same else "DIFFERENT"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
