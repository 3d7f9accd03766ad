"""The dashboard's pages run under a Content-Security-Policy without 'unsafe-inline': every
page carries it, and none has an inline script, style or event handler it would block."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

INLINE = re.compile(
    r"""<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle\s*=|\son[a-z]+\s*=""", re.IGNORECASE
)


def test_every_page_has_the_policy_and_nothing_inline(operator_client):
    client, ids = operator_client
    pages = [
        "/",
        f"/devices/{ids['device']}/",
        f"/devices/{ids['device']}/archive/?hour=0",
        f"/frames/{ids['frame']}/",
        "/exports/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "unsafe-inline" not in policy
        html = response.content.decode()
        assert not INLINE.findall(html), (url, INLINE.findall(html))
    from django.contrib.auth import get_user_model

    admin = Client()
    admin.force_login(get_user_model().objects.create_user("csp-admin", is_staff=True))
    for url in ("/manage/", "/manage/people/csp-admin/", "/manage/sites/", "/manage/cameras/"):
        response = admin.get(url)
        assert response.status_code == 200 and "Content-Security-Policy" in response.headers
        assert not INLINE.findall(response.content.decode()), url
    response = admin.get("/manage/audit/")
    assert not INLINE.findall(response.content.decode())
    login = Client().get("/login/")
    assert "Content-Security-Policy" in login.headers
    assert not INLINE.findall(login.content.decode())
