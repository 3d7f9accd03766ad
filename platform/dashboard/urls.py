from django.urls import path

from dashboard import views

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
    path("frames/<int:frame_id>/latents.png", views.frame_latents, name="frame-latents"),
    path("devices/<str:device_id>/exports", views.export_create, name="export-create"),
    path("exports/", views.export_list, name="exports"),
    path("exports/<int:export_id>/video", views.export_video, name="export-video"),
    path("exports/<int:export_id>/delete", views.export_delete, name="export-delete"),
]
