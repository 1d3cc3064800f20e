/*
 * wsload: WebSocket echo load generator for bench/run.py (issue 5).
 *
 *   wsload HOST PORT PATH CONNECTIONS SECONDS SIZE [deflate] [h2=STREAMS]
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
 * With "h2=STREAMS" the WebSockets go over HTTP/2 instead (RFC 8441 extended CONNECT, h2c by
 * prior knowledge): STREAMS WebSocket streams on each of the CONNECTIONS, each its own echo
 * loop (and permessage-deflate context), every message one or more DATA frames. The HTTP/2
 * client is the little this needs: HPACK without a dynamic table (it asks for none:
 * SETTINGS_HEADER_TABLE_SIZE 0), flow control both ways, PING answered, no CONTINUATION.
 *
 * Written in C (one thread, epoll) so that the load generator is not the bottleneck: a
 * Python client on the other CPU tops out below what the servers under test can echo.
 * Only ever pointed at loopback by bench/run.py.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#define GRANT (1L << 30) /* HTTP/2: the receive window granted, per stream and connection */

enum { WAITING, OPEN, DONE }; /* a WebSocket: handshake under way, echoing, finished */

struct bytes { unsigned char *p; size_t len, cap; };

struct conn;
struct ws { /* one WebSocket: a whole connection (HTTP/1.1) or one stream of it (HTTP/2) */
    struct conn *c;
    uint32_t sid; /* HTTP/2 stream id */
    int state, bits; /* bits: the client_max_window_bits the server asked for */
    long id, count; /* json_message's id; messages sent */
    double sent_at;
    struct bytes in, queue; /* WebSocket bytes received; HTTP/2: bytes waiting for window */
    size_t queue_off;
    long window, unacked; /* HTTP/2: send window; DATA received not yet credited */
    z_stream zout, zin; /* permessage-deflate: client to server, server to client */
};

struct conn { /* one TCP connection */
    int fd, index, h2, streams, live, accepted, settings, connect, want_out;
    struct ws *ws; /* its WebSockets (live: not yet done) */
    struct bytes in, out; /* HTTP/2 frames received; bytes to write (both versions) */
    long window, unacked, stream_window; /* HTTP/2: as for a stream, and the peer's initial */
    size_t max_frame;
};

static int deflating; /* permessage-deflate negotiated */
static int deflate_wanted, running, ep, open_conns;
static const char *host, *port, *path;
static size_t size, plain_len;
static unsigned char *payload, *plain, *frame, *scratch, *echo;
static unsigned int *hist;
static long messages, errors;
static double end;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void room(struct bytes *b, size_t n) {
    if (b->cap - b->len >= n) return;
    while (b->cap - b->len < n) b->cap = b->cap ? b->cap * 2 : n;
    if (!(b->p = realloc(b->p, b->cap))) die("realloc");
}

static void put(struct bytes *b, const void *data, size_t n) {
    room(b, n);
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void consume(struct bytes *b, size_t n) {
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static int dial(void) {
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
    return fd;
}

/* The server's Sec-WebSocket-Extensions (NULL: none): returns client_max_window_bits. */
static int negotiated(const char *ext) {
    int bits = 15;
    if (!ext || !strstr(ext, "permessage-deflate")) {
        fprintf(stderr, "wsload: the server did not take permessage-deflate\n");
        exit(1);
    }
    const char *b = strstr(ext, "client_max_window_bits=");
    if (b) bits = atoi(b + strlen("client_max_window_bits="));
    if (strstr(ext, "client_no_context_takeover")) {
        fprintf(stderr, "wsload: no context takeover is not supported here\n");
        exit(1);
    }
    deflating = 1;
    return bits;
}

static int connect_ws(int *bits) {
    int fd = dial();
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n", path, host, port,
                     deflate_wanted ? "Sec-WebSocket-Extensions: permessage-deflate; "
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
    if (deflate_wanted) *bits = negotiated(strcasestr(resp, "sec-websocket-extensions:"));
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

static void close_conn(struct conn *c) {
    for (int k = 0; k < c->streams; k++) c->ws[k].state = DONE;
    close(c->fd);
    c->fd = -1;
    c->live = 0;
    c->out.len = 0;
    open_conns--;
}

/* A WebSocket is over: when it was its connection's last, the connection is closed. */
static void finish(struct ws *w) {
    if (w->state == DONE) return;
    w->state = DONE;
    if (--w->c->live == 0) close_conn(w->c);
}

/* Writes what the connection has to send, as far as the socket takes it (EPOLLOUT: later). */
static void flush(struct conn *c) {
    size_t off = 0;
    while (off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + off, c->out.len - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            if (!running) die("write");
            errors++;
            close_conn(c);
            return;
        }
        off += n;
    }
    consume(&c->out, off);
    int want = c->out.len > 0;
    if (want != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
                                 .data.u32 = c->index};
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
        c->want_out = want;
    }
}

static void h2_frame(struct conn *c, int type, int flags, uint32_t sid, const void *data,
                     size_t n) {
    unsigned char h[9] = {n >> 16 & 0xff, n >> 8 & 0xff, n & 0xff, type, flags,
                          sid >> 24 & 0x7f, sid >> 16 & 0xff, sid >> 8 & 0xff, sid & 0xff};
    put(&c->out, h, 9);
    put(&c->out, data, n);
}

static void h2_window_update(struct conn *c, uint32_t sid, long n) {
    unsigned char inc[4] = {n >> 24 & 0x7f, n >> 16 & 0xff, n >> 8 & 0xff, n & 0xff};
    h2_frame(c, 0x8, 0, sid, inc, 4);
}

/* Sends the stream's queued bytes as DATA frames, as far as both send windows allow. */
static void h2_push(struct ws *w) {
    struct conn *c = w->c;
    while (w->queue_off < w->queue.len) {
        long n = (long)(w->queue.len - w->queue_off);
        if (n > w->window) n = w->window;
        if (n > c->window) n = c->window;
        if (n > (long)c->max_frame) n = (long)c->max_frame;
        if (n <= 0) return; /* (the rest when WINDOW_UPDATE comes) */
        h2_frame(c, 0x0, 0, w->sid, w->queue.p + w->queue_off, n);
        w->queue_off += n;
        w->window -= n;
        c->window -= n;
    }
    w->queue.len = w->queue_off = 0;
}

/* HTTP/1.1: out as they are; HTTP/2: as DATA frames (when the windows allow). */
static void ws_send(struct ws *w, const unsigned char *data, size_t len) {
    put(w->c->h2 ? &w->queue : &w->c->out, data, len);
    if (w->c->h2) h2_push(w);
}

static void send_next(struct ws *w, double t) {
    w->sent_at = t;
    if (!deflating) {
        ws_send(w, plain, plain_len); /* the same frame every time */
        return;
    }
    json_message(payload, size, w->id, w->count++);
    size_t clen = deflate_message(&w->zout, payload, size, scratch, size + 1024);
    ws_send(w, frame, make_frame(frame, 0x40 | 0x1, scratch, clen));
}

/* Handles the complete WebSocket frames received on w (both HTTP versions). */
static void ws_frames(struct ws *w, double t) {
    size_t off = 0;
    while (w->state == OPEN) {
        unsigned char *b = w->in.p + off;
        size_t avail = w->in.len - off;
        if (avail < 2) break;
        size_t h = 2, plen = b[1] & 0x7f;
        if (plen == 126) {
            if (avail < 4) break;
            plen = (size_t)b[2] << 8 | b[3];
            h = 4;
        } else if (plen == 127) {
            if (avail < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++) plen = plen << 8 | b[2 + i];
            h = 10;
        }
        if (avail < h + plen) break;
        off += h + plen;
        unsigned char opcode = b[0] & 0x0f;
        if (opcode == 0x9) { /* ping: answer with a pong */
            unsigned char pong[140];
            ws_send(w, pong, make_frame(pong, 0xA, b + h, plen));
        } else if (opcode == 0x8) { /* the server closed */
            errors++;
            finish(w);
        } else if (opcode == 0x1 || opcode == 0x2) {
            size_t got = plen;
            if (b[0] & 0x40) /* RSV1: compressed */
                got = inflate_message(&w->zin, b + h, plen, echo, size + 1);
            if (got != size) errors++;
            long us = (long)((t - w->sent_at) * 1e6);
            hist[us > MAX_US ? MAX_US : (us < 0 ? 0 : us)]++;
            messages++;
            if (t < end) send_next(w, t);
            else finish(w);
        }
    }
    if (w->state != DONE) consume(&w->in, off);
}

/* HPACK (RFC 7541) integers and strings; Huffman-coded strings are decoded. */
static size_t hp_int(unsigned char *out, int prefix, size_t v) {
    size_t n = 0, max = (1u << prefix) - 1;
    if (v < max) {
        out[n++] = v;
        return n;
    }
    out[n++] = max;
    for (v -= max; v >= 128; v >>= 7) out[n++] = 0x80 | (v & 0x7f);
    out[n++] = v;
    return n;
}

static size_t hp_literal(unsigned char *out, const char *s) { /* (no Huffman) */
    size_t n = hp_int(out, 7, strlen(s));
    memcpy(out + n, s, strlen(s));
    return n + strlen(s);
}

/* A literal field without indexing: name by static index, or (index 0) literal. */
static size_t hp_field(unsigned char *out, int index, const char *name, const char *value) {
    size_t n = hp_int(out, 4, index);
    if (!index) n += hp_literal(out + n, name);
    return n + hp_literal(out + n, value);
}

static int hp_get(const unsigned char **p, const unsigned char *end, int prefix, size_t *v) {
    if (*p >= end) return -1;
    size_t max = (1u << prefix) - 1, x = *(*p)++ & max;
    if (x == max) {
        int shift = 0;
        do {
            if (*p >= end || shift > 28) return -1;
            x += (size_t)(**p & 0x7f) << shift;
            shift += 7;
        } while (*(*p)++ & 0x80);
    }
    *v = x;
    return 0;
}

/* The Huffman code's lengths for symbols 0..256 ('a' + length - 5), RFC 7541 Appendix B; the
 * code is canonical (codes of one length ascend with the symbol), so lengths are enough. */
static const char huff_len[] =
    "isxxxxxxxtzxxzxxxxxxxxzxxxxxxxxxbffhibdgffdgdbbbaaabbbbbbbcdkbhfibcccccccccccccccccccc"
    "ccdcdioijbkabababbbaccbbbabcbaabccccckgjixprpprrrsrssssststtrstssssqrsrsstrqprrssqsrrt"
    "qrssqqrqsrssprrrsrrsvvporsruvvvwwvtuoqvwwvwtqqvvxwwwptpqrqqsrruuttvsvwvvwwwwwxwwwwwvz";

static int huffman(const unsigned char *in, size_t n, char *out, size_t cap) {
    static uint32_t first[32];
    static int count[32], offset[32], sym[257], ready;
    if (!ready) {
        int fill[32] = {0};
        uint32_t code = 0;
        for (int s = 0; s < 257; s++) count[huff_len[s] - 'a' + 5]++;
        for (int l = 1, o = 0; l <= 30; o += count[l++]) {
            first[l] = code;
            offset[l] = o;
            code = (code + count[l]) << 1;
        }
        for (int s = 0; s < 257; s++) {
            int l = huff_len[s] - 'a' + 5;
            sym[offset[l] + fill[l]++] = s;
        }
        ready = 1;
    }
    uint32_t code = 0;
    int len = 0;
    size_t o = 0;
    for (size_t i = 0; i < n * 8; i++) {
        code = code << 1 | (in[i / 8] >> (7 - i % 8) & 1);
        if (++len > 30) return -1;
        if (code - first[len] < (uint32_t)count[len]) {
            int s = sym[offset[len] + code - first[len]];
            if (s == 256 || o + 1 >= cap) return -1;
            out[o++] = (char)s;
            code = 0;
            len = 0;
        }
    }
    if (len > 7 || code != (1u << len) - 1) return -1; /* padding: EOS's leading ones */
    out[o] = 0;
    return (int)o;
}

static int hp_string(const unsigned char **p, const unsigned char *end, char *out, size_t cap) {
    if (*p >= end) return -1;
    int huff = **p & 0x80;
    size_t n;
    if (hp_get(p, end, 7, &n) < 0 || n > (size_t)(end - *p)) return -1;
    const unsigned char *s = *p;
    *p += n;
    if (huff) return huffman(s, n, out, cap);
    if (n >= cap) return -1;
    memcpy(out, s, n);
    out[n] = 0;
    return (int)n;
}

/* The extended CONNECT of one stream (RFC 8441 §4). */
static void h2_request(struct ws *w) {
    size_t cap = strlen(path) + strlen(host) + strlen(port) + 256, n = 0;
    unsigned char *b = malloc(cap);
    char authority[1024];
    snprintf(authority, sizeof authority, "%s:%s", host, port);
    n += hp_field(b + n, 2, NULL, "CONNECT");
    n += hp_field(b + n, 0, ":protocol", "websocket");
    n += hp_field(b + n, 6, NULL, "http");
    n += hp_field(b + n, 4, NULL, path);
    n += hp_field(b + n, 1, NULL, authority);
    n += hp_field(b + n, 0, "sec-websocket-version", "13");
    if (deflate_wanted)
        n += hp_field(b + n, 0, "sec-websocket-extensions",
                      "permessage-deflate; client_max_window_bits");
    if (n > w->c->max_frame) {
        fprintf(stderr, "wsload: the request's HEADERS exceed the server's frame size\n");
        exit(1);
    }
    h2_frame(w->c, 0x1, 0x4, w->sid, b, n); /* END_HEADERS, the stream stays open */
    free(b);
}

/* A response's field block (static table and literals only): 200 accepts the WebSocket. */
static void h2_response(struct ws *w, const unsigned char *p, const unsigned char *end,
                        int end_stream) {
    static const char *codes[] = {"200", "204", "206", "304", "400", "404", "500"};
    char name[4096], value[4096], status[16] = "", ext[4096];
    int has_ext = 0;
    if (w->state != WAITING) { /* trailers: the server ended the stream */
        fprintf(stderr, "wsload: the server ended stream %u\n", w->sid);
        errors++;
        finish(w);
        return;
    }
    while (p < end) {
        size_t index;
        unsigned char b = *p;
        if ((b & 0xe0) == 0x20) { /* dynamic table size update */
            if (hp_get(&p, end, 5, &index) < 0) goto bad;
            continue;
        }
        if (hp_get(&p, end, b & 0x80 ? 7 : (b & 0x40 ? 6 : 4), &index) < 0) goto bad;
        if (index > 61) {
            fprintf(stderr, "wsload: the server's HPACK uses the dynamic table\n");
            exit(1);
        }
        int is_status = index >= 8 && index <= 14;
        if (b & 0x80) { /* indexed field */
            if (is_status) strcpy(status, codes[index - 8]);
            continue;
        }
        if (!index && hp_string(&p, end, name, sizeof name) < 0) goto bad;
        if (index) strcpy(name, is_status ? ":status" : "");
        if (hp_string(&p, end, value, sizeof value) < 0) goto bad;
        if (!strcmp(name, ":status")) snprintf(status, sizeof status, "%.15s", value);
        if (!strcmp(name, "sec-websocket-extensions")) {
            snprintf(ext, sizeof ext, "%s", value);
            has_ext = 1;
        }
    }
    if (strcmp(status, "200") != 0 || end_stream) {
        fprintf(stderr, "wsload: stream %u refused: :status %s\n", w->sid, status);
        exit(1);
    }
    if (deflate_wanted) w->bits = negotiated(has_ext ? ext : NULL);
    w->state = OPEN;
    w->c->accepted++;
    return;
bad:
    fprintf(stderr, "wsload: cannot decode the response HEADERS of stream %u\n", w->sid);
    exit(1);
}

/* The connection failed: fatal during the handshakes, an error (and the end of it) after. */
static void h2_fail(struct conn *c, const char *why, unsigned long code) {
    fprintf(stderr, "wsload: %s (%lu)\n", why, code);
    if (!running) exit(1);
    errors++;
    close_conn(c);
}

static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void h2_settings(struct conn *c, const unsigned char *p, size_t n) {
    for (size_t i = 0; i + 6 <= n; i += 6) {
        unsigned id = p[i] << 8 | p[i + 1];
        uint32_t v = get32(p + i + 2);
        if (id == 0x3 && v < (uint32_t)c->streams && !running) {
            fprintf(stderr, "wsload: the server allows %u streams per connection\n", v);
            exit(1);
        } else if (id == 0x4) { /* open streams' windows move by the difference */
            for (int k = 0; k < c->streams; k++) c->ws[k].window += (long)v - c->stream_window;
            c->stream_window = v;
        } else if (id == 0x5) {
            c->max_frame = v;
        } else if (id == 0x8) {
            c->connect = v == 1;
        }
    }
    h2_frame(c, 0x4, 0x1, 0, NULL, 0); /* ACK */
    if (c->settings++ == 0) {
        if (!c->connect) {
            fprintf(stderr, "wsload: the server did not announce "
                            "SETTINGS_ENABLE_CONNECT_PROTOCOL\n");
            exit(1);
        }
        for (int k = 0; k < c->streams; k++) h2_request(&c->ws[k]);
    }
    for (int k = 0; k < c->streams; k++)
        if (c->ws[k].state == OPEN) h2_push(&c->ws[k]);
}

/* Handles the complete HTTP/2 frames received on c. */
static void h2_frames(struct conn *c, double t) {
    size_t off = 0;
    while (c->fd >= 0 && c->in.len - off >= 9) {
        unsigned char *f = c->in.p + off;
        size_t len = (size_t)f[0] << 16 | f[1] << 8 | f[2], n = len;
        if (c->in.len - off < 9 + len) break;
        off += 9 + len;
        int type = f[3], flags = f[4];
        uint32_t sid = get32(f + 5) & 0x7fffffff;
        const unsigned char *p = f + 9;
        struct ws *w = sid & 1 && (sid - 1) / 2 < (uint32_t)c->streams ? &c->ws[(sid - 1) / 2]
                                                                      : NULL;
        if ((type == 0x0 || type == 0x1) && flags & 0x8) { /* PADDED */
            if (n < 1 || p[0] >= n) { h2_fail(c, "bad padding from the server", type); break; }
            n -= 1 + p[0];
            p++;
        }
        if (type == 0x0) { /* DATA: the stream's WebSocket bytes */
            if ((c->unacked += len) >= GRANT / 2) {
                h2_window_update(c, 0, c->unacked);
                c->unacked = 0;
            }
            if (!w || w->state != OPEN) continue;
            if ((w->unacked += len) >= GRANT / 2) {
                h2_window_update(c, sid, w->unacked);
                w->unacked = 0;
            }
            put(&w->in, p, n);
            ws_frames(w, t);
            if (flags & 0x1 && w->state == OPEN) { /* END_STREAM */
                fprintf(stderr, "wsload: the server ended stream %u\n", sid);
                errors++;
                finish(w);
            }
        } else if (type == 0x1 && w) { /* HEADERS */
            if (flags & 0x20) { /* PRIORITY */
                if (n < 5) { h2_fail(c, "bad HEADERS from the server", n); break; }
                p += 5;
                n -= 5;
            }
            if (!(flags & 0x4)) {
                fprintf(stderr, "wsload: CONTINUATION frames are not supported\n");
                exit(1);
            }
            h2_response(w, p, p + n, flags & 0x1);
        } else if (type == 0x3 && w && w->state != DONE) { /* RST_STREAM */
            fprintf(stderr, "wsload: the server reset stream %u (error %u)\n", sid,
                    n >= 4 ? get32(p) : 0);
            if (!running) exit(1);
            errors++;
            finish(w);
        } else if (type == 0x4 && !(flags & 0x1)) { /* SETTINGS (not an ACK) */
            h2_settings(c, p, n);
        } else if (type == 0x6 && !(flags & 0x1) && n == 8) { /* PING */
            h2_frame(c, 0x6, 0x1, 0, p, 8);
        } else if (type == 0x7) { /* GOAWAY */
            h2_fail(c, "the server sent GOAWAY, error", n >= 8 ? get32(p + 4) : 0);
        } else if (type == 0x8 && n == 4) { /* WINDOW_UPDATE */
            long inc = get32(p) & 0x7fffffff;
            if (!sid) {
                c->window += inc;
                for (int k = 0; k < c->streams; k++)
                    if (c->ws[k].state == OPEN) h2_push(&c->ws[k]);
            } else if (w && w->state != DONE) {
                w->window += inc;
                if (w->state == OPEN) h2_push(w);
            }
        } /* (PRIORITY, PUSH_PROMISE, unknown types: ignored) */
    }
    if (c->fd >= 0) consume(&c->in, off);
}

/* An h2c connection by prior knowledge, with all its WebSocket streams accepted. */
static void h2_connect(struct conn *c) {
    c->fd = dial();
    c->window = c->stream_window = 65535;
    c->max_frame = 16384;
    put(&c->out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    unsigned char s[18] = {0, 0x1, 0, 0, 0, 0, /* HEADER_TABLE_SIZE 0: no dynamic table */
                           0, 0x2, 0, 0, 0, 0, /* ENABLE_PUSH 0 */
                           0, 0x4, GRANT >> 24, 0, 0, 0}; /* INITIAL_WINDOW_SIZE */
    h2_frame(c, 0x4, 0, 0, s, 18);
    h2_window_update(c, 0, GRANT - 65535);
    flush(c);
    while (c->accepted < c->streams) { /* (SETTINGS, then the requests, then the answers) */
        room(&c->in, 65536);
        ssize_t r = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len);
        if (r <= 0) {
            fprintf(stderr, "wsload: the server closed the HTTP/2 connection\n");
            exit(1);
        }
        c->in.len += r;
        h2_frames(c, now());
        flush(c);
    }
}

int main(int argc, char **argv) {
    int streams = 0, bad = argc < 7 || argc > 9;
    for (int i = 7; i < argc && !bad; i++) {
        if (strcmp(argv[i], "deflate") == 0 && !deflate_wanted) deflate_wanted = 1;
        else if (strncmp(argv[i], "h2=", 3) != 0 || streams ||
                 (streams = atoi(argv[i] + 3)) < 1 || streams > 1 << 20) bad = 1;
    }
    if (bad) {
        fprintf(stderr, "usage: wsload HOST PORT PATH CONNECTIONS SECONDS SIZE [deflate] "
                        "[h2=STREAMS]\n");
        return 2;
    }
    host = argv[1], port = argv[2], path = argv[3];
    int nconn = atoi(argv[4]), per = streams ? streams : 1;
    double seconds = atof(argv[5]);
    size = (size_t)atol(argv[6]);
    payload = malloc(size);
    for (size_t i = 0; i < size; i++) payload[i] = 'a' + i % 26;
    plain = malloc(size + 14);
    plain_len = make_frame(plain, 0x1, payload, size);
    frame = malloc(size + 1024 + 14);
    scratch = malloc(size + 1024);
    echo = malloc(size + 1);
    hist = calloc(MAX_US + 1, sizeof *hist);
    struct conn *conns = calloc(nconn, sizeof *conns);
    struct ws *all = calloc((size_t)nconn * per, sizeof *all);
    ep = epoll_create1(0);
    for (int i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        c->index = i;
        c->h2 = streams > 0;
        c->streams = c->live = per;
        c->ws = &all[(size_t)i * per];
        for (int k = 0; k < per; k++) {
            struct ws *w = &c->ws[k];
            w->c = c;
            w->sid = 2 * k + 1;
            w->id = (long)i * per + k;
            w->bits = 15;
            w->window = 65535;
        }
        if (c->h2) {
            h2_connect(c);
        } else {
            c->fd = connect_ws(&c->ws[0].bits);
            c->ws[0].state = OPEN;
        }
        for (int k = 0; k < per && deflate_wanted; k++) {
            /* Level 1: the load generator must not be what limits the rate (at zlib's
             * default level it spent 64 us a message here); the server inflates either. */
            if (deflateInit2(&c->ws[k].zout, Z_BEST_SPEED, Z_DEFLATED, -c->ws[k].bits,
                             8, Z_DEFAULT_STRATEGY) != Z_OK ||
                inflateInit2(&c->ws[k].zin, -15) != Z_OK) die("zlib init");
        }
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    }
    double start = now();
    end = start + seconds;
    running = 1;
    open_conns = nconn;
    for (int i = 0; i < nconn; i++) {
        for (int k = 0; k < per; k++) send_next(&conns[i].ws[k], now());
        flush(&conns[i]);
    }
    struct epoll_event events[256];
    while (open_conns > 0) {
        int n = epoll_wait(ep, events, 256, 1000);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        double t = now();
        for (int e = 0; e < n; e++) {
            struct conn *c = &conns[events[e].data.u32];
            if (c->fd < 0) continue;
            if (events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                struct bytes *b = c->h2 ? &c->in : &c->ws[0].in;
                room(b, size + (c->h2 ? 65536 : 4096));
                ssize_t r = read(c->fd, b->p + b->len, b->cap - b->len);
                if (r <= 0) {
                    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                    errors++;
                    close_conn(c);
                    continue;
                }
                b->len += r;
                if (c->h2) h2_frames(c, t);
                else ws_frames(&c->ws[0], t);
            }
            if (c->fd >= 0) flush(c);
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
