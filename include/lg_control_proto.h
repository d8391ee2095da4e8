/* The control protocol between lemongatectl and lemongated, version 1.
 *
 * The client connects to the UNIX socket, sends one request line
 *     "lemongate-ctl/1 COMMAND [ARG...]\n"
 * and reads the reply until the server closes: either
 *     "ok\n" then zero or more records, one per line, "KIND key=value key=value...\n"
 * or  "error MESSAGE\n".
 * Values never contain blanks or newlines. */
#ifndef LG_CONTROL_PROTO_H
#define LG_CONTROL_PROTO_H

#define LG_CTL_MAGIC       "lemongate-ctl/1"
#define LG_CTL_MAX_REQUEST 1024
#define LG_CTL_DIR         "/run/lemongate"

#endif
