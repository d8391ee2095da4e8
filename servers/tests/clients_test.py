#!/usr/bin/env python3
"""The test servers driven by the real clients a mail administrator uses, and the same scripted
sessions run against Dovecot for comparison: curl (imap:// and smtp://), openssl s_client
(STARTTLS for IMAP and SMTP), swaks (with PIPELINING), msmtp and mbsync (a two-way sync:
download, a flag pushed up, an expunge pulled down, a new message uploaded), plus a raw IMAP
session of the lemonade commands. Each scenario asserts its own outcome on each target and
returns what it saw; the results where the RFCs define them must then be equal between
lemongate and Dovecot (dovecot-imapd and dovecot-submissiond from Debian, configured here on
loopback; its submission server relays to a small SMTP sink in this script).
usage: clients_test.py BUILD_DIR"""
import base64
import getpass
import imaplib
import os
import pwd
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

import mailtest
from mailtest import Raw, Server, Smtp, any_failed, check, free_port, mailbox_messages, summary, tls_context

USERS = mailtest.USERS
TIMEOUT = 60


def make_cert(work):
    """Named test.lg and localhost: mbsync checks the name it connects to even for a pinned
    certificate, and 'localhost' needs no resolver entry."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=test.lg", "-addext", "subjectAltName=DNS:test.lg,DNS:localhost",
                    "-keyout", os.path.join(work, "key.pem"), "-out", os.path.join(work, "cert.pem")],
                   check=True, capture_output=True)


def run(args, stdin=b"", env=None):
    p = subprocess.run(args, input=stdin, capture_output=True, timeout=TIMEOUT, env=env)
    return p.returncode, p.stdout, p.stderr


def imap_session(port, user="alice"):
    m = imaplib.IMAP4("127.0.0.1", port)
    m.starttls(ssl_context=tls_context())
    m.login(user, "secret")
    return m


# ---------------------------------------------------------------- targets

class Lemongate:
    name = "lemongate"

    def __init__(self, work):
        self.work = work
        os.mkdir(os.path.join(work, "mail"))
        self.imap = Server(work, "lemongate-imapd")
        self.imap.start()
        self.smtp = Server(work, "lemongate-submitd")
        self.smtp.start()
        self.imap_port, self.smtp_port = self.imap.port, self.smtp.port

    def delivered(self, user, marker):
        """The messages in USER's INBOX that hold MARKER: submitd delivers locally."""
        return [m for m in mailbox_messages(self.imap_port, user) if marker in m]

    def stop(self):
        self.smtp.stop()
        self.imap.stop()

    def logs(self):
        return [os.path.join(self.work, n + ".log") for n in ("lemongate-imapd", "lemongate-submitd")]


class SmtpSink(socketserver.ThreadingTCPServer):
    """Where Dovecot's submission server relays: accepts every message and keeps it."""
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), SinkHandler)
        self.messages = []  # (sender, recipients, data)
        self.lock = threading.Lock()


class SinkHandler(socketserver.StreamRequestHandler):
    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self):
        self.reply("220 sink.test ESMTP")
        sender, rcpts = None, []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                                 b"250-ENHANCEDSTATUSCODES\r\n250 SIZE 67108864\r\n")
            elif verb == b"MAIL":
                sender, rcpts = line[10:].strip(), []
                self.reply("250 2.1.0 ok")
            elif verb == b"RCPT":
                rcpts.append(line[8:].strip().split(b" ")[0].strip(b"<>").decode())
                self.reply("250 2.1.5 ok")
            elif verb == b"DATA":
                self.reply("354 go on")
                data = b""
                while True:
                    chunk = self.rfile.readline()
                    if not chunk or chunk == b".\r\n":
                        break
                    data += chunk[1:] if chunk.startswith(b".") else chunk
                with self.server.lock:
                    self.server.messages.append((sender, rcpts, data))
                self.reply("250 2.0.0 kept")
            elif verb == b"QUIT":
                self.reply("221 2.0.0 bye")
                return
            else:
                self.reply("250 2.0.0 ok")


DOVECOT_CONF = """\
base_dir = {work}/run
state_dir = {work}/state
log_path = {work}/dovecot.log
protocols = imap submission
listen = 127.0.0.1
ssl = required
ssl_cert = <{work}/cert.pem
ssl_key = <{work}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain
hostname = test.lg
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 0
passdb {{
  driver = passwd-file
  args = {work}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={work}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = {smtp_port}
  }}
}}
service anvil {{
  chroot =
}}
submission_relay_host = 127.0.0.1
submission_relay_port = {sink_port}
"""


class Dovecot:
    """Dovecot from Debian on loopback, with the testbed's users (its passwd-file reads our
    SHA-256 hashes as {SHA256.HEX}). As root, mail is handled as 'nobody'; otherwise as us."""
    name = "dovecot"

    def __init__(self, work):
        self.work = work
        self.sink = SmtpSink()
        threading.Thread(target=self.sink.serve_forever, daemon=True).start()
        for d in ("run", "state", "home"):
            os.mkdir(os.path.join(work, d))
        with open(USERS) as f, open(os.path.join(work, "passwd"), "w") as out:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    name, scheme, digest = line.strip().split(":")
                    out.write("%s:{SHA256.HEX}%s\n" % (name, digest))
        if os.getuid() == 0:
            mail_user, mail_group = "nobody", "nogroup"
            login_user, internal_user = "dovenull", "dovecot"
            os.chmod(work, 0o755)
            nobody = pwd.getpwnam("nobody")
            os.chown(os.path.join(work, "home"), nobody.pw_uid, nobody.pw_gid)
        else:
            me = getpass.getuser()
            mail_user = login_user = internal_user = me
            mail_group = os.getgid()
        self.imap_port, self.smtp_port = free_port(), free_port()
        conf = os.path.join(work, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(DOVECOT_CONF.format(work=work, login_user=login_user, internal_user=internal_user,
                                        mail_user=mail_user, mail_group=mail_group,
                                        imap_port=self.imap_port, smtp_port=self.smtp_port,
                                        sink_port=self.sink.server_address[1]))
        self.conf = conf
        subprocess.run(["dovecot", "-c", conf], check=True, timeout=TIMEOUT)
        for port in (self.imap_port, self.smtp_port):
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("dovecot does not listen on %d" % port)
                    time.sleep(0.05)

    def delivered(self, user, marker):
        with self.sink.lock:
            return [data for _, rcpts, data in self.sink.messages
                    if user + "@test.lg" in rcpts and marker in data]

    def stop(self):
        subprocess.run(["doveadm", "-c", self.conf, "stop"], capture_output=True, timeout=TIMEOUT)
        self.sink.shutdown()
        self.sink.server_close()

    def logs(self):
        return [os.path.join(self.work, "dovecot.log")]


# ---------------------------------------------------------------- scenarios

def curl_imap(t):
    """curl's imap:// URLs: APPEND by upload, LIST, SEARCH, FETCH by UID (RFC 5092 paths)."""
    base = "imap://127.0.0.1:%d/" % t.imap_port
    curl = ["curl", "-sS", "--ssl-reqd", "-k", "--user", "alice:secret"]
    msg = b"From: alice@test.lg\r\nSubject: curl upload\r\n\r\nsent by curl\r\n"
    upload = os.path.join(t.work, "upload.eml")  # curl APPENDs only what has a known size
    with open(upload, "wb") as f:
        f.write(msg)
    rc, _, err = run(curl + ["-T", upload, base + "INBOX"])
    check(rc == 0, "%s: curl APPEND: %r" % (t.name, err))
    rc, out, err = run(curl + [base])
    check(rc == 0 and b'"INBOX"' in out or b" INBOX" in out, "%s: curl LIST shows INBOX: %r %r" % (t.name, out, err))
    rc, search, err = run(curl + [base + "INBOX?SUBJECT%20curl"])
    check(rc == 0 and search.startswith(b"* SEARCH "), "%s: curl SEARCH: %r %r" % (t.name, search, err))
    number = search.split()[-1].decode() if search.startswith(b"* SEARCH ") else "0"
    rc, fetched, err = run(curl + [base + "INBOX;UID=" + number])
    check(rc == 0 and fetched == msg, "%s: curl FETCH by UID gives the upload byte for byte: %r" % (t.name, fetched))
    rc, _, err = run(["curl", "-sS", "--ssl-reqd", "-k", "--user", "alice:wrong", base])
    check(rc == 67, "%s: curl with a wrong password: login denied (67): %d %r" % (t.name, rc, err))
    return {"search": search.strip(), "fetch": fetched, "bad-login": rc}


def curl_smtp(t):
    msg = b"From: alice@test.lg\r\nTo: bob@test.lg\r\nSubject: curl smtp\r\n\r\n.dot first\r\nsent by curl\r\n"
    rc, _, err = run(["curl", "-sS", "--ssl-reqd", "-k", "--user", "alice:secret",
                      "--mail-from", "alice@test.lg", "--mail-rcpt", "bob@test.lg", "-T", "-",
                      "smtp://127.0.0.1:%d" % t.smtp_port], msg)
    check(rc == 0, "%s: curl smtp:// submission: %d %r" % (t.name, rc, err))
    got = t.delivered("bob", b"Subject: curl smtp")
    check(len(got) == 1 and got[0].endswith(msg), "%s: curl's message delivered as sent: %r" % (t.name, got))
    return {"rc": rc, "delivered": len(got)}


class Interactive:
    """A client program on a pipe, driven line by line: send, then read until a line matches."""

    def __init__(self, args):
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.timer = threading.Timer(TIMEOUT, self.proc.kill)
        self.timer.start()

    def send(self, line):
        self.proc.stdin.write(line + b"\r\n")
        self.proc.stdin.flush()

    def until(self, done):
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                return lines
            lines.append(line.rstrip(b"\r\n"))
            if done(lines[-1]):
                return lines

    def finish(self):
        self.proc.stdin.close()
        rest = self.proc.stdout.read()
        rc = self.proc.wait()
        self.timer.cancel()
        return rc, rest, self.proc.stderr.read()


def s_client_imap(t):
    c = Interactive(["openssl", "s_client", "-quiet", "-starttls", "imap",
                     "-connect", "127.0.0.1:%d" % t.imap_port])
    c.send(b"a LOGIN alice secret")
    login = c.until(lambda l: l.startswith(b"a "))
    c.send(b"b SELECT INBOX")
    select = c.until(lambda l: l.startswith(b"b "))
    c.send(b"c FETCH 1 (FLAGS RFC822.SIZE)")
    fetch = c.until(lambda l: l.startswith(b"c "))
    c.send(b"d LOGOUT")
    logout = c.until(lambda l: l.startswith(b"d "))
    rc, _, err = c.finish()
    check(login and login[-1].startswith(b"a OK"), "%s: s_client: LOGIN after STARTTLS: %r" % (t.name, login))
    exists = [l for l in select if l.endswith(b" EXISTS")]
    check(select and select[-1].startswith(b"b OK [READ-WRITE]") and len(exists) == 1,
          "%s: s_client: SELECT: %r" % (t.name, select))
    sizes = [l for l in fetch if l.startswith(b"* 1 FETCH")]
    check(len(sizes) == 1 and b"RFC822.SIZE" in sizes[0], "%s: s_client: FETCH: %r" % (t.name, fetch))
    check(any(l.startswith(b"* BYE") for l in logout) and logout[-1].startswith(b"d OK"),
          "%s: s_client: LOGOUT: %r" % (t.name, logout))
    check(rc == 0, "%s: s_client ends cleanly (the server sent close_notify): %d %r" % (t.name, rc, err[-300:]))
    return {"exists": exists, "size": sizes[0].split(b"RFC822.SIZE ")[1].split(b")")[0].split(b" ")[0] if sizes else None}


def smtp_until_final(line):
    return len(line) >= 4 and line[3:4] == b" "


def s_client_smtp(t):
    c = Interactive(["openssl", "s_client", "-quiet", "-starttls", "smtp",
                     "-connect", "127.0.0.1:%d" % t.smtp_port])
    codes = []
    c.send(b"EHLO client.test")
    ehlo = c.until(smtp_until_final)
    steps = [b"AUTH PLAIN " + base64.b64encode(b"\0alice\0secret"), b"MAIL FROM:<alice@test.lg>",
             b"RCPT TO:<bob@test.lg>", b"DATA",
             b"Subject: s_client\r\n\r\n..two dots, one kept\r\n.", b"QUIT"]
    for step in steps:
        c.send(step)
        reply = c.until(smtp_until_final)
        codes.append(reply[-1][:3] if reply else b"")
    rc, _, err = c.finish()
    check(any(b"AUTH" in l and b"PLAIN" in l for l in ehlo), "%s: s_client: AUTH PLAIN after TLS: %r" % (t.name, ehlo))
    check(codes == [b"235", b"250", b"250", b"354", b"250", b"221"], "%s: s_client SMTP replies: %r" % (t.name, codes))
    got = t.delivered("bob", b"Subject: s_client")
    check(len(got) == 1 and got[0].endswith(b"\r\n.two dots, one kept\r\n"),
          "%s: s_client's message delivered, dot unstuffed: %r" % (t.name, got))
    check(rc == 0, "%s: s_client SMTP ends cleanly: %d %r" % (t.name, rc, err[-300:]))
    return {"codes": codes}


def swaks(t):
    base = ["swaks", "--server", "127.0.0.1", "--port", str(t.smtp_port), "--tls",
            "--from", "alice@test.lg", "--to", "bob@test.lg", "--helo", "client.test"]
    rc, out, err = run(base + ["--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "secret",
                               "--pipeline", "--header", "Subject: swaks pipelined", "--body", "from swaks"])
    check(rc == 0, "%s: swaks with PIPELINING: %d %r" % (t.name, rc, out[-600:]))
    got = t.delivered("bob", b"Subject: swaks pipelined")
    check(len(got) == 1 and b"\r\n\r\nfrom swaks\r\n" in got[0], "%s: swaks's message delivered: %r" % (t.name, got))
    rc_noauth, out, _ = run(base + ["--header", "Subject: swaks without auth"])
    check(rc_noauth != 0 and not t.delivered("bob", b"Subject: swaks without auth"),
          "%s: swaks without AUTH is refused: %d %r" % (t.name, rc_noauth, out[-400:]))
    rc_bad, out, _ = run(base + ["--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wrong"])
    check(rc_bad == 28, "%s: swaks with a wrong password: auth failure (28): %d" % (t.name, rc_bad))
    return {"rc": rc, "noauth-refused": rc_noauth != 0, "badauth": rc_bad}


def msmtp(t):
    base = ["msmtp", "--host=127.0.0.1", "--port=%d" % t.smtp_port, "--tls=on", "--tls-starttls=on",
            "--tls-certcheck=off", "--auth=plain", "--user=alice", "--from=alice@test.lg",
            "--domain=client.test"]
    msg = b"From: alice@test.lg\r\nTo: bob@test.lg\r\nSubject: msmtp\r\n\r\nfrom msmtp\r\n"
    rc, _, err = run(base + ["--passwordeval=echo secret", "bob@test.lg"], msg)
    check(rc == 0, "%s: msmtp: %d %r" % (t.name, rc, err))
    got = t.delivered("bob", b"Subject: msmtp")
    check(len(got) == 1 and got[0].endswith(b"\r\n\r\nfrom msmtp\r\n"), "%s: msmtp's message delivered: %r" % (t.name, got))
    rc_bad, _, err = run(base + ["--passwordeval=echo wrong", "bob@test.lg"], msg)
    check(rc_bad == 77, "%s: msmtp with a wrong password: EX_NOPERM (77): %d %r" % (t.name, rc_bad, err))
    return {"rc": rc, "badauth": rc_bad}


MBSYNCRC = """\
IMAPAccount far
Host localhost
Port {port}
User alice
Pass secret
SSLType STARTTLS
CertificateFile {work}/cert.pem

IMAPStore far
Account far

MaildirStore near
Path {near}/
Inbox {near}/INBOX
SubFolders Verbatim

Channel sync
Far :far:
Near :near:
Patterns INBOX
Create Both
Expunge Both
SyncState *
"""


def near_files(near):
    out = {}
    for sub in ("cur", "new"):
        d = os.path.join(near, "INBOX", sub)
        for name in os.listdir(d) if os.path.isdir(d) else ():
            out[os.path.join(d, name)] = open(os.path.join(d, name), "rb").read()
    return out


def as_stored_by_mbsync(message):
    """mbsync keeps Maildir files with bare LF and marks uploads with an X-TUID header."""
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    return b"\r\n".join(l for l in lines if not l.startswith(b"X-TUID: "))


def mbsync(t):
    """A two-way sync, the way a laptop keeps a copy: down, a flag up, an expunge down, a new
    message up. mbsync uses UIDPLUS, LITERAL+ and UID FETCH/STORE/SEARCH ranges."""
    near = os.path.join(t.work, "near")
    os.mkdir(near)
    rcfile = os.path.join(t.work, "mbsyncrc")
    with open(rcfile, "w") as f:
        f.write(MBSYNCRC.format(port=t.imap_port, work=t.work, near=near))
    m = imap_session(t.imap_port)
    for i in range(3):
        m.append("INBOX", None, None, b"Subject: mbsync %d\r\n\r\nbody %d\r\n" % (i, i))
    m.logout()
    sync = ["mbsync", "-c", rcfile, "-a"]
    rc, out, err = run(sync)
    server = mailbox_messages(t.imap_port, "alice")
    local = near_files(near)
    check(rc == 0 and sorted(map(as_stored_by_mbsync, server)) == sorted(map(as_stored_by_mbsync, local.values())),
          "%s: mbsync pulls every message byte for byte: %d %r %d/%d" % (t.name, rc, err[-300:], len(local), len(server)))
    # flag one message locally (Maildir info ":2,F"), push it
    flagged = [p for p, body in local.items() if b"Subject: mbsync 1" in body]
    if flagged:
        path = flagged[0]
        base = path.split(":2,")[0]
        os.rename(path, base + ":2," + "".join(sorted(set(path.split(":2,")[1] if ":2," in path else "") | {"F"})))
    rc2, _, err = run(sync)
    m = imap_session(t.imap_port)
    m.select("INBOX")
    typ, data = m.search(None, "FLAGGED")
    flagged_server = data[0].split()
    typ, data = m.fetch(flagged_server[0] if flagged_server else b"1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    check(rc2 == 0 and len(flagged_server) == 1 and b"mbsync 1" in data[0][1],
          "%s: mbsync pushes a local flag: %d %r %r" % (t.name, rc2, err[-300:], data))
    # expunge one on the server, pull the expunge
    typ, data = m.search(None, "SUBJECT", '"mbsync 2"')
    m.store(data[0].split()[0], "+FLAGS", "\\Deleted")
    m.expunge()
    m.logout()
    rc3, _, err = run(sync)
    local = near_files(near)
    check(rc3 == 0 and not any(b"Subject: mbsync 2" in b for b in local.values()) and len(local) == len(server) - 1,
          "%s: mbsync pulls an expunge: %d %r %d" % (t.name, rc3, err[-300:], len(local)))
    # a new local message goes up (APPEND, with its UID from APPENDUID)
    new = os.path.join(near, "INBOX", "new", "1700000000.1_1.client")
    with open(new, "wb") as f:
        f.write(b"Subject: written locally\r\n\r\nfrom the laptop\r\n")
    rc4, _, err = run(sync)
    server = mailbox_messages(t.imap_port, "alice")
    check(rc4 == 0 and b"Subject: written locally\r\n\r\nfrom the laptop\r\n" in map(as_stored_by_mbsync, server),
          "%s: mbsync uploads a new local message: %d %r" % (t.name, rc4, err[-300:]))
    rc5, out5, err = run(["mbsync", "-c", rcfile, "-a", "-V"])
    check(rc5 == 0 and len(near_files(near)) == len(server),
          "%s: a sync with nothing to do changes nothing: %d %r" % (t.name, rc5, err[-300:]))
    return {"rc": [rc, rc2, rc3, rc4, rc5], "server": len(server), "near": len(near_files(near))}


def raw_lemonade(t):
    """A scripted session of the profile's IMAP commands; what it returns is what RFC 3501,
    4315, 4469, 5162/7162, 2177 and 5161 define, so it must be the same on both servers."""
    a = Raw(t.imap_port)
    a.starttls()
    seen = {}
    out = a.cmd(b"l", b"LOGIN bob secret")
    check(out[-1].startswith(b"l OK"), "%s: raw LOGIN: %r" % (t.name, out))
    out = a.cmd(b"e", b"ENABLE QRESYNC")
    seen["enabled"] = [l for l in out if l.startswith(b"* ENABLED")]
    out = a.cmd(b"c", b"CREATE lemonade")
    seen["create"] = out[-1].split()[1]
    a.send(b"p APPEND lemonade (\\Seen) {22+}\r\nSubject: one\r\n\r\nbody\r\n\r\n")
    out = a.until(b"p")
    seen["appenduid"] = b"[APPENDUID " in out[-1]
    out = a.cmd(b"q", b"APPEND lemonade CATENATE (TEXT {14+}\r\nSubject: two\r\n TEXT {8+}\r\n\r\nbody\r\n)")
    seen["catenate"] = out[-1].split()[1]
    out = a.cmd(b"s", b"SELECT lemonade (CONDSTORE)")
    seen["select"] = sorted(l for l in out if l.endswith(b" EXISTS") or l.startswith(b"* OK [UIDNEXT"))
    seen["highestmodseq"] = any(l.startswith(b"* OK [HIGHESTMODSEQ ") for l in out)
    out = a.cmd(b"f", b"UID FETCH 1:* (FLAGS BODY.PEEK[])")
    seen["fetch"] = [l for l in out if not l.startswith(b"f ")]
    out = a.cmd(b"st", b"STORE 2 +FLAGS.SILENT (\\Flagged $Forwarded)")
    # which data items a FETCH carries beyond those asked for, and a FLAGS update for a new
    # keyword, are the server's choice (RFC 3501 7.4.2, 7.2.6): compare the messages reported
    seen["store"] = (out[-1].split()[1], [l.split(b" FETCH ")[0] for l in out if b" FETCH " in l])
    out = a.cmd(b"se", b"UID SEARCH FLAGGED")
    seen["search"] = [l for l in out if l.startswith(b"* SEARCH")]
    out = a.cmd(b"cp", b"UID COPY 1:2 INBOX")
    seen["copyuid"] = b"[COPYUID " in out[-1]
    out = a.cmd(b"x", b"UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    out = a.cmd(b"y", b"EXPUNGE")
    # a server may add "* n RECENT" (RFC 3501 7.3.2); what was expunged is the defined part
    seen["expunge"] = [l for l in out if l.startswith(b"* VANISHED") or l.endswith(b" EXPUNGE")]
    # IDLE: another session's APPEND shows up while idling (RFC 2177)
    a.send(b"i IDLE\r\n")
    cont = a.line()
    other = imap_session(t.imap_port, "bob")
    other.append("lemonade", None, None, b"Subject: three\r\n\r\nbody\r\n")
    other.logout()
    pushed = a.line()
    a.send(b"DONE\r\n")
    done = a.until(b"i")
    seen["idle"] = (cont[:1], pushed, done[-1].split()[1])
    # wrong input: a bad sequence set, an unknown command, a literal too big to accept
    seen["bad-set"] = a.cmd(b"b1", b"FETCH 0:x FLAGS")[-1].split()[1]
    seen["unknown"] = a.cmd(b"b2", b"FROBNICATE")[-1].split()[1]
    seen["logout"] = a.cmd(b"z", b"LOGOUT")[-1].split()[1]
    a.close()
    expected = {
        "enabled": [b"* ENABLED QRESYNC"], "create": b"OK", "appenduid": True, "catenate": b"OK",
        "select": [b"* 2 EXISTS", b"* OK [UIDNEXT 3] Predicted next UID"],
        "highestmodseq": True, "search": [b"* SEARCH 2"], "copyuid": True,
        "expunge": [b"* VANISHED 1"], "bad-set": b"BAD", "unknown": b"BAD", "logout": b"OK",
    }
    for key, want in expected.items():
        got = seen[key]
        if key == "select":  # the text after a response code is the server's own
            got = [l.split(b"]")[0] + b"]" if l.startswith(b"* OK") else l for l in got]
            want = [l.split(b"]")[0] + b"]" if l.startswith(b"* OK") else l for l in want]
        check(got == want, "%s: raw %s: %r, expected %r" % (t.name, key, got, want))
    fetched = b"\n".join(seen["fetch"])
    check(b"Subject: one\n\nbody\n" in fetched and b"Subject: two\n\nbody\n" in fetched,
          "%s: raw: APPEND and CATENATE stored the bytes: %r" % (t.name, fetched))
    check(seen["idle"][0] == b"+" and seen["idle"][1] == b"* 2 EXISTS" and seen["idle"][2] == b"OK",
          "%s: raw IDLE: %r" % (t.name, seen["idle"]))
    seen["select"] = [l.split(b"]")[0] for l in seen["select"]]
    # the literals: a server may add MODSEQ once CONDSTORE is on, or not (RFC 3501 7.4.2)
    seen["fetch"] = [l for l in seen["fetch"] if b"FETCH" not in l and not l.endswith(b")")]
    return seen


def raw_submission(t):
    """A scripted Submission session: what RFC 6409, 4954, 2920, 3030, 3207 and 5321 define.
    The reply texts, the extensions that depend on a server's relay (DSN, BURL, BINARYMIME),
    and the exact code among those the RFC leaves open (500 or 502 for an unknown verb) are
    the servers' own; the classes of replies and what is delivered are compared."""
    # from another loopback address: Dovecot treats a client whose address equals its own as
    # secure and would allow AUTH before TLS, which is its policy, not the RFC's
    s = Smtp(t.smtp_port, source="127.0.0.2")
    seen = {"greeting": s.greeting[:4]}
    before = s.cmd(b"EHLO client.test")
    seen["before-tls"] = (b"250-STARTTLS" in before or b"250 STARTTLS" in before,
                          any(l[4:].startswith(b"AUTH") for l in before))
    seen["mail-before-auth"] = s.cmd(b"MAIL FROM:<alice@test.lg>")[0][:1]
    seen["auth-before-tls"] = s.cmd(b"AUTH PLAIN " + base64.b64encode(b"\0alice\0secret"))[0][:1]
    out = s.cmd(b"STARTTLS")
    seen["starttls"] = out[0][:3]
    s.sock = tls_context().wrap_socket(s.sock)
    after = s.cmd(b"EHLO client.test")
    keywords = {l[4:].split(b" ")[0].upper() for l in after[1:]}
    seen["after-tls"] = sorted(keywords & {b"PIPELINING", b"8BITMIME", b"CHUNKING", b"ENHANCEDSTATUSCODES",
                                           b"SIZE", b"AUTH", b"STARTTLS"})
    seen["auth"] = s.cmd(b"AUTH PLAIN " + base64.b64encode(b"\0alice\0secret"))[0][:3]
    seen["rcpt-first"] = s.cmd(b"RCPT TO:<bob@test.lg>")[0][:3]
    seen["data-first"] = s.cmd(b"DATA")[0][:3]
    seen["unknown-verb"] = s.cmd(b"FROBNICATE now")[0][:1]
    seen["bad-mail"] = s.cmd(b"MAIL FROM:alice")[0][:1]
    body = b"Subject: raw chunks\r\n\r\nfirst chunk,\r\nsecond chunk\r\n"
    first, second = body[:25], body[25:]
    # one write: a pipelined transaction with two BDAT chunks (RFC 2920, RFC 3030)
    s.send(b"MAIL FROM:<alice@test.lg>\r\nRCPT TO:<bob@test.lg>\r\nBDAT %d\r\n" % len(first) + first +
           b"BDAT %d LAST\r\n" % len(second) + second + b"NOOP\r\n")
    seen["pipelined"] = [s.reply()[-1][:3] for _ in range(5)]
    seen["quit"] = s.cmd(b"QUIT")[0][:3]
    s.close()
    got = t.delivered("bob", b"Subject: raw chunks")
    seen["delivered"] = len(got) == 1 and got[0].endswith(body)
    expected = {"greeting": b"220 ", "before-tls": (True, False), "mail-before-auth": b"5", "auth-before-tls": b"5",
                "starttls": b"220",
                "after-tls": [b"8BITMIME", b"AUTH", b"CHUNKING", b"ENHANCEDSTATUSCODES", b"PIPELINING", b"SIZE"],
                "auth": b"235", "rcpt-first": b"503", "data-first": b"503", "unknown-verb": b"5",
                "bad-mail": b"5", "pipelined": [b"250"] * 5, "quit": b"221", "delivered": True}
    for key, want in expected.items():
        check(seen[key] == want, "%s: raw submission %s: %r, expected %r" % (t.name, key, seen[key], want))
    return seen


SCENARIOS = (curl_imap, curl_smtp, s_client_imap, s_client_smtp, swaks, msmtp, mbsync, raw_lemonade,
             raw_submission)


def run_target(cls, work):
    results = {}
    target = None
    try:
        target = cls(work)
        for scenario in SCENARIOS:
            try:
                results[scenario.__name__] = scenario(target)
            except Exception as e:  # one scenario's crash is a failure, not the end
                import traceback
                traceback.print_exc()
                check(False, "%s: %s raised %r" % (cls.name, scenario.__name__, e))
    except Exception as e:
        check(False, "%s: could not start: %r" % (cls.name, e))
    finally:
        if target:
            target.stop()
            if any_failed():
                for log in target.logs():
                    if os.path.exists(log):
                        sys.stdout.write("--- %s\n%s\n" % (log, open(log, errors="replace").read()[-2500:]))
    return results


def main():
    missing = [p for p in ("curl", "openssl", "swaks", "msmtp", "mbsync", "dovecot", "doveadm")
               if not shutil.which(p) and not os.path.exists("/usr/sbin/" + p)]
    check(not missing, "the clients and Dovecot are installed (scripts/setup.sh): missing %s" % missing)
    if missing:
        return summary()
    os.environ["PATH"] += ":/usr/sbin"
    all_results = {}
    for cls in (Lemongate, Dovecot):
        work = tempfile.mkdtemp(prefix="lg-clients-%s-" % cls.name)
        try:
            make_cert(work)
            all_results[cls.name] = run_target(cls, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    ours, theirs = all_results.get("lemongate", {}), all_results.get("dovecot", {})
    for scenario in SCENARIOS:
        name = scenario.__name__
        check(name in ours and name in theirs and ours[name] == theirs[name],
              "%s: lemongate and Dovecot agree:\n  lemongate %r\n  dovecot   %r"
              % (name, ours.get(name), theirs.get(name)))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
