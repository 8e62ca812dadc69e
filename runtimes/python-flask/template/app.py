# A plat function in Python: a Flask application named `app`.
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@app.route("/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def hello(path):
    return jsonify(
        message="Hello from plat!",
        method=request.method,
        path="/" + path,
        query=request.args.to_dict(),
        body=request.get_data(as_text=True) or None,
    )
