/* Listening unix stream sockets at a path, shared by the control API and
 * the vsock device's host side: a stale socket is replaced, a live one is
 * refused, and only our own socket is unlinked at the end. */
#ifndef COVE_USOCK_H
#define COVE_USOCK_H

#include <sys/types.h>

/* Which file at the path is ours. */
struct usock_id {
	dev_t dev;
	ino_t ino;
};

/* Create a non-blocking, close-on-exec unix stream socket bound at path
 * with mode 0600 and listening with backlog. A socket at path that nobody
 * accepts on is removed first; a live one gives -EADDRINUSE ("is another
 * cove-vmm running?"), anything else in the way -EEXIST. The fd (>= 0)
 * with *id filled, or -errno with cove_fail's message, each prefixed with
 * what ("api socket PATH: …"). Setup thread. */
int usock_listen(const char *what, const char *path, int backlog, struct usock_id *id);

/* Unlink path if it is still the socket id names (not one a successor put
 * there). Any thread. */
void usock_unlink(const char *path, const struct usock_id *id);

#endif
