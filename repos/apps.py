from django.apps import AppConfig


class ReposConfig(AppConfig):
    name = "repos"
    verbose_name = "Terminology repositories"
    # Every read answer is made of these rows (owners, repositories, versions, items, memberships):
    # read_cache empties its kept answers when any of them changes.
    read_cache_watch = True
