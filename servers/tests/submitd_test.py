#!/usr/bin/env python3
"""lemongate-submitd driven by real clients on loopback, with lemongate-imapd beside it on the
same store: python3's smtplib (STARTTLS, AUTH PLAIN, DATA, BURL via docmd) and raw sockets for
what smtplib does not do (pipelined groups, BDAT with binary data, hostile input). The BURL
path is the lemonade forward-without-download: CATENATE, GENURLAUTH, then BURL LAST.
usage: submitd_test.py BUILD_DIR"""
import os
import shutil
import smtplib
import sys
import tempfile

from mailtest import Raw, Server, Smtp, any_failed, check, mailbox_messages, make_cert, summary, tls_context


def smtp_login(port, user=b"alice"):
    s = Smtp(port)
    s.cmd(b"EHLO client.test")
    s.starttls()
    s.cmd(b"EHLO client.test")
    import base64
    out = s.cmd(b"AUTH PLAIN " + base64.b64encode(b"\0" + user + b"\0secret"))
    if not out[0].startswith(b"235"):
        raise RuntimeError("AUTH failed: %r" % out)
    return s


def test_ehlo_auth(imap, sub):
    s = Smtp(sub.port)
    check(s.greeting.startswith(b"220 test.lg ESMTP"), "greeting: %r" % s.greeting)
    ehlo = b"\n".join(s.cmd(b"EHLO client.test"))
    for kw in (b"PIPELINING", b"SIZE 67108864", b"8BITMIME", b"DSN", b"ENHANCEDSTATUSCODES",
               b"STARTTLS", b"CHUNKING", b"BINARYMIME"):
        check(kw in ehlo, "EHLO offers %s" % kw.decode())
    check(b"AUTH" not in ehlo, "no AUTH before TLS")
    check(b"250-BURL\n" in ehlo, "BURL without imap before authentication: %r" % ehlo)
    out = s.cmd(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==")
    check(out[0].startswith(b"538 5.7.11"), "AUTH before TLS refused: %r" % out)
    out = s.cmd(b"MAIL FROM:<alice@test.lg>")
    check(out[0].startswith(b"530 5.7.0"), "MAIL before AUTH refused: %r" % out)
    s.starttls()
    out = s.cmd(b"MAIL FROM:<alice@test.lg>")
    check(out[0].startswith(b"503"), "EHLO is forgotten after STARTTLS: %r" % out)
    ehlo = b"\n".join(s.cmd(b"EHLO client.test"))
    check(b"AUTH PLAIN" in ehlo and b"STARTTLS" not in ehlo, "after TLS: AUTH PLAIN, no STARTTLS")
    out = s.cmd(b"AUTH PLAIN")
    check(out == [b"334 "], "AUTH PLAIN without an initial response: 334")
    out = s.cmd(b"AGFsaWNlAHdyb25n")
    check(out[0].startswith(b"535 5.7.8"), "a wrong password: 535: %r" % out)
    out = s.cmd(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==")
    check(out[0].startswith(b"235 2.7.0"), "AUTH PLAIN: %r" % out)
    ehlo = b"\n".join(s.cmd(b"EHLO client.test"))
    check(b"BURL imap" in ehlo, "BURL imap once authenticated: %r" % ehlo)
    s.cmd(b"QUIT")
    s.close()


def test_smtplib_delivery(imap, sub):
    c = smtplib.SMTP("127.0.0.1", sub.port, local_hostname="client.test")
    c.starttls(context=tls_context())
    c.login("alice", "secret")
    body = (b"From: alice@test.lg\r\nTo: bob@test.lg\r\nSubject: plain DATA\r\n\r\n"
            b".a line that starts with a dot\r\nlast line\r\n")
    refused = c.sendmail("alice@test.lg", ["bob@test.lg"], body, mail_options=["BODY=8BITMIME"])
    check(refused == {}, "smtplib: message accepted for bob")
    try:
        c.sendmail("alice@test.lg", ["nobody@test.lg"], body)
        check(False, "an unknown local user is refused")
    except smtplib.SMTPRecipientsRefused as e:
        check(e.recipients["nobody@test.lg"][0] == 550, "unknown local user: 550: %r" % e.recipients)
    c.quit()
    msgs = mailbox_messages(imap.port, "bob")
    got = [m for m in msgs if b"Subject: plain DATA" in m]
    check(len(got) == 1 and got[0].endswith(body) and got[0].startswith(b"Return-Path: <alice@test.lg>\r\nReceived: from client.test"),
          "delivered into bob's INBOX byte for byte, dot unstuffed, with Return-Path and Received: %r" % got[:1])
    check(b"with ESMTPSA" in got[0] if got else False, "Received names ESMTPSA (RFC 3848)")


def test_pipelining_bdat(imap, sub):
    s = smtp_login(sub.port)
    binary = b"Subject: binary\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01bare\nLF\xff\r\n"
    first, second = binary[:20], binary[20:]
    # one write: the whole transaction, RFC 2920 style; the answers come in order
    s.send(b"MAIL FROM:<alice@test.lg> BODY=BINARYMIME SIZE=%d\r\nRCPT TO:<bob@test.lg> NOTIFY=SUCCESS,FAILURE\r\n"
           b"RCPT TO:<nobody@test.lg>\r\nBDAT %d\r\n" % (len(binary), len(first)) + first +
           b"BDAT %d LAST\r\n" % len(second) + second + b"NOOP\r\n")
    replies = [s.reply()[0] for _ in range(6)]
    codes = [r[:3] for r in replies]
    check(codes == [b"250", b"250", b"550", b"250", b"250", b"250"], "pipelined group answered in order: %r" % replies)
    check(b"message accepted" in replies[4], "BDAT LAST delivers: %r" % replies[4])
    got = [m for m in mailbox_messages(imap.port, "bob") if b"Subject: binary" in m]
    check(len(got) == 1 and got[0].endswith(binary), "BINARYMIME by BDAT: NUL, bare LF and 8-bit kept: %r" % got[:1])
    out = s.cmd(b"DATA")
    check(out[0].startswith(b"503"), "DATA without a transaction: 503: %r" % out)
    s.cmd(b"MAIL FROM:<alice@test.lg> BODY=BINARYMIME")
    s.cmd(b"RCPT TO:<bob@test.lg>")
    out = s.cmd(b"DATA")
    check(out[0].startswith(b"503 5.5.1"), "DATA with BINARYMIME refused (RFC 3030): %r" % out)
    out = s.cmd(b"RSET")
    s.send(b"BDAT 5\r\nhelloNOOP\r\n")
    out = [s.reply()[0], s.reply()[0]]
    check(out[0].startswith(b"503") and out[1].startswith(b"250"),
          "BDAT outside a transaction: its bytes are still read, the stream stays in step: %r" % out)
    out = s.cmd(b"MAIL FROM:<alice@test.lg> SIZE=99999999999")
    check(out[0].startswith(b"552 5.3.4"), "SIZE over the limit: 552: %r" % out)
    for bad, code in ((b"MAIL FROM:alice@test.lg", b"501"), (b"MAIL FROM:<a b@test.lg>", b"501"),
                      (b"MAIL FROM:<alice@test.lg> FOO=1", b"555"), (b"RCPT TO:<bob@test.lg>", b"503"),
                      (b"MAIL FROM:<alice@test.lg> RET=FULL ENVID=abc+2B", b"250"),
                      (b"RCPT TO:<bob@test.lg> NOTIFY=NEVER,SUCCESS", b"501"),
                      (b"RCPT TO:<bob@test.lg> ORCPT=rfc822", b"501"),
                      (b"MAIL FROM:<alice@test.lg>", b"503")):
        out = s.cmd(bad)
        check(out[0].startswith(code), "%r -> %s: %r" % (bad, code.decode(), out))
    s.cmd(b"RSET")
    # a remote recipient goes to the spool with its DSN parameters
    s.cmd(b"MAIL FROM:<alice@test.lg> RET=HDRS ENVID=env+2B1")
    out = s.cmd(b"RCPT TO:<carol@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;carol@example.net")
    check(out[0].startswith(b"250"), "remote recipient accepted for relay: %r" % out)
    s.cmd(b"DATA")
    out = s.cmd(b"Subject: for the spool\r\n\r\nqueued\r\n.")
    check(out[0].startswith(b"250 2.0.0"), "DATA to a remote recipient: %r" % out)
    queue = os.path.join(imap.work, "mail", ".spool", "queue")
    files = [open(os.path.join(queue, f), "rb").read() for f in os.listdir(queue)] if os.path.isdir(queue) else []
    check(len(files) == 1 and b"mail-from <alice@test.lg> RET=HDRS ENVID=env+2B1\n" in files[0] and
          b"rcpt <carol@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;carol@example.net\n" in files[0] and
          files[0].endswith(b"Subject: for the spool\r\n\r\nqueued\r\n"),
          "the spool keeps the envelope with its DSN parameters and the message: %r" % files)
    s.cmd(b"QUIT")


def imap_raw_login(port, user):
    r = Raw(port)
    r.send(b"t STARTTLS\r\n")
    r.until(b"t")
    r.sock = tls_context().wrap_socket(r.sock)
    r.send(b"l LOGIN " + user + b" secret\r\n")
    r.until(b"l")
    return r


def test_burl_forward_without_download(imap, sub):
    """The profile's forward-without-download: the client builds the forward with CATENATE
    on the IMAP server, authorizes it for the submission server, and submits it by reference."""
    a = imap_raw_login(imap.port, b"alice")
    orig = b"From: bob@test.lg\r\nSubject: report\r\n\r\nthe attachment would be here\r\n"
    a.send(b"a1 APPEND INBOX {%d+}\r\n" % len(orig) + orig + b"\r\n")
    out = a.until(b"a1")
    uidv, uid = [int(x) for x in out[-1].split(b"APPENDUID ")[1].split(b"]")[0].split()]
    a.send(b"a2 CREATE Drafts\r\n")
    a.until(b"a2")
    head = b"From: alice@test.lg\r\nTo: bob@test.lg\r\nSubject: Fwd: report\r\n\r\nFYI:\r\n\r\n"
    a.send(b"a3 APPEND Drafts (\\Draft) CATENATE (TEXT {%d+}\r\n" % len(head) + head +
           b' URL "/INBOX;UIDVALIDITY=%d/;UID=%d/;SECTION=TEXT")\r\n' % (uidv, uid))
    out = a.until(b"a3")
    check(out[-1].startswith(b"a3 OK [APPENDUID"), "CATENATE builds the forward: %r" % out)
    duidv, duid = [int(x) for x in out[-1].split(b"APPENDUID ")[1].split(b"]")[0].split()]
    rump = b"imap://alice@test.lg/Drafts;UIDVALIDITY=%d/;UID=%d;URLAUTH=submit+alice" % (duidv, duid)
    a.send(b'a4 GENURLAUTH "' + rump + b'" INTERNAL\r\n')
    out = a.until(b"a4")
    url = out[0][len(b"* GENURLAUTH "):].strip(b'"')
    check(url.startswith(rump + b":INTERNAL:"), "GENURLAUTH for the submission server: %r" % out)
    expected = head + b"the attachment would be here\r\n"

    c = smtplib.SMTP("127.0.0.1", sub.port, local_hostname="client.test")
    c.starttls(context=tls_context())
    c.login("alice", "secret")
    c.ehlo("client.test")  # RFC 4468: "BURL imap" is offered once authenticated
    check(c.has_extn("burl") and "imap" in c.esmtp_features.get("burl", ""), "smtplib sees BURL imap")
    c.mail("alice@test.lg")
    c.rcpt("bob@test.lg")
    code, msg = c.docmd("BURL", url.decode() + " LAST")
    check(code == 250, "BURL url LAST: %d %r" % (code, msg))
    # a tampered verifier, a host the server does not trust, a URL without URLAUTH
    for bad, want in ((url[:-1] + (b"0" if url[-1:] != b"0" else b"1"), 554),
                      (url.replace(b"@test.lg/", b"@evil.example/"), 554),
                      (rump.split(b";URLAUTH")[0], 554)):
        c.mail("alice@test.lg")
        c.rcpt("bob@test.lg")
        code, msg = c.docmd("BURL", bad.decode() + " LAST")
        check(code == want, "bad BURL %r -> %d: %d %r" % (bad[-40:], want, code, msg))
    # BURL in pieces, mixed with BDAT, pipelined with QUIT: input waits while the fetch runs
    c.mail("alice@test.lg")
    c.rcpt("bob@test.lg")
    code, msg = c.docmd("BURL", url.decode())
    check(code == 250, "BURL without LAST: a chunk: %d %r" % (code, msg))
    tail = b"-- \r\nsent by reference\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(tail) + tail + b"NOOP\r\n")
    code, msg = c.getreply()
    code2, msg2 = c.getreply()
    check(code == 250 and code2 == 250, "BDAT LAST after a BURL chunk: %d %r / %d" % (code, msg, code2))
    c.quit()
    msgs = mailbox_messages(imap.port, "bob")
    # both may be adopted from new/ at the same look, in name order, not delivery order
    fwd = sorted((m for m in msgs if b"Subject: Fwd: report" in m), key=len)
    check(len(fwd) == 2 and fwd[0].endswith(expected) and fwd[1].endswith(expected + tail),
          "the forward lands in bob's INBOX byte for byte as assembled: %r" % fwd)

    # the submission server's URLFETCH was the only download: the client fetched nothing
    s = smtp_login(sub.port)
    s.send(b"MAIL FROM:<alice@test.lg>\r\nRCPT TO:<bob@test.lg>\r\nBURL " + url + b" LAST\r\nQUIT\r\n")
    replies = [s.reply()[0] for _ in range(4)]
    check([r[:3] for r in replies] == [b"250", b"250", b"250", b"221"],
          "BURL pipelined with QUIT: answers in order: %r" % replies)
    a.send(b"z LOGOUT\r\n")
    return url


def burl_reply(port, url):
    s = smtp_login(port)
    s.send(b"MAIL FROM:<alice@test.lg>\r\nRCPT TO:<bob@test.lg>\r\nBURL " + url + b" LAST\r\nQUIT\r\n")
    replies = [s.reply() for _ in range(4)]
    s.close()
    return replies[2]


def test_burl_tls(work, imap, url):
    """BURL's own IMAP connection: STARTTLS with the certificate checked against the host name
    the operator configured; an untrusted certificate, or a plaintext client facing a server
    that wants TLS, fails the transaction with a clear 554."""
    other = os.path.join(work, "other")
    os.mkdir(other)
    make_cert(other)
    log = os.path.join(work, "lemongate-submitd.log")
    for extra, what in ((["-o", "imap-ca=" + os.path.join(other, "cert.pem")], "a certificate not trusted"),
                        (["-o", "imap-tls=none"], "plaintext LOGIN refused by the server (LOGINDISABLED)")):
        sub = Server(work, "lemongate-submitd",
                     ["-o", "burl-user=submitter", "-o", "burl-password-file=" + os.path.join(work, "burl.pass"),
                      "-o", "imap-host=test.lg=127.0.0.1:%d" % imap.port] + extra)
        sub.start()
        try:
            reply = burl_reply(sub.port, url)
        finally:
            sub.stop()
        check(reply[0].startswith(b"554"), "BURL with %s: 554: %r" % (what, reply))
    check(b"certificate" in open(log, "rb").read(), "the log says why TLS failed (the certificate)")
    # a name the certificate does not carry: same address, another configured name
    sub = Server(work, "lemongate-submitd",
                 ["-o", "burl-user=submitter", "-o", "burl-password-file=" + os.path.join(work, "burl.pass"),
                  "-o", "imap-ca=" + os.path.join(work, "cert.pem"),
                  "-o", "imap-host=other.lg=127.0.0.1:%d" % imap.port])
    sub.start()
    try:
        reply = burl_reply(sub.port, url.replace(b"@test.lg/", b"@other.lg/"))
    finally:
        sub.stop()
    check(reply[0].startswith(b"554"), "BURL to a host whose certificate names another: 554: %r" % reply)


def test_hostile(imap, sub):
    s = Smtp(sub.port)
    s.cmd(b"EHLO x")
    for _ in range(19):
        s.cmd(b"WHAT")
    out = s.cmd(b"WHAT") + s.reply()
    check(out[-1].startswith(b"421"), "too many bad commands: 421: %r" % out)
    s.close()
    s = Smtp(sub.port)
    s.send(b"EHLO " + b"x" * 70000 + b"\r\n")
    try:
        out = s.reply()
        check(out[0].startswith(b"500"), "over-long line: 500 then close: %r" % out[:1])
    except (EOFError, ConnectionError):
        check(False, "over-long line: an answer before the close")
    s.close()
    s = smtp_login(sub.port)
    out = s.cmd(b"BDAT twelve")
    check(out[0].startswith(b"501"), "BDAT without a size: 501 and close: %r" % out)
    s.close()
    # a client that vanishes in the middle of a BDAT chunk leaves nothing behind
    before = len(mailbox_messages(imap.port, "bob"))
    s = smtp_login(sub.port)
    s.send(b"MAIL FROM:<alice@test.lg>\r\nRCPT TO:<bob@test.lg>\r\nBDAT 1000 LAST\r\nonly a part")
    s.reply()
    s.reply()
    s.close()
    s = smtp_login(sub.port)
    s.cmd(b"QUIT")
    check(len(mailbox_messages(imap.port, "bob")) == before, "a vanished BDAT delivered nothing")
    check(sub.alive() and imap.alive(), "both servers survived")


def main():
    work = tempfile.mkdtemp(prefix="lg-submitd-test-")
    imap = sub = None
    try:
        make_cert(work)
        os.mkdir(os.path.join(work, "mail"))
        with open(os.path.join(work, "burl.pass"), "w") as f:
            f.write("secret\n")
        # imapd refuses LOGIN before TLS: the BURL client uses STARTTLS and checks the
        # certificate (self-signed for test.lg, so it is the one to trust)
        imap = Server(work, "lemongate-imapd", ["-o", "submit-user=submitter"])
        imap.start()
        sub = Server(work, "lemongate-submitd",
                     ["-o", "burl-user=submitter", "-o", "burl-password-file=" + os.path.join(work, "burl.pass"),
                      "-o", "imap-host=test.lg=127.0.0.1:%d" % imap.port,
                      "-o", "imap-ca=" + os.path.join(work, "cert.pem")])
        sub.start()
        state = {}
        for t in (test_ehlo_auth, test_smtplib_delivery, test_pipelining_bdat,
                  test_burl_forward_without_download, test_burl_tls, test_hostile):
            try:
                if t is test_burl_forward_without_download:
                    state["url"] = t(imap, sub)
                elif t is test_burl_tls:
                    t(work, imap, state["url"])
                else:
                    t(imap, sub)
            except Exception as e:  # one scenario's crash is a failure, not the end
                import traceback
                traceback.print_exc()
                check(False, "%s raised %r" % (t.__name__, e))
    finally:
        for s in (sub, imap):
            if s:
                s.stop()
        if any_failed():
            for name in ("lemongate-submitd.log", "lemongate-imapd.log"):
                path = os.path.join(work, name)
                if os.path.exists(path):
                    sys.stdout.write(open(path).read()[-2500:])
        shutil.rmtree(work, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
