"""``--static PREFIX=DIRECTORY``: files served by the server itself, the app never called.

This module is the decision: which file a request names, and what to answer for it (status,
fields, which bytes of which file), as plain functions and records (``answer`` takes a
folder and a request's method, target and fields and returns an ``Answer``).
``static_exchange.py`` is the handler that sends an ``Answer`` through the stream seam.

Lookup (``lookup``). The path after the prefix is percent-decoded and split on "/"; empty
and "." segments are dropped. Refused with 400: an encoded slash (``%2f``), a backslash
(raw or ``%5c``), a NUL byte, a ".." segment. Not found (404): a segment that starts with
a dot (dotfiles, ``.git``), except ``.well-known`` (RFC 8615); anything that is not a regular
file or a directory; a path whose real location (``os.path.realpath``: every symlink
resolved, per request) is not inside the folder's own real path, so a symlink inside the
folder may point elsewhere inside it but never out. A file the server may not open is 403.
A directory answers its ``index.html`` (404 without one, no listings); a directory named
without its trailing slash is redirected (301) to the name with it, so that the index's
relative links resolve. A file named with a trailing slash is 404.

Answer (``answer``). GET and HEAD only (else 405 with ``Allow: GET, HEAD``). Fields:
``Content-Type`` by extension (text types with ``charset=utf-8``), ``Content-Length``,
a strong ``ETag`` (``"<mtime_ns hex>-<size hex>"``, ``-br`` / ``-gz`` appended for a
precompressed body), ``Last-Modified``, ``Accept-Ranges: bytes``. Preconditions in RFC 9110
§13.2.2's order: ``If-Match`` / ``If-Unmodified-Since`` (412), ``If-None-Match`` (weak
comparison, lists, ``*``) or else ``If-Modified-Since`` (304, no body). ``Range`` (GET): one
range ``a-b``, ``a-`` or ``-n`` is a 206 with ``Content-Range``; an unsatisfiable one a 416
with ``Content-Range: bytes */size``; several ranges, a malformed header, or an empty file:
the whole file (200). ``If-Range`` (an ETag, compared strongly, or the Last-Modified date)
that does not match: the whole file. Precompressed siblings: ``file.br`` (preferred at equal
q) or ``file.gz`` next to the file, when ``Accept-Encoding`` allows it, is sent with
``Content-Encoding``; every answer for a file that has a sibling says
``Vary: Accept-Encoding``. A request with ``Range`` gets the plain file (ranges never apply
to an encoded body).

File system calls (realpath, open, fstat, stat of the siblings) run on the event loop: they
are local-disk fast; a folder on a slow network file system would hold the worker.
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from collections.abc import Mapping
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote_to_bytes

__all__ = ["Answer", "ByteRange", "Forbidden", "Found", "Preconditions", "StaticDir",
           "answer", "byte_range", "choose_encoding", "content_type", "lookup",
           "parse_static_dirs", "static_problem"]

# Bodies up to this size are read and sent with the head in one write; larger ones go
# with send_file (sendfile on a plain HTTP/1.1 socket).
SMALL_BODY = 16 * 1024
INDEX = b"index.html"
# (Content-Encoding, the sibling's suffix, the ETag's suffix), in order of preference.
ENCODINGS = ((b"br", b".br", "-br"), (b"gzip", b".gz", "-gz"))
VARY = (b"vary", b"Accept-Encoding")
ALLOW = (b"allow", b"GET, HEAD")
ACCEPT_RANGES = (b"accept-ranges", b"bytes")
TEXT = (b"content-type", b"text/plain; charset=utf-8")
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
# Types the platform's tables may lack or disagree on (RFC 9239 for JavaScript).
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".woff2": "font/woff2",
          ".woff": "font/woff", ".wasm": "application/wasm", ".webp": "image/webp",
          ".avif": "image/avif", ".webmanifest": "application/manifest+json"}
_CHARSET_TYPES = {"application/javascript", "application/xml", "image/svg+xml"}
_ARCHIVES = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz"}
_CONTENT_TYPES: dict[str, bytes] = {}  # extension -> its Content-Type value
_ETAG = re.compile(rb'\s*(W/)?("[^"]*")\s*(?:,|$)')
_RANGE = re.compile(rb"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*\Z", re.I)


# -- settings ----------------------------------------------------------------------------
def parse_static_dirs(value: Any) -> tuple[tuple[str, str], ...]:
    """``--static`` items, PREFIX=DIRECTORY (a list, a TOML table, or a comma-separated env
    string) -> ((prefix, absolute directory), ...). A relative directory is relative to the
    current directory. ValueError for a bad prefix or a directory that is not one."""
    if value is None or value == ():
        return ()
    if isinstance(value, str):
        items: list[Any] = [v for v in value.replace(",", " ").split() if v]
    elif isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"expected PREFIX=DIRECTORY items, got {value!r}")
    result: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            prefix, directory = str(item[0]), str(item[1])
        else:
            prefix, sep, directory = str(item).partition("=")
            if not sep or not directory:
                raise ValueError(f"static {item!r}: expected PREFIX=DIRECTORY")
        if not prefix.startswith("/"):
            raise ValueError(f"static prefix {prefix!r} must start with '/'")
        if len(prefix) > 1 and prefix.endswith("/"):
            raise ValueError(f"static prefix {prefix!r} must not end with '/'")
        if prefix in seen:
            raise ValueError(f"static prefix {prefix!r} is given twice")
        if not os.path.exists(directory):
            raise ValueError(f"static {prefix}: directory {directory!r} does not exist")
        if not os.path.isdir(directory):
            raise ValueError(f"static {prefix}: {directory!r} is not a directory")
        seen.add(prefix)
        result.append((prefix, os.path.abspath(directory)))
    return tuple(result)


def static_problem(static: Any, mounts: Any, app: Any) -> str | None:
    """Why ``--static`` cannot go with these mounts and app (one line), or None: a static
    prefix may not be a mount's, nor "/" while an app answers the root."""
    mounted = {prefix for prefix, _ in mounts}
    root_app = bool(app) or not mounts  # the app, or no mount: the app answers "/"
    for prefix, _ in static:
        if prefix in mounted:
            return f"--static {prefix} and --mount {prefix} claim the same prefix: give one"
        if prefix == "/" and root_app:
            return "--static / and the app both claim the root: mount the app elsewhere"
    return None


# -- the folder and its files ----------------------------------------------------------------
class StaticDir:
    """One ``--static`` folder: its prefix (bytes, matched against the decoded path; ""
    for "/"), its real path, and the prefix as the client sees it (``--root-path`` first)."""

    __slots__ = ("prefix", "root", "inside", "public")

    def __init__(self, prefix: str, directory: str, root_path: str = "") -> None:
        prefix = "" if prefix == "/" else prefix
        self.prefix = prefix.encode("utf-8")
        self.root = os.fsencode(os.path.realpath(directory))
        self.inside = self.root if self.root.endswith(b"/") else self.root + b"/"
        self.public = root_path + prefix
        if not mimetypes.inited:  # the platform's tables are read now, not by a request
            mimetypes.init()

    def contains(self, real: bytes) -> bool:
        return real == self.root or real.startswith(self.inside)


class Forbidden(Exception):
    """A file inside the folder that the server may not open."""


class Found:
    """An open regular file inside the folder: its descriptor (the caller closes it), its
    stat and the path it was named by (siblings are looked for next to it)."""

    __slots__ = ("fd", "stat", "path")

    def __init__(self, fd: int, st: os.stat_result, path: bytes) -> None:
        self.fd = fd
        self.stat = st
        self.path = path


class BadPath(Exception):
    """A request path refused outright (400)."""


def _open_inside(folder: StaticDir, path: bytes) -> tuple[int, os.stat_result] | None:
    """``path`` opened, when its real location is inside ``folder``: (fd, stat); None when
    it is missing, outside or unopenable (a loop, a name too long); Forbidden for EACCES."""
    real = os.path.realpath(path)
    if not folder.contains(real):
        return None
    try:
        # O_NOFOLLOW: the last component cannot have become a symlink since realpath;
        # O_NONBLOCK: a FIFO put in the folder does not hold the loop in open().
        fd = os.open(real, _OPEN_FLAGS)
    except PermissionError:
        raise Forbidden() from None
    except OSError:
        return None
    try:
        return fd, os.fstat(fd)
    except OSError:
        os.close(fd)
        return None


def _regular(folder: StaticDir, path: bytes) -> Found | None:
    opened = _open_inside(folder, path)
    if opened is None:
        return None
    fd, st = opened
    if stat.S_ISREG(st.st_mode):
        return Found(fd, st, path)
    os.close(fd)
    return None


def segments_of(path: bytes) -> tuple[list[bytes], bool]:
    """The decoded path below the prefix -> (its segments, whether it ends with "/").
    BadPath for what may never name a file in the folder."""
    if path.find(b"\\") >= 0:
        raise BadPath("'\\' in the path")
    if path.find(b"\x00") >= 0:
        raise BadPath("NUL in the path")
    segments = []
    for segment in path.split(b"/"):
        if not segment or segment == b".":
            continue
        if segment == b"..":
            raise BadPath("'..' in the path")
        segments.append(segment)
    return segments, path.endswith(b"/")


def decoded_path(raw_path: bytes) -> bytes:
    """The request's raw path percent-decoded, as the router matched it. BadPath for an
    encoded "/" (it would cut the path where the client did not)."""
    if raw_path.find(b"%") < 0:
        return raw_path
    if raw_path.lower().find(b"%2f") >= 0:
        raise BadPath("encoded '/' in the path")
    return unquote_to_bytes(raw_path)


class Lookup:
    """What a path names: ``found`` (an open file), or ``redirect`` (a directory named
    without its trailing slash: the path to send the client to), or neither (404)."""

    __slots__ = ("found", "redirect")

    def __init__(self, found: Found | None = None, redirect: str | None = None) -> None:
        self.found = found
        self.redirect = redirect


NOT_FOUND = Lookup()


def lookup(folder: StaticDir, rest: bytes) -> Lookup:
    """The file ``rest`` (the decoded path after the prefix: "" or "/...") names in
    ``folder``. BadPath (400), Forbidden (403)."""
    if rest and rest[0] != 47:  # "/assetsX" is not under "/assets" (the router checks);
        return NOT_FOUND  # an HTTP/2 ":path" of "*" is not a path
    segments, trailing = segments_of(rest)
    for segment in segments:
        if segment[0] == 46 and segment != b".well-known":  # "."
            return NOT_FOUND
    path = folder.root + b"/" + b"/".join(segments) if segments else folder.root
    opened = _open_inside(folder, path)
    if opened is None:
        return NOT_FOUND
    fd, st = opened
    if stat.S_ISREG(st.st_mode):
        if trailing:
            os.close(fd)
            return NOT_FOUND
        return Lookup(Found(fd, st, path))
    os.close(fd)
    if not stat.S_ISDIR(st.st_mode):
        return NOT_FOUND
    if not trailing:
        return Lookup(redirect=folder.public + "/" + "".join(
            quote(segment, safe="!$&'()*+,;=:@-._~") + "/" for segment in segments))
    index = _regular(folder, path + b"/" + INDEX)
    return NOT_FOUND if index is None else Lookup(index)


def content_type(name: bytes) -> bytes:
    """The Content-Type value for a file name (by its extension)."""
    dot = name.rfind(b".")
    ext = os.fsdecode(name[dot:]).lower() if dot > name.rfind(b"/") else ""
    value = _CONTENT_TYPES.get(ext)
    if value is None:
        kind = _TYPES.get(ext)
        if kind is None:
            kind, encoding = mimetypes.guess_type("file" + ext, strict=False)
            if encoding is not None:  # a compressed file asked for as itself: not decoded
                kind = _ARCHIVES.get(encoding, "application/octet-stream")
        kind = kind or "application/octet-stream"
        if kind.startswith("text/") or kind in _CHARSET_TYPES:
            kind += "; charset=utf-8"
        value = kind.encode("ascii")
        if len(_CONTENT_TYPES) < 4096:  # extensions come from the folder's files: bounded
            _CONTENT_TYPES[ext] = value
    return value


# -- request fields ------------------------------------------------------------------------
class Preconditions:
    """The request fields an answer depends on, from one pass over the request head (a
    field given twice is joined with ", ", as lists are)."""

    __slots__ = ("if_match", "if_none_match", "if_modified_since", "if_unmodified_since",
                 "range", "if_range", "accept_encoding")

    _NAMES = {b"if-match": "if_match", b"if-none-match": "if_none_match",
              b"if-modified-since": "if_modified_since",
              b"if-unmodified-since": "if_unmodified_since", b"range": "range",
              b"if-range": "if_range", b"accept-encoding": "accept_encoding"}

    def __init__(self, headers: Any) -> None:
        for slot in self.__slots__:
            setattr(self, slot, None)
        names = self._NAMES
        for name, value in headers:
            slot = names.get(name)
            if slot is not None:
                have = getattr(self, slot)
                setattr(self, slot, value if have is None else have + b", " + value)


def _tags(value: bytes) -> list[tuple[bool, bytes]] | None:
    """An If-Match / If-None-Match list: [(weak, opaque tag)], or None for "*"."""
    if value.strip() == b"*":
        return None
    tags = []
    pos = 0
    while pos < len(value):
        match = _ETAG.match(value, pos)
        if match is None:
            break  # the rest is not a list of tags: what came before counts
        tags.append((match.group(1) is not None, match.group(2)))
        pos = match.end()
    return tags


def _date(value: bytes | None) -> float | None:
    """An HTTP date as a POSIX timestamp; None when absent or not a date."""
    if value is None:
        return None
    try:
        return parsedate_to_datetime(value.decode("latin-1")).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def precondition_status(fields: Preconditions, etag: bytes, mtime: int) -> int:
    """RFC 9110 §13.2.2 for a GET/HEAD of a file with strong ``etag`` last modified at
    ``mtime`` (whole seconds): 412, 304, or 0 (go on)."""
    if fields.if_match is not None:
        tags = _tags(fields.if_match)
        if tags is not None and not any(not weak and tag == etag for weak, tag in tags):
            return 412
    elif fields.if_unmodified_since is not None:
        since = _date(fields.if_unmodified_since)
        if since is not None and mtime > since:
            return 412
    if fields.if_none_match is not None:
        tags = _tags(fields.if_none_match)
        if tags is None or any(tag == etag for _, tag in tags):  # weak comparison
            return 304
    elif fields.if_modified_since is not None:
        since = _date(fields.if_modified_since)
        if since is not None and mtime <= since:
            return 304
    return 0


class ByteRange:
    """One satisfiable range of a file: bytes ``first`` to ``last``, both included."""

    __slots__ = ("first", "last")

    def __init__(self, first: int, last: int) -> None:
        self.first = first
        self.last = last

    def __repr__(self) -> str:
        return f"ByteRange({self.first}, {self.last})"


UNSATISFIABLE = ByteRange(-1, -1)


def byte_range(value: bytes, size: int) -> ByteRange | None:
    """A Range field against a file of ``size`` bytes: the one range it asks for,
    UNSATISFIABLE (416), or None: answer the whole file (no single well-formed byte range:
    several ranges, another unit, bad syntax; or an empty file)."""
    match = _RANGE.match(value)
    if match is None or size == 0:
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        if not last:
            return None  # "bytes=-"
        suffix = int(last)
        if suffix == 0:
            return UNSATISFIABLE
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored (RFC 9110 §14.1.1)
    if start >= size:
        return UNSATISFIABLE
    return ByteRange(start, min(int(last), size - 1) if last else size - 1)


def _if_range_holds(value: bytes, etag: bytes, last_modified: bytes) -> bool:
    value = value.strip()
    if value[:1] == b'"':
        return value == etag  # strong comparison
    if value[:2] == b"W/":
        return False  # a weak tag never validates a range
    return value == last_modified


def choose_encoding(accept: bytes | None, available: list[int]) -> int:
    """The index in ENCODINGS of the coding to send, among ``available`` (indexes of the
    siblings that exist), by the client's Accept-Encoding (q-values, "*"); -1: none."""
    if accept is None or not available:
        return -1
    quality: dict[bytes, float] = {}
    for item in accept.split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(b";"):
            key, _, number = param.partition(b"=")
            if key.strip().lower() == b"q":
                try:
                    q = float(number.strip())
                except ValueError:
                    q = 0.0
        if coding:
            quality[coding] = q
    best, best_q = -1, 0.0
    for index in available:
        name = ENCODINGS[index][0]
        q = quality.get(name, quality.get(b"*", 0.0))
        if q > best_q:  # at equal q the earlier (br) stays
            best, best_q = index, q
    return best


# -- the answer ------------------------------------------------------------------------------
class Answer:
    """What to send: ``status``, ``headers`` ((name, value) bytes pairs), then either
    ``body`` (bytes) or ``count`` bytes of file ``fd`` from ``offset`` (``fd`` -1: none;
    the sender closes it). HEAD: the fields a GET would have, no body."""

    __slots__ = ("status", "headers", "body", "fd", "offset", "count")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"",
                 fd: int = -1, offset: int = 0, count: int = 0) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.fd = fd
        self.offset = offset
        self.count = count


def text_answer(status: int, text: str, extra: tuple[tuple[bytes, bytes], ...] = ()) -> Answer:
    body = text.encode("utf-8") + b"\n"
    return Answer(status, [TEXT, (b"content-length", b"%d" % len(body)), *extra], body)


def _sibling_exists(folder: StaticDir, path: bytes) -> bool:
    """A regular file at ``path`` whose real location is inside ``folder``."""
    real = os.path.realpath(path)
    if not folder.contains(real):
        return False
    try:
        return stat.S_ISREG(os.stat(real).st_mode)
    except OSError:
        return False


def answer(folder: StaticDir, method: bytes, raw_path: bytes, query: bytes, headers: Any
           ) -> Answer:
    """The answer to ``method`` for ``raw_path`` (the request's, under ``folder``'s
    prefix) in ``folder``; ``query`` goes on in a redirect; ``headers``: the request's
    fields (lowercase names)."""
    if method != b"GET" and method != b"HEAD":
        return text_answer(405, "405 Method Not Allowed", (ALLOW,))
    try:
        found = lookup(folder, decoded_path(raw_path)[len(folder.prefix):])
    except BadPath as exc:
        return text_answer(400, f"400 Bad Request: {exc}")
    except Forbidden:
        return text_answer(403, "403 Forbidden")
    if found.redirect is not None:
        location = found.redirect
        if query and all(32 < byte < 127 for byte in query):  # (else it is dropped)
            location += "?" + query.decode("ascii")
        return text_answer(301, "301 Moved Permanently: " + location,
                           ((b"location", location.encode("ascii")),))
    if found.found is None:
        return text_answer(404, "404 Not Found")
    return _file_answer(folder, found.found, method, Preconditions(headers))


def _file_answer(folder: StaticDir, plain: Found, method: bytes, fields: Preconditions
                 ) -> Answer:
    chosen = plain  # the open file whose bytes go out: closed here unless the answer sends it
    try:
        available = [i for i, (_, suffix, _) in enumerate(ENCODINGS)
                     if _sibling_exists(folder, plain.path + suffix)]
        ranged = fields.range is not None and method == b"GET"
        coding = -1 if ranged else choose_encoding(fields.accept_encoding, available)
        if coding >= 0:
            try:
                sibling = _regular(folder, plain.path + ENCODINGS[coding][1])
            except Forbidden:
                sibling = None
            if sibling is None:  # gone, or not readable, since it was seen: the plain file
                coding = -1
            else:
                os.close(plain.fd)
                chosen = sibling
        plan = _plan(chosen, plain.path, coding, bool(available), method, ranged, fields)
    except BaseException:
        os.close(chosen.fd)
        raise
    if plan.fd < 0:
        os.close(chosen.fd)
    return plan


def _plan(chosen: Found, name: bytes, coding: int, vary: bool, method: bytes, ranged: bool,
          fields: Preconditions) -> Answer:
    """The answer for the open file ``chosen`` (``name``'s, or its sibling in ENCODINGS
    ``coding``); it sends ``chosen.fd`` only when the body is large (else it is read)."""
    st = chosen.stat
    size = st.st_size
    tag = f'"{st.st_mtime_ns:x}-{size:x}{ENCODINGS[coding][2] if coding >= 0 else ""}"'
    etag = tag.encode("ascii")
    mtime = int(st.st_mtime)
    last_modified = formatdate(mtime, usegmt=True).encode("ascii")
    validators = [(b"etag", etag), (b"last-modified", last_modified)]
    if vary:
        validators.append(VARY)
    status = precondition_status(fields, etag, mtime)
    if status == 304:
        return Answer(304, validators)
    if status:
        return text_answer(412, "412 Precondition Failed")
    headers = [(b"content-type", content_type(name)), *validators, ACCEPT_RANGES]
    if coding >= 0:
        headers.append((b"content-encoding", ENCODINGS[coding][0]))
    first, count, status = 0, size, 200
    if ranged and (fields.if_range is None
                   or _if_range_holds(fields.if_range, etag, last_modified)):
        wanted = byte_range(fields.range, size)  # type: ignore[arg-type]
        if wanted is UNSATISFIABLE:
            return text_answer(416, "416 Range Not Satisfiable",
                               ((b"content-range", b"bytes */%d" % size),))
        if wanted is not None:
            status, first, count = 206, wanted.first, wanted.last - wanted.first + 1
            headers.append((b"content-range", b"bytes %d-%d/%d" % (wanted.first, wanted.last,
                                                                    size)))
    headers.append((b"content-length", b"%d" % count))
    if method == b"HEAD":
        return Answer(status, headers)
    if count <= SMALL_BODY:
        body = _read(chosen.fd, first, count) if count else b""
        if len(body) < count:  # the file shrank since fstat
            return text_answer(404, "404 Not Found")
        return Answer(status, headers, body)
    return Answer(status, headers, fd=chosen.fd, offset=first, count=count)


def _read(fd: int, offset: int, count: int) -> bytes:
    data = os.pread(fd, count, offset)
    while len(data) < count:
        more = os.pread(fd, count - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data
