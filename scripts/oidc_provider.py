#!/usr/bin/env python3
"""An OpenID Connect provider on loopback, for the tests' SSO logins.

    oidc_provider.py USERS_JSON

USERS_JSON maps usernames to {"password": ..., "sub": ..., "name": ...}. It
starts the provider on a free 127.0.0.1 port, prints one JSON line
({"issuer": ..., "client_id": ..., "client_secret": ...}), serves until
standard input closes, then stops.

The protocol is authlib's (its Flask authorization server with the
authorization-code grant and OpenID Connect's `openid` scope, ID tokens
signed RS256 with a key made for the run and published as JWKS); this
script only keeps the users, clients, codes and tokens in memory and shows
a plain login form. Any redirect URI on 127.0.0.1 is accepted for the one
client, which is the rig's Synapse. Run it with the rig's virtualenv
(scripts/synapse-venv.sh installs the pins of scripts/sso.pin).
"""
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
from html import escape
from urllib.parse import urlparse

# The provider is on loopback, over plain HTTP, as the rig's Synapse is.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

from authlib.integrations.flask_oauth2 import AuthorizationServer  # noqa: E402
from authlib.jose import JsonWebKey  # noqa: E402
from authlib.oauth2.rfc6749 import grants  # noqa: E402
from authlib.oidc.core import UserInfo  # noqa: E402
from authlib.oidc.core.grants import OpenIDCode  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

CLIENT_ID = "rig-synapse"
CLIENT_SECRET = secrets.token_hex(16)


class User:
    def __init__(self, username, info):
        self.username = username
        self.password = info["password"]
        self.sub = info["sub"]
        self.name = info.get("name", username)

    def get_user_id(self):
        return self.sub


class Client:
    client_id = CLIENT_ID

    def get_client_id(self):
        return CLIENT_ID

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        allowed = {"openid", "profile"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, uri):
        return urlparse(uri).hostname == "127.0.0.1"

    def check_client_secret(self, secret):
        return secrets.compare_digest(secret, CLIENT_SECRET)

    def check_endpoint_auth_method(self, method, endpoint):
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


class Code:
    def __init__(self, code, request, user):
        self.code = code
        self.user = user
        self.redirect_uri = request.payload.redirect_uri
        self.scope = request.payload.scope
        self.nonce = request.payload.data.get("nonce")
        self.auth_time = int(time.time())

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return None


KEY = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "rig"})
USERS = {}
CODES = {}
TOKENS = {}
ISSUER = None


def user_info(user, scope):
    return UserInfo(sub=user.sub, preferred_username=user.username, name=user.name)


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def save_authorization_code(self, code, request):
        CODES[code] = Code(code, request, request.user)

    def query_authorization_code(self, code, client):
        return CODES.get(code)

    def delete_authorization_code(self, authorization_code):
        CODES.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return authorization_code.user


class OpenID(OpenIDCode):
    def exists_nonce(self, nonce, request):
        return any(c.nonce == nonce for c in CODES.values())

    def get_jwt_config(self, grant):
        return {"key": KEY.as_dict(is_private=True), "alg": "RS256", "iss": ISSUER, "exp": 3600}

    def generate_user_info(self, user, scope):
        return user_info(user, scope)


def save_token(token, request):
    TOKENS[token["access_token"]] = request.user


app = Flask(__name__)
server = AuthorizationServer(app, query_client=lambda cid: Client() if cid == CLIENT_ID else None,
                             save_token=save_token)
server.register_grant(CodeGrant, [OpenID(require_nonce=False)])

FORM = """<!doctype html><title>Sign in</title><p>{error}</p>
<form method="post" action="/authorize?{query}">
<input name="username"> <input name="password" type="password"> <button>Sign in</button>
</form>"""


@app.route("/.well-known/openid-configuration")
def discovery():
    return jsonify({
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "authorize",
        "token_endpoint": ISSUER + "token",
        "userinfo_endpoint": ISSUER + "userinfo",
        "jwks_uri": ISSUER + "jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    })


@app.route("/jwks")
def jwks():
    return jsonify({"keys": [KEY.as_dict(is_private=False)]})


@app.route("/authorize", methods=["GET", "POST"])
def authorize():
    query = escape(request.query_string.decode())
    if request.method == "GET":
        server.get_consent_grant(end_user=None)
        return FORM.format(error="", query=query)
    user = USERS.get(request.form.get("username", ""))
    if user is None or not secrets.compare_digest(user.password, request.form.get("password", "")):
        return FORM.format(error="Wrong username or password.", query=query), 403
    return server.create_authorization_response(grant_user=user)


@app.route("/token", methods=["POST"])
def token():
    return server.create_token_response()


@app.route("/userinfo")
def userinfo():
    auth = request.headers.get("Authorization", "")
    user = TOKENS.get(auth[len("Bearer "):]) if auth.startswith("Bearer ") else None
    if user is None:
        return jsonify({"error": "invalid_token"}), 401
    return jsonify(dict(user_info(user, "openid profile")))


def main():
    global ISSUER
    # One line per request would bury the tests' own output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for name, info in json.loads(sys.argv[1]).items():
        USERS[name] = User(name, info)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ISSUER = f"http://127.0.0.1:{port}/"
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(json.dumps({"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
          flush=True)
    sys.stdin.read()
    httpd.shutdown()


if __name__ == "__main__":
    main()
