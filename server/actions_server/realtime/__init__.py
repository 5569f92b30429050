"""Realtime channels: WebSocket clients join channels that manifests declare;
`ctx.channel(name).publish` reaches them on every instance, through PostgreSQL.

- `patterns`: channel name patterns (`org:{org_id}:projects`), parsed and matched (pure);
- `protocol`: the JSON envelope and the WebSocket frames (pure);
- `store` and `queries.sql`: the messages, instances and presence tables;
- `facade`: `ctx.channel(name)`, buffered and written just before the run commits;
- `feed`: the one listener connection per process, reading new messages by id;
- `presence`, `sockets`, `hub`: who is where, one client's socket, and the
  endpoint that ties them together (see docs/realtime.md).
"""
