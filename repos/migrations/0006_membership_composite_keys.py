"""Membership tables keyed by (version, item): no surrogate id, its sequence or its extra indexes.

Django's automatic many-to-many tables carry an ``id`` primary key, a unique (version, item)
index and one index per side: four index entries per row. The explicit through models keep the
same table and column names with a composite primary key and the item-side index only. Rows are
copied into the new table, the old one is dropped and the new one takes its name.
"""

import django.db.models.deletion
from django.db import migrations, models

KINDS = (
    ("VersionConcept", "versionconcept", "concepts", "conceptversion", "ConceptVersion", "repos_version_concepts"),
    ("VersionMapping", "versionmapping", "mappings", "mappingversion", "MappingVersion", "repos_version_mappings"),
)


def recreate_automatic_table(field):
    """Backwards: the automatic many-to-many table, as the state before this migration has it."""

    def create(apps, schema_editor):
        model = apps.get_model("repos", "RepositoryVersion")
        schema_editor.create_model(model._meta.get_field(field).remote_field.through)

    return create


def operations():
    for model, model_name, field, member, target, table in KINDS:
        staged = f"{table}_keyed"
        columns = f"repositoryversion_id, {member}_id"
        yield migrations.CreateModel(
            name=model,
            fields=[
                ("pk", models.CompositePrimaryKey("repositoryversion", member, blank=True, editable=False, primary_key=True, serialize=False)),
                ("repositoryversion", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to="repos.repositoryversion")),
                (member, models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to=f"repos.{target.lower()}")),
            ],
            options={"db_table": staged},
        )  # fmt: skip
        yield migrations.RunSQL(
            f"INSERT INTO {staged} ({columns}) SELECT DISTINCT {columns} FROM {table}",
            reverse_sql=f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staged}",
        )
        yield migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="repositoryversion",
                    name=field,
                    field=models.ManyToManyField(related_name="repo_versions", through=f"repos.{model}", to=f"repos.{target.lower()}"),
                ),
            ],
            database_operations=[
                migrations.RunPython(migrations.RunPython.noop, reverse_code=recreate_automatic_table(field)),
                migrations.RunSQL(f"DROP TABLE {table}", reverse_sql=migrations.RunSQL.noop),
            ],
        )  # fmt: skip
        yield migrations.AlterModelTable(name=model_name, table=table)


class Migration(migrations.Migration):
    dependencies = [("repos", "0005_drop_redundant_item_indexes")]

    operations = list(operations())
