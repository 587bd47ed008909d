"""A Flask application for the WSGI end-to-end tests and the benchmark (Debian's
python3-flask; the test puts /usr/lib/python3/dist-packages on the path)."""
import threading

from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)

# Read-only data shared by every worker: built once, at import.
TABLE = {i: i * 7 for i in range(int(__import__("os").environ.get("PP_TABLE_SIZE", "1000000")))}


@app.route("/")
def hello():
    return "Hello, World!"


@app.route("/shared")
def shared():
    # About 1 ms of Python over the shared table.
    start = int(request.args.get("start", "0"))
    total = 0
    get = TABLE.get
    for i in range(start, start + 4000):
        total += get(i % len(TABLE), 0)
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
