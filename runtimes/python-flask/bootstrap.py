"""The runtime contract for Python Flask: serve the Flask `app` of the entry module on PORT, answer
GET /_/health when ready, and stop gracefully on SIGTERM: finish in-flight requests, then exit.
Flask itself turns an uncaught exception in a view into a 500; the process stays up.

A request names the instance it was routed to (x-plat-instance); one meant for another instance (a
route that outlived its container, whose address this container now has) is refused with 421 and
never reaches the function. A request that names none (a check from the host) is served. The
function is served on the platform's socket too (PLAT_SOCKET, see platform_socket).

What the function writes to stdout and stderr while it handles a request (print, logging) is tied to
the request's id (x-request-id, set by the gateway): each line is marked with it, so
`plat logs --request ID` finds it however many requests run at once."""

import contextvars
import importlib.util
import logging
import os
import re
import signal
import sys
import threading

from werkzeug.serving import make_server

HEALTH_PATH = "/_/health"
STATE_PATH = "/_/state"
entry = os.environ.get("PLAT_ENTRY", "/app/app.py")
port = int(os.environ.get("PORT", "8080"))
GRACE_SECONDS = int(os.environ.get("PLAT_GRACE_MS", "10000")) / 1000
INSTANCE_ID = os.environ.get("PLAT_INSTANCE_ID")
MISDIRECTED = b'{"error":{"code":"MISDIRECTED_REQUEST","message":"this request was routed to another instance"}}'

REQUEST_MARK = "\x1fplat-rid="
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
current_request = contextvars.ContextVar("plat_request_id", default=None)


class RequestMarkedStream:
    """A text stream whose lines, while a request is handled on this thread, carry its id. Each
    thread's line is written whole, so concurrent requests' lines never mix."""

    def __init__(self, stream):
        self._stream = stream
        self._local = threading.local()
        self._lock = threading.Lock()

    def write(self, text):
        request_id = current_request.get()
        if request_id is None:
            return self._stream.write(text)
        *lines, rest = (getattr(self._local, "partial", "") + text).split("\n")
        self._local.partial = rest
        if lines:
            self._emit("".join(f"{REQUEST_MARK}{request_id}\x1f{line}\n" for line in lines))
        return len(text)

    def end_request(self, request_id):
        """A line the request left without a newline is still its own."""
        partial = getattr(self._local, "partial", "")
        self._local.partial = ""
        if partial:
            self._emit(f"{REQUEST_MARK}{request_id}\x1f{partial}\n")

    def _emit(self, text):
        with self._lock:
            self._stream.write(text)
            self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


# Before the function's module is imported, so the handlers it configures write through these.
sys.stdout = RequestMarkedStream(sys.stdout)
sys.stderr = RequestMarkedStream(sys.stderr)

sys.path.insert(0, os.path.dirname(entry))
spec = importlib.util.spec_from_file_location("__plat_function__", entry)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
app = getattr(module, "app", None)
if app is None or not callable(app):
    print(f"{entry} must define a Flask application named `app`", file=sys.stderr)
    sys.exit(1)


def with_health(environ, start_response):
    named = environ.get("HTTP_X_PLAT_INSTANCE")
    if named is not None and INSTANCE_ID and named != INSTANCE_ID:
        start_response("421 Misdirected Request", [("Content-Type", "application/json"), ("X-Plat-Refused", "instance")])
        return [MISDIRECTED]
    # The platform's routes answer only its probes (x-plat-probe, which the gateway never forwards).
    probe = environ.get("HTTP_X_PLAT_PROBE") is not None
    if probe and environ.get("PATH_INFO") == HEALTH_PATH:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    if probe and environ.get("PATH_INFO") == STATE_PATH:
        # A Flask view does all its work before it answers: nothing is ever pending after it.
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"pending":0}']
    return serve_function(environ, start_response)


def serve_function(environ, start_response):
    request_id = environ.get("HTTP_X_REQUEST_ID")
    if request_id is None or not REQUEST_ID.match(request_id):
        return app(environ, start_response)
    token = current_request.set(request_id)
    try:
        return app(environ, start_response)
    finally:
        sys.stdout.end_request(request_id)
        sys.stderr.end_request(request_id)
        current_request.reset(token)


def platform_socket():
    """The platform's socket (PLAT_SOCKET, a host folder mounted for this instance alone): the gateways
    on the host send the function's requests there, cheaper than TCP across the bridge. Its path
    names this instance, so its requests get no instance check and no platform routes. Made before
    the health route answers; a Werkzeug that cannot serve one leaves the function on TCP alone."""
    path = os.environ.get("PLAT_SOCKET")
    if not path:
        return None
    try:
        if os.path.exists(path):
            os.unlink(path)
        direct = make_server(f"unix://{path}", 0, serve_function, threaded=True)
    except Exception as error:  # noqa: BLE001 - any failure leaves TCP, which serves everything
        print(f"the platform's socket is not served ({error}); requests come over TCP", file=sys.stderr, flush=True)
        return None
    direct.daemon_threads = False
    # A full backlog refuses a Unix connection at once (TCP would retry its SYN): deeper than Werkzeug's 128.
    direct.socket.listen(4096)
    threading.Thread(target=direct.serve_forever, daemon=True).start()
    return direct


def stop(*_):
    # Stop accepting, let in-flight requests finish (server_close joins their threads), but never
    # for longer than the grace period.
    threading.Timer(GRACE_SECONDS, os._exit, (0,)).start()
    for listening in (server, direct):
        if listening is not None:
            threading.Thread(target=listening.shutdown, daemon=True).start()


# One log line per request would cost more than the request; errors are still logged.
logging.getLogger("werkzeug").setLevel(logging.WARNING)
direct = platform_socket()
server = make_server("0.0.0.0", port, with_health, threaded=True)
server.daemon_threads = False
signal.signal(signal.SIGTERM, stop)
print(f"listening on :{port}", flush=True)
server.serve_forever()
server.server_close()
if direct is not None:
    direct.shutdown()  # waits for its loop to end (stop() began it), then its requests are joined
    direct.server_close()
os._exit(0)
