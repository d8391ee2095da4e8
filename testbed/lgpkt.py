"""Hand-made packets for the testbed's scripts (python3, standard library only): the Internet
checksum, an IPv4 header, an ICMP error quoting a segment, a whole TCP segment, and reading
one back."""
import collections
import socket
import struct

Segment = collections.namedtuple("Segment", "src sport dst dport seq ack flags payload")
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def csum(data):
    """The Internet checksum (RFC 1071) of DATA."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def ipv4(src, dst, proto, payload_len, df=True):
    """An IPv4 header, checksum included; SRC and DST dotted strings."""
    h = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0x4000 if df else 0,
                              64, proto, 0, socket.inet_aton(src), socket.inet_aton(dst)))
    h[10:12] = struct.pack("!H", csum(bytes(h)))
    return bytes(h)


def icmp_error(icmp_type, code, quote, rest=0):
    """An ICMP error message quoting QUOTE; REST the 32 bits after the checksum (next-hop MTU)."""
    m = bytearray(struct.pack("!BBHI", icmp_type, code, 0, rest) + bytes(quote))
    m[2:4] = struct.pack("!H", csum(bytes(m)))
    return bytes(m)


def quoted_tcp(src, sport, dst, dport, seq=1):
    """What an ICMP error quotes of a TCP segment: its IP header and first 8 bytes."""
    return ipv4(src, dst, 6, 20) + struct.pack("!HHI", sport, dport, seq)


def send_raw(packet, dst):
    """Send a whole IPv4 packet, header included."""
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).sendto(packet, (dst, 0))


def tcp_segment(src, sport, dst, dport, seq, ack, flags, payload=b"", window=65535):
    """A whole IPv4 packet carrying one TCP segment, both checksums included."""
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq & 0xffffffff, ack & 0xffffffff,
                                5 << 4, flags, window, 0, 0))
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, 20 + len(payload))
    tcp[16:18] = struct.pack("!H", csum(pseudo + bytes(tcp) + payload))
    return ipv4(src, dst, 6, 20 + len(payload)) + bytes(tcp) + payload


def parse_tcp(ip):
    """The Segment an IPv4 packet IP carries, or None when it is not a whole TCP one."""
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
        return None
    ihl, total = (ip[0] & 15) * 4, struct.unpack("!H", ip[2:4])[0]
    if len(ip) < total or total < ihl + 20:
        return None
    sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", ip[ihl:ihl + 14])
    doff = (off >> 4) * 4
    if doff < 20 or ihl + doff > total:
        return None
    return Segment(socket.inet_ntoa(ip[12:16]), sport, socket.inet_ntoa(ip[16:20]), dport, seq,
                   ack, flags, bytes(ip[ihl + doff:total]))


def quote_past(ip):
    """What an ICMP error about IPv4 TCP packet IP quotes (its IP header and first 8 bytes), with
    the sequence number moved past its payload: the next one the sender sends, which is the
    one the sender's kernel accepts in an error about an idle connection."""
    seg = parse_tcp(ip)
    ihl = (ip[0] & 15) * 4
    quote = bytearray(ip[:ihl + 8])
    quote[ihl + 4:ihl + 8] = struct.pack("!I", (seg.seq + len(seg.payload)) & 0xffffffff)
    return bytes(quote)
