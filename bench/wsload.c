/*
 * wsload: WebSocket echo load generator for bench/run.py (issue 5).
 *
 *   wsload HOST PORT PATH CONNECTIONS SECONDS SIZE
 *
 * Opens CONNECTIONS WebSocket connections (no compression offered), then on each one sends a
 * SIZE-byte text message, waits for its echo, records the round trip and sends the next,
 * for SECONDS. Prints one line: messages, messages/s, p50 and p99 round trip (us).
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

#define MAX_US 1000000 /* histogram range: 1 us buckets up to 1 s, then one overflow bucket */

struct conn {
    int fd;
    unsigned char *buf;
    size_t len, cap;
    double sent_at;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int connect_ws(const char *host, const char *port, const char *path) {
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
                     "Sec-WebSocket-Version: 13\r\n\r\n", path, host, port);
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
    return fd;
}

static size_t make_frame(unsigned char *out, unsigned char opcode, const unsigned char *payload,
                         size_t size) {
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;
    out[h++] = 0x80 | opcode;
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

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: wsload HOST PORT PATH CONNECTIONS SECONDS SIZE\n");
        return 2;
    }
    const char *host = argv[1], *port = argv[2], *path = argv[3];
    int nconn = atoi(argv[4]);
    double seconds = atof(argv[5]);
    size_t size = (size_t)atol(argv[6]);
    unsigned char *payload = malloc(size);
    for (size_t i = 0; i < size; i++) payload[i] = 'a' + i % 26;
    unsigned char *frame = malloc(size + 14);
    size_t frame_len = make_frame(frame, 0x1, payload, size);
    unsigned int *hist = calloc(MAX_US + 1, sizeof *hist);
    struct conn *conns = calloc(nconn, sizeof *conns);
    int ep = epoll_create1(0);
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = connect_ws(host, port, path);
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
        send_all(conns[i].fd, frame, frame_len);
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
                    if (plen != size) errors++;
                    long us = (long)((t - c->sent_at) * 1e6);
                    hist[us > MAX_US ? MAX_US : (us < 0 ? 0 : us)]++;
                    messages++;
                    if (t < end) {
                        c->sent_at = t;
                        send_all(c->fd, frame, frame_len);
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
