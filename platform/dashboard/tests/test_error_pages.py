"""Errors look like the product (not Django's stock pages), and times read as times."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.template.loader import render_to_string
from django.test import Client, override_settings

from dashboard.templatetags.strata import device_time

pytestmark = pytest.mark.django_db


@override_settings(DEBUG=False)
def test_not_found_and_not_allowed_are_the_products_own_pages():
    operator = get_user_model().objects.create_user(f"err-op-{uuid.uuid4().hex[:6]}")
    client = Client()
    client.force_login(operator)
    missing = client.get("/devices/no-such-camera-anywhere/")
    assert missing.status_code == 404
    page = missing.content.decode()
    assert "Not found" in page and 'class="brand"' in page and "URLconf" not in page
    refused = client.post("/devices/no-such-camera-anywhere/controls", {"tier": "3"})
    assert refused.status_code in (403, 404)
    assert 'class="brand"' in refused.content.decode()


def test_the_server_error_page_renders_without_a_request():
    page = render_to_string("500.html")  # Django renders it with no context at all
    assert "Something went wrong" in page and 'class="brand"' in page


@override_settings(TIME_ZONE="UTC")
def test_a_capture_time_reads_as_a_date_to_the_millisecond():
    assert device_time(1_764_086_420_456) == "2025-11-25 16:00:20.456 UTC"
    assert device_time(None) == "unknown"
    assert device_time(2**62) == f"{2**62} ms"  # beyond any calendar: the number itself
