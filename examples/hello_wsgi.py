"""The bundled WSGI example: ``betula examples.hello_wsgi:app``."""


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/":
        body = b"Hello, world!"
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found"]
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
