/* null-handler: the thinnest Mongrel2 handler there is, the baseline lubeck is
 * measured against. It reads only the sender and the conn id of each request
 * (docs/protocol.md), ignores notices (PATH "@*") and answers every request with
 * the same canned 200 (§3). No header parsing, no allocation per request.
 *
 *   null-handler --send SPEC --recv SPEC
 *
 * Connects PULL to the --send spec and PUB to the --recv spec, as any handler does;
 * exits on SIGINT/SIGTERM. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";

#define MAX_SENDER 256
#define MAX_ID 10               /* a uint32 in decimal */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(const char *why)
{
    fprintf(stderr, "null-handler: %s\nusage: null-handler --send SPEC --recv SPEC\n", why);
    exit(2);
}

static void *connect_socket(void *ctx, int type, const char *spec)
{
    void *s = zmq_socket(ctx, type);
    if (!s || zmq_connect(s, spec) < 0) {
        fprintf(stderr, "null-handler: cannot connect to %s: %s\n", spec, zmq_strerror(errno));
        exit(1);
    }
    return s;
}

int main(int argc, char **argv)
{
    const char *send_spec = NULL, *recv_spec = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--send"))
            send_spec = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--recv"))
            recv_spec = argv[++i];
        else
            usage("unexpected argument");
    }
    if (!send_spec || !recv_spec)
        usage("--send and --recv are required");

    /* No SA_RESTART: the blocking receive must return EINTR so the loop sees stop. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    void *ctx = zmq_ctx_new();
    void *pull = connect_socket(ctx, ZMQ_PULL, send_spec);
    void *pub = zmq_socket(ctx, ZMQ_PUB);
    /* PUB's default HWM of 1000 can drop every reply after a burst for good
     * (docs/protocol.md); 0 means no limit. The option must be set before connect. */
    int zero = 0, linger_ms = 200;
    zmq_setsockopt(pub, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(pub, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    if (zmq_connect(pub, recv_spec) < 0) {
        fprintf(stderr, "null-handler: cannot connect to %s: %s\n", recv_spec, zmq_strerror(errno));
        return 1;
    }

    char out[MAX_SENDER + MAX_ID + 8 + sizeof RESPONSE];
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (!stop) {
        if (zmq_msg_recv(&msg, pull, 0) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "null-handler: receive failed: %s\n", zmq_strerror(errno));
            break;
        }
        /* "SENDER ID PATH ...": find the first three fields, nothing more. */
        const char *data = zmq_msg_data(&msg), *end = data + zmq_msg_size(&msg);
        const char *sp1 = memchr(data, ' ', (size_t)(end - data));
        const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
        if (!sp2)
            continue;
        size_t sender_len = (size_t)(sp1 - data), id_len = (size_t)(sp2 - sp1 - 1);
        if (sender_len == 0 || sender_len > MAX_SENDER || id_len == 0 || id_len > MAX_ID)
            continue;
        if (end - sp2 >= 4 && sp2[1] == '@' && sp2[2] == '*' && sp2[3] == ' ')
            continue;               /* a notice: never answered (docs/protocol.md, Notices) */

        /* "SENDER LEN:ID, RESPONSE" */
        char *p = out;
        memcpy(p, data, sender_len);
        p += sender_len;
        p += sprintf(p, " %zu:", id_len);
        memcpy(p, sp1 + 1, id_len);
        p += id_len;
        *p++ = ',';
        *p++ = ' ';
        memcpy(p, RESPONSE, sizeof RESPONSE - 1);
        p += sizeof RESPONSE - 1;
        if (zmq_send(pub, out, (size_t)(p - out), 0) < 0 && errno != EINTR) {
            fprintf(stderr, "null-handler: send failed: %s\n", zmq_strerror(errno));
            break;
        }
    }
    zmq_msg_close(&msg);
    zmq_close(pull);
    zmq_close(pub);
    zmq_ctx_term(ctx);
    return 0;
}
