/* Splitting protocol command lines into words: IMAP atoms and quoted strings. */
#ifndef LG_SRV_WORDS_H
#define LG_SRV_WORDS_H

#include <stddef.h>

/* Take the next IMAP "astring" (atom or quoted string) from *P into OUT (SIZE bytes),
 * unescaping quoted strings, and skip one following space. 0, or -1 on bad syntax,
 * a literal, or an over-long word. */
int srv_next_astring(const char **p, char *out, size_t size);

#endif
