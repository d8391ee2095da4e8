"""Shared pieces of the servers' functional tests: pass/fail counting, a server process on a
free loopback port (which must exit 0 on SIGTERM: under ASan, no leak and no error at exit),
a test certificate, and a line-level client for the exchanges client libraries cannot make."""
import os
import socket
import ssl
import subprocess
import sys
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
    def __init__(self, work, name="lemongate-imapd", extra=(), plaintext=False, fd_limit=None):
        self.work = work
        self.fd_limit = fd_limit
        self.name = name
        self.extra = list(extra)
        self.port = free_port()
        self.plaintext = plaintext
        self.proc = None

    def start(self):
        args = [os.path.join(BUILD, self.name), "-l", "127.0.0.1:%d" % self.port,
                "-u", USERS, "-d", os.path.join(self.work, "mail"), "-n", "test.lg",
                "--tls-cert", os.path.join(self.work, "cert.pem"),
                "--tls-key", os.path.join(self.work, "key.pem")] + self.extra
        if self.plaintext:
            args.append("--allow-plaintext-auth")
        self.log = open(os.path.join(self.work, self.name + ".log"), "ab")
        def limit():
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.fd_limit, self.fd_limit))
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log,
                                     preexec_fn=limit if self.fd_limit else None)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("%s exited: %s" % (self.name, open(self.log.name).read()))
                time.sleep(0.05)
        raise RuntimeError(self.name + " does not listen")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """Stop it with SIGTERM; it must exit 0 (under ASan: no leak, no error at exit)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            rc = self.proc.wait(20)
            check(rc == 0, "%s exited cleanly on SIGTERM (status %d)" % (self.name, rc))
        self.log.close()


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw:
    """A line-level client: send bytes, read until a tagged line."""

    def __init__(self, port, source=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                             source_address=(source, 0) if source else None)
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


class Smtp(Raw):
    """The same for SMTP: a reply is its lines up to the one without a dash."""

    def reply(self):
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return lines

    def cmd(self, text):
        self.send(text + b"\r\n")
        return self.reply()

    def starttls(self):
        out = self.cmd(b"STARTTLS")
        self.sock = tls_context().wrap_socket(self.sock)
        return out


def mailbox_messages(port, user, mailbox="INBOX"):
    """Every message in USER's MAILBOX, in UID order, read over STARTTLS with imaplib."""
    import imaplib
    m = imaplib.IMAP4("127.0.0.1", port)
    m.starttls(ssl_context=tls_context())
    m.login(user, "secret")
    m.select(mailbox)
    typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
    m.logout()
    return [d[1] for d in data if isinstance(d, tuple)]


def make_cert(work):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=test.lg", "-keyout", os.path.join(work, "key.pem"),
                    "-out", os.path.join(work, "cert.pem")], check=True, capture_output=True)


def summary():
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def any_failed():
    return failed > 0
