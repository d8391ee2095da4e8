/* Splitting words: IMAP atoms and quoted strings in command lines, comma lists in options. */
#ifndef LG_SRV_WORDS_H
#define LG_SRV_WORDS_H

#include <stddef.h>

/* Take the next IMAP "astring" (atom or quoted string) from *P into OUT (SIZE bytes),
 * unescaping quoted strings, and skip one following space. 0, or -1 on bad syntax,
 * a literal, or an over-long word. */
int srv_next_astring(const char **p, char *out, size_t size);

/* "a,b,c" into up to MAX entries of ELEM_SIZE bytes at OUT (NUL-terminated); the number of
 * entries, or -1 for an empty entry, one too long, or too many. */
int srv_comma_list(const char *list, char *out, size_t elem_size, size_t max);

#endif
