from django.urls import path

from dashboard import admin_area, views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("devices/<str:device_id>/", views.device_detail, name="device"),
    path("devices/<str:device_id>/controls", views.device_controls, name="device-controls"),
    path("devices/<str:device_id>/state", views.device_state, name="device-state"),
    path("devices/<str:device_id>/archive/", views.archive, name="archive"),
    path("frames/<int:frame_id>/", views.frame_detail, name="frame"),
    path("frames/<int:frame_id>/decode", views.frame_decode, name="frame-decode"),
    path("frames/<int:frame_id>/image", views.frame_image, name="frame-image"),
    path("frames/<int:frame_id>/preview", views.frame_preview, name="frame-preview"),
    path("frames/<int:frame_id>/latents.png", views.frame_latents, name="frame-latents"),
    path("devices/<str:device_id>/exports", views.export_create, name="export-create"),
    path("exports/", views.export_list, name="exports"),
    path("exports/<int:export_id>/video", views.export_video, name="export-video"),
    path("exports/<int:export_id>/delete", views.export_delete, name="export-delete"),
    # the admin area (admins only)
    path("manage/", admin_area.people, name="manage-people"),
    path("manage/people/<str:username>/", admin_area.person, name="manage-person"),
    path("manage/people/<str:username>/role", admin_area.person_role, name="manage-role"),
    path("manage/people/<str:username>/lock", admin_area.person_lock, name="manage-lock"),
    path(
        "manage/people/<str:username>/password",
        admin_area.person_password,
        name="manage-password",
    ),
    path("manage/people/<str:username>/scope", admin_area.person_scope, name="manage-scope"),
    path("manage/sites/", admin_area.sites, name="manage-sites"),
    path("manage/cameras/", admin_area.cameras, name="manage-cameras"),
    path("manage/cameras/<str:device_id>/", admin_area.camera_update, name="manage-camera"),
    path("manage/cameras/<str:device_id>/login", admin_area.camera_login, name="manage-login"),
    path("manage/audit/", admin_area.audit_log, name="manage-audit"),
]
