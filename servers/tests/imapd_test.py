#!/usr/bin/env python3
"""lemongate-imapd driven by real clients on loopback: python3's imaplib for the ordinary
paths, raw sockets where imaplib cannot misbehave on purpose (pipelined STARTTLS injection,
LITERAL+, huge literals, a client vanishing mid-literal). No root needed.
usage: imapd_test.py BUILD_DIR"""
import imaplib
import os
import select
import socket
import shutil
import ssl
import sys
import tempfile
import time

from mailtest import Raw, Server, check, make_cert, summary, any_failed, tls_context

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


def test_many_mailboxes_idle(srv):
    """More mailboxes open at once than fs.inotify.max_user_instances (128 by default): a
    delivery into any of them still reaches the session idling on it."""
    count = 140
    first = raw_login(srv.port, b"alice")
    for i in range(count):
        first.cmd(b"c", b"CREATE many%d" % i)
    sessions = [first] + [raw_login(srv.port, b"alice") for _ in range(count - 1)]
    for i, r in enumerate(sessions):
        out = r.cmd(b"s", b"SELECT many%d" % i)
        if not out[-1].startswith(b"s OK"):
            check(False, "SELECT many%d: %r" % (i, out))
    for i in (0, count - 1):
        sessions[i].send(b"i IDLE\r\n")
        check(sessions[i].line().startswith(b"+"), "IDLE on many%d" % i)
    for i in (0, count - 1):
        box = os.path.join(srv.work, "mail", "alice", "mailboxes", "many%d" % i)
        with open(os.path.join(box, "tmp", "d.1"), "wb") as f:
            f.write(b"Subject: many\r\n\r\nbody\r\n")
        os.rename(os.path.join(box, "tmp", "d.1"), os.path.join(box, "new", "d.1"))
    for i in (0, count - 1):
        try:
            line = sessions[i].line()
        except (OSError, EOFError) as e:
            line = repr(e).encode()
        check(line == b"* 1 EXISTS", "with %d mailboxes open, a delivery into many%d is pushed in IDLE: %r"
              % (count, i, line))
        sessions[i].send(b"DONE\r\n")
        sessions[i].until(b"i")
    for r in sessions:
        r.cmd(b"z", b"LOGOUT")
        r.close()


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors(work):
    """Out of file descriptors, the server stops accepting (no busy loop on the pending
    connection), keeps its sessions, and accepts again once one closes."""
    srv = Server(work, "lemongate-imapd", fd_limit=48)
    srv.start()
    try:
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(60)]
        log = os.path.join(work, "lemongate-imapd.log")
        deadline = time.monotonic() + 10
        while b"out of file descriptors" not in open(log, "rb").read() and time.monotonic() < deadline:
            time.sleep(0.05)
        check(b"out of file descriptors" in open(log, "rb").read(), "out of descriptors: logged")
        readable, _, _ = select.select(socks, [], [], 1)
        greeted = [s for s in readable if s.recv(4096).startswith(b"* OK")]
        waiting = [s for s in socks if s not in readable]
        check(10 < len(greeted) < 48 and len(waiting) == 60 - len(greeted),
              "sessions up to the limit are greeted (%d), the rest wait" % len(greeted))
        greeted[0].sendall(b"a CAPABILITY\r\n")
        check(greeted[0].recv(4096).startswith(b"* CAPABILITY"), "a session still works at the limit")
        for s in greeted[1:4]:
            s.close()
        waiting[0].settimeout(10)
        try:
            hello = waiting[0].recv(4096)
        except OSError as e:
            hello = repr(e).encode()
        check(hello.startswith(b"* OK"), "a waiting connection is greeted once one closes: %r" % hello)
        # paused, it must not spin on the pending connections: well under half a CPU while waiting
        cpu0 = cpu_seconds(srv.proc.pid)
        select.select([], [], [], 0.5)
        used = cpu_seconds(srv.proc.pid) - cpu0
        check(used < 0.25, "no busy loop while out of descriptors: %.2f s of CPU in 0.5 s" % used)
        for s in socks:
            s.close()
        check(srv.alive(), "imapd alive after running out of descriptors")
    finally:
        srv.stop()


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


def raw_login(port, user):
    r = Raw(port)
    r.starttls()
    out = r.cmd(b"l", b"LOGIN " + user + b" secret")
    if not out[-1].startswith(b"l OK"):
        raise RuntimeError("login failed: %r" % out)
    return r


def code_value(lines, code):
    """The number after [CODE in the untagged or tagged lines, or None."""
    for line in lines:
        i = line.find(b"[" + code + b" ")
        if i >= 0:
            return int(line[i + len(code) + 2:].split(b"]")[0])
    return None


def modseq_of(line):
    i = line.find(b"MODSEQ (")
    return int(line[i + 8:].split(b")")[0]) if i >= 0 else None


def test_condstore_qresync(srv):
    """RFC 7162 with bob's mailbox cs: CONDSTORE (MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE, SEARCH
    MODSEQ, STATUS) and QRESYNC (VANISHED, SELECT resynchronisation, [CLOSED])."""
    a = raw_login(srv.port, b"bob")
    check(b"CONDSTORE" in a.greeting or b"CONDSTORE" in a.cmd(b"c", b"CAPABILITY")[0],
          "CONDSTORE advertised")
    a.cmd(b"c1", b"CREATE cs")
    for i in range(4):
        body = b"Subject: cs %d\r\n\r\nbody %d\r\n" % (i, i)
        a.cmd(b"ap%d" % i, b"APPEND cs {%d+}\r\n" % len(body) + body)
    out = a.cmd(b"e1", b"ENABLE CONDSTORE QRESYNC")
    check(out[0] == b"* ENABLED CONDSTORE QRESYNC" and out[-1].startswith(b"e1 OK"), "ENABLE: %r" % out)
    out = a.cmd(b"e2", b"ENABLE QRESYNC")
    check(out[0] == b"* ENABLED", "ENABLE again turns nothing new on: %r" % out)
    out = a.cmd(b"s1", b"SELECT cs")
    hms0 = code_value(out, b"HIGHESTMODSEQ")
    uidvalidity = code_value(out, b"UIDVALIDITY")
    check(hms0 and hms0 >= 4 and out[-1].startswith(b"s1 OK"), "SELECT gives HIGHESTMODSEQ: %r" % out)
    out = a.cmd(b"f1", b"FETCH 1:* (FLAGS)")
    mods = [modseq_of(l) for l in out[:-1]]
    check(len(mods) == 4 and all(mods) and max(mods) == hms0, "FETCH carries MODSEQ once enabled: %r" % out)
    out = a.cmd(b"st1", b"STORE 1 +FLAGS.SILENT (\\Seen)")
    m1 = modseq_of(out[0]) if out[0].startswith(b"* 1 FETCH") else None
    check(m1 and m1 > hms0 and b"FLAGS" not in out[0], ".SILENT STORE still tells the new MODSEQ: %r" % out)
    out = a.cmd(b"st2", b"STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % hms0)
    check(out[-1].startswith(b"st2 OK [MODIFIED 1]") and len(out) == 3 and
          all(b"\\Flagged" in l and modseq_of(l) for l in out[:-1]),
          "UNCHANGEDSINCE: message 1 changed since, refused; 2 and 3 stored: %r" % out)
    out = a.cmd(b"st3", b"UID STORE 1:* (UNCHANGEDSINCE 0) -FLAGS (\\Flagged)")
    check(out[-1].startswith(b"st3 OK [MODIFIED 1:4]") and len(out) == 1,
          "UNCHANGEDSINCE 0 changes nothing, UIDs listed: %r" % out)
    out = a.cmd(b"st4", b"STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Seen)")
    check(out[-1].startswith(b"st4 BAD"), "UNCHANGEDSINCE without a number: BAD")
    out = a.cmd(b"f2", b"UID FETCH 1:* (UID) (CHANGEDSINCE %d)" % hms0)
    check(len(out) == 4 and all(modseq_of(l) for l in out[:-1]),
          "CHANGEDSINCE: only the three changed messages, MODSEQ included: %r" % out)
    hms1 = max(modseq_of(l) for l in out[:-1])
    out = a.cmd(b"f3", b"FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % hms1)
    check(len(out) == 1 and out[0].startswith(b"f3 OK"), "nothing changed since the highest: %r" % out)
    out = a.cmd(b"f4", b"FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    check(out[-1].startswith(b"f4 BAD"), "VANISHED needs UID FETCH: %r" % out)
    out = a.cmd(b"se1", b"SEARCH MODSEQ %d" % hms1)
    check(out[0].startswith(b"* SEARCH ") and out[0].endswith(b"(MODSEQ %d)" % hms1), "SEARCH MODSEQ: %r" % out)
    out = a.cmd(b"se2", b'UID SEARCH MODSEQ "/flags/\\\\seen" all 1')
    check(out[0] == b"* SEARCH 1 2 3 4 (MODSEQ %d)" % hms1, "SEARCH MODSEQ with an entry: %r" % out)
    out = a.cmd(b"se3", b"SEARCH MODSEQ %d" % (hms1 + 1))
    check(out[0] == b"* SEARCH", "SEARCH MODSEQ above everything: no MODSEQ part: %r" % out)
    out = a.cmd(b"sta", b"STATUS cs (HIGHESTMODSEQ MESSAGES)")
    check(out[0].endswith(b"(HIGHESTMODSEQ %d MESSAGES 4)" % hms1), "STATUS HIGHESTMODSEQ: %r" % out)

    # another session (no CONDSTORE) expunges message 2 (UID 2)
    b = raw_login(srv.port, b"bob")
    b.cmd(b"s", b"SELECT cs")
    # while a FETCH runs, the expunge cannot be reported: a is told a HIGHESTMODSEQ below it
    b.cmd(b"d", b"STORE 2 +FLAGS.SILENT (\\Deleted)")
    out = b.cmd(b"x", b"EXPUNGE")
    check(out == [b"* 2 EXPUNGE", b"x OK EXPUNGE completed"], "plain EXPUNGE for a session without QRESYNC: %r" % out)
    out = a.cmd(b"f5", b"FETCH 1 (FLAGS)")
    held = code_value(out, b"HIGHESTMODSEQ")
    check(held is not None and held < hms1 + 2 and b"VANISHED" not in b"".join(out),
          "pending expunge: no VANISHED during FETCH, HIGHESTMODSEQ held below it: %r" % out)
    out = a.cmd(b"n1", b"NOOP")
    check(out[0] == b"* VANISHED 2" and out[-1].startswith(b"n1 OK"),
          "QRESYNC session hears VANISHED, before the tagged OK: %r" % out)
    out = a.cmd(b"f6", b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms1)
    check(out[0] == b"* VANISHED (EARLIER) 2", "UID FETCH VANISHED lists the expunged UID: %r" % out)
    a.cmd(b"d2", b"STORE 3 +FLAGS.SILENT (\\Deleted)")
    out = a.cmd(b"x2", b"EXPUNGE")
    check(out[0] == b"* VANISHED 4" and code_value(out[-1:], b"HIGHESTMODSEQ"),
          "EXPUNGE under QRESYNC: VANISHED, HIGHESTMODSEQ in the OK: %r" % out)
    hms2 = code_value(out[-1:], b"HIGHESTMODSEQ")
    out = b.cmd(b"n", b"NOOP")
    check(b"* 3 EXPUNGE" in out, "the other session gets its EXPUNGE: %r" % out)
    b.cmd(b"lo", b"LOGOUT")

    # reconnect with QRESYNC: what vanished and what changed since hms0, in one SELECT
    c = raw_login(srv.port, b"bob")
    out = c.cmd(b"q0", b"SELECT cs (QRESYNC (%d %d))" % (uidvalidity, hms0))
    check(out[-1].startswith(b"q0 BAD"), "QRESYNC before ENABLE QRESYNC: BAD")
    c.cmd(b"e", b"ENABLE QRESYNC")
    out = c.cmd(b"q1", b"SELECT cs (QRESYNC (%d %d))" % (uidvalidity, hms0))
    check(b"* VANISHED (EARLIER) 2,4" in out, "QRESYNC SELECT: VANISHED (EARLIER): %r" % out)
    fetched = [l for l in out if b" FETCH " in l]
    check(len(fetched) == 2 and all(modseq_of(l) > hms0 for l in fetched) and
          code_value(out, b"HIGHESTMODSEQ") == hms2, "QRESYNC SELECT: changed messages with FLAGS and MODSEQ: %r" % out)
    out = c.cmd(b"q2", b"SELECT cs (QRESYNC (%d %d 3:5))" % (uidvalidity, hms0))
    check(out[0] == b"* OK [CLOSED] previous mailbox closed", "[CLOSED] when another SELECT closes the mailbox: %r" % out[0])
    check(b"* VANISHED (EARLIER) 4" in out and [l for l in out if b" FETCH " in l][0].startswith(b"* 2 FETCH (UID 3 ") and
          len([l for l in out if b" FETCH " in l]) == 1, "known UIDs 3:5 limit the answer: %r" % out)
    out = c.cmd(b"q3", b"EXAMINE cs (QRESYNC (%d %d 1:5 (1:3 1,3,5)))" % (uidvalidity, hms0))
    check(out[-1].startswith(b"q3 OK [READ-ONLY]") and b"* VANISHED (EARLIER) 2,4" in out,
          "sequence match data accepted: %r" % out)
    out = c.cmd(b"q4", b"SELECT cs (QRESYNC (%d %d))" % (uidvalidity + 1, hms0))
    check(not [l for l in out if b"VANISHED" in l or b" FETCH " in l] and out[-1].startswith(b"q4 OK"),
          "QRESYNC with a stale UIDVALIDITY: a plain SELECT: %r" % out)
    for bad in (b"SELECT cs (QRESYNC)", b"SELECT cs (QRESYNC (0 1))", b"SELECT cs (FOO)",
                b"SELECT cs (QRESYNC (1 1) QRESYNC (1 1))", b"SELECT cs (CONDSTORE"):
        out = c.cmd(b"qb", bad)
        check(out[-1].startswith(b"qb BAD"), "bad SELECT parameters %r: BAD" % bad)
    c.cmd(b"lo", b"LOGOUT")
    a.cmd(b"lo", b"LOGOUT")
    return uidvalidity, hms0


def test_condstore_after_restart(srv, uidvalidity, hms0):
    """Expunge history and MODSEQs survive a restart; when the history is gone (forgotten
    past its limit), VANISHED (EARLIER) falls back to every missing UID."""
    c = raw_login(srv.port, b"bob")
    c.cmd(b"e", b"ENABLE QRESYNC")
    out = c.cmd(b"q1", b"SELECT cs (QRESYNC (%d %d))" % (uidvalidity, hms0))
    check(b"* VANISHED (EARLIER) 2,4" in out, "expunge history after a restart: %r" % out)
    c.cmd(b"lo", b"LOGOUT")
    srv.stop()
    index = os.path.join(srv.work, "mail", "bob", "mailboxes", "cs", "lemongate.index")
    text = open(index).read().splitlines()
    hms = [l for l in text if l.startswith("highestmodseq ")][0].split()[1]
    text = [("expungedafter " + hms) if l.startswith("expungedafter ") else l for l in text
            if not l.startswith("x ")]
    open(index, "w").write("\n".join(text) + "\n")
    srv.start()
    c = raw_login(srv.port, b"bob")
    c.cmd(b"e", b"ENABLE QRESYNC")
    out = c.cmd(b"q2", b"SELECT cs (QRESYNC (%d %d))" % (uidvalidity, hms0))
    check(b"* VANISHED (EARLIER) 2,4" in out, "history forgotten: every missing UID: %r" % out)
    out = c.cmd(b"q3", b"SELECT cs (QRESYNC (%d %d 3:4))" % (uidvalidity, hms0))
    check(b"* VANISHED (EARLIER) 4" in out, "history forgotten, within the known UIDs: %r" % out)
    c.cmd(b"lo", b"LOGOUT")


def fetch_urls(r, tag, *urls):
    """URLFETCH; returns {url: bytes or None}."""
    r.send(tag + b" URLFETCH " + b" ".join(b'"' + u + b'"' for u in urls) + b"\r\n")
    out = {}
    line = r.line()
    if not line.startswith(b"* URLFETCH "):
        return {"error": line}
    rest = line[len(b"* URLFETCH "):]
    while True:
        assert rest.startswith(b'"'), rest
        end = rest.index(b'"', 1)
        url, rest = rest[1:end], rest[end + 2:]
        if rest.startswith(b"NIL"):
            out[url] = None
            rest = rest[4:]
        else:
            n = int(rest[1:rest.index(b"}")])
            while len(r.buf) < n:
                r.buf += r.sock.recv(65536)
            out[url], r.buf = r.buf[:n], r.buf[n:]
            rest = r.line()[1:]
        if not rest:
            break
    tagged = r.line()
    out["tagged"] = tagged
    return out


def test_catenate_urlauth(srv):
    """RFC 4469 CATENATE (TEXT and URL parts, sections) and RFC 4467 URLAUTH (GENURLAUTH,
    URLFETCH with submit+ and user+ enforced, RESETKEY, EXPIRE)."""
    a = raw_login(srv.port, b"alice")
    caps = a.cmd(b"c", b"CAPABILITY")[0]
    check(b" CATENATE" in caps and b" URLAUTH" in caps, "CATENATE and URLAUTH advertised: %r" % caps)
    a.cmd(b"cr", b"CREATE Drafts")
    orig = (b"From: bob@lg.test\r\nSubject: original\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
            b"second part\r\n--b--\r\n")
    out = a.cmd(b"ap", b"APPEND Drafts {%d+}\r\n" % len(orig) + orig)
    uidv, uid = [int(x) for x in out[-1].split(b"APPENDUID ")[1].split(b"]")[0].split()]
    base = b"imap://alice@test.lg/Drafts;UIDVALIDITY=%d/;UID=%d" % (uidv, uid)
    head = b"From: alice@lg.test\r\nSubject: Fwd: original\r\n\r\nSee below.\r\n"
    out = a.cmd(b"ca", b"APPEND Drafts (\\Draft $Forwarded) CATENATE (TEXT {%d+}\r\n" % len(head) + head +
                b' URL "' + base + b'/;SECTION=2" TEXT {2+}\r\n\r\n URL "/Drafts/;UID=%d/;SECTION=1")' % uid)
    check(out[-1].startswith(b"ca OK [APPENDUID"), "CATENATE with TEXT and URL parts: %r" % out)
    new_uid = int(out[-1].split(b"APPENDUID ")[1].split(b"]")[0].split()[1])
    expected = head + b"second part" + b"\r\n" + b"first part"
    a.cmd(b"sel", b"SELECT Drafts")
    out = a.cmd(b"fe", b"UID FETCH %d (BODY.PEEK[] FLAGS)" % new_uid)
    check(b"{%d}" % len(expected) in out[0] and expected in b"\r\n".join(out) and b"$Forwarded" in out[-2],
          "the assembled message is byte for byte the parts: %r" % out)
    out = a.cmd(b"cb", b'APPEND Drafts CATENATE (URL "' + base.replace(b"UID=%d" % uid, b"UID=999") + b'")')
    check(out[-1].startswith(b"cb NO [BADURL "), "CATENATE with a URL to no message: NO [BADURL]: %r" % out)
    out = a.cmd(b"cc", b'APPEND Drafts CATENATE (URL "imap://bob@test.lg/INBOX/;UID=1")')
    check(out[-1].startswith(b"cc NO [BADURL "), "CATENATE of another user's message without URLAUTH: %r" % out)
    out = a.cmd(b"cd", b'APPEND Drafts CATENATE (TEXT "quoted")')
    check(out[-1].startswith(b"cd BAD"), "CATENATE TEXT must be a literal: %r" % out)

    # URLAUTH: submit+alice for the submission server, user+bob for bob
    rump_submit = base + b";URLAUTH=submit+alice"
    rump_bob = base + b"/;SECTION=1;URLAUTH=user+bob"
    rump_expired = base + b";EXPIRE=2001-01-01T00:00:00Z;URLAUTH=anonymous"
    out = a.cmd(b"g", b'GENURLAUTH "' + rump_submit + b'" INTERNAL "' + rump_bob + b'" INTERNAL "' +
                rump_expired + b'" INTERNAL')
    check(out[0].startswith(b"* GENURLAUTH ") and out[-1].startswith(b"g OK"), "GENURLAUTH: %r" % out)
    urls = [u for u in out[0][len(b"* GENURLAUTH "):].split(b" ")]
    urls = [u.strip(b'"') for u in urls]
    check(len(urls) == 3 and urls[0].startswith(rump_submit + b":INTERNAL:") and
          len(urls[0]) - len(rump_submit) - 10 == 64, "URLs carry a 256-bit verifier: %r" % urls)
    out = a.cmd(b"g2", b'GENURLAUTH "' + rump_submit.replace(b"alice@", b"bob@") + b'" INTERNAL')
    check(out[-1].startswith(b"g2 NO"), "GENURLAUTH for another user's mailbox refused: %r" % out)
    out = a.cmd(b"g3", b'GENURLAUTH "' + rump_submit + b'" FOO')
    check(out[-1].startswith(b"g3 NO"), "unknown mechanism refused: %r" % out)
    out = a.cmd(b"g4", b'GENURLAUTH "' + base + b'" INTERNAL')
    check(out[-1].startswith(b"g4 NO [BADURL"), "a URL without ;URLAUTH= refused: %r" % out)

    sub = raw_login(srv.port, b"submitter")
    got = fetch_urls(sub, b"u1", urls[0], urls[1], urls[2])
    check(got.get(urls[0]) == orig, "the submit identity fetches the submit+ URL: %r" % got.get(urls[0]))
    check(got.get(urls[1]) is None, "but not the user+bob one")
    check(got.get(urls[2]) is None, "nor an expired one")
    check(got.get("tagged", b"").startswith(b"u1 OK"), "URLFETCH completes with NILs: %r" % got.get("tagged"))
    bob = raw_login(srv.port, b"bob")
    got = fetch_urls(bob, b"u2", urls[0], urls[1])
    check(got.get(urls[0]) is None, "bob may not fetch the submit+ URL")
    check(got.get(urls[1]) == b"first part", "bob fetches his user+bob URL (a section): %r" % got.get(urls[1]))
    tampered = urls[1][:-1] + (b"0" if urls[1][-1:] != b"0" else b"1")
    got = fetch_urls(bob, b"u3", tampered, b"imap://alice@test.lg/Drafts/;UID=1")
    check(got.get(tampered) is None and got.get(b"imap://alice@test.lg/Drafts/;UID=1") is None,
          "a tampered verifier, and a URL without URLAUTH, fetch nothing")
    out = a.cmd(b"rk", b"RESETKEY Drafts INTERNAL")
    check(out[-1].startswith(b"rk OK"), "RESETKEY mailbox: %r" % out)
    got = fetch_urls(sub, b"u4", urls[0])
    check(got.get(urls[0]) is None, "after RESETKEY the old URL is void")
    out = a.cmd(b"g5", b'GENURLAUTH "' + rump_submit + b'" INTERNAL')
    new = out[0][len(b"* GENURLAUTH "):].strip(b'"')
    check(new != urls[0] and fetch_urls(sub, b"u5", new).get(new) == orig,
          "a new key gives a new verifier that works: %r" % new)
    out = a.cmd(b"rk2", b"RESETKEY")
    check(out[-1].startswith(b"rk2 OK") and fetch_urls(sub, b"u6", new).get(new) is None,
          "RESETKEY without a mailbox voids every URL")
    out = a.cmd(b"rk3", b"RESETKEY Nonexistent")
    check(out[-1].startswith(b"rk3 NO"), "RESETKEY of no mailbox: NO")
    for r in (a, sub, bob):
        r.cmd(b"lo", b"LOGOUT")


def main():
    work = tempfile.mkdtemp(prefix="lg-imapd-test-")
    srv = None
    try:
        make_cert(work)
        os.mkdir(os.path.join(work, "mail"))
        srv = Server(work, "lemongate-imapd", ["-o", "submit-user=submitter"])
        srv.start()
        state = {}
        for t in (test_tls_and_auth, test_mailboxes, test_messages, test_two_sessions, test_many_mailboxes_idle, test_hostile,
                  test_restart, test_condstore_qresync, test_condstore_after_restart, test_catenate_urlauth):
            try:
                if t is test_condstore_qresync:
                    state["cs"] = t(srv)
                elif t is test_condstore_after_restart:
                    t(srv, *state["cs"])
                else:
                    t(srv)
            except Exception as e:  # a crash of one scenario is a failure, not the end
                import traceback
                traceback.print_exc()
                check(False, "%s raised %r" % (t.__name__, e))
        check(srv.alive(), "imapd still running at the end")
        srv.stop()
        test_out_of_descriptors(work)
    finally:
        if srv:
            srv.stop()
        if any_failed():
            sys.stdout.write(open(os.path.join(work, "lemongate-imapd.log")).read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
