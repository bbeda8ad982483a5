#!/usr/bin/env bash
# a2c-up.sh -- start acme2certifier (PyPI), the second real ACME CA of the test stack, beside
# Pebble. It signs with a throwaway root -> issuing CA made here and validates dns-01 for real
# against the project's PowerDNS, which stack-up.sh also makes listen on 127.0.1.53:53
# (acme2certifier takes DNS servers as bare IPs, always port 53).
#
#   a2c        https://127.0.0.1:22000/directory   dns-01 checked at 127.0.1.53
#   a2c-nodns  https://127.0.0.1:22001/directory   dns-01 checked at 127.0.1.54, where no
#              server listens: every validation fails (for the failure tests)
#
# Idempotent; state in .stack/a2c/; stopped by stack-down.sh. Needs stack-up.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ROOT=$(pwd)
ST=$ROOT/.stack/a2c
VENV=$ROOT/.stack/a2cvenv
mkdir -p "$ST/ca/certs" "$ST/tls"

if [ ! -x "$VENV/bin/python" ] || ! cmp -s requirements/a2c.txt "$VENV/.requirements"; then
  log "installing acme2certifier into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements/a2c.txt
  cp requirements/a2c.txt "$VENV/.requirements"
fi

if [ ! -s "$ST/ca/issuing.pem" ]; then
  log "making the throwaway root and issuing CA"
  ( cd "$ST/ca"
    printf '%s\n' "[root]" "basicConstraints=critical,CA:TRUE" "keyUsage=critical,keyCertSign,cRLSign" \
      "subjectKeyIdentifier=hash" "[issuing]" "basicConstraints=critical,CA:TRUE,pathlen:0" \
      "keyUsage=critical,digitalSignature,keyCertSign,cRLSign" "subjectKeyIdentifier=hash" \
      "authorityKeyIdentifier=keyid:always" > ca.ext
    openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.pem -days 3650 \
      -subj "/O=CSR Proxy tests/CN=acme2certifier test root" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout issuing.key -out issuing.csr \
      -subj "/O=CSR Proxy tests/CN=acme2certifier test issuing CA" 2>/dev/null
    openssl x509 -req -in issuing.csr -CA root.pem -CAkey root.key -CAcreateserial -out issuing.pem \
      -days 1825 -extfile ca.ext -extensions issuing 2>/dev/null
    rm -f issuing.csr root.srl; chmod 600 root.key issuing.key )
fi
if [ ! -s "$ST/tls/server.pem" ]; then
  ( cd "$ST/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
      -subj "/CN=acme2certifier TLS test CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
      "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment" > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
      -days 825 -extfile server.ext 2>/dev/null
    rm -f server.csr ca.srl server.ext; chmod 600 ca.key server.key )
fi

start_instance() { # NAME PORT DNS_IP
  local name=$1 port=$2 dns=$3 dir=$ST/$1
  mkdir -p "$dir"
  if alive "$dir/a2c.pid"; then log "$name already running (pid $(cat "$dir/a2c.pid"))"; return; fi
  port_busy "$port" && die "port $port is taken by a process that is not ours"
  cat > "$dir/acme_srv.cfg" <<CFG
# written by scripts/a2c-up.sh
[DEFAULT]
debug: False
dns_server_list: ["$dns"]
[Nonce]
nonce_check_disable: False
[CAhandler]
handler_module: $ROOT/scripts/a2c/cn2san_handler.py
issuing_ca_key: $ST/ca/issuing.key
issuing_ca_cert: $ST/ca/issuing.pem
issuing_ca_crl: $ST/ca/issuing.crl
cert_save_path: $ST/ca/certs
cert_validity_days: 90
[DBhandler]
handler_module: acme2certifier.dbhandlers.wsgi_handler
dbfile: $dir/a2c.db
[Certificate]
revocation_reason_check_disable: False
# SANs + CN must equal the order's names: this is what lets CN-only CSRs through
csr_binding_strict: True
[Challenge]
challenge_validation_disable: False
challenge_validation_timeout: 10
[Order]
tnauthlist_support: False
CFG
  log "starting $name on https://127.0.0.1:$port/directory (dns-01 checked at $dns:53)"
  ( cd "$dir" && exec setsid env ACME_SRV_CONFIGFILE="$dir/acme_srv.cfg" A2C_LISTEN="127.0.0.1:$port" \
      A2C_TLS_CERT="$ST/tls/server.pem" A2C_TLS_KEY="$ST/tls/server.key" PYTHONUNBUFFERED=1 \
      "$VENV/bin/python" "$ROOT/scripts/a2c/serve.py" </dev/null >>"$dir/a2c.log" 2>&1 ) &
  echo $! > "$dir/a2c.pid"
  wait_for 30 curl -fsS --cacert "$ST/tls/ca.pem" "https://127.0.0.1:$port/directory" \
    || { tail -20 "$dir/a2c.log" >&2; die "$name did not come up"; }
}
start_instance a2c 22000 127.0.1.53
start_instance a2c-nodns 22001 127.0.1.54

cat > "$ST/a2c.env" <<ENV
# written by scripts/a2c-up.sh
A2C_DIRECTORY_URL=https://127.0.0.1:22000/directory
A2C_NODNS_DIRECTORY_URL=https://127.0.0.1:22001/directory
A2C_TLS_CA=$ST/tls/ca.pem
A2C_ROOT=$ST/ca/root.pem
ENV
