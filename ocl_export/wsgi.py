"""WSGI entry point (gunicorn ocl_export.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocl_export.settings")
application = get_wsgi_application()
