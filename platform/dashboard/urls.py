from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("devices/<str:device_id>/", views.device_detail, name="device"),
    path("frames/<int:frame_id>/image", views.frame_image, name="frame-image"),
]
