"""The API's webargs parser reads the JSON body Flask has already parsed, not the bytes again."""

from __future__ import annotations

import json

import pytest
from flask import Flask, request
from webargs import core

from payment_service.api import Blueprint, _Parser

app = Flask(__name__)


def test_the_body_parsed_by_the_guards_is_the_one_the_arguments_get():
    with app.test_request_context("/", method="POST", json={"amount": 30000}):
        parsed = request.get_json(cache=True)  # what guards.check_body does first
        assert _Parser()._raw_load_json(request) is parsed


def test_a_body_that_is_not_json_is_left_to_webargs():
    malformed = {"data": b"{nope", "content_type": "application/json"}
    with (
        app.test_request_context("/", method="POST", **malformed),
        pytest.raises(json.JSONDecodeError),  # webargs' own error, which it reports as before
    ):
        _Parser()._raw_load_json(request)


def test_a_request_without_json_has_no_json_arguments():
    with app.test_request_context("/", method="POST", data=b"a=1"):
        assert _Parser()._raw_load_json(request) is core.missing


def test_the_api_blueprints_use_it():
    from payment_service.callbacks import resources as callbacks
    from payment_service.checkouts import resources as checkouts

    for module in (checkouts, callbacks):
        assert isinstance(module.blp, Blueprint)
        assert isinstance(module.blp.ARGUMENTS_PARSER, _Parser)
