#include "servers/core/words.h"

#include <string.h>

/* RFC 3501 atom-specials: ( ) { SP CTL % * " \ ] */
static int is_atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\]", c);
}

int srv_next_astring(const char **p, char *out, size_t size)
{
	const char *s = *p;
	size_t n = 0;

	if (size == 0)
		return -1;
	if (*s == '"') {
		s++;
		while (*s && *s != '"') {
			if (*s == '\\') {
				s++;
				if (*s != '"' && *s != '\\')
					return -1;
			}
			if ((unsigned char)*s < 0x20 || n + 1 >= size)
				return -1;
			out[n++] = *s++;
		}
		if (*s != '"')
			return -1;
		s++;
	} else {
		while (is_atom_char((unsigned char)*s) || *s == ']') {
			if (n + 1 >= size)
				return -1;
			out[n++] = *s++;
		}
		if (n == 0)
			return -1;
	}
	out[n] = '\0';
	if (*s == ' ')
		s++;
	else if (*s != '\0')
		return -1;
	*p = s;
	return 0;
}

int srv_comma_list(const char *list, char *out, size_t elem_size, size_t max)
{
	size_t count = 0;

	while (*list) {
		size_t n = strcspn(list, ",");

		if (n == 0 || n >= elem_size || count == max)
			return -1;
		memcpy(out + count * elem_size, list, n);
		out[count++ * elem_size + n] = '\0';
		list += n + (list[n] == ',');
	}
	return (int)count;
}
