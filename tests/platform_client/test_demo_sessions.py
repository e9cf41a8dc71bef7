"""The reference platform's sign-in cookie: Flask's signed session with a cached serializer,
which must read and refuse exactly what Flask's own would, across key rotation."""

from __future__ import annotations

from flask import Flask, session

from platform_client.demo.sessions import CachedSerializerSessionInterface


def make_app(secret: str, fallbacks: list[str] | None = None) -> Flask:
    app = Flask(__name__)
    app.session_interface = CachedSerializerSessionInterface()
    app.config.update(SECRET_KEY=secret, SECRET_KEY_FALLBACKS=fallbacks or [])

    @app.post("/sign-in")
    def sign_in() -> str:
        session["email"] = "kim@example.com"
        return "ok"

    @app.get("/me")
    def me() -> str:
        return str(session.get("email"))

    return app


def signed_cookie(app: Flask) -> str:
    client = app.test_client()
    client.post("/sign-in")
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def read_with(app: Flask, cookie: str) -> str:
    client = app.test_client()
    client.set_cookie("session", cookie)
    return client.get("/me").get_data(as_text=True)


def test_the_cookie_written_is_read_back_with_one_serializer_for_all_requests():
    app = make_app("key-one")
    interface = app.session_interface
    assert isinstance(interface, CachedSerializerSessionInterface)
    cookie = signed_cookie(app)
    assert read_with(app, cookie) == "kim@example.com"
    assert interface.get_signing_serializer(app) is interface.get_signing_serializer(app)


def test_a_tampered_cookie_is_not_read():
    app = make_app("key-one")
    cookie = signed_cookie(app)
    middle = len(cookie) // 4  # inside the payload, where every character carries data
    tampered = cookie[:middle] + ("B" if cookie[middle] != "B" else "C") + cookie[middle + 1 :]
    assert read_with(app, tampered) == "None"


def test_a_rotated_key_reads_old_cookies_only_while_the_old_key_is_a_fallback():
    app = make_app("key-one")
    old_cookie = signed_cookie(app)
    app.secret_key = "key-two"  # rotated in place: the cache must not keep the old serializer
    app.config["SECRET_KEY_FALLBACKS"] = ["key-one"]
    assert read_with(app, old_cookie) == "kim@example.com"
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert read_with(app, old_cookie) == "None"
    assert read_with(app, signed_cookie(app)) == "kim@example.com"
