/*
 * wsload: WebSocket echo load generator for bench/run.py (issue 5).
 *
 *   wsload HOST PORT PATH CONNECTIONS SECONDS SIZE [deflate]
 *
 * Opens CONNECTIONS WebSocket connections, then on each one sends a SIZE-byte text message,
 * waits for its echo, records the round trip and sends the next, for SECONDS. Prints one
 * line: messages, messages/s, p50 and p99 round trip (us).
 *
 * Without "deflate" no compression is offered and every message is the same letters. With
 * it, the client offers permessage-deflate as browsers do ("client_max_window_bits", context
 * takeover both ways), compresses each message with zlib and inflates each echo, and the
 * messages are JSON-like text that changes every time (an id, a counter, item lines), so the
 * server compresses what a chat or dashboard would send.
 *
 * Written in C (one thread, epoll) so that the load generator is not the bottleneck: a
 * Python client on the other CPU tops out below what the servers under test can echo.
 * Only ever pointed at loopback by bench/run.py.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_US 1000000 /* histogram range: 1 us buckets up to 1 s, then one overflow bucket */

struct conn {
    int fd;
    unsigned char *buf;
    size_t len, cap;
    double sent_at;
    long count; /* messages sent on this connection */
    z_stream out, in; /* permessage-deflate: client to server, server to client */
};

static int deflating; /* permessage-deflate negotiated */
static int client_window = 15;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int connect_ws(const char *host, const char *port, const char *path, int deflate) {
    struct addrinfo hints = {0}, *res;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0) {
        fprintf(stderr, "wsload: cannot resolve %s\n", host);
        exit(1);
    }
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, res->ai_addr, res->ai_addrlen) < 0) die("connect");
    freeaddrinfo(res);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n", path, host, port,
                     deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                               "client_max_window_bits\r\n" : "");
    if (write(fd, req, n) != n) die("write handshake");
    char resp[4096];
    size_t got = 0;
    while (got < sizeof resp - 1) {
        ssize_t r = read(fd, resp + got, sizeof resp - 1 - got);
        if (r <= 0) die("read handshake");
        got += r;
        resp[got] = 0;
        if (strstr(resp, "\r\n\r\n")) break;
    }
    if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "wsload: handshake refused: %.60s\n", resp);
        exit(1);
    }
    if (deflate) {
        char *ext = strcasestr(resp, "sec-websocket-extensions:");
        if (!ext || !strstr(ext, "permessage-deflate")) {
            fprintf(stderr, "wsload: the server did not take permessage-deflate\n");
            exit(1);
        }
        char *bits = strstr(ext, "client_max_window_bits=");
        if (bits) client_window = atoi(bits + strlen("client_max_window_bits="));
        if (strstr(ext, "client_no_context_takeover")) {
            fprintf(stderr, "wsload: no context takeover is not supported here\n");
            exit(1);
        }
        deflating = 1;
    }
    return fd;
}

static size_t make_frame(unsigned char *out, unsigned char opcode, const unsigned char *payload,
                         size_t size) {
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;
    out[h++] = 0x80 | opcode; /* (opcode may carry RSV1, 0x40: compressed) */
    if (size < 126) {
        out[h++] = 0x80 | size;
    } else if (size < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = size >> 8;
        out[h++] = size & 0xff;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) out[h++] = (uint64_t)size >> (8 * i) & 0xff;
    }
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < size; i++) out[h + i] = payload[i] ^ mask[i % 4];
    return h + size;
}

static void send_all(int fd, const unsigned char *data, size_t len) {
    while (len) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            die("write");
        }
        data += w;
        len -= w;
    }
}

/* A JSON-like message of exactly SIZE bytes that differs every time (deflate runs). */
static void json_message(unsigned char *out, size_t size, long id, long count) {
    size_t n = (size_t)snprintf((char *)out, size, "{\"id\":%ld,\"seq\":%ld,\"user\":\"user%ld\","
                                "\"items\":[", id, count, (id * 7 + count) % 97);
    long item = 0;
    while (n + 80 < size) {
        n += (size_t)snprintf((char *)out + n, size - n,
                              "{\"sku\":\"SKU-%ld-%ld\",\"qty\":%ld,\"price\":%ld.%02ld},", item,
                              (count + item) % 13, (count * 3 + item) % 9 + 1,
                              (item * 37 + count) % 500, (count + item * 11) % 100);
        item++;
    }
    while (n < size - 2) out[n++] = ' ';
    out[size - 2] = ']';
    out[size - 1] = '}';
}

/* Compress one message (context takeover, sync flush, the 4-byte tail dropped). */
static size_t deflate_message(z_stream *z, const unsigned char *in, size_t size,
                              unsigned char *out, size_t cap) {
    z->next_in = (unsigned char *)in;
    z->avail_in = size;
    z->next_out = out;
    z->avail_out = cap;
    if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in) {
        fprintf(stderr, "wsload: deflate failed\n");
        exit(1);
    }
    return cap - z->avail_out - 4;
}

/* Inflate an echo; returns its length (or (size_t)-1). */
static size_t inflate_message(z_stream *z, unsigned char *in, size_t len, unsigned char *out,
                              size_t cap) {
    static unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
    z->next_out = out;
    z->avail_out = cap;
    z->next_in = in;
    z->avail_in = len;
    int rc = inflate(z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) return (size_t)-1;
    z->next_in = tail;
    z->avail_in = 4;
    rc = inflate(z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) return (size_t)-1;
    return cap - z->avail_out;
}

static size_t next_frame(struct conn *c, long id, unsigned char *payload, size_t size,
                         unsigned char *scratch, unsigned char *frame, size_t plain_len) {
    if (!deflating) return plain_len; /* the same frame every time */
    json_message(payload, size, id, c->count++);
    size_t clen = deflate_message(&c->out, payload, size, scratch, size + 1024);
    return make_frame(frame, 0x40 | 0x1, scratch, clen);
}

int main(int argc, char **argv) {
    if (argc != 7 && !(argc == 8 && strcmp(argv[7], "deflate") == 0)) {
        fprintf(stderr, "usage: wsload HOST PORT PATH CONNECTIONS SECONDS SIZE [deflate]\n");
        return 2;
    }
    int deflate_wanted = argc == 8;
    const char *host = argv[1], *port = argv[2], *path = argv[3];
    int nconn = atoi(argv[4]);
    double seconds = atof(argv[5]);
    size_t size = (size_t)atol(argv[6]);
    unsigned char *payload = malloc(size);
    for (size_t i = 0; i < size; i++) payload[i] = 'a' + i % 26;
    unsigned char *frame = malloc(size + 1024 + 14);
    unsigned char *scratch = malloc(size + 1024);
    unsigned char *echo = malloc(size + 1);
    size_t frame_len = make_frame(frame, 0x1, payload, size);
    unsigned int *hist = calloc(MAX_US + 1, sizeof *hist);
    struct conn *conns = calloc(nconn, sizeof *conns);
    int ep = epoll_create1(0);
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = connect_ws(host, port, path, deflate_wanted);
        if (deflate_wanted) {
            /* Level 1: the load generator must not be what limits the rate (at zlib's
             * default level it spent 64 us a message here); the server inflates either. */
            if (deflateInit2(&conns[i].out, Z_BEST_SPEED, Z_DEFLATED, -client_window,
                             8, Z_DEFAULT_STRATEGY) != Z_OK ||
                inflateInit2(&conns[i].in, -15) != Z_OK) die("zlib init");
        }
        conns[i].cap = size + 4096;
        conns[i].buf = malloc(conns[i].cap);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) die("epoll_ctl");
    }
    double start = now(), end = start + seconds;
    long messages = 0, errors = 0;
    int open = nconn;
    for (int i = 0; i < nconn; i++) {
        conns[i].sent_at = now();
        size_t len = next_frame(&conns[i], i, payload, size, scratch, frame, frame_len);
        send_all(conns[i].fd, frame, len);
    }
    struct epoll_event events[256];
    while (open > 0) {
        int n = epoll_wait(ep, events, 256, 1000);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        double t = now();
        for (int e = 0; e < n; e++) {
            struct conn *c = &conns[events[e].data.u32];
            if (c->fd < 0) continue;
            if (c->len == c->cap) {
                c->cap *= 2;
                c->buf = realloc(c->buf, c->cap);
            }
            ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                errors++;
                close(c->fd);
                c->fd = -1;
                open--;
                continue;
            }
            c->len += r;
            for (;;) {
                if (c->len < 2) break;
                size_t h = 2, plen = c->buf[1] & 0x7f;
                if (plen == 126) {
                    if (c->len < 4) break;
                    plen = (size_t)c->buf[2] << 8 | c->buf[3];
                    h = 4;
                } else if (plen == 127) {
                    if (c->len < 10) break;
                    plen = 0;
                    for (int i = 0; i < 8; i++) plen = plen << 8 | c->buf[2 + i];
                    h = 10;
                }
                if (c->len < h + plen) break;
                unsigned char opcode = c->buf[0] & 0x0f;
                if (opcode == 0x9) { /* ping: answer with a pong */
                    unsigned char pong[140];
                    size_t pl = make_frame(pong, 0xA, c->buf + h, plen);
                    send_all(c->fd, pong, pl);
                } else if (opcode == 0x8) { /* the server closed */
                    errors++;
                } else if (opcode == 0x1 || opcode == 0x2) {
                    size_t got = plen;
                    if (c->buf[0] & 0x40) /* RSV1: compressed */
                        got = inflate_message(&c->in, c->buf + h, plen, echo, size + 1);
                    if (got != size) errors++;
                    long us = (long)((t - c->sent_at) * 1e6);
                    hist[us > MAX_US ? MAX_US : (us < 0 ? 0 : us)]++;
                    messages++;
                    if (t < end) {
                        c->sent_at = t;
                        size_t len = next_frame(c, c - conns, payload, size, scratch, frame,
                                                frame_len);
                        send_all(c->fd, frame, len);
                    } else {
                        close(c->fd);
                        c->fd = -1;
                        open--;
                    }
                }
                memmove(c->buf, c->buf + h + plen, c->len - h - plen);
                c->len -= h + plen;
                if (c->fd < 0) break;
            }
        }
        if (t > end + 5.0) break; /* answers that never came: stop anyway */
    }
    double elapsed = now() - start;
    long p50 = -1, p99 = -1, seen = 0;
    for (long us = 0; us <= MAX_US; us++) {
        seen += hist[us];
        if (p50 < 0 && seen * 2 >= messages) p50 = us;
        if (p99 < 0 && seen * 100 >= messages * 99) p99 = us;
    }
    printf("messages=%ld seconds=%.3f rate=%.1f p50_us=%ld p99_us=%ld errors=%ld\n", messages,
           elapsed, messages / elapsed, p50, p99, errors);
    return errors && !messages;
}
