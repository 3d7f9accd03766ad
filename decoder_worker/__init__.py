"""Celery workers that decode archived latents into images with torch (GPU when present)."""

from decoder_worker.celery import app

__all__ = ["app"]
