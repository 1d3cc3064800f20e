/* betula._h1scan: one call that reads a whole HTTP/1 request head of the common, strict
 * kind, and what the connection decides from it.
 *
 * Why it exists (measured, bench/micro.py --unique, and the parser comparison in the
 * README): with httptools every field costs a C -> Python callback, and the fields are then
 * walked again in Python (lowered names, the framing fields, the limits): together about
 * 12 us of a request whose head was never seen before, more than everything else the
 * server does for it. gunicorn_h1c (picohttpparser) parses the same heads in 2.2 us, about
 * what llhttp plus the callbacks cost, but hands back raw names and no framing analysis,
 * so the Python walk would remain.
 *
 * What it accepts is a strict subset of what llhttp (strict mode) accepts, and for that
 * subset it gives what llhttp plus head.analyse_head give (tests/test_h1scan.py compares
 * them on a corpus, its mutations and the fuzz cases): the request line
 * "METHOD SP origin-form SP HTTP/1.x CRLF" with a method in METHODS and a target of RFC
 * 3986 path/query characters only; fields "token ':' OWS value CRLF" with values of
 * visible ASCII, SP and HTAB; every line ends in CRLF; Content-Length all digits; Host a
 * reg-name with an optional port; Connection exactly "close" or "keep-alive"; every
 * limit kept; exactly one whole message in the read (head and Content-Length body).
 * Anything else (chunked, Upgrade, Proxy-Connection, a second Host or Content-Length,
 * obs-text, bare LF, a limit passed, a partial or pipelined read, ...) returns None, and
 * the connection gives the bytes to llhttp, whose answers (and errors) stay what they are.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>  /* PyMemberDef (in descrobject.h from 3.12 on) */
#include <string.h>

/* character classes, one bit each */
#define C_TCHAR 1   /* RFC 9110 token */
#define C_TARGET 2  /* origin-form path and query: unreserved pct sub-delims : @ / ? */
#define C_VALUE 4   /* field value: VCHAR, SP, HTAB */
#define C_HOST 8    /* reg-name: unreserved pct sub-delims */

static unsigned char classes[256];

static void init_classes(void) {
    int c;
    const char *p;
    for (c = 0; c < 256; c++) {
        unsigned char k = 0;
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (alnum) k |= C_TCHAR | C_TARGET | C_HOST;
        if ((c >= 0x20 && c <= 0x7e) || c == '\t') k |= C_VALUE;
        classes[c] = k;
    }
    for (p = "!#$%&'*+-.^_`|~"; *p; p++) classes[(unsigned char)*p] |= C_TCHAR;
    for (p = "-._~%!$&'()*+,;=:@/?"; *p; p++) classes[(unsigned char)*p] |= C_TARGET;
    for (p = "-._~%!$&'()*+,;="; *p; p++) classes[(unsigned char)*p] |= C_HOST;
}

#define N_METHODS 7
static const char *method_names[N_METHODS] = {"GET", "HEAD", "POST", "PUT", "DELETE",
                                               "OPTIONS", "PATCH"};
static PyObject *methods[N_METHODS];
static PyObject *version_11, *version_10;

/* The records a scanned head becomes (protocols/h1/head.py's HeadInfo and Replay, given by
 * configure()): built here, their __slots__ filled directly, so a scanned head costs no
 * Python call (a HeadInfo of 17 fields and its Replay took ~0.4 us through __init__). */
#define HEAD_SLOTS 17
#define REPLAY_SLOTS 5
static const char *head_slot_names[HEAD_SLOTS] = {
    "headers", "plain", "error", "host_error", "host_missing", "keep_alive_11",
    "keep_alive_10", "too_large", "has_body", "expect_continue", "te_trailers", "upgrade",
    "size", "fields", "chunked", "length", "forwarded"};
static const char *replay_slot_names[REPLAY_SLOTS] = {
    "method", "url", "head", "version", "keep_alive"};
static PyTypeObject *head_type, *replay_type;
static Py_ssize_t head_offsets[HEAD_SLOTS], replay_offsets[REPLAY_SLOTS];
/* A bounded memo in two generations, as betula/cache.py's BoundedCache: when the current
 * dict holds max entries it becomes the previous one and a new one starts; a hit in the
 * previous one moves back. Keys in use stay, keys unused for a generation go, and it never
 * holds more than 2 * max entries. */
typedef struct {
    PyObject *cur, *prev;
    Py_ssize_t max;
#ifdef Py_GIL_DISABLED
    PyMutex lock;  /* free-threaded CPython: the threads of a thread-mode worker share it */
#endif
} gencache;

#ifdef Py_GIL_DISABLED
#define GEN_LOCK(c) PyMutex_Lock(&(c)->lock)
#define GEN_UNLOCK(c) PyMutex_Unlock(&(c)->lock)
#else
#define GEN_LOCK(c)
#define GEN_UNLOCK(c)
#endif

static int gen_init(gencache *c, Py_ssize_t max) {
    c->cur = PyDict_New();
    c->prev = PyDict_New();
    c->max = max;
    return (c->cur == NULL || c->prev == NULL) ? -1 : 0;
}

static int gen_put_locked(gencache *c, PyObject *key, PyObject *value) {
    if (PyDict_GET_SIZE(c->cur) >= c->max) {
        PyObject *fresh = PyDict_New();
        if (fresh == NULL) return -1;
        Py_DECREF(c->prev);
        c->prev = c->cur;
        c->cur = fresh;
    }
    return PyDict_SetItem(c->cur, key, value);
}

static int gen_put(gencache *c, PyObject *key, PyObject *value) {
    int result;
    GEN_LOCK(c);
    result = gen_put_locked(c, key, value);
    GEN_UNLOCK(c);
    return result;
}

/* a new reference, or NULL (with an exception set only on an error) */
static PyObject *gen_get(gencache *c, PyObject *key) {
    PyObject *value;
    GEN_LOCK(c);
    value = PyDict_GetItemWithError(c->cur, key);
    if (value != NULL || PyErr_Occurred()) {
        Py_XINCREF(value);
        GEN_UNLOCK(c);
        return value;
    }
    value = PyDict_GetItemWithError(c->prev, key);
    if (value == NULL) {
        GEN_UNLOCK(c);
        return NULL;
    }
    Py_INCREF(value);
    if (PyDict_DelItem(c->prev, key) < 0 || gen_put_locked(c, key, value) < 0) {
        Py_DECREF(value);
        GEN_UNLOCK(c);
        return NULL;
    }
    GEN_UNLOCK(c);
    return value;
}

/* lowered field name -> the same bytes object, so that the names every request sends are
 * shared objects with their hash computed once (the adapters key dicts on them); names
 * longer than NAME_CACHE_LEN are not kept (memory stays bounded: 2 x 512 short names) */
static gencache names;
#define NAMES_MAX 512
#define NAME_CACHE_LEN 64

static int ieq(const char *a, Py_ssize_t n, const char *lower) {
    Py_ssize_t i;
    if ((Py_ssize_t)strlen(lower) != n) return 0;
    for (i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z') c += 32;
        if (c != lower[i]) return 0;
    }
    return 1;
}

static int icontains(const char *a, Py_ssize_t n, const char *lower) {
    Py_ssize_t m = (Py_ssize_t)strlen(lower), i;
    for (i = 0; i + m <= n; i++)
        if (ieq(a + i, m, lower)) return 1;
    return 0;
}

static PyObject *lowered_name(const char *p, Py_ssize_t n) {
    PyObject *name = PyBytes_FromStringAndSize(NULL, n), *known;
    char *s;
    Py_ssize_t i;
    if (name == NULL) return NULL;
    s = PyBytes_AS_STRING(name);
    for (i = 0; i < n; i++) {
        char c = p[i];
        s[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    if (n > NAME_CACHE_LEN) return name;
    known = gen_get(&names, name);
    if (known != NULL) {
        Py_DECREF(name);
        return known;
    }
    if (PyErr_Occurred() || gen_put(&names, name, name) < 0) {
        Py_DECREF(name);
        return NULL;
    }
    return name;
}

/* fields a scanned head may have (a head with more is llhttp's) */
#define FIELDS_MAX 64
struct field {
    const char *name;
    Py_ssize_t name_len;
    const char *value;
    Py_ssize_t value_len;
};

enum { F_OTHER, F_HOST, F_LENGTH, F_CONNECTION, F_EXPECT, F_TE, F_FORWARDED, F_BAIL };

static int field_kind(const char *s, Py_ssize_t n) {
    switch (n) {
    case 4: return ieq(s, n, "host") ? F_HOST : F_OTHER;
    case 2: return ieq(s, n, "te") ? F_TE : F_OTHER;
    case 6: return ieq(s, n, "expect") ? F_EXPECT : F_OTHER;
    case 7: return ieq(s, n, "upgrade") ? F_BAIL : F_OTHER;
    case 9: return ieq(s, n, "forwarded") ? F_FORWARDED : F_OTHER;
    case 15: return ieq(s, n, "x-forwarded-for") ? F_FORWARDED : F_OTHER;
    case 10: return ieq(s, n, "connection") ? F_CONNECTION : F_OTHER;
    case 14: return ieq(s, n, "content-length") ? F_LENGTH : F_OTHER;
    case 16:
        if (ieq(s, n, "x-forwarded-host")) return F_FORWARDED;
        return ieq(s, n, "proxy-connection") ? F_BAIL : F_OTHER;
    case 17:
        if (ieq(s, n, "x-forwarded-proto")) return F_FORWARDED;
        return ieq(s, n, "transfer-encoding") ? F_BAIL : F_OTHER;
    default: return F_OTHER;
    }
}

static int valid_host(const char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n && (classes[(unsigned char)s[i]] & C_HOST)) i++;
    if (i == n) return 1;
    if (s[i] != ':') return 0;
    for (i++; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* A new instance of a __slots__ class given by configure(), its slots set to values
 * (references taken: all of them, even on failure; NULL among them: a failed allocation,
 * then NULL is returned with the error set). */
static PyObject *new_record(PyTypeObject *type, const Py_ssize_t *offsets, PyObject **values,
                            int n) {
    PyObject *obj = NULL;
    int i, failed = 0;
    for (i = 0; i < n; i++)
        if (values[i] == NULL) failed = 1;
    if (!failed) obj = type->tp_alloc(type, 0);
    for (i = 0; i < n; i++) {
        if (obj != NULL)
            *(PyObject **)((char *)obj + offsets[i]) = values[i];
        else
            Py_XDECREF(values[i]);
    }
    return obj;
}

/* the offset of each named slot of type (a member descriptor of an object slot) */
static int slot_offsets(PyObject *type, const char **names, int n, Py_ssize_t *offsets) {
    int i;
    for (i = 0; i < n; i++) {
        PyObject *descr = PyObject_GetAttrString(type, names[i]);
        if (descr == NULL) return -1;
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)
            || ((PyMemberDescrObject *)descr)->d_member->type != 16 /* T_OBJECT_EX */) {
            Py_DECREF(descr);
            PyErr_Format(PyExc_TypeError, "%s is not a __slots__ field", names[i]);
            return -1;
        }
        offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
        Py_DECREF(descr);
    }
    return 0;
}

/* type has exactly n slots (a slot scan does not know would be left unset) */
static int slot_count(PyObject *type, Py_ssize_t n) {
    PyObject *slots = PyObject_GetAttrString(type, "__slots__");
    Py_ssize_t size;
    if (slots == NULL) return -1;
    size = PyObject_Size(slots);
    Py_DECREF(slots);
    if (size < 0) return -1;
    if (size != n) {
        PyErr_Format(PyExc_TypeError, "%zd __slots__, scan fills %zd", size, n);
        return -1;
    }
    return 0;
}

static PyObject *configure(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t head_at[HEAD_SLOTS], replay_at[REPLAY_SLOTS];  /* kept only if all is well */
    (void)self;
    if (nargs != 2 || !PyType_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "configure(HeadInfo, Replay)");
        return NULL;
    }
    if (slot_offsets(args[0], head_slot_names, HEAD_SLOTS, head_at) < 0
        || slot_offsets(args[1], replay_slot_names, REPLAY_SLOTS, replay_at) < 0
        || slot_count(args[0], HEAD_SLOTS) < 0 || slot_count(args[1], REPLAY_SLOTS) < 0)
        return NULL;
    memcpy(head_offsets, head_at, sizeof head_at);
    memcpy(replay_offsets, replay_at, sizeof replay_at);
    Py_XSETREF(head_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(replay_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

/* scan(data, line_limit, field_max, section_max, count_max, body_limit) -> Replay or None
 *
 * The Replay (method, url, version, keep_alive: llhttp's own verdict for this version) of
 * a HeadInfo (headers: a tuple of (lowered name, value) pairs, and what framing and
 * keep-alive depend on, as analyse_head gives them; forwarded: a proxy header came), the
 * classes configure() gave. Limits as the connection has them (0 for the line and body:
 * none). */
static PyObject *scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    const char *d, *p, *end, *line;
    Py_ssize_t size, line_limit, field_max, section_max, count_max, body_limit;
    Py_ssize_t total = 0, count = 0, length = 0, i, url_len, method_len;
    int m = -1, minor, host_count = 0, has_length = 0, connection = 0, close_token = 0;
    int keep_alive_token = 0, expect_continue = 0, te_trailers = 0, forwarded = 0;
    PyObject *headers = NULL, *url, *result, *pair;
    struct field fields[FIELDS_MAX];
    (void)self;

    if (replay_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "scan() before configure()");
        return NULL;
    }
    if (nargs != 6 || !PyBytes_CheckExact(args[0])) Py_RETURN_NONE;
    if ((line_limit = PyLong_AsSsize_t(args[1])) == -1 && PyErr_Occurred()) return NULL;
    if ((field_max = PyLong_AsSsize_t(args[2])) == -1 && PyErr_Occurred()) return NULL;
    if ((section_max = PyLong_AsSsize_t(args[3])) == -1 && PyErr_Occurred()) return NULL;
    if ((count_max = PyLong_AsSsize_t(args[4])) == -1 && PyErr_Occurred()) return NULL;
    if ((body_limit = PyLong_AsSsize_t(args[5])) == -1 && PyErr_Occurred()) return NULL;
    d = PyBytes_AS_STRING(args[0]);
    size = PyBytes_GET_SIZE(args[0]);
    end = d + size;
    p = d;

    /* request line */
    for (i = 0; i < N_METHODS; i++) {
        Py_ssize_t n = (Py_ssize_t)strlen(method_names[i]);
        if (size > n && memcmp(p, method_names[i], n) == 0 && p[n] == ' ') {
            m = (int)i;
            p += n + 1;
            break;
        }
    }
    if (m < 0) Py_RETURN_NONE;
    method_len = PyBytes_GET_SIZE(methods[m]);
    line = p;
    if (p >= end || *p != '/') Py_RETURN_NONE;
    while (p < end && (classes[(unsigned char)*p] & C_TARGET)) p++;
    url_len = p - line;
    if (end - p < 10 || memcmp(p, " HTTP/1.", 8) != 0 || (p[8] != '1' && p[8] != '0')
        || p[9] != '\r' || end - p < 11 || p[10] != '\n')
        Py_RETURN_NONE;
    minor = p[8] - '0';
    /* connection.on_url's 414, exactly */
    if (line_limit && url_len + 32 > line_limit && url_len + method_len + 10 > line_limit)
        Py_RETURN_NONE;
    p += 11;

    /* fields: collected as (name start, name length, value start, value length) first */
    for (;;) {
        const char *name, *value, *vend;
        Py_ssize_t name_len, value_len, fsize;
        int kind;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            p += 2;
            break;
        }
        name = p;
        while (p < end && (classes[(unsigned char)*p] & C_TCHAR)) p++;
        name_len = p - name;
        if (name_len == 0 || p >= end || *p != ':') goto bail;
        p++;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        value = p;
        while (p < end && (classes[(unsigned char)*p] & C_VALUE)) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') goto bail;
        vend = p;
        p += 2;
        fsize = name_len + (vend - value);  /* before trailing whitespace goes (analyse_head) */
        total += fsize + 4;
        if (fsize > field_max || total > section_max || count >= count_max) goto bail;
        value_len = vend - value;
        while (value_len && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
            value_len--;
        kind = field_kind(name, name_len);
        switch (kind) {
        case F_BAIL:
            goto bail;
        case F_HOST:
            if (++host_count > 1 || !valid_host(value, value_len)) goto bail;
            break;
        case F_LENGTH:
            if (has_length || value_len == 0 || value_len > 15) goto bail;
            for (i = 0; i < value_len; i++) {
                if (value[i] < '0' || value[i] > '9') goto bail;
                length = length * 10 + (value[i] - '0');
            }
            has_length = 1;
            break;
        case F_CONNECTION:
            if (connection) goto bail;
            connection = 1;
            if (ieq(value, value_len, "close")) close_token = 1;
            else if (ieq(value, value_len, "keep-alive")) keep_alive_token = 1;
            else goto bail;
            break;
        case F_EXPECT:
            if (ieq(value, value_len, "100-continue")) expect_continue = 1;
            break;
        case F_TE:
            if (icontains(value, value_len, "trailers")) te_trailers = 1;
            break;
        case F_FORWARDED:
            forwarded = 1;
            break;
        default:
            break;
        }
        if (count >= FIELDS_MAX) goto bail;  /* more than a browser sends: llhttp's */
        fields[count].name = name;
        fields[count].name_len = name_len;
        fields[count].value = value;
        fields[count].value_len = value_len;
        count++;
    }
    /* exactly one whole message in this read */
    if (end - p != length) Py_RETURN_NONE;
    if (body_limit > 0 && length > body_limit) Py_RETURN_NONE;

    headers = PyTuple_New(count);
    if (headers == NULL) return NULL;
    for (i = 0; i < count; i++) {
        PyObject *name = lowered_name(fields[i].name, fields[i].name_len);
        PyObject *value;
        if (name == NULL) goto error;
        value = PyBytes_FromStringAndSize(fields[i].value, fields[i].value_len);
        if (value == NULL) {
            Py_DECREF(name);
            goto error;
        }
        pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(name);
            Py_DECREF(value);
            goto error;
        }
        PyTuple_SET_ITEM(pair, 0, name);
        PyTuple_SET_ITEM(pair, 1, value);
        PyTuple_SET_ITEM(headers, i, pair);
    }
    url = PyBytes_FromStringAndSize(line, url_len);
    if (url == NULL) goto error;
    {
        int keep_alive_11 = !close_token;
        PyObject *version = minor ? version_11 : version_10;
        PyObject *head, *values[HEAD_SLOTS];
        values[0] = headers;
        values[1] = PyBool_FromLong(!connection);  /* plain */
        values[2] = Py_NewRef(Py_None);  /* error */
        values[3] = Py_NewRef(Py_None);  /* host_error */
        values[4] = PyBool_FromLong(!host_count);  /* host_missing */
        values[5] = PyBool_FromLong(keep_alive_11);
        values[6] = PyBool_FromLong(keep_alive_token);  /* keep_alive_10 */
        values[7] = Py_NewRef(Py_False);  /* too_large: a scanned body is within the limit */
        values[8] = PyBool_FromLong(length > 0);  /* has_body */
        values[9] = PyBool_FromLong(expect_continue);
        values[10] = PyBool_FromLong(te_trailers);
        values[11] = Py_NewRef(Py_False);  /* upgrade: such heads are llhttp's */
        values[12] = PyLong_FromSsize_t(total);  /* size */
        values[13] = PyLong_FromSsize_t(count);  /* fields */
        values[14] = Py_NewRef(Py_False);  /* chunked: llhttp's too */
        values[15] = PyLong_FromSsize_t(length);
        values[16] = PyBool_FromLong(forwarded);
        headers = NULL;  /* values[0] owns it now */
        head = new_record(head_type, head_offsets, values, HEAD_SLOTS);
        if (head == NULL) {
            Py_DECREF(url);
            return NULL;
        }
        values[0] = Py_NewRef(methods[m]);
        values[1] = url;
        values[2] = head;
        values[3] = Py_NewRef(version);
        values[4] = PyBool_FromLong(minor ? keep_alive_11 : keep_alive_token);
        result = new_record(replay_type, replay_offsets, values, REPLAY_SLOTS);
    }
    return result;
bail:
    Py_RETURN_NONE;
error:
    Py_XDECREF(headers);
    return NULL;
}

/* environ_headers(headers) -> dict: the WSGI environ entries of request headers (PEP 3333:
 * CONTENT_TYPE, CONTENT_LENGTH, HTTP_*), as wsgi/environ.py's _header_entries makes them:
 * names with "_" dropped, repeated HTTP_* fields joined with ", " ("; " for Cookie), a
 * repeated CONTENT_* the last one; values decoded as latin-1. */
static gencache env_keys;  /* lowered name -> environ key ("" : dropped), names up to
                           * NAME_CACHE_LEN */
#define ENV_KEYS_MAX 1024

static PyObject *cookie_key;  /* "HTTP_COOKIE" */

/* a new reference to the environ key of a lowered name; NULL with ValueError for a name
 * that is not ASCII (the Python path decides those) */
static PyObject *env_key(PyObject *name) {
    PyObject *key = gen_get(&env_keys, name);
    const char *s;
    Py_ssize_t n, i;
    char *out;
    if (key != NULL) return key;
    if (PyErr_Occurred()) return NULL;
    s = PyBytes_AS_STRING(name);
    n = PyBytes_GET_SIZE(name);
    if (n == 12 && memcmp(s, "content-type", 12) == 0) {
        key = PyUnicode_InternFromString("CONTENT_TYPE");
    } else if (n == 14 && memcmp(s, "content-length", 14) == 0) {
        key = PyUnicode_InternFromString("CONTENT_LENGTH");
    } else if (memchr(s, '_', n) != NULL) {
        key = PyUnicode_FromString("");
    } else {
        key = PyUnicode_New(n + 5, 127);
        if (key == NULL) return NULL;
        out = (char *)PyUnicode_DATA(key);
        memcpy(out, "HTTP_", 5);
        for (i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c >= 'a' && c <= 'z') c -= 32;
            else if (c == '-') c = '_';
            else if (c >= 0x80) {
                Py_DECREF(key);
                PyErr_SetString(PyExc_ValueError, "a field name that is not ASCII");
                return NULL;
            }
            out[5 + i] = (char)c;
        }
    }
    if (key == NULL) return NULL;
    if (n <= NAME_CACHE_LEN && gen_put(&env_keys, name, key) < 0) {
        Py_DECREF(key);
        return NULL;
    }
    return key;
}

/* Add the environ entries of request headers to ``entries``; -1 with an exception set
 * (TypeError: not a tuple of (bytes, bytes) pairs; ValueError: a name not ASCII). A
 * repeated HTTP_* key is joined: ``entries`` must hold no HTTP_* key but the headers'. */
static int add_header_entries(PyObject *entries, PyObject *headers) {
    Py_ssize_t i, n;
    if (!PyTuple_CheckExact(headers)) goto type_error;
    n = PyTuple_GET_SIZE(headers);
    for (i = 0; i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(headers, i), *name, *value, *key, *text, *old;
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) goto type_error;
        name = PyTuple_GET_ITEM(pair, 0);
        value = PyTuple_GET_ITEM(pair, 1);
        if (!PyBytes_CheckExact(name) || !PyBytes_CheckExact(value)) goto type_error;
        key = env_key(name);
        if (key == NULL) return -1;
        if (PyUnicode_GET_LENGTH(key) == 0) {
            Py_DECREF(key);
            continue;
        }
        text = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), NULL);
        if (text == NULL) {
            Py_DECREF(key);
            return -1;
        }
        old = PyUnicode_READ_CHAR(key, 0) == 'H' ? PyDict_GetItemWithError(entries, key) : NULL;
        if (old != NULL) {
            PyObject *sep = PyUnicode_FromString(
                PyUnicode_Compare(key, cookie_key) == 0 ? "; " : ", ");
            PyObject *joined = NULL, *left;
            if (sep == NULL) {
                Py_DECREF(text);
                Py_DECREF(key);
                return -1;
            }
            left = PyUnicode_Concat(old, sep);
            Py_DECREF(sep);
            if (left != NULL) {
                joined = PyUnicode_Concat(left, text);
                Py_DECREF(left);
            }
            Py_DECREF(text);
            if (joined == NULL) {
                Py_DECREF(key);
                return -1;
            }
            text = joined;
        } else if (PyErr_Occurred()) {
            Py_DECREF(text);
            Py_DECREF(key);
            return -1;
        }
        if (PyDict_SetItem(entries, key, text) < 0) {
            Py_DECREF(text);
            Py_DECREF(key);
            return -1;
        }
        Py_DECREF(text);
        Py_DECREF(key);
    }
    return 0;
type_error:
    PyErr_SetString(PyExc_TypeError, "a tuple of (bytes, bytes) pairs");
    return -1;
}

static PyObject *environ_headers(PyObject *self, PyObject *headers) {
    PyObject *entries = PyDict_New();
    (void)self;
    if (entries == NULL) return NULL;
    if (add_header_entries(entries, headers) < 0) {
        Py_DECREF(entries);
        return NULL;
    }
    return entries;
}

static PyObject *k_path_info, *k_query_string, *k_raw_uri, *k_request_method, *empty_str;

static int set_decoded(PyObject *environ, PyObject *key, const char *s, Py_ssize_t n) {
    PyObject *text = n ? PyUnicode_DecodeLatin1(s, n, NULL) : Py_NewRef(empty_str);
    int result;
    if (text == NULL) return -1;
    result = PyDict_SetItem(environ, key, text);
    Py_DECREF(text);
    return result;
}

/* wsgi_environ(base, url, headers, method) -> dict | None: the environ of a request in
 * one call, as wsgi/http.py builds it from base (the connection's template, with no
 * HTTP_* key), parse_target's entries (PATH_INFO, QUERY_STRING, RAW_URI),
 * REQUEST_METHOD and the headers' entries. None where the Python path decides: a target
 * not in origin form, a path with a percent escape, headers that are not bytes pairs, a
 * field name that is not ASCII. */
static PyObject *wsgi_environ(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *base, *url, *environ;
    const char *u, *q;
    Py_ssize_t n, path_len;
    (void)self;
    if (nargs != 4 || !PyDict_CheckExact(args[0]) || !PyBytes_CheckExact(args[1]))
        Py_RETURN_NONE;
    base = args[0];
    url = args[1];
    u = PyBytes_AS_STRING(url);
    n = PyBytes_GET_SIZE(url);
    if (n == 0 || u[0] != '/') Py_RETURN_NONE;
    q = memchr(u, '?', (size_t)n);
    path_len = q == NULL ? n : q - u;
    if (memchr(u, '%', (size_t)path_len) != NULL) Py_RETURN_NONE;
    environ = PyDict_Copy(base);
    if (environ == NULL) return NULL;
    if (set_decoded(environ, k_path_info, u, path_len) < 0
        || set_decoded(environ, k_query_string, q == NULL ? u : q + 1,
                       q == NULL ? 0 : n - path_len - 1) < 0
        || set_decoded(environ, k_raw_uri, u, n) < 0
        || PyDict_SetItem(environ, k_request_method, args[3]) < 0)
        goto error;
    if (add_header_entries(environ, args[2]) < 0) {
        if (PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            Py_DECREF(environ);
            Py_RETURN_NONE;
        }
        goto error;
    }
    return environ;
error:
    Py_DECREF(environ);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"environ_headers", (PyCFunction)environ_headers, METH_O,
     "environ_headers(headers) -> dict of the WSGI environ entries of request headers"},
    {"wsgi_environ", (PyCFunction)(void (*)(void))wsgi_environ, METH_FASTCALL,
     "wsgi_environ(base, url, headers, method) -> dict | None: a request's WSGI environ"},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(HeadInfo, Replay): the records scan() returns"},
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(data, line_limit, field_max, section_max, count_max, body_limit) -> Replay | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "betula._h1scan",
    "One-call scan of a whole, strict HTTP/1 request head (see _h1scan.c).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__h1scan(void) {
    PyObject *mod;
    int i;
    init_classes();
    for (i = 0; i < N_METHODS; i++) {
        methods[i] = PyBytes_FromString(method_names[i]);
        if (methods[i] == NULL) return NULL;
    }
    version_11 = PyUnicode_InternFromString("1.1");
    version_10 = PyUnicode_InternFromString("1.0");
    cookie_key = PyUnicode_InternFromString("HTTP_COOKIE");
    k_path_info = PyUnicode_InternFromString("PATH_INFO");
    k_query_string = PyUnicode_InternFromString("QUERY_STRING");
    k_raw_uri = PyUnicode_InternFromString("RAW_URI");
    k_request_method = PyUnicode_InternFromString("REQUEST_METHOD");
    empty_str = PyUnicode_FromString("");
    if (k_path_info == NULL || k_query_string == NULL || k_raw_uri == NULL
        || k_request_method == NULL || empty_str == NULL) return NULL;
    if (cookie_key == NULL || version_11 == NULL || version_10 == NULL
        || gen_init(&names, NAMES_MAX) < 0 || gen_init(&env_keys, ENV_KEYS_MAX) < 0)
        return NULL;
    mod = PyModule_Create(&module);
    if (mod == NULL) return NULL;
#ifdef Py_GIL_DISABLED
    /* Safe without the GIL: the memos lock (gencache), the rest is set once here. */
    PyUnstable_Module_SetGIL(mod, Py_MOD_GIL_NOT_USED);
#endif
    return mod;
}
