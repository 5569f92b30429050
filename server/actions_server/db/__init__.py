"""PostgreSQL: the pool, ctx.db's query builder and session, migrations, the embedded server."""
