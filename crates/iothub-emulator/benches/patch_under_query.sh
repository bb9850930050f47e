#!/usr/bin/env bash
# Twin PATCH latency on a quiet hub and while another client loops a full-fleet
# `SELECT COUNT() … WHERE tags.location.plant = 'Redmond43'`, for each emulator binary given,
# side by side in one run.
#
#   crates/iothub-emulator/benches/patch_under_query.sh BINARY [BINARY ...]
#
# Each binary runs (`--in-memory`, ephemeral ports) with DEVICES twins (default 100000), created
# through the bulk registry, 100 a request, every tenth tagged `{"location":{"plant":
# "Redmond43"}}`. Then, ROUNDS times (default 3), for each binary in turn: one curl process sends
# PATCHES (default 300) `PATCH /twins/{id}` of a desired property, round-robin over the twins, on
# one kept-alive HTTP/1.1 connection (quiet); then the same while a second curl process loops the
# COUNT() query on its own kept-alive connection (loaded). The first request of each series pays
# for the TLS handshake and is left out. The script prints p50 and p99 of curl's `time_total`
# per binary and condition, the loaded/quiet ratio of the p99s, and the COUNT() query's own
# median time on an idle hub (QUERIES, default 11, per round, the first left out) and under
# the PATCH load (every query the loop answered).
# Needs bash, curl, openssl, awk, stdbuf (coreutils). Not a test: it measures, it asserts nothing.
set -euo pipefail

DEVICES=${DEVICES:-100000}
PATCHES=${PATCHES:-300}
ROUNDS=${ROUNDS:-3}
QUERIES=${QUERIES:-11}
[ $# -ge 1 ] || { echo "usage: $0 BINARY [BINARY ...]" >&2; exit 2; }

work=$(mktemp -d)
pids=()
loader=
cleanup() {
  [ -z "$loader" ] || { kill "$loader" 2>/dev/null || true; wait "$loader" 2>/dev/null || true; }
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}[,}].*/\1/p" "$2"; }

# A SAS token for the service connection string's policy (HMAC-SHA256 over "sr\nse").
sas_token() {
  local host=$1 policy=$2 key=$3 expiry sig
  expiry=$(( $(date +%s) + 7200 ))
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
  common[$i]=$(printf 'cacert = "%s"\nresolve = "%s:%s:127.0.0.1"\nheader = "Authorization: %s"\nheader = "Content-Type: application/json"\nsilent\nshow-error\nfail\n' \
    "$ca" "$host" "$port" "$(sas_token "$host" "$policy" "$key")")
}

populate() { # index: bulk-create DEVICES twins, 100 a request, every tenth tagged
  local i=$1 cfg="$work/create-$i.cfg" batch last=$(( (DEVICES + 99) / 100 - 1 ))
  : >"$cfg"
  for batch in $(seq 0 "$last"); do
    awk -v from=$(( batch * 100 + 1 )) -v to=$(( batch * 100 + 100 )) -v max="$DEVICES" 'BEGIN {
      printf "["
      for (n = from; n <= to && n <= max; n++) {
        if (n > from) printf ","
        printf "{\"id\":\"device-%06d\",\"importMode\":\"create\"", n
        if (n % 10 == 0) printf ",\"tags\":{\"location\":{\"region\":\"US\",\"plant\":\"Redmond43\"}}"
        printf "}"
      }
      printf "]"
    }' >"$work/batch-$batch.json"
    printf '%s\nurl = "%s/devices?api-version=2021-04-12"\nrequest = "POST"\ndata = "@%s"\noutput = "/dev/null"\n' \
      "${common[$i]}" "${base[$i]}" "$work/batch-$batch.json" >>"$cfg"
    [ "$batch" = "$last" ] || printf 'next\n' >>"$cfg"
  done
  curl -K "$cfg"
}

patches() { # index -> one "total" line per PATCH (the first, with the handshake, left out)
  local i=$1 cfg="$work/patch-$i.cfg" n
  printf '%s\n' "${common[$i]}" >"$cfg"
  for n in $(seq "$PATCHES"); do
    printf 'url = "%s/twins/device-%06d?api-version=2021-04-12"\noutput = "/dev/null"\n' \
      "${base[$i]}" $(( (n * 7919) % DEVICES + 1 )) >>"$cfg"
  done
  curl --http1.1 --request PATCH --data '{"properties":{"desired":{"bench":1}}}' \
    -w '%{time_total}\n' -K "$cfg" | tail -n +2
}

count_query='{"query":"SELECT COUNT() AS n FROM devices WHERE tags.location.plant = '"'"'Redmond43'"'"'"}'

start_loader() { # index: loop the COUNT() query on one connection until killed
  local i=$1 cfg="$work/count-$i.cfg"
  printf '%s\n' "${common[$i]}" >"$cfg"
  for _ in $(seq 20000); do
    printf 'url = "%s/devices/query?api-version=2021-04-12"\noutput = "/dev/null"\n' "${base[$i]}" >>"$cfg"
  done
  # Line-buffered, so the times of a loop that is killed are all kept.
  stdbuf -oL curl --http1.1 --data "$count_query" -w '%{time_total}\n' -K "$cfg" >>"$work/counts-$i" 2>/dev/null &
  loader=$!
  # Wait until the loader's first queries have been answered.
  for _ in $(seq 600); do [ "$(wc -l <"$work/counts-$i")" -ge 3 ] && break; sleep 0.05; done
}

quiet_counts() { # index -> one "total" line per COUNT() query on an otherwise idle hub
  local i=$1 cfg="$work/quiet-count-$i.cfg"
  printf '%s\n' "${common[$i]}" >"$cfg"
  for _ in $(seq "$QUERIES"); do
    printf 'url = "%s/devices/query?api-version=2021-04-12"\noutput = "/dev/null"\n' "${base[$i]}" >>"$cfg"
  done
  curl --http1.1 --data "$count_query" -w '%{time_total}\n' -K "$cfg" | tail -n +2
}

stop_loader() {
  kill "$loader" 2>/dev/null || true; wait "$loader" 2>/dev/null || true; loader=
}

declare -A base common
for i in $(seq 0 $(( $# - 1 ))); do
  bins[$i]=${*:$((i + 1)):1}
  start "$i" "${bins[$i]}"
  populate "$i"
  : >"$work/counts-$i"
done
check="$work/check.cfg"
for i in "${!bins[@]}"; do
  printf '%s\nurl = "%s/devices/query?api-version=2021-04-12"\n' "${common[$i]}" "${base[$i]}" >"$check"
  echo "${bins[$i]}: COUNT() answers $(curl --data "$count_query" -K "$check")"
done

for _ in $(seq "$ROUNDS"); do
  for i in "${!bins[@]}"; do patches "$i" >>"$work/quiet-$i"; done
  for i in "${!bins[@]}"; do quiet_counts "$i" >>"$work/quiet-counts-$i"; done
  for i in "${!bins[@]}"; do
    start_loader "$i"
    patches "$i" >>"$work/loaded-$i"
    stop_loader
  done
done

pct() { # file p -> value in ms
  sort -g "$1" | awk -v p="$2" '{ v[NR] = $1 * 1000 } END { k = int(p * (NR - 1) + 1.5); printf "%.3f", v[k] }'
}
echo "$DEVICES twins, $(( ROUNDS * (PATCHES - 1) )) kept-alive PATCHes per binary and condition, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-46s %12s %12s %12s %12s %10s %18s %16s\n' binary 'quiet p50' 'quiet p99' 'loaded p50' 'loaded p99' 'p99 ratio' 'COUNT() alone p50' 'COUNT() p50'
for i in "${!bins[@]}"; do
  qp99=$(pct "$work/quiet-$i" .99); lp99=$(pct "$work/loaded-$i" .99)
  printf '%-46s %9s ms %9s ms %9s ms %9s ms %10s %15s ms %13s ms (%d queries)\n' "${bins[$i]}" \
    "$(pct "$work/quiet-$i" .5)" "$qp99" "$(pct "$work/loaded-$i" .5)" "$lp99" \
    "$(awk -v a="$lp99" -v b="$qp99" 'BEGIN { printf "%.2f", a / b }')" \
    "$(pct "$work/quiet-counts-$i" .5)" \
    "$(pct "$work/counts-$i" .5)" "$(wc -l <"$work/counts-$i")"
done
