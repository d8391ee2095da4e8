#!/usr/bin/env bash
# Byte-for-byte transparency (L5383-6a, 6c, N5382-R6, F2979-SMTP): both sides of the gateway are
# captured while IMAP (STARTTLS, IDLE, CATENATE with literals and LITERAL+, a binary literal,
# COMPRESS=DEFLATE, an unknown capability and an unknown command), Submission (PIPELINING, BURL,
# BDAT, an unknown EHLO keyword, an unknown verb, STARTTLS) and SMTP on 25 sessions cross it;
# each TCP stream is reassembled on both sides and compared byte for byte after NAT. Any
# difference fails and prints the first differing bytes. The comparison itself is checked to
# catch a one-byte change. Root only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

"$LGTB" up >/dev/null || { fail "lgtb up"; tb_finish; exit 1; }
"$LGTB" gateway start >/dev/null || fail "gateway start"

cat >"$TB_TMP/tool.py" <<'PY'
# capture IFACE OUT STOPFILE: TCP frames to or from ports 143/587/25, until STOPFILE appears.
# compare A B: reassemble every stream of both captures, pair them by server port, compare.
import os, socket, struct, sys, time
PORTS = (143, 587, 25)

def capture(iface, out, stop):
    # ETH_P_ALL: a socket bound to one protocol sees only what comes in, not what goes out
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0)); s.settimeout(0.2)
    open(out + ".ready", "w").close()
    with open(out, "wb") as f:
        while not os.path.exists(stop):
            try:
                frame = s.recv(70000)
            except socket.timeout:
                continue
            ip = frame[14:]
            if frame[12:14] != b"\x08\x00" or len(ip) < 40 or ip[9] != 6:
                continue
            ihl = (ip[0] & 15) * 4
            sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
            if sport in PORTS or dport in PORTS:
                f.write(struct.pack("!I", len(ip)) + ip)

def streams(path):
    """{(server port, 'c2s'|'s2c'): bytes}: the payload of each direction, in sequence order."""
    segs = {}
    data = open(path, "rb").read()
    i = 0
    while i < len(data):
        n = struct.unpack("!I", data[i:i + 4])[0]; ip = data[i + 4:i + 4 + n]; i += 4 + n
        ihl = (ip[0] & 15) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        doff = (tcp[12] >> 4) * 4
        flags = tcp[13]
        key = (dport, "c2s") if dport in PORTS else (sport, "s2c")
        d = segs.setdefault(key, {"isn": None, "parts": {}})
        if flags & 2:
            d["isn"] = (seq + 1) & 0xffffffff
        payload = tcp[doff:]
        if payload:
            d["parts"][seq] = payload
    out = {}
    for key, d in segs.items():
        if d["isn"] is None:
            continue
        buf = bytearray()
        for seq in sorted(d["parts"], key=lambda q: (q - d["isn"]) & 0xffffffff):
            off = (seq - d["isn"]) & 0xffffffff
            p = d["parts"][seq]
            if off > len(buf):
                buf += b"\0" * (off - len(buf))  # a hole: shows as a difference
            buf[off:off + len(p)] = p
        out[key] = bytes(buf)
    return out

def compare(a, b):
    sa, sb = streams(a), streams(b)
    bad = 0
    for key in sorted(set(sa) | set(sb)):
        x, y = sa.get(key), sb.get(key)
        if x is None or y is None:
            print("MISSING %s:%s on one side" % key); bad += 1; continue
        if x != y:
            k = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
            print("DIFF %s:%s at byte %d (%d vs %d bytes): %r vs %r" % (key[0], key[1], k, len(x), len(y), x[k:k + 24], y[k:k + 24]))
            bad += 1
        else:
            print("SAME %s:%s %d bytes" % (key[0], key[1], len(x)))
    return bad

if sys.argv[1] == "capture":
    capture(sys.argv[2], sys.argv[3], sys.argv[4])
elif sys.argv[1] == "compare":
    sys.exit(1 if compare(sys.argv[2], sys.argv[3]) else 0)
elif sys.argv[1] == "corrupt":  # a copy of capture A with one payload byte changed
    data = bytearray(open(sys.argv[2], "rb").read())
    i = 0
    while i < len(data):
        n = struct.unpack("!I", data[i:i + 4])[0]; ip = data[i + 4:i + 4 + n]
        ihl = (ip[0] & 15) * 4; doff = (ip[ihl + 12] >> 4) * 4
        if n > ihl + doff + 10:
            data[i + 4 + ihl + doff + 5] ^= 0x20
            break
        i += 4 + n
    open(sys.argv[3], "wb").write(bytes(data))
PY

# The servers: one small server for the three ports, speaking enough of each protocol for the
# client below; after STARTTLS or COMPRESS it echoes raw bytes, as the real thing would carry
# TLS or DEFLATE bytes the gateway must not look into.
in_server /usr/bin/python3 - <<'PY' &
import socket, threading
def imap(c):
    f = c.makefile("rwb")
    f.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS IDLE LITERAL+ CATENATE BINARY COMPRESS=DEFLATE XUNKNOWN-EXT AUTH=PLAIN] hi\r\n"); f.flush()
    while True:
        line = f.readline()
        if not line:
            return
        parts = line.split(b" ")
        tag, cmd = parts[0], (parts[1].strip().upper() if len(parts) > 1 else b"")
        if line.rstrip().endswith(b"}") and b"+}" not in line:
            f.write(b"+ go ahead\r\n"); f.flush()
            n = int(line.rstrip()[line.rstrip().rindex(b"{") + 1:-1].lstrip(b"~"))
            f.read(n); f.readline()
            f.write(tag + b" OK APPEND done\r\n"); f.flush(); continue
        if line.rstrip().endswith(b"+}"):
            n = int(line.rstrip()[line.rstrip().rindex(b"{") + 1:-2]); f.read(n); f.readline()
            f.write(tag + b" OK APPEND done\r\n"); f.flush(); continue
        if tag.strip().upper() == b"DONE":
            f.write(b"i1 OK IDLE done\r\n")
        elif cmd == b"IDLE":
            f.write(b"+ idling\r\n* 5 EXISTS\r\n")
        elif cmd in (b"STARTTLS", b"COMPRESS"):
            f.write(tag + b" OK go\r\n"); f.flush()
            while True:
                b = c.recv(4096)
                if not b:
                    return
                c.sendall(b)
        elif cmd == b"XFROBNICATE":
            f.write(tag + b" BAD unknown command\r\n")
        else:
            f.write(tag + b" OK done\r\n")
        f.flush()
def smtp(c):
    f = c.makefile("rwb")
    f.write(b"220 server ESMTP\r\n"); f.flush()
    while True:
        line = f.readline()
        if not line:
            return
        verb = line.split(b" ")[0].strip().upper()
        if verb == b"EHLO":
            f.write(b"250-server\r\n250-PIPELINING\r\n250-BURL imap\r\n250-CHUNKING\r\n250-XLEMON now\r\n250 STARTTLS\r\n")
        elif verb == b"BDAT":
            n = int(line.split(b" ")[1]); f.read(n); f.write(b"250 2.0.0 chunk\r\n")
        elif verb == b"DATA":
            f.write(b"354 go\r\n"); f.flush()
            while f.readline() not in (b".\r\n", b""):
                pass
            f.write(b"250 2.0.0 queued\r\n")
        elif verb == b"STARTTLS":
            f.write(b"220 go\r\n"); f.flush()
            while True:
                b = c.recv(4096)
                if not b:
                    return
                c.sendall(b)
        elif verb == b"XFROB":
            f.write(b"500 5.5.2 unknown verb\r\n")
        elif verb == b"QUIT":
            f.write(b"221 bye\r\n"); f.flush(); return
        else:
            f.write(b"250 2.0.0 ok\r\n")
        f.flush()
def quietly(fn, c):
    try:
        fn(c)
    except OSError:
        pass  # the client hung up: its session is over
def serve(port, fn):
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("198.51.100.2", port)); ls.listen(8); ls.settimeout(60)
    while True:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            return
        threading.Thread(target=quietly, args=(fn, c), daemon=True).start()
for port, fn in ((143, imap), (587, smtp), (25, smtp)):
    threading.Thread(target=serve, args=(port, fn), daemon=True).start()
import time; time.sleep(60)
PY
disown
wait_until 5 bash -c "ip netns exec lg-server ss -Hltn | grep -q ':25 '" || fail "servers listen"

in_client /usr/bin/python3 "$TB_TMP/tool.py" capture eth0 "$TB_TMP/client.cap" "$TB_TMP/stop" &
cap1=$!
in_server /usr/bin/python3 "$TB_TMP/tool.py" capture eth0 "$TB_TMP/server.cap" "$TB_TMP/stop" &
cap2=$!
wait_until 5 test -e "$TB_TMP/client.cap.ready" -a -e "$TB_TMP/server.cap.ready" || fail "captures ready"

in_client /usr/bin/python3 - <<'PY' >"$TB_TMP/sessions.out" 2>&1
import os, socket, zlib
def conv(port):
    s = socket.create_connection(("198.51.100.2", port), timeout=5)
    return s, s.makefile("rwb")
def line(f):
    return f.readline()
s, f = conv(143); line(f)
for cmd in (b"a1 LOGIN alice secret\r\n", b"a2 XFROBNICATE now\r\n", b"a3 ENABLE XUNKNOWN-EXT\r\n"):
    f.write(cmd); f.flush(); line(f)
f.write(b"a4 APPEND INBOX (CATENATE (TEXT {14}\r\n"); f.flush(); line(f)
f.write(b"Subject: hi\r\n\r\n))\r\n"); f.flush(); line(f)
f.write(b"a5 APPEND INBOX {13+}\r\nb1 STARTTLS\r\n\r\n"); f.flush(); line(f)
blob = bytes(range(256))
f.write(b"a6 APPEND INBOX ~{256}\r\n"); f.flush(); line(f)
f.write(blob + b"\r\n"); f.flush(); line(f)
f.write(b"i1 IDLE\r\n"); f.flush(); line(f); line(f)
f.write(b"DONE\r\n"); f.flush(); line(f)
f.write(b"c1 COMPRESS DEFLATE\r\n"); f.flush(); line(f)
z = zlib.compressobj(wbits=-15).compress(b"x1 NOOP\r\n" * 50) + zlib.compressobj(wbits=-15).flush(zlib.Z_SYNC_FLUSH)
f.write(z); f.flush(); got = b""
while len(got) < len(z):
    got += s.recv(4096)
s.close()
print("imap done")
for port in (587, 25):
    s, f = conv(port); line(f)
    f.write(b"EHLO client.lg.test\r\n"); f.flush()
    while line(f)[3:4] == b"-":
        pass
    # pipelined: three commands in one write, three answers
    f.write(b"MAIL FROM:<alice@lg.test>\r\nRCPT TO:<bob@lg.test>\r\nXFROB now\r\n"); f.flush()
    line(f); line(f); line(f)
    f.write(b"BURL imap://alice@server/INBOX;uid=1;urlauth=submit+alice:internal:91354a473744909de610943775f92038 LAST\r\n"); f.flush(); line(f)
    f.write(b"BDAT 26 LAST\r\nSubject: x\r\nSTARTTLS\r\n..\r\n"); f.flush(); line(f)
    f.write(b"DATA\r\n"); f.flush(); line(f)
    f.write(b"Subject: y\r\n\r\n..leading dot\r\nSTARTTLS\r\n.\r\n"); f.flush(); line(f)
    f.write(b"STARTTLS\r\n"); f.flush(); line(f)
    raw = b"\x16\x03\x01\x00\x05hello" * 20
    f.write(raw); f.flush(); got = b""
    while len(got) < len(raw):
        got += s.recv(4096)
    s.close()
    print("smtp %d done" % port)
PY
cat "$TB_TMP/sessions.out"
check "the IMAP session ran to its end through the gateway" grep -q 'imap done' "$TB_TMP/sessions.out"
check "the Submission session ran to its end" grep -q 'smtp 587 done' "$TB_TMP/sessions.out"
check "the SMTP session ran to its end" grep -q 'smtp 25 done' "$TB_TMP/sessions.out"
sleep 0.5
touch "$TB_TMP/stop"
wait "$cap1" "$cap2"
in_client /usr/bin/python3 "$TB_TMP/tool.py" compare "$TB_TMP/client.cap" "$TB_TMP/server.cap" >"$TB_TMP/compare.out"
rc=$?
cat "$TB_TMP/compare.out"
check "L5383-6a, 6c, N5382-R6: every stream identical on both sides, byte for byte" test $rc -eq 0
check "six streams compared (three sessions, both ways)" test "$(grep -c '^SAME ' "$TB_TMP/compare.out")" -eq 6
check "the IMAP client stream holds the literals and the DEFLATE bytes" \
	bash -c "grep -Eq '^SAME 143:c2s [0-9]{3,} bytes' '$TB_TMP/compare.out'"
/usr/bin/python3 "$TB_TMP/tool.py" corrupt "$TB_TMP/client.cap" "$TB_TMP/corrupt.cap"
/usr/bin/python3 "$TB_TMP/tool.py" compare "$TB_TMP/corrupt.cap" "$TB_TMP/server.cap" >"$TB_TMP/corrupt.out"
check "the comparison catches a one-byte change, and shows it" \
	bash -c "grep -q '^DIFF ' '$TB_TMP/corrupt.out'"
tb_finish
