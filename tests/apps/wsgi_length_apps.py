"""WSGI apps whose Content-Length disagrees with their (list) body."""


def app(environ, start_response):
    declared, _, body = environ["PATH_INFO"].strip("/").partition("/")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", declared)])
    return [body.encode()]
