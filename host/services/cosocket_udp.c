/* Datagram sockets for ngx.socket.udp (lua-resty-dns sends its queries this
 * way): connected to one peer, an address (no name: the libraries that use
 * UDP pass addresses), never blocking. The Lua face is host/lua/lua_udp.c. */
#define _GNU_SOURCE
#include "cosocket.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static const char *udp_errno_text(int e)
{
    return e == ECONNREFUSED ? "connection refused" : strerror(e);
}

int udp_open(const char *host, int port, const char **err)
{
    struct sockaddr_storage ss;
    socklen_t alen = 0;
    if (cosocket_addr(host, port, &ss, &alen) != 0) {
        *err = "udp peers are IP addresses (a name is not resolved here)";
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = strerror(errno);
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&ss, alen) != 0) {
        *err = strerror(errno);
        close(fd);
        return -1;
    }
    return fd;
}

int udp_send(int fd, const char *data, size_t len, const char **err)
{
    for (;;) {
        if (send(fd, data, len, MSG_NOSIGNAL) >= 0) return 0;
        if (errno == EINTR) continue;
        *err = udp_errno_text(errno);
        return -1;
    }
}

ssize_t udp_recv(int fd, char *buf, size_t n, const char **err)
{
    for (;;) {
        ssize_t got = recv(fd, buf, n, 0);
        if (got >= 0) return got;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
        *err = udp_errno_text(errno);
        return -2;
    }
}
