/* A line on the console (stderr) from cove-init or cove-agent: formatted,
 * cut at a bound, one write, and never an error when the console is gone. */
#ifndef COVE_GUEST_SAY_H
#define COVE_GUEST_SAY_H

void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
