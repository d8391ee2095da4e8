"""Hand-made packets for the testbed's scripts (python3, standard library only): the Internet
checksum, an IPv4 header, an ICMP error quoting a segment, a bare TCP segment."""
import socket
import struct


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
