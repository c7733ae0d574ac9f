"""The admin console (Django's admin at ``/admin/``), for the people who run the service.

Who may use it and its site (``access``), the middleware it brings and where it runs
(``middleware``), and how its actions report (``actions``). Each app's pages stay in that app's
``admin.py`` (exports in ``ocl_export``, subscriptions in ``mirror``, repositories in ``repos``)
and reach the console through Django's admin registry; they build on these modules, which is
why this package sits below the apps that have pages and above ``repos``, whose repository
admins it lets in.
"""
