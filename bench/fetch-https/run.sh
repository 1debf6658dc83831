#!/usr/bin/env bash
# bench/fetch-https: `tspod fetch https://127.0.0.1:PORT/big.aci` of a ~100 MB signed ACI served
# by nginx over loopback HTTPS (a CA made here, trusted through NODE_EXTRA_CA_CERTS; no
# --insecure-options; the signing key trusted in a throw-away config dir), next to the peer
# pipeline on the same file: one `curl` for the .aci.asc and the .aci, `gpg --verify`, and
# `tar -xzf`. Both halves are timed in one hyperfine run; every run starts from an empty store
# and an empty peer directory, all on tmpfs (/dev/shm: the root ext4 here has no journal and
# punishes create-after-delete, shared/docs/peers.md). Prints the medians, the ratio and each
# half's throughput (MB/s of the compressed ACI).
# Needs: hyperfine, nginx (Debian nginx-light), curl, gpg, openssl, a built tspod (scripts/setup.sh).
# Usage: bench/fetch-https/run.sh [RUNS] [TARGET_MB]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-7}
target_mb=${2:-100}
work=${BENCH_DIR:-/dev/shm/tspod-bench-fetch}

for tool in hyperfine nginx curl gpg openssl; do
  command -v "$tool" >/dev/null || { echo "bench/fetch-https: needs $tool (nginx: apt-get install -y nginx-light)" >&2; exit 2; }
done

nginx_pid=
cleanup() {
  # Only the nginx this script started, by its pid.
  if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
rm -rf "$work"
mkdir -p "$work/www" "$work/tls" "$work/nginx/tmp" "$work/gnupg"
chmod 700 "$work/gnupg"
chmod 755 "$work" "$work/www"

# The image and its signature, made by GnuPG with a throw-away key.
bash bench/fetch-https/make-image.sh "$work/www/big.aci" "$target_mb"
gpg_() { gpg --homedir "$work/gnupg" --batch --quiet --no-tty --pinentry-mode loopback --passphrase '' "$@"; }
gpg_ --quick-gen-key 'tspod bench signer <bench@tspod.dev>' ed25519 sign never 2>/dev/null
gpg_ --armor --export bench@tspod.dev > "$work/key.asc"
gpg_ --armor --detach-sign --output "$work/www/big.aci.asc" "$work/www/big.aci"
chmod 644 "$work/www/big.aci" "$work/www/big.aci.asc"
size_mb=$(node -e 'console.log((require("fs").statSync(process.argv[1]).size / 1048576).toFixed(1))' "$work/www/big.aci")

# A CA made here, and nginx's certificate for 127.0.0.1 signed by it.
(
  cd "$work/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=tspod bench CA' \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1' 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
)

# nginx on a free loopback port, in the foreground of a background job (no daemon, no pid file
# games), everything under $work: config, temp paths, logs.
port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $work/tls/server.pem;
    ssl_certificate_key $work/tls/server.key;
    root $work/www;
  }
}
CONF
nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
url="https://127.0.0.1:$port/big.aci"
for _ in $(seq 50); do curl -sf --cacert "$work/tls/ca.pem" -o /dev/null -r 0-0 "$url" && break; sleep 0.1; done

# tspod trusts the signing key for the image's prefix, in a throw-away config dir; its
# connections trust the bench CA the way a user adds a CA (NODE_EXTRA_CA_CERTS).
export NODE_EXTRA_CA_CERTS="$work/tls/ca.pem"
tspod="node $PWD/bin/run.js --dir $work/store --local-config $work/etc --system-config $work/sys"
$tspod trust --prefix tspod.dev/bench --skip-fingerprint-review "$work/key.asc" >/dev/null 2>&1

tspod_cmd="$tspod fetch $url >/dev/null 2>$work/tspod.err"
peer_cmd="curl -sSf --cacert $work/tls/ca.pem -o $work/peer/big.aci.asc $url.asc -o $work/peer/big.aci $url \
&& gpg --homedir $work/gnupg --batch --quiet --trust-model always --verify $work/peer/big.aci.asc $work/peer/big.aci 2>/dev/null \
&& tar -xzf $work/peer/big.aci -C $work/peer/out"
prepare="rm -rf $work/store $work/peer; mkdir -p $work/peer/out"

# Both halves must work once before they are timed. Until `tspod fetch https://` lands, tspod
# refuses URLs: then only the peer half is timed, and the refusal is printed.
eval "$prepare"
eval "$peer_cmd" || { echo "bench/fetch-https: the peer pipeline failed" >&2; exit 1; }
eval "$prepare"
tspod_ok=1
if ! eval "$tspod_cmd"; then
  tspod_ok=0
  echo "bench/fetch-https: tspod fetch $url failed; timing the peer pipeline only. tspod said:" >&2
  sed 's/^/  /' "$work/tspod.err" >&2
elif ! $tspod image list --json 2>/dev/null | grep -q '"tspod.dev/bench/big"'; then
  # The timed command must do a whole fetch: the image is in the store afterwards.
  echo "bench/fetch-https: tspod fetch exited 0 but tspod.dev/bench/big is not in the store" >&2
  exit 1
fi

commands=()
[ "$tspod_ok" = 1 ] && commands+=(-n 'tspod fetch' "$tspod_cmd")
commands+=(-n 'curl + gpg --verify + tar -xzf' "$peer_cmd")
hyperfine --runs "$runs" --warmup 1 --export-json "$work/result.json" --prepare "$prepare" "${commands[@]}"

node -e '
  const [file, mb] = [process.argv[1], Number(process.argv[2])];
  const r = Object.fromEntries(require(file).results.map((x) => [x.command, x.median]));
  const peer = r["curl + gpg --verify + tar -xzf"];
  const t = r["tspod fetch"];
  const line = (name, s) => `${name.padEnd(32)} ${s.toFixed(3)} s median, ${(mb / s).toFixed(0)} MB/s`;
  console.log(`image: ${mb} MB gzip, served by nginx over loopback https`);
  if (t !== undefined) console.log(line("tspod fetch", t));
  console.log(line("curl + gpg --verify + tar -xzf", peer));
  console.log(t === undefined ? "ratio: n/a (tspod half not run)" : `ratio tspod / peer: ${(t / peer).toFixed(2)} (target <= 1.2)`);
' "$work/result.json" "$size_mb"
