"""The RQ plumbing several apps share: the Redis connection, the work queue, and the worker class.

What a job does belongs to its app (``ocl_export.jobs``, ``mirror.jobs``); this package only runs them.
"""
