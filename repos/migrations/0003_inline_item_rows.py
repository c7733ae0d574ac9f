"""Keep item rows, renderings included, inline and uncompressed on PostgreSQL.

An item's rendering makes its row larger than PostgreSQL's default TOAST target (about 2 kB), so
the rendering would be compressed or moved out of line, and an export would pay a TOAST lookup
and a decompression per row. Rows stay inline up to a page; larger ones are still toasted.
"""

from django.db import migrations

TABLES = ("repos_conceptversion", "repos_mappingversion")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"ALTER TABLE {table} SET (toast_tuple_target = 8160)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"ALTER TABLE {table} RESET (toast_tuple_target)")


class Migration(migrations.Migration):
    dependencies = [("repos", "0002_item_renderings")]
    operations = [migrations.RunPython(forwards, backwards)]
