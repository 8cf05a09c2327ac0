#!/usr/bin/env bash
# User story: an operator gives the hub a certificate for *.edge.test from
# the team's CA (`serve --tls-cert/--tls-key --public-domain edge.test`).
# Public HTTP tunnels and shares then say https:// and answer TLS on the
# HTTPS port (curl --cacert), tell the target X-Forwarded-Proto: https, and
# a share's policy holds over TLS exactly as over plain HTTP; keep-alive,
# large bodies both ways and a client that sends garbage instead of a TLS
# hello all behave. The plain HTTP port keeps answering. A tunnel of
# protocol https is dialled by the agent with TLS, verified against the
# system CAs or the tunnel's metadata "tlsCaFile"; a target whose
# certificate does not verify answers 502, never in plaintext.
source "$(dirname "$0")/lib.sh"
HTTPTOOL=$SRC/tests/integration/httptool.py

command -v openssl >/dev/null || fail "openssl is needed (scripts/install-deps.sh installs it)"

# ---- a CA and certificates, made here -------------------------------------
PKI=$WORK/pki
mkdir -p "$PKI"
ossl() { openssl "$@" >>"$WORK/openssl.log" 2>&1 || fail "openssl $1"; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/ca.key" \
    -out "$PKI/ca.pem" -days 2 -subj "/CN=Connect test CA"
# leaf NAME SAN: NAME.pem/NAME.key signed by the CA.
leaf() {
    ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/$1.key" \
        -out "$PKI/$1.csr" -subj "/CN=$1"
    printf 'basicConstraints=CA:FALSE\nsubjectAltName=%s\n' "$2" >"$PKI/$1.ext"
    ossl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
        -days 2 -sha256 -extfile "$PKI/$1.ext" -out "$PKI/$1.pem"
}
leaf hub "DNS:*.edge.test,DNS:edge.test,IP:127.0.0.1"
leaf target "DNS:localhost,IP:127.0.0.1"

hub_init
EDGE_PORT=$(free_port)
TLS_PORT=$(free_port)
HUB_PORT=$(free_port)
TCP_BASE=$(free_range 10)
HUB_URL=https://127.0.0.1:$HUB_PORT
bg hub "$HUB_BIN" serve --db "$WORK/hub.db" --listen "127.0.0.1:$HUB_PORT" \
    --tcp-ports "$TCP_BASE-$((TCP_BASE + 9))" --public-domain edge.test --http-port "$EDGE_PORT" \
    --https-port "$TLS_PORT" --tls-cert "$PKI/hub.pem" --tls-key "$PKI/hub.key"
HUB_PID=$LAST_PID
# lib.sh's api() and the CLI trust the test CA through these.
export CURL_CA_BUNDLE=$PKI/ca.pem
export CONNECT_CA_FILE=$PKI/ca.pem
wait_for 10 "hub health over https" curl -sf "$HUB_URL/api/v1/health"
wait_port 127.0.0.1 "$TLS_PORT"
agent_enroll dev
WEB_PORT=$(free_port)
bg web "$PY" "$HTTPTOOL" server "$WEB_PORT"
wait_port 127.0.0.1 "$WEB_PORT"
expose dev "127.0.0.1:$WEB_PORT" --public --protocol http --name web
WEB_URL=$(grep -m1 '^{' "$EXPOSE_OUT" | json_get publicUrl)
# tls GET URL [curl args]: through the HTTPS port, the name resolved locally.
tls() {
    local url=$1 host
    shift
    host=${url#https://}
    host=${host%%[:/]*}
    curl -s --cacert "$PKI/ca.pem" --resolve "$host:$TLS_PORT:127.0.0.1" -m 20 "$@" "$url"
}

step "a public HTTP tunnel says https:// and answers TLS on the HTTPS port"
[ "$WEB_URL" = "https://web.edge.test:$TLS_PORT/" ] || fail "publicUrl '$WEB_URL'"
[ "$(tls "${WEB_URL}hello")" = "ok /hello" ] || fail "GET over TLS"
tls "${WEB_URL}echo" >"$WORK/echo.json" || fail "echo over TLS"
"$PY" - "$WORK/echo.json" <<'EOF' || fail "forwarded headers: $(cat "$WORK/echo.json")"
import json, sys
h = {k.lower(): v for k, v in json.load(open(sys.argv[1]))["headers"]}
assert h.get("x-forwarded-proto") == "https", h
assert h.get("x-forwarded-host", "").startswith("web.edge.test"), h
EOF
# The plain port still answers, and says so.
curl -sf -m 10 -H "Host: web.edge.test" "http://127.0.0.1:$EDGE_PORT/echo" | grep -q '"X-Forwarded-Proto", "http"' ||
    fail "plain HTTP port: X-Forwarded-Proto http"
echo "https://web.edge.test:$TLS_PORT/ verified with the test CA, X-Forwarded-Proto https"

step "keep-alive over TLS: three requests, one connection; 16 MiB each way"
"$PY" - "$TLS_PORT" "$PKI/ca.pem" <<'EOF' || fail "keep-alive over TLS"
import hashlib, http.client, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
class C(http.client.HTTPSConnection):
    def connect(self):
        import socket
        s = socket.create_connection(("127.0.0.1", port), 20)
        self.sock = ctx.wrap_socket(s, server_hostname="web.edge.test")
c = C("web.edge.test", port, context=ctx, timeout=30)
socks = set()
for p in ("/a", "/b", "/c"):
    c.request("GET", p)
    r = c.getresponse()
    assert r.status == 200 and r.read() == ("ok " + p).encode(), (p, r.status)
    socks.add(id(c.sock))
assert len(socks) == 1, "the connection was reopened"
n = 16 << 20
c.request("GET", f"/source?n={n}")
r = c.getresponse()
got = r.read()
assert r.status == 200 and len(got) == n, (r.status, len(got))
block = bytes((i * 7 + 13) & 0xFF for i in range(1 << 20))
body = block * 16
assert got == body, "download differs"
c.request("POST", "/sink", body=body, headers={"Content-Length": str(n)})
r = c.getresponse()
ans = r.read().decode()
assert r.status == 200 and hashlib.sha256(body).hexdigest() in ans, (r.status, ans[:200])
print("keep-alive ok, 16 MiB down and up intact")
EOF

step "a share over TLS: its policy holds (405, 403, 200)"
api POST "/api/v1/tunnels/$TUNNEL_ID/shares" '{"allowedMethods":["GET"],"allowedPaths":["/api/*"]}'
[ "$HTTP_STATUS" = 201 ] || fail "create share: $HTTP_STATUS $BODY"
SHARE_URL=$(echo "$BODY" | json_get shareUrl)
case $SHARE_URL in "https://share-"*".edge.test:$TLS_PORT/") ;; *) fail "shareUrl '$SHARE_URL'" ;; esac
[ "$(tls "${SHARE_URL}api/x" -o /dev/null -w '%{http_code}')" = 200 ] || fail "allowed GET"
[ "$(tls "${SHARE_URL}api/x" -X POST -o /dev/null -w '%{http_code}')" = 405 ] || fail "POST not 405"
[ "$(tls "${SHARE_URL}other" -o /dev/null -w '%{http_code}')" = 403 ] || fail "other path not 403"
[ "$(tls "${SHARE_URL}api/%2e%2e/other" -o /dev/null -w '%{http_code}')" = 403 ] ||
    fail "encoded traversal not 403"
echo "share over TLS: GET /api/x 200, POST 405, /other 403, traversal 403"

step "a client that is not TLS, or does not trust the certificate, gets nothing and harms nothing"
"$PY" - "$TLS_PORT" <<'EOF' || fail "plaintext on the HTTPS port"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.sendall(b"GET / HTTP/1.1\r\nHost: web.edge.test\r\n\r\n")
s.settimeout(5)
try:
    data = s.recv(4096)
except (ConnectionResetError, socket.timeout):
    data = b""
assert b"ok /" not in data, data
print("plaintext request on the HTTPS port: no answer from the tunnel")
EOF
if curl -s -m 10 --resolve "web.edge.test:$TLS_PORT:127.0.0.1" -o /dev/null \
    --cacert /etc/ssl/certs/ca-certificates.crt "https://web.edge.test:$TLS_PORT/"; then
    fail "a client without the test CA trusted the edge"
fi
[ "$(tls "${WEB_URL}after")" = "ok /after" ] || fail "the edge after the bad clients"
echo "garbage and untrusting clients refused; the edge still serves"

step "a tunnel of protocol https: the agent dials its target with TLS and verifies it"
SECURE_PORT=$(free_port)
cat >"$WORK/tls_target.py" <<'EOF'
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"secure hello " + self.path.encode()
        if self.path.startswith("/bytes/"):  # n deterministic bytes
            n = int(self.path[7:])
            body = (bytes(range(251)) * (n // 251 + 1))[:n]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
bg tls-target "$PY" "$WORK/tls_target.py" "$SECURE_PORT" "$PKI/target.pem" "$PKI/target.key"
wait_port 127.0.0.1 "$SECURE_PORT"
expose dev "127.0.0.1:$SECURE_PORT" --public --protocol https --name secure
SECURE_ID=$TUNNEL_ID
SECURE_URL=$(grep -m1 '^{' "$EXPOSE_OUT" | json_get publicUrl)
SECURE_LOG=$WORK/expose-dev-$EXPOSES.log
code() { tls "$SECURE_URL$1" -o "$WORK/secure.out" -w '%{http_code}'; }
# The system CA store does not know the test CA: refused, never plaintext.
[ "$(code /a)" = 502 ] || fail "an https target not trusted by the system store: $(cat "$WORK/secure.out")"
grep -q "TLS to the target 127.0.0.1 failed" "$SECURE_LOG" || fail "no log line for the failed TLS"
# set_tls JSON: the tunnel's metadata.tls, pushed to the agent.
set_tls() {
    api PATCH "/api/v1/tunnels/$SECURE_ID" "{\"metadata\":{\"tls\":$1}}"
    [ "$HTTP_STATUS" = 200 ] || fail "metadata: $HTTP_STATUS $BODY"
}
served() { [ "$(code "$1")" = 200 ] && [ "$(cat "$WORK/secure.out")" = "secure hello $1" ]; }
set_tls "{\"caFile\":\"$PKI/ca.pem\"}"
wait_for 10 "the https target through its CA file" served /b
# 24 MiB through TLS twice (edge and target): decrypted bytes OpenSSL holds
# while the stream has no credit must still come out.
N=$((24 << 20))
tls "${SECURE_URL}bytes/$N" -o "$WORK/big.out" || fail "24 MiB from the https target"
"$PY" -c 'import sys; n=int(sys.argv[2]); d=open(sys.argv[1],"rb").read(); sys.exit(0 if d == (bytes(range(251))*(n//251+1))[:n] else 1)' \
    "$WORK/big.out" "$N" || fail "24 MiB from the https target differ ($(stat -c %s "$WORK/big.out") bytes)"
set_tls "{\"caFile\":\"$PKI/ca.pem\",\"serverName\":\"wrong.example\"}"
wait_for 10 "a wrong server name refused" sh -c "[ \"\$(curl -s --cacert $PKI/ca.pem --resolve secure.edge.test:$TLS_PORT:127.0.0.1 -o /dev/null -w '%{http_code}' ${SECURE_URL}c)\" = 502 ]"
set_tls '{"insecure":true}'
wait_for 10 "an https target with tls.insecure" served /d
grep -q "not verified (tls.insecure)" "$SECURE_LOG" || fail "no warning for tls.insecure"
echo "https target: system store 502, caFile 200, wrong name 502, insecure 200 (warned)"

kill -0 "$HUB_PID" || fail "hub died"
echo "test_http_tls: all checks passed"
