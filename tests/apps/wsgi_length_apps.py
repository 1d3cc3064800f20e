"""WSGI apps whose Content-Length disagrees with their body, or whose iterated body is
whole in its first block."""

import threading

RELEASED = threading.Event()  # /release sets it: /held's iterator may end


def app(environ, start_response):
    """``/<declared>/<body>``: a list body under the Content-Length ``declared``."""
    declared, _, body = environ["PATH_INFO"].strip("/").partition("/")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", declared)])
    return [body.encode()]


def iterated(environ, start_response):
    """``/<declared>/<first>/<rest>``: an iterator yielding ``first``, then ``rest`` (when not
    empty), under the Content-Length ``declared``; ``/held``: the whole body in one block,
    then the iterator waits (bounded) for ``/release`` from another connection before it
    ends; ``/release``: lets it end."""
    path = environ["PATH_INFO"]
    if path == "/release":
        RELEASED.set()
        start_response("200 OK", [("Content-Length", "8")])
        return [b"released"]
    if path == "/held":
        RELEASED.clear()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])

        def held():
            yield b"held"
            if not RELEASED.wait(30):
                raise RuntimeError("never released")
        return held()
    if path == "/tail-write":  # the whole body yielded, then more through write()
        write = start_response("200 OK", [("Content-Length", "5")])

        def tail():
            yield b"hello"
            write(b"EVIL!")
        return tail()
    declared, first, rest = path[1:].split("/", 2)

    def parts():
        yield first.encode()
        if rest:
            yield rest.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", declared)])
    return parts()
