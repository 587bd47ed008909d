"""A Flask application for the WSGI end-to-end tests and the benchmark (Debian's
python3-flask; the test puts /usr/lib/python3/dist-packages on the path)."""
import os
import threading

from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)

# Read-only data shared by every worker: built once, at import.
# About 1 ms of Python on Debian's python3.11 (20,000 lookups measured 1.0 ms there).
LOOKUPS = 20000
TABLE = {i: i * 7 for i in range(int(os.environ.get("PP_TABLE_SIZE", "1000000")))}


@app.route("/")
def hello():
    return "Hello, World!"


@app.route("/shared")
def shared():
    start = int(request.args.get("start", "0"))
    total = 0
    # A local name for the table, and subscripts rather than TABLE.get: see
    # bench/README.md (shared objects on a free-threaded interpreter).
    table = TABLE
    size = len(table)
    for i in range(start, start + LOOKUPS):
        total += table[i % size]
    return str(total)


@app.route("/echo", methods=["POST", "PUT"])
def echo():
    data = request.get_data()
    return jsonify(length=len(data), head=data[:16].decode("latin-1"),
                   content_type=request.content_type)


@app.route("/json/<name>")
def json_route(name):
    return jsonify(name=name, query=request.args.to_dict(),
                   thread=threading.current_thread().name)


@app.route("/stream")
def stream():
    def gen():
        for i in range(5):
            yield f"part {i}\n"
    return Response(stream_with_context(gen()), mimetype="text/plain")


@app.route("/boom")
def boom():
    raise ValueError("flask view failed on purpose")


@app.route("/missing-file")
def missing():
    return "nope", 404
