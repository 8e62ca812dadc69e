"""The runtime contract for Python Flask: serve the Flask `app` of the entry module on PORT, answer
GET /_/health when ready, and stop gracefully on SIGTERM: finish in-flight requests, then exit.
Flask itself turns an uncaught exception in a view into a 500; the process stays up.

A request names the instance it was routed to (x-plat-instance); one meant for another instance (a
route that outlived its container, whose address this container now has) is refused with 421 and
never reaches the function. A request that names none (a check from the host) is served."""

import importlib.util
import logging
import os
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
    if environ.get("PATH_INFO") == HEALTH_PATH:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    if environ.get("PATH_INFO") == STATE_PATH:
        # A Flask view does all its work before it answers: nothing is ever pending after it.
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"pending":0}']
    return app(environ, start_response)


def stop(*_):
    # Stop accepting, let in-flight requests finish (server_close joins their threads), but never
    # for longer than the grace period.
    threading.Timer(GRACE_SECONDS, os._exit, (0,)).start()
    threading.Thread(target=server.shutdown, daemon=True).start()


# One log line per request would cost more than the request; errors are still logged.
logging.getLogger("werkzeug").setLevel(logging.WARNING)
server = make_server("0.0.0.0", port, with_health, threaded=True)
server.daemon_threads = False
signal.signal(signal.SIGTERM, stop)
print(f"listening on :{port}", flush=True)
server.serve_forever()
server.server_close()
os._exit(0)
