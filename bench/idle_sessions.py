#!/usr/bin/env python3
"""make bench, part 3: many concurrent IDLE sessions on lemongate-imapd, on loopback.
N users (generated, one INBOX each holding one message) each log in, SELECT INBOX and IDLE,
first in plaintext, then after STARTTLS. Prints, for each: the time to bring all N sessions
into IDLE, the server's resident memory per idle session ((RSS with N idle - RSS before) / N),
and the time until a delivery dropped into 100 users' new/ (as submitd does) is pushed as
EXISTS to every one of them. Fails (exit 1) if a session cannot log in or idle, or a
pushed EXISTS is missing: the sessions must work, not only exist.
usage: idle_sessions.py BUILD_DIR [SESSIONS]   (default 10000)"""
import hashlib
import os
import random
import resource
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SESSIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
PUSHED = min(100, SESSIONS)
BATCH = 500  # connections opened at a time (the server's listen backlog is 4096)
TIMEOUT = 300


def rss_kib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Session:
    """One client, stepped by the event loop: greeting, [STARTTLS, handshake], LOGIN,
    SELECT, IDLE; then it waits for EXISTS."""

    # The selector keys sessions by descriptor, which a TLS wrap keeps: registered once.
    def __init__(self, user, port, tls_ctx):
        self.user = user
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.tls_ctx = tls_ctx
        self.buf = b""
        self.step = "greeting"
        self.pushed = False
        self.exists = None  # as SELECT reported it; a delivery makes it one more

    def send(self, data):
        self.sock.sendall(data)  # small commands: the socket buffer always has room

    def lines(self):
        while b"\r\n" in self.buf:
            line, self.buf = self.buf.split(b"\r\n", 1)
            yield line

    def on_readable(self):
        """Returns 'idle' when it reaches IDLE, 'error' on a failure, None otherwise."""
        if self.step == "handshake":
            try:
                self.sock.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return None
            self.step = "login"
            self.send(b"l LOGIN %s secret\r\n" % self.user)
            return None
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            return None
        if not data:
            return "error"
        self.buf += data
        for line in self.lines():
            result = self.on_line(line)
            if result:
                return result
        return None

    def on_line(self, line):
        if self.step == "greeting":
            if self.tls_ctx:
                self.step = "starttls"
                self.send(b"t STARTTLS\r\n")
            else:
                self.step = "login"
                self.send(b"l LOGIN %s secret\r\n" % self.user)
        elif self.step == "starttls" and line.startswith(b"t "):
            if not line.startswith(b"t OK"):
                return "error"
            self.sock = self.tls_ctx.wrap_socket(self.sock, do_handshake_on_connect=False)
            self.step = "handshake"
            self.on_readable()
        elif self.step == "login" and line.startswith(b"l "):
            if not line.startswith(b"l OK"):
                return "error"
            self.step = "select"
            self.send(b"s SELECT INBOX\r\n")
        elif self.step == "select" and line.startswith(b"* ") and line.endswith(b" EXISTS"):
            self.exists = int(line.split()[1])
        elif self.step == "select" and line.startswith(b"s "):
            if not line.startswith(b"s OK"):
                return "error"
            self.step = "idle"
            self.send(b"i IDLE\r\n")
        elif self.step == "idle" and line.startswith(b"+"):
            self.step = "idling"
            return "idle"
        elif self.step == "idling" and self.exists is not None and line == b"* %d EXISTS" % (self.exists + 1):
            self.pushed = True
            return "pushed"
        return None


def run_loop(sel, want, what):
    """Step sessions until WANT of them returned WHAT; False on an error or the timeout."""
    done = 0
    deadline = time.monotonic() + TIMEOUT
    while done < want:
        if time.monotonic() > deadline:
            print("idle_sessions: timed out with %d of %d %s" % (done, want, what))
            return False
        for key, _ in sel.select(1):
            s = key.data
            result = s.on_readable()
            # a TLS socket may hold decrypted bytes the selector cannot see
            while result is None and isinstance(s.sock, ssl.SSLSocket) and s.step != "handshake" \
                    and s.sock.pending():
                result = s.on_readable()
            if result == "error":
                print("idle_sessions: %s failed at %s" % (s.user.decode(), s.step))
                return False
            if result == what:
                done += 1
    return True


def measure(server, port, users, tls_ctx, label, work):
    sel = selectors.DefaultSelector()
    rss0 = rss_kib(server.pid)
    t0 = time.monotonic()
    sessions = []
    for start in range(0, len(users), BATCH):
        batch = [Session(u, port, tls_ctx) for u in users[start:start + BATCH]]
        for s in batch:
            sel.register(s.sock, selectors.EVENT_READ, s)
        sessions += batch
        if not run_loop(sel, len(batch), "idle"):
            return None
    setup = time.monotonic() - t0
    rss1 = rss_kib(server.pid)
    # deliveries dropped into new/ by another process, as submitd delivers
    chosen = random.Random(1).sample(sessions, PUSHED)
    t1 = time.monotonic()
    for s in chosen:
        box = os.path.join(work, "mail", s.user.decode(), "mailboxes", "INBOX")
        name = "bench.%s" % s.user.decode()
        with open(os.path.join(box, "tmp", name), "wb") as f:
            f.write(b"Subject: pushed\r\n\r\nto an idle session\r\n")
        os.rename(os.path.join(box, "tmp", name), os.path.join(box, "new", name))
    if not run_loop(sel, PUSHED, "pushed"):
        return None
    push = time.monotonic() - t1
    missing = [s for s in chosen if not s.pushed]
    for s in sessions:
        sel.unregister(s.sock)
        s.sock.close()
    sel.close()
    if missing:
        print("idle_sessions: %d deliveries not pushed" % len(missing))
        return None
    per_session = (rss1 - rss0) * 1024 / len(users)
    print("%-9s %6d sessions idle in %6.1f s   server RSS %7.1f MiB   %6.0f bytes/session   "
          "delivery to %d pushed in %5.3f s" % (label, len(users), setup, rss1 / 1024, per_session,
                                                PUSHED, push))
    return per_session


def start_server(work):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    log = open(os.path.join(work, "imapd.log"), "ab")
    server = subprocess.Popen([os.path.join(BUILD, "lemongate-imapd"), "-l", "127.0.0.1:%d" % port,
                               "-u", os.path.join(work, "users"), "-d", os.path.join(work, "mail"),
                               "-n", "bench.lg", "--tls-cert", os.path.join(work, "cert.pem"),
                               "--tls-key", os.path.join(work, "key.pem"), "--allow-plaintext-auth"],
                              stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                print("idle_sessions: imapd did not start: %s"
                      % open(log.name, errors="replace").read()[-500:])
                server.kill()
                server.wait()
                return None, None
            time.sleep(0.05)


def main():
    want_fds = SESSIONS + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want_fds:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want_fds, want_fds))
        except (ValueError, OSError):
            print("idle_sessions: need %d file descriptors, the hard limit is %d (run as root)"
                  % (want_fds, hard))
            return 1
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want_fds, hard))
    work = tempfile.mkdtemp(prefix="lg-idle-bench-")
    server = None
    try:
        users = [b"u%05d" % i for i in range(SESSIONS)]
        digest = hashlib.sha256(b"secret").hexdigest()
        with open(os.path.join(work, "users"), "w") as f:
            f.writelines("%s:sha256:%s\n" % (u.decode(), digest) for u in users)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "2", "-subj", "/CN=bench.lg",
                        "-keyout", os.path.join(work, "key.pem"), "-out", os.path.join(work, "cert.pem")],
                       check=True, capture_output=True)
        for u in users:  # one message in each INBOX: a mailbox the server must read
            box = os.path.join(work, "mail", u.decode(), "mailboxes", "INBOX")
            for d in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(box, d))
            with open(os.path.join(box, "new", "first"), "wb") as f:
                f.write(b"Subject: first\r\n\r\nhello\r\n")
        print("lemongate-imapd, %d concurrent IDLE sessions on loopback (one user and INBOX each;"
              " a fresh server for each mode):" % SESSIONS)
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        ok = True
        for label, ctx in (("plaintext", None), ("STARTTLS", tls)):
            server, port = start_server(work)
            if not server:
                ok = False
                break
            ok = measure(server, port, users, ctx, label, work) is not None
            server.terminate()
            rc = server.wait(60)
            server = None
            if rc != 0:
                print("idle_sessions: imapd exited %d" % rc)
                ok = False
            if not ok:
                break
        if not ok:
            sys.stdout.write(open(os.path.join(work, "imapd.log"), errors="replace").read()[-2000:])
        return 0 if ok else 1
    finally:
        if server:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
