#!/usr/bin/env bash
# `make run`: migrate the local SQLite databases, provision the development merchant, then run
# the payment service (with the sandbox PSP under /sandbox), its worker and the reference event
# platform until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
export PAYMENT_ENV="${PAYMENT_ENV:-development}"
export PAYMENT_LOG_FORMAT="${PAYMENT_LOG_FORMAT:-json}"
PAYMENT_PORT="${PAYMENT_PORT:-8000}"
PLATFORM_PORT="${PLATFORM_PORT:-8001}"
export PAYMENT_PUBLIC_URL="${PAYMENT_PUBLIC_URL:-http://127.0.0.1:$PAYMENT_PORT}"
# The reference platform: its own SQLite file, the dev merchant's credentials from the file below.
export PLATFORM_PUBLIC_URL="${PLATFORM_PUBLIC_URL:-http://127.0.0.1:$PLATFORM_PORT}"
export PLATFORM_PAYMENT_SERVICE_URL="${PLATFORM_PAYMENT_SERVICE_URL:-$PAYMENT_PUBLIC_URL}"
export PLATFORM_DATABASE_URL="${PLATFORM_DATABASE_URL:-sqlite:///var/platform.db}"
export PLATFORM_MERCHANT_FILE="${PLATFORM_MERCHANT_FILE:-var/dev-merchant.json}"
mkdir -p var

payment-service db upgrade
echo "Development merchant (credentials kept in $PLATFORM_MERCHANT_FILE):"
payment-service merchants ensure-dev --file "$PLATFORM_MERCHANT_FILE" --origin "$PLATFORM_PUBLIC_URL"
python -m platform_client.demo init-db

pids=()
stop() {
  trap - INT TERM EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

payment-service serve --host 127.0.0.1 --port "$PAYMENT_PORT" --threads 8 &
pids+=($!)
payment-service worker &
pids+=($!)
python -m platform_client.demo serve --host 127.0.0.1 --port "$PLATFORM_PORT" &
pids+=($!)

# Print the addresses once both servers answer (at most 30 s).
python - "$PAYMENT_PUBLIC_URL/healthz" "$PLATFORM_PUBLIC_URL/healthz" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 30
for url in sys.argv[1:]:
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"{url} did not answer within 30 s; see the log above")
            time.sleep(0.2)
PY

echo
echo "Open the event:  $PLATFORM_PUBLIC_URL/events/evt_seoul_marathon_2027"
echo "Payment service: $PAYMENT_PUBLIC_URL   API docs: $PAYMENT_PUBLIC_URL/docs"
echo "Sandbox PSP:     $PAYMENT_PUBLIC_URL/sandbox"
echo "Worker:          delivering callbacks, expiring overdue checkouts. Ctrl-C stops all three."
# If any process dies, stop the others and exit with its status.
wait -n "${pids[@]}"
