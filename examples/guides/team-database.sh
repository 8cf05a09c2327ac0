#!/usr/bin/env bash
# Guide: team database access without a VPN (docs/guides/team-database.md).
#
# Alice's machine runs PostgreSQL on 127.0.0.1:$PGPORT (default 5432, user
# $PGUSER, default postgres, database $PGDATABASE, default postgres). She
# exposes it through the hub; Bob, on another machine, reaches it on a port
# of his own and runs psql against it. Both machines are played here by two
# agent configs on this one host, with a throwaway hub on loopback.
source "$(dirname "$0")/lib.sh"
pg_port=${PGPORT:-5432}
pg_user=${PGUSER:-postgres}
pg_db=${PGDATABASE:-postgres}
command -v psql >/dev/null || { echo "guide: psql is needed (apt-get install postgresql-client)" >&2; exit 1; }

say "1. A hub, and two agents: alice (next to the database) and bob (a teammate)"
hub_up
agent_up alice
agent_up bob
echo "hub at $HUB; agents enrolled into $state/alice.json and $state/bob.json"

say "2. Alice exposes the database (protocol postgresql: probed, and named in the connection string)"
echo "\$ connect expose 127.0.0.1:$pg_port --name staging-db --protocol postgresql"
bg_json "$state/expose.json" "$connect" expose "127.0.0.1:$pg_port" --name staging-db \
    --protocol postgresql --config "$state/alice.json"
tunnel=$(json id <"$state/expose.json")
echo "tunnel $tunnel is $(json status <"$state/expose.json")"

say "3. The user and database go into the tunnel's metadata, so connection strings are complete"
admin_api PATCH "/api/v1/tunnels/$tunnel" \
    "{\"metadata\":{\"user\":\"$pg_user\",\"database\":\"$pg_db\"}}" >/dev/null
run "$connect" status staging-db --config "$state/bob.json"

say "4. Bob reaches it: a local port on his machine, end-to-end encrypted to Alice's agent"
echo "\$ connect reach staging-db"
bg_json "$state/reach.json" "$connect" reach staging-db --config "$state/bob.json"
cs=$(json connectionString <"$state/reach.json")
echo "connection string: $cs"

say "5. Bob uses it like a local database"
run psql "$cs" -Atc "select 'hello from ' || current_database() || ' via Connect'"
answer=$(psql "$cs" -Atc "select 6 * 7")
[ "$answer" = 42 ] || { echo "guide: unexpected answer '$answer'" >&2; exit 1; }

say "Done: Ctrl-C on expose deletes the tunnel; on reach, frees the port."
