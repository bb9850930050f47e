#!/usr/bin/env bash
# One query page of 100 twins over a kept-alive HTTPS connection, timed by curl: time to the
# first byte and to the last, for each emulator binary given, side by side in one run.
#
#   crates/iothub-emulator/benches/query_page.sh BINARY [BINARY ...]
#
# Each binary runs in turn (`--in-memory`, ephemeral ports) with DEVICES devices (default 1000),
# every one tagged like the tutorial's twins; then one curl process sends ROUNDS (default 5)
# rounds of PAGES (default 50) `POST /devices/query` for the first page of `SELECT * FROM
# devices` (100 twins) on one connection, over HTTP/1.1 and over HTTP/2 (what curl and reqwest
# negotiate by ALPN), and the script prints the median and p90 of the
# per-request times, the first request of each round left out (it pays for the TLS handshake).
# The binaries alternate round by round, so machine noise falls on both alike.
# With ENDPOINT=statistics the timed request is `GET /statistics/devices` instead.
# Needs bash, curl, openssl, awk. Not a test: it measures, it asserts nothing.
set -euo pipefail

DEVICES=${DEVICES:-1000}
PAGES=${PAGES:-50}
ROUNDS=${ROUNDS:-5}
ENDPOINT=${ENDPOINT:-query}
[ $# -ge 1 ] || { echo "usage: $0 BINARY [BINARY ...]" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}[,}].*/\1/p" "$2"; }

# A SAS token for the service connection string's policy (HMAC-SHA256 over "sr\nse").
sas_token() {
  local host=$1 policy=$2 key=$3 expiry sig
  expiry=$(( $(date +%s) + 3600 ))
  sig=$(printf '%s\n%s' "$host" "$expiry" |
    openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(printf '%s' "$key" | base64 -d | od -An -v -tx1 | tr -d ' \n')" -binary |
    base64 | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g')
  printf 'SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s' "$host" "$sig" "$expiry" "$policy"
}

start() { # index binary -> sets globals for that server
  local i=$1 bin=$2 ready="$work/ready-$1.json"
  "$bin" --in-memory --data-dir "$work/data-$i" --https-port 0 --mqtt-port 0 --amqp-port 0 --ready-file "$ready" \
    >/dev/null 2>"$work/stderr-$i" &
  pids+=($!)
  for _ in $(seq 300); do [ -s "$ready" ] && break; sleep 0.1; done
  [ -s "$ready" ] || { echo "emulator $bin did not start:" >&2; cat "$work/stderr-$i" >&2; exit 1; }
  local host port ca cs policy key
  host=$(field hostname "$ready"); port=$(field https_port "$ready"); ca=$(field ca_file "$ready")
  cs=$(field service_connection_string "$ready")
  policy=$(printf '%s' "$cs" | tr ';' '\n' | sed -n 's/^SharedAccessKeyName=//p')
  key=$(printf '%s' "$cs" | tr ';' '\n' | sed -n 's/^SharedAccessKey=//p')
  base[$i]="https://$host:$port"
  # Options every request group of a curl config repeats (`next` resets them).
  common[$i]=$(printf 'cacert = "%s"\nresolve = "%s:%s:127.0.0.1"\nheader = "Authorization: %s"\nheader = "Content-Type: application/json"\nsilent\nshow-error\nfail\n' \
    "$ca" "$host" "$port" "$(sas_token "$host" "$policy" "$key")")
}

populate() { # index
  local i=$1 cfg="$work/create-$i.cfg" tags="$work/tags.json"
  : >"$cfg"
  last=$(printf 'device-%05d' "$DEVICES")
  for d in $(seq -f 'device-%05g' 1 "$DEVICES"); do
    printf '%s\n' "${common[$i]}" >>"$cfg"
    printf 'url = "%s/devices/%s?api-version=2021-04-12"\nrequest = "PUT"\ndata = "{\\"deviceId\\":\\"%s\\"}"\noutput = "/dev/null"\nnext\n' \
      "${base[$i]}" "$d" "$d" >>"$cfg"
    printf '%s\n' "${common[$i]}" >>"$cfg"
    printf 'url = "%s/twins/%s?api-version=2021-04-12"\nrequest = "PATCH"\ndata = "@%s"\noutput = "/dev/null"\n' \
      "${base[$i]}" "$d" "$tags" >>"$cfg"
    [ "$d" = "$last" ] || printf 'next\n' >>"$cfg"
  done
  printf '{"tags":{"location":{"region":"US","plant":"Redmond43"},"owner":"fleet-team"}}' >"$tags"
  curl -K "$cfg"
}

measure() { # index protocol -> per-request "starttransfer total size" lines
  local i=$1 cfg="$work/query-$i.cfg"
  printf '%s\n' "${common[$i]}" >"$cfg"
  for _ in $(seq "$PAGES"); do
    printf 'url = "%s/%s?api-version=2021-04-12"\noutput = "/dev/null"\n' "${base[$i]}" "$path" >>"$cfg"
  done
  curl "--$2" "${request[@]}" -w '%{time_starttransfer} %{time_total} %{size_download}\n' -K "$cfg" |
    tail -n +2
}

declare -A base common
if [ "$ENDPOINT" = statistics ]; then
  path=statistics/devices request=(--get) what="GET /statistics/devices"
else
  path=devices/query request=(--data '{"query":"SELECT * FROM devices"}')
  what="first page of SELECT * (100 twins)"
fi
for i in $(seq 0 $(( $# - 1 ))); do
  bins[$i]=${*:$((i + 1)):1}
  start "$i" "${bins[$i]}"
  populate "$i"
done

for _ in $(seq "$ROUNDS"); do
  for protocol in http1.1 http2; do
    for i in "${!bins[@]}"; do measure "$i" "$protocol" >>"$work/times-$i-$protocol"; done
  done
done

echo "$ENDPOINT: $DEVICES devices, $what, $((ROUNDS * (PAGES - 1))) kept-alive requests per binary, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-50s %9s %14s %14s %12s %12s\n' protocol binary bytes 'first byte p50' 'first byte p90' 'total p50' 'total p90'
for protocol in http1.1 http2; do for i in "${!bins[@]}"; do
  awk -v name="${bins[$i]}" -v protocol="$protocol" '
    { s[NR] = $1 * 1000; t[NR] = $2 * 1000; b = $3 }
    function pct(a, n, p,   i, j, x, k) {
      for (i = 1; i <= n; i++) c[i] = a[i]
      for (i = 2; i <= n; i++) { x = c[i]; for (j = i - 1; j >= 1 && c[j] > x; j--) c[j + 1] = c[j]; c[j + 1] = x }
      k = int(p * (n - 1) + 1.5); return c[k]
    }
    END { printf "%-8s %-50s %9d %11.3f ms %11.3f ms %9.3f ms %9.3f ms\n", protocol, name, b, pct(s, NR, .5), pct(s, NR, .9), pct(t, NR, .5), pct(t, NR, .9) }
  ' "$work/times-$i-$protocol"
done; done
