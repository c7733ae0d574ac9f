"""Serving HTTP: the gunicorn worker classes and access log, the middleware that turns away bad
requests before any view, the strict JSON parser, and the public URLs the answers link to.

Nothing here knows the apps; the project settings and deploy/gunicorn.conf.py name these classes.
"""
