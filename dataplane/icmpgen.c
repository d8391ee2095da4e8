#include "dataplane/icmpgen.h"

#include "dataplane/checksum.h"

#include <arpa/inet.h>
#include <string.h>

#define ICMP_TTL 64

size_t lg_icmp_build_error(uint8_t *buf, uint32_t src, uint32_t dst, uint8_t type, uint8_t code,
			   const uint8_t *quote, size_t quote_len)
{
	size_t len;
	uint16_t v16;

	if (quote_len > LG_ICMP_QUOTE_MAX)
		quote_len = LG_ICMP_QUOTE_MAX;
	len = 20 + 8 + quote_len;
	memset(buf, 0, 28);
	buf[0] = 0x45;
	v16 = htons((uint16_t)len);
	memcpy(buf + 2, &v16, 2);
	buf[8] = ICMP_TTL;
	buf[9] = 1; /* ICMP */
	memcpy(buf + 12, &src, 4);
	memcpy(buf + 16, &dst, 4);
	v16 = lg_csum_ipv4_header(buf, 20);
	memcpy(buf + 10, &v16, 2);
	buf[20] = type;
	buf[21] = code;
	memcpy(buf + 28, quote, quote_len);
	v16 = lg_csum_finish(lg_csum_add(0, buf + 20, 8 + quote_len));
	memcpy(buf + 22, &v16, 2);
	return len;
}

size_t lg_icmp6_build_error(uint8_t *buf, uint8_t type, uint8_t code, const uint8_t *quote,
			    size_t quote_len)
{
	memset(buf, 0, 8);
	buf[0] = type;
	buf[1] = code;
	memcpy(buf + 8, quote, quote_len);
	return 8 + quote_len;
}
