#!/usr/bin/env bash
# Guide: external API testing through share links (docs/guides/share-links.md).
#
# A developer runs an API on 127.0.0.1 (here: a small static JSON API served
# by python3 -m http.server), exposes it as an HTTP tunnel and hands a tester
# a share link that allows GET on /api/* only, 5 requests a minute, for 24 h.
# The tester's requests are checked by the hub on every request; the
# developer reads the access log and revokes the link.
source "$(dirname "$0")/lib.sh"

expect() { # CODE CURL-ARGS...: runs curl, shows and checks the status
    local want=$1 got
    shift
    got=$(curl -s -o "$state/body" -w '%{http_code}' "$@")
    printf '$ curl %s\n  -> %s %s\n' "$*" "$got" "$(head -c 100 "$state/body" | tr '\n' ' ')"
    [ "$got" = "$want" ] || { echo "guide: expected $want, got $got" >&2; exit 1; }
}

say "1. A hub and the developer's agent"
hub_up
agent_up dev

say "2. The API under test, on a private port"
api_port=$(free_port)
mkdir -p "$state/site/api"
echo '[{"id":1,"name":"Ada"},{"id":2,"name":"Linus"}]' >"$state/site/api/users.json"
echo 'not for testers' >"$state/site/secret.txt"
(cd "$state/site" && exec python3 -m http.server "$api_port" --bind 127.0.0.1) >"$state/api.log" 2>&1 &
pids+=($!)
wait_for 10 curl -sf "http://127.0.0.1:$api_port/api/users.json"

say "3. Expose it as an HTTP tunnel (no public URL: only share links reach it)"
echo "\$ connect expose 127.0.0.1:$api_port --name staging-api --protocol http"
bg_json "$state/expose.json" "$connect" expose "127.0.0.1:$api_port" --name staging-api \
    --protocol http --config "$state/dev.json"

say "4. A share link for the tester: GET on /api/* only, 5 requests a minute, 24 hours"
run "$connect" share staging-api --expires 24h --methods GET --paths '/api/*' --rate-limit 5 \
    --name tester-1 --config "$state/dev.json" --json >"$state/share.json"
link=$(json shareUrl <"$state/share.json")
share_id=$(json id <"$state/share.json")
echo "share link: $link"

say "5. What the tester sees"
expect 200 "${link}api/users.json"
expect 405 -X POST "${link}api/users.json"
expect 403 "${link}secret.txt"
expect 403 --path-as-is "${link}api/../secret.txt"
expect 403 "${link}api/%2e%2e/secret.txt"
expect 200 "${link}api/users.json"
expect 200 "${link}api/users.json"
expect 200 "${link}api/users.json"
expect 200 "${link}api/users.json" # the 5th accepted request of this minute
expect 429 -D "$state/headers" "${link}api/users.json"
echo "  Retry-After: $(grep -i '^retry-after:' "$state/headers" | cut -d' ' -f2 | tr -d '\r') s (refused requests do not count toward the limit)"

say "6. The developer reads the access log (written in batches, within a second or two)"
logged() { [ "$(admin_api GET "/api/v1/shares/$share_id/logs?limit=20" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["logs"]))')" -ge 10 ]; }
wait_for 10 logged
admin_api GET "/api/v1/shares/$share_id/logs?limit=20" | python3 -c 'import json,sys
for e in json.load(sys.stdin)["logs"]:
    print("  %s %-5s %-24s %s %s ms" % (e["time"], e["method"], e["path"], e["status"], e["latencyMs"]))'

say "7. ...and revokes the link: it stops working at once"
admin_api DELETE "/api/v1/shares/$share_id" >/dev/null
expect 410 "${link}api/users.json"

say "Done."
