"""The cloud's database: tables, engines and migrations, bulk and ingest writes, and the watch on it."""
