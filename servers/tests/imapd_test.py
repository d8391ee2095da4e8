#!/usr/bin/env python3
"""lemongate-imapd driven by real clients on loopback: python3's imaplib for the ordinary
paths, raw sockets where imaplib cannot misbehave on purpose (pipelined STARTTLS injection,
LITERAL+, huge literals, a client vanishing mid-literal). No root needed.
usage: imapd_test.py BUILD_DIR"""
import imaplib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USERS = os.path.join(ROOT, "testbed", "users")
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, work, plaintext=False):
        self.work = work
        self.port = free_port()
        self.plaintext = plaintext
        self.proc = None

    def start(self):
        args = [os.path.join(BUILD, "lemongate-imapd"), "-l", "127.0.0.1:%d" % self.port,
                "-u", USERS, "-d", os.path.join(self.work, "mail"), "-n", "test.lg",
                "--tls-cert", os.path.join(self.work, "cert.pem"),
                "--tls-key", os.path.join(self.work, "key.pem")]
        if self.plaintext:
            args.append("--allow-plaintext-auth")
        self.log = open(os.path.join(self.work, "imapd.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("imapd exited: %s" % open(self.log.name).read())
                time.sleep(0.05)
        raise RuntimeError("imapd does not listen")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """Stop it with SIGTERM; it must exit 0 (under ASan: no leak, no error at exit)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            rc = self.proc.wait(20)
            check(rc == 0, "imapd exited cleanly on SIGTERM (status %d)" % rc)
        self.log.close()


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw:
    """A line-level client: send bytes, read until a tagged line."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def until(self, tag):
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def cmd(self, tag, text):
        self.send(tag + b" " + text + b"\r\n")
        return self.until(tag)

    def starttls(self):
        out = self.cmd(b"t", b"STARTTLS")
        self.sock = tls_context().wrap_socket(self.sock)
        return out

    def close(self):
        self.sock.close()


def is_bad(call, *args):
    """imaplib raises on a tagged BAD; True when the server answered BAD."""
    try:
        call(*args)
    except imaplib.IMAP4.error as e:
        return "BAD" in str(e) or "command error" in str(e)
    return False


def login(port, user="alice"):
    m = imaplib.IMAP4("127.0.0.1", port)
    m.starttls(ssl_context=tls_context())
    m.login(user, "secret")
    return m


def test_tls_and_auth(srv):
    r = Raw(srv.port)
    check(b"[CAPABILITY IMAP4rev1" in r.greeting and b"STARTTLS" in r.greeting and
          b"LOGINDISABLED" in r.greeting, "greeting carries capabilities, LOGINDISABLED before TLS")
    out = r.cmd(b"a", b"LOGIN alice secret")
    check(b"PRIVACYREQUIRED" in out[-1], "LOGIN refused before TLS: %r" % out[-1])
    out = r.cmd(b"b", b"AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==")
    check(out[-1].startswith(b"b NO"), "AUTHENTICATE refused before TLS")
    # STARTTLS with a command pipelined behind it: that command must never run
    r.send(b"t STARTTLS\r\nx LOGOUT\r\n")
    out = r.until(b"t")
    check(out[-1].startswith(b"t OK"), "STARTTLS accepted")
    r.sock = tls_context().wrap_socket(r.sock)
    r.buf = b""
    out = r.cmd(b"c", b"CAPABILITY")
    check(b"AUTH=PLAIN" in out[0] and b"STARTTLS" not in out[0], "after TLS: AUTH=PLAIN, no STARTTLS")
    check(not any(l.startswith(b"x ") or l.startswith(b"* BYE") for l in out),
          "the command injected before TLS was discarded")
    out = r.cmd(b"d", b"AUTHENTICATE PLAIN AGFsaWNlAHdyb25n")
    check(b"AUTHENTICATIONFAILED" in out[-1], "wrong password: AUTHENTICATIONFAILED")
    out = r.cmd(b"e", b"AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==")
    check(out[-1].startswith(b"e OK [CAPABILITY "), "SASL-IR PLAIN login, CAPABILITY code: %r" % out[-1])
    out = r.cmd(b"f", b"STARTTLS")
    check(out[-1].startswith(b"f BAD"), "STARTTLS after authentication is refused")
    r.close()

    r = Raw(srv.port)
    r.starttls()
    r.send(b"g AUTHENTICATE PLAIN\r\n")
    check(r.line() == b"+ ", "PLAIN without initial response: empty continuation")
    r.send(b"AGJvYgBzZWNyZXQ=\r\n")
    out = r.until(b"g")
    check(out[-1].startswith(b"g OK"), "PLAIN by continuation")
    r.close()

    m = imaplib.IMAP4("127.0.0.1", srv.port)
    m.starttls(ssl_context=tls_context())
    typ, _ = m.login("bob", "secret")
    check(typ == "OK", "imaplib STARTTLS + LOGIN")
    m.logout()


def test_mailboxes(srv):
    m = login(srv.port)
    check(m.create("Work/Projects")[0] == "OK", "CREATE with a superior")
    check(m.create("Work")[0] == "NO", "CREATE of an existing mailbox")
    check(m.create("&Jjo-!")[0] == "OK", "CREATE a modified UTF-7 name")
    check(m.create("bad&name")[0] == "NO", "CREATE with bad modified UTF-7 refused")
    check(m.create("&AGE-")[0] == "NO", "CREATE with encoded ASCII refused")
    typ, data = m.list("\"\"", "%")
    names = [d.split(b' "/" ')[1] for d in data]
    check(b'"Work"' in names and b'"Work/Projects"' not in names, "LIST %% stops at the delimiter")
    typ, data = m.list("Work/", "*")
    check(len(data) == 1 and data[0].endswith(b'"Work/Projects"'), "LIST with a reference")
    check(any(b"\\HasChildren" in d and d.endswith(b'"Work"') for d in m.list()[1]),
          "\\HasChildren on Work")
    check(m.subscribe("Work")[0] == "OK" and any(d.endswith(b'"Work"') for d in m.lsub()[1]),
          "SUBSCRIBE and LSUB")
    check(m.rename("Work", "Job")[0] == "OK", "RENAME")
    check(any(d.endswith(b'"Job/Projects"') for d in m.list()[1]), "RENAME took the inferiors")
    check(m.delete("Job")[0] == "NO", "DELETE with inferiors refused")
    check(m.delete("Job/Projects")[0] == "OK" and m.delete("Job")[0] == "OK", "DELETE leaf then parent")
    check(m.delete("INBOX")[0] == "NO", "INBOX cannot be deleted")
    typ, data = m.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)")
    check(typ == "OK" and b"MESSAGES 0" in data[0] and b"UIDNEXT 1" in data[0], "STATUS: %r" % data)
    check(is_bad(m.status, "INBOX", "(BOGUS)"), "STATUS with an unknown item")
    m.logout()


MULTIPART = (b"From: Alice <alice@lg.test>\r\nTo: bob@lg.test\r\nSubject: parts\r\n"
             b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
             b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
             b"--b1\r\nContent-Type: text/plain\r\n\r\nhello part one\r\n"
             b"--b1\r\nContent-Type: application/octet-stream\r\n\r\nAAAA\r\n--b1--\r\n")


def test_messages(srv):
    m = login(srv.port)
    typ, data = m.append("INBOX", r"(\Flagged $Forwarded)", imaplib.Time2Internaldate(1795600000), MULTIPART)
    check(typ == "OK" and b"APPENDUID" in data[0], "APPEND with flags and date: %r" % data)
    m.append("INBOX", None, None, b"Subject: second\r\n\r\nplain body\r\n")
    typ, data = m.select("INBOX")
    check(typ == "OK" and data[0] == b"2", "SELECT sees 2")
    typ, data = m.fetch("1", "(FLAGS BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[]<0.4> RFC822.SIZE)")
    blob = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
    check(b"hello part one" in blob and b"Content-Type: application/octet-stream" in blob,
          "FETCH BODY[1], BODY[2.MIME]")
    check(b"BODY[]<0> {4}\r\nFrom" in blob.replace(b"BODY[]<0> {4}From", b"BODY[]<0> {4}\r\nFrom") or
          b"BODY[]<0> {4}" in blob, "partial fetch <0.4>")
    check(b"RFC822.SIZE %d" % len(MULTIPART) in blob, "RFC822.SIZE is the stored size")
    check(b"$Forwarded" in blob and b"\\Seen" not in blob, "PEEK leaves \\Seen alone")
    typ, data = m.fetch("1", "(ENVELOPE BODYSTRUCTURE)")
    blob = data[0] if isinstance(data[0], bytes) else b"".join(data[0])
    check(b'ENVELOPE ("Mon, 23 Nov 2026 10:00:00 +0000" "parts" (("Alice" NIL "alice" "lg.test"))' in blob and
          b'((NIL NIL "bob" "lg.test")) NIL NIL NIL NIL)' in blob, "ENVELOPE: %r" % blob)
    check(b'BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 1 NIL NIL NIL NIL)'
          b'("APPLICATION" "OCTET-STREAM" NIL NIL NIL "7BIT" 4 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "b1")'
          b' NIL NIL NIL)' in blob, "BODYSTRUCTURE: %r" % blob)
    typ, data = m.fetch("2", "(BODY[TEXT])")
    check(b"\\Seen" in b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data),
          "BODY[] sets \\Seen and says so")
    check(m.search(None, "SUBJECT", "parts")[1] == [b"1"], "SEARCH SUBJECT")
    check(m.search(None, "OR", "SEEN", "FLAGGED")[1] == [b"1 2"], "SEARCH OR")
    check(m.search(None, "NOT", "KEYWORD", "$Forwarded")[1] == [b"2"], "SEARCH NOT KEYWORD")
    check(m.search(None, "BODY", "\"PART ONE\"")[1] == [b"1"], "SEARCH BODY is case-insensitive")
    check(m.search(None, "SENTON", "23-Nov-2026")[1] == [b"1"], "SEARCH SENTON reads Date:")
    check(m.search(None, "LARGER", "100", "UID", "1:*")[1] == [b"1"], "SEARCH LARGER with UID set")
    check(is_bad(m.search, None, "BOGUS"), "unknown search key is BAD")
    check(is_bad(m.fetch, "0:2", "FLAGS"), "sequence number 0 is BAD")
    check(is_bad(m.fetch, "9", "FLAGS"), "a sequence number past the end is BAD")
    check(m.uid("FETCH", "99", "FLAGS") == ("OK", [None]), "UID FETCH of an absent UID is empty")
    typ, _ = m.uid("COPY", "1:2", "INBOX")
    code = m.response("COPYUID")[1]
    check(typ == "OK" and code[0] and code[0].endswith(b" 1:2 3:4"), "UID COPY, COPYUID: %r" % code)
    typ, data = m.store("1:2", "+FLAGS", r"(\Deleted)")
    check(typ == "OK" and len(data) == 2 and all(b"\\Deleted" in d for d in data), "STORE +FLAGS")
    typ, _ = m.uid("EXPUNGE", "1")
    data = m.response("EXPUNGE")[1]
    check(typ == "OK" and data == [b"1"], "UID EXPUNGE only the named UID: %r" % data)
    typ, data = m.expunge()
    check(typ == "OK" and data == [b"1"], "EXPUNGE the rest: %r" % data)
    check(m.select("INBOX")[1] == [b"2"], "two copies left")
    m.store("1", "FLAGS.SILENT", r"(\Answered)")
    check(m.fetch("1", "FLAGS")[1][0].endswith(b"(FLAGS (\\Answered))"), "FLAGS.SILENT replaced the flags")
    check(m.copy("1", "Nowhere")[1][0].startswith(b"[TRYCREATE]"), "COPY to a missing mailbox: TRYCREATE")
    check(m.close()[0] == "OK", "CLOSE")
    m.state = "SELECTED"  # imaplib would refuse to send it itself
    check(is_bad(m.fetch, "1", "FLAGS"), "FETCH after CLOSE is BAD")
    m.state = "AUTH"
    m.logout()


def test_two_sessions(srv):
    a = login(srv.port)
    b = login(srv.port)
    a.select("INBOX")
    n0 = int(b.select("INBOX")[1][0])
    # A idles; B appends: A is told at once
    tag = a._new_tag()
    a.send(tag + b" IDLE\r\n")
    check(a.readline().startswith(b"+"), "IDLE continuation")
    b.append("INBOX", None, None, b"Subject: push\r\n\r\nnew mail\r\n")
    a.sock.settimeout(5)
    line = a.readline()
    check(line == b"* %d EXISTS\r\n" % (n0 + 1), "IDLE: EXISTS pushed after another session's APPEND: %r" % line)
    # a delivery by another process (as submitd does): tmp/, then a rename into new/
    box = os.path.join(srv.work, "mail", "alice", "mailboxes", "INBOX")
    with open(os.path.join(box, "tmp", "ext.1"), "wb") as f:
        f.write(b"Subject: delivered\r\n\r\nvia new/\r\n")
    os.rename(os.path.join(box, "tmp", "ext.1"), os.path.join(box, "new", "ext.1"))
    lines = [a.readline() for _ in range(1)]
    while not lines[-1].endswith(b"EXISTS\r\n"):
        lines.append(a.readline())
    check(lines[-1] == b"* %d EXISTS\r\n" % (n0 + 2), "IDLE: EXISTS pushed after a Maildir delivery: %r" % lines)
    a.send(b"DONE\r\n")
    while True:
        line = a.readline()
        if line.startswith(tag):
            break
    check(line.startswith(tag + b" OK"), "DONE ends IDLE")
    a.sock.settimeout(None)
    # B expunges; A hears of it at its next command
    b.store("1", "+FLAGS", r"\Deleted")
    b.expunge()
    typ, data = a.noop()
    check(b"1" in [d for d in a.untagged_responses.get("EXPUNGE", [b"1"])], "EXPUNGE reported to A at NOOP")
    typ, data = a.fetch("1:*", "UID")
    check(typ == "OK" and len(data) == n0 + 1, "A's view follows: %r" % data)
    a.logout()
    b.logout()


def test_hostile(srv):
    r = Raw(srv.port)
    r.starttls()
    r.cmd(b"l", b"LOGIN alice secret")
    out = r.cmd(b"a", b"APPEND INBOX {5+}\r\nhello")
    check(out[-1].startswith(b"a OK [APPENDUID"), "LITERAL+ APPEND")
    out = r.cmd(b"b", b"APPEND INBOX {999999999}")
    check(out[-1].startswith(b"b NO [TOOBIG]"), "a huge synchronizing literal refused before it is sent")
    r.send(b"c LOGIN {70000+}\r\n" + b"x" * 70000 + b" y\r\n")
    out = r.until(b"c")
    check(out[-1].startswith(b"c NO [TOOBIG]"), "an over-long non-synchronizing literal read and refused")
    check(r.cmd(b"d", b"NOOP")[-1].startswith(b"d OK"), "the session goes on after refused literals")
    for bad, why in ((b"e SELECT", "SELECT without argument"), (b"f FETCH 1 FLAGS", "FETCH with nothing selected"),
                     (b"g CREATE \"unterminated", "unterminated quote"), (b"h UID FROB 1", "unknown UID command"),
                     (b"i FROB", "unknown command"), (b"j LIST \"\" \"*\" extra", "trailing garbage")):
        out = r.cmd(bad.split(b" ")[0], bad.split(b" ", 1)[1])
        check(out[-1].split(b" ")[1] in (b"BAD", b"NO"), "%s answered BAD/NO: %r" % (why, out[-1]))
    r.send(b"(bad tag\r\n")
    check(r.line().startswith(b"* BAD"), "bad tag: untagged BAD")
    # a client that vanishes mid-literal stores nothing
    before = r.cmd(b"k", b"STATUS INBOX (MESSAGES)")[0]
    v = Raw(srv.port)
    v.starttls()
    v.cmd(b"l", b"LOGIN alice secret")
    v.send(b"m APPEND INBOX {100}\r\n")
    v.line()
    v.send(b"only part of it")
    v.close()
    after = r.cmd(b"n", b"STATUS INBOX (MESSAGES)")[0]
    check(before == after, "a vanished APPEND left no message: %r %r" % (before, after))
    # an over-long line ends the session with BYE, and the server lives on
    r.send(b"o NOOP " + b"z" * 70000 + b"\r\n")
    try:
        lines = [r.line()]
        check(lines[0].startswith(b"* BYE"), "over-long line: BYE")
    except (EOFError, ConnectionError, ssl.SSLError):
        check(False, "over-long line: BYE before the close")
    r.close()
    check(srv.alive(), "the server survived all of it")


def test_restart(srv):
    m = login(srv.port)
    v1 = m.select("INBOX")
    uv1 = m.untagged_responses.get("UIDVALIDITY")
    typ, uids1 = m.uid("SEARCH", None, "ALL")
    m.logout()
    srv.stop()
    srv.start()
    m = login(srv.port)
    m.select("INBOX")
    uv2 = m.untagged_responses.get("UIDVALIDITY")
    typ, uids2 = m.uid("SEARCH", None, "ALL")
    check(uv1 == uv2 and uids1 == uids2 and uids1[0], "UIDVALIDITY and UIDs survive a restart: %r %r" % (uids1, uids2))
    m.logout()


def main():
    work = tempfile.mkdtemp(prefix="lg-imapd-test-")
    srv = None
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=test.lg", "-keyout", os.path.join(work, "key.pem"),
                        "-out", os.path.join(work, "cert.pem")], check=True, capture_output=True)
        os.mkdir(os.path.join(work, "mail"))
        srv = Server(work)
        srv.start()
        for t in (test_tls_and_auth, test_mailboxes, test_messages, test_two_sessions, test_hostile,
                  test_restart):
            try:
                t(srv)
            except Exception as e:  # a crash of one scenario is a failure, not the end
                import traceback
                traceback.print_exc()
                check(False, "%s raised %r" % (t.__name__, e))
        check(srv.alive(), "imapd still running at the end")
    finally:
        if srv:
            srv.stop()
        if failed:
            sys.stdout.write(open(os.path.join(work, "imapd.log")).read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
