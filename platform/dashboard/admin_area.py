"""The admin area: people, sites, cameras and the audit log, in the dashboard's own style.

Admins only (403 for everyone else). Every write goes through an audited service
(``access.people``, ``fleet.services``, ``fleet.credentials``, ``control.services``); a
password or camera login is shown once, on the answer to the request that made it, and
never stored in a form the browser caches.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import wraps

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from access import people as people_services
from access.models import Assignment
from access.services import is_admin, login_lockout
from audit import services as audit_services
from control.policies import DEFAULT_POLICY
from control.services import set_site_policy
from dashboard import queries
from dashboard.forms import (
    CameraForm,
    NewCameraForm,
    PersonForm,
    RoleForm,
    ScopeForm,
    SiteForm,
)
from dashboard.views import (
    PAGE_NUMBER,
    BadParameter,
    choice,
    query_param,
    refuses_bad_parameters,
    text,
)
from fleet.credentials import issue_credentials, revoke_credentials
from fleet.models import Device
from fleet.services import update_identity

AUDIT_PAGE = 50


def admin_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in (else the sign-in page) and an admin (else 403)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not is_admin(request.user):
            raise PermissionDenied("Only admins manage people, sites and cameras.")
        return view(request, *args, **kwargs)

    return login_required(wrapper)


def once(request: HttpRequest, context: dict) -> HttpResponse:
    """A page that shows a secret this once: never cached, never stored by the browser."""
    response = render(request, "dashboard/manage/once.html", context)
    response["Cache-Control"] = "no-store"
    return response


def one_line(exc: ValidationError) -> str:
    return " ".join(exc.messages)


# --- people ----------------------------------------------------------------------------------


def _people_page(request: HttpRequest, form: PersonForm, status: int = 200) -> HttpResponse:
    users = (
        get_user_model()
        .objects.annotate(scopes=Count("assignments"))
        .order_by("-is_staff", "username")
    )
    return render(
        request,
        "dashboard/manage/people.html",
        {"section": "people", "people": users, "form": form},
        status=status,
    )


@admin_only
@require_http_methods(["GET", "POST"])
def people(request: HttpRequest) -> HttpResponse:
    """Everyone with an account; an admin adds one (the password is shown once)."""
    if request.method != "POST":
        return _people_page(request, PersonForm())
    form = PersonForm(request.POST)
    if form.is_valid():
        try:
            user, password = people_services.create_person(
                form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                by=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, one_line(exc))
        else:
            return once(
                request,
                {
                    "section": "people",
                    "title": f"{user.get_username()} can sign in",
                    "person": user,
                    "password": password,
                },
            )
    return _people_page(request, form, status=400)


def _person(username: str):
    return get_object_or_404(get_user_model(), username=username)


@admin_only
@require_GET
def person(request: HttpRequest, username: str) -> HttpResponse:
    user = _person(username)
    scopes = Assignment.objects.filter(user=user).select_related("device").order_by("site")
    context = {
        "section": "people",
        "person": user,
        "role": people_services.role_of(user),
        "role_form": RoleForm(initial={"role": people_services.role_of(user)}),
        "scope_form": ScopeForm(),
        "scopes": scopes,
        "lockout": login_lockout(user.get_username(), None),
        "sites": [s.name for s in queries.sites()],
        "history": audit_services.audit_trail(f"user:{user.get_username()}", 10),
        "is_self": user.pk == request.user.pk,
    }
    return render(request, "dashboard/manage/person.html", context)


def _person_action(
    request: HttpRequest, username: str, action: Callable[..., str | None]
) -> HttpResponse:
    """Run one audited change on a person; its outcome, or why not, as one message."""
    user = _person(username)
    try:
        done = action(user)
    except ValidationError as exc:
        messages.error(request, one_line(exc))
    else:
        if done:
            messages.success(request, done)
    return redirect("dashboard:manage-person", user.get_username())


@admin_only
@require_POST
def person_role(request: HttpRequest, username: str) -> HttpResponse:
    form = RoleForm(request.POST)

    def change(user) -> str:
        if not form.is_valid():
            raise ValidationError("Choose admin or operator.")
        role = form.cleaned_data["role"]
        changed = people_services.set_role(user, role, by=request.user)
        return f"{user} is now an {role}." if changed else f"{user} was an {role} already."

    return _person_action(request, username, change)


@admin_only
@require_POST
def person_lock(request: HttpRequest, username: str) -> HttpResponse:
    locked = request.POST.get("locked") == "1"

    def change(user) -> str:
        changed = people_services.set_locked(user, locked, by=request.user)
        if locked:
            return f"{user} is locked: they cannot sign in." if changed else "Locked already."
        return f"{user} can sign in again." if changed else f"{user} was not locked."

    return _person_action(request, username, change)


@admin_only
@require_POST
def person_password(request: HttpRequest, username: str) -> HttpResponse:
    user = _person(username)
    password = people_services.reset_password(user, by=request.user)
    return once(
        request,
        {
            "section": "people",
            "title": f"A new password for {user.get_username()}",
            "person": user,
            "password": password,
        },
    )


@admin_only
@require_POST
def person_scope(request: HttpRequest, username: str) -> HttpResponse:
    """Add a camera or a site to an operator's scope, or (``remove``) take one away."""
    removing = request.POST.get("remove")

    def change(user) -> str:
        if removing:
            if not re.fullmatch(r"[0-9]{1,12}", removing):
                raise ValidationError("No such assignment.")
            assignment = get_object_or_404(Assignment, pk=int(removing), user=user)
            people_services.remove_scope(assignment, by=request.user)
            return f"Removed {assignment.device or 'site ' + assignment.site} from {user}."
        form = ScopeForm(request.POST)
        if not form.is_valid():
            raise ValidationError(form.errors.as_text().replace("\n", " "))
        device, site = form.cleaned_data["device"], form.cleaned_data["site"].strip()
        people_services.add_scope(user, device=device, site=site, by=request.user)
        return f"{user} now sees {device or 'every camera of ' + site}."

    return _person_action(request, username, change)


# --- sites -----------------------------------------------------------------------------------


@admin_only
@require_http_methods(["GET", "POST"])
def sites(request: HttpRequest) -> HttpResponse:
    """Sites with their cameras and tier policy; an admin adds a site or sets its policy."""
    form = SiteForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            site, policy = form.cleaned_data["site"].strip(), form.cleaned_data["policy"]
            if not policy and site not in {s.name for s in queries.sites()}:
                policy = DEFAULT_POLICY  # a new site is kept by its policy: name it
            try:
                changed = set_site_policy(site, policy, by=request.user)
            except ValidationError as exc:
                form.add_error(None, one_line(exc))
            else:
                words = policy or "the default policy"
                messages.success(
                    request, f"{site} runs {words}." if changed else f"{site}: nothing changed."
                )
                return redirect("dashboard:manage-sites")
        status = 400
    context = {
        "section": "sites",
        "sites": queries.sites(),
        "form": form if request.method == "POST" else SiteForm(),
        "policies": SiteForm.base_fields["policy"].choices,
    }
    return render(request, "dashboard/manage/sites.html", context, status=status)


# --- cameras ---------------------------------------------------------------------------------


def _cameras_page(request: HttpRequest, form: NewCameraForm, status: int = 200) -> HttpResponse:
    devices = Device.objects.select_related("credential").order_by("site", "device_id")
    context = {
        "section": "cameras",
        "devices": devices,
        "form": form,
        "sites": [s.name for s in queries.sites()],
    }
    return render(request, "dashboard/manage/cameras.html", context, status=status)


def _issued(request: HttpRequest, device_id: str, **details: str) -> HttpResponse:
    """Issue (or rotate) a camera's MQTT login and show it this once."""
    try:
        issued = issue_credentials(device_id, by=request.user, **details)
    except ValidationError as exc:
        messages.error(request, f"{device_id}: {one_line(exc)}")
        return redirect("dashboard:manage-cameras")
    except OSError as exc:  # the broker's files could not be written: the login is stored
        messages.error(request, f"Stored, but the broker's files were not written: {exc}")
    return once(
        request,
        {
            "section": "cameras",
            "title": f"The MQTT login of {device_id}",
            "device": Device.objects.get(device_id=device_id),
            "credentials": issued.to_json(),
        },
    )


@admin_only
@require_http_methods(["GET", "POST"])
def cameras(request: HttpRequest) -> HttpResponse:
    """Every camera, its site and login; an admin provisions a new one (login shown once)."""
    if request.method != "POST":
        return _cameras_page(request, NewCameraForm())
    form = NewCameraForm(request.POST)
    if not form.is_valid():
        return _cameras_page(request, form, status=400)
    data = form.cleaned_data
    return _issued(request, data["device_id"], name=data["name"], site=data["site"].strip())


def _device(device_id: str) -> Device:
    return get_object_or_404(Device, device_id=device_id)


@admin_only
@require_POST
def camera_update(request: HttpRequest, device_id: str) -> HttpResponse:
    """Rename a camera, move it to a site, (de)activate it."""
    device = _device(device_id)
    form = CameraForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"{device_id}: " + form.errors.as_text().replace("\n", " "))
        return redirect("dashboard:manage-cameras")
    try:
        changed = update_identity(device, request.user, **form.cleaned_data)
    except ValidationError as exc:
        messages.error(request, f"{device_id}: {one_line(exc)}")
    else:
        messages.success(request, f"{device_id} saved." if changed else "Nothing changed.")
    return redirect("dashboard:manage-cameras")


@admin_only
@require_POST
def camera_login(request: HttpRequest, device_id: str) -> HttpResponse:
    """A new MQTT login for a camera (the old password stops working), or (``revoke``) none."""
    device = _device(device_id)
    if request.POST.get("revoke"):
        try:
            revoked = revoke_credentials(device.device_id, by=request.user)
        except OSError as exc:
            messages.error(request, f"Revoked, but the broker's files were not written: {exc}")
        else:
            messages.success(
                request,
                f"{device_id}'s login is revoked: the broker refuses it from its next reload."
                if revoked
                else f"{device_id} had no login to revoke.",
            )
        return redirect("dashboard:manage-cameras")
    return _issued(request, device.device_id)


# --- audit log -------------------------------------------------------------------------------

LOCAL_MINUTE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")


def local_time(raw: str) -> datetime | None:
    """A ``<input type=datetime-local>`` value, in the viewer's time zone; empty: none."""
    if not raw:
        return None
    if not LOCAL_MINUTE.fullmatch(raw):
        raise ValueError("must be a time as YYYY-MM-DDTHH:MM")
    return timezone.make_aware(datetime.fromisoformat(raw))


@admin_only
@require_GET
@refuses_bad_parameters
def audit_log(request: HttpRequest) -> HttpResponse:
    """Who changed what, the controller's tier decisions included: filtered, newest first,
    paged."""
    camera = query_param(request, "camera", text(64), "")
    actor_choices = audit_services.actors()
    special = (audit_services.CONTROLLER, audit_services.SYSTEM)
    actor = query_param(request, "actor", choice("", *special, *actor_choices), "")
    action_choices = audit_services.actions()
    action = query_param(request, "action", choice("", *action_choices), "")
    since = query_param(request, "since", local_time, None)
    until = query_param(request, "until", local_time, None)
    if since and until and since >= until:
        raise BadParameter("since: must be before until")
    filters = audit_services.LogFilter(
        target=f"device:{camera}" if camera else "",
        actor=actor,
        action=action,
        since=since,
        until=until,
    )
    paginator = Paginator(audit_services.audit_log(filters), AUDIT_PAGE)
    page = paginator.get_page(query_param(request, "page", PAGE_NUMBER, 1))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "section": "audit",
        "page": page,
        "query": query.urlencode(),
        "camera": camera,
        "actor": actor,
        "action": action,
        "since": request.GET.get("since", "") if since else "",
        "until": request.GET.get("until", "") if until else "",
        "cameras": Device.objects.order_by("device_id").values_list("device_id", flat=True),
        "actors": actor_choices,
        "special_actors": special,
        "actions": action_choices,
    }
    return render(request, "dashboard/manage/audit.html", context)
