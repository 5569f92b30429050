"""Realtime channels: WebSocket clients join channels that manifests declare;
`ctx.channel(name).publish` reaches them on every instance, through PostgreSQL.

- `patterns`: channel name patterns (`org:{org_id}:projects`), parsed and matched (pure);
- `protocol`: the JSON envelope and the WebSocket frames (pure);
- `store` and `queries.sql`: the messages, instances and presence tables;
- `facade`: `ctx.channel(name)`, buffered and written just before the run commits;
- `cursor` (pure) and `feed`: the one listener connection per process, reading
  new messages by id;
- `presence`: who is in which channel, across instances;
- `sockets`, `channels`, `hub`: one client's socket; joins, leaves and the
  fan-out; the endpoint that ties them together (see docs/realtime.md).
"""
