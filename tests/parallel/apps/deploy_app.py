"""What a deployment's flags change, as the application sees it: ``wsgi`` and ``asgi``
answer every request with JSON naming the client, scheme, host, root path and path they
were given; ``make_wsgi`` is a factory (``--factory``); ``ENV_FILE_SEEN`` is read at import
(``--env-file`` must set it before). Used by tests/parallel/test_pp_serve_flags.py."""
import json
import os

ENV_FILE_SEEN = os.environ.get("PP_DEPLOY_FROM_ENV_FILE", "")


def wsgi(environ, start_response):
    body = json.dumps({
        "client": environ["REMOTE_ADDR"], "port": environ["REMOTE_PORT"],
        "scheme": environ["wsgi.url_scheme"], "host": environ.get("HTTP_HOST"),
        "root_path": environ["SCRIPT_NAME"], "path": environ["PATH_INFO"],
        "env_file": ENV_FILE_SEEN}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def make_wsgi():
    return wsgi


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    body = json.dumps({
        "client": scope["client"][0], "port": scope["client"][1], "scheme": scope["scheme"],
        "host": headers.get(b"host", b"").decode("latin-1"), "root_path": scope["root_path"],
        "path": scope["path"], "raw_path": scope["raw_path"].decode("latin-1"),
        "env_file": ENV_FILE_SEEN}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
