#!/usr/bin/env bash
# A CI step that asks Countersign for approval and blocks until a human decides.
# Put it right before the deploy step; the deploy runs only if this exits 0.
#
#   wait-for-approval.sh <action> <summary> [params-json]
#   wait-for-approval.sh deploy.production "Deploy $GITHUB_SHA to production" "{\"sha\":\"$GITHUB_SHA\"}"
#
# Environment:
#   COUNTERSIGN_URL              the gateway, e.g. https://countersign.example.com (required)
#   COUNTERSIGN_API_KEY          a key with the "requests" scope (required; keep it in CI secrets)
#   COUNTERSIGN_ENVIRONMENT      optional, matched by policy rules (e.g. production)
#   COUNTERSIGN_RESOURCE         optional, matched by policy rules
#   COUNTERSIGN_TIMEOUT          seconds to wait for a decision (default 3600)
#   COUNTERSIGN_IDEMPOTENCY_KEY  default: derived from the CI run, so a retried job reuses its request
#
# Exit status: 0 approved, 1 denied / expired / cancelled, 2 usage or API error, 3 timed out.
# On approval the signed receipt is printed to stdout as `receipt=<jws>` (and appended to
# $GITHUB_OUTPUT when set) for a later step to verify or archive.
# Needs bash, curl and jq.
set -euo pipefail

log() { printf 'countersign: %s\n' "$*" >&2; }
die() {
  log "$2"
  exit "$1"
}

[ $# -ge 2 ] || die 2 "usage: $0 <action> <summary> [params-json]"
ACTION=$1
SUMMARY=$2
PARAMS=${3:-"{}"}
: "${COUNTERSIGN_URL:?set COUNTERSIGN_URL}"
: "${COUNTERSIGN_API_KEY:?set COUNTERSIGN_API_KEY}"
URL=${COUNTERSIGN_URL%/}
TIMEOUT=${COUNTERSIGN_TIMEOUT:-3600}
RUN_ID=${GITHUB_RUN_ID:-${CI_PIPELINE_ID:-${BUILD_ID:-}}}
IDEMPOTENCY_KEY=${COUNTERSIGN_IDEMPOTENCY_KEY:-ci-${RUN_ID:-$(date +%s)-$$}-${GITHUB_RUN_ATTEMPT:-1}-${ACTION}}

command -v jq > /dev/null || die 2 "jq is required"
echo "$PARAMS" | jq -e 'type == "object"' > /dev/null 2>&1 || die 2 "params must be a JSON object"

BODY=$(jq -n \
  --arg action "$ACTION" --arg summary "$SUMMARY" --argjson params "$PARAMS" \
  --arg environment "${COUNTERSIGN_ENVIRONMENT:-}" --arg resource "${COUNTERSIGN_RESOURCE:-}" \
  '{action: $action, summary: $summary, params: $params}
   + (if $environment != "" then {environment: $environment} else {} end)
   + (if $resource != "" then {resource: $resource} else {} end)')

BODY_FILE=$(mktemp)
trap 'rm -f "$BODY_FILE"' EXIT

# api METHOD PATH [BODY] [MAX_TIME]: prints the HTTP status; the response body lands in
# $BODY_FILE. Network failures are retried by curl; that is safe for the POST because it
# carries an Idempotency-Key.
api() {
  curl -sS --retry 5 --retry-all-errors --retry-delay 2 --connect-timeout 10 --max-time "${4:-30}" \
    -X "$1" "$URL$2" -o "$BODY_FILE" -w '%{http_code}' \
    -H "Authorization: Bearer $COUNTERSIGN_API_KEY" -H "Content-Type: application/json" \
    -H "Idempotency-Key: $IDEMPOTENCY_KEY" \
    ${3:+--data "$3"}
}

problem() { jq -r '"\(.status) \(.code): \(.detail)\(if .errors then " (" + ([.errors[] | "\(.path): \(.message)"] | join("; ")) + ")" else "" end) [request id \(.requestId)]"' 2> /dev/null <<< "$1" || echo "$1"; }

HTTP_STATUS=$(api POST /v1/requests "$BODY") || die 2 "cannot reach $URL"
REQ=$(cat "$BODY_FILE")
case "$HTTP_STATUS" in
  200 | 201) ;;
  *) die 2 "submit refused: $(problem "$REQ")" ;;
esac
ID=$(jq -r .id <<< "$REQ")
log "asked for approval of $ACTION: $ID ($URL/v1/requests/$ID)"

DEADLINE=$(($(date +%s) + TIMEOUT))
while :; do
  STATUS=$(jq -r .status <<< "$REQ")
  case "$STATUS" in
    approved)
      log "approved by $(jq -r '[.decisions[] | select(.decision == "approve") | .reviewer] | if length == 0 then "policy" else join(", ") end' <<< "$REQ")"
      RECEIPT=$(jq -r .receipt <<< "$REQ")
      echo "receipt=$RECEIPT"
      if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "receipt=$RECEIPT" >> "$GITHUB_OUTPUT"; fi
      exit 0
      ;;
    denied)
      die 1 "denied: $(jq -r 'if .resolution == "policy" then "by policy rule \(.policy.ruleId // "default")" else ([.decisions[] | select(.decision == "deny") | "\(.reviewer): \(.reason // "no reason given")"] | join("; ")) end' <<< "$REQ")"
      ;;
    expired | cancelled) die 1 "request $STATUS" ;;
  esac
  LEFT=$((DEADLINE - $(date +%s)))
  [ "$LEFT" -gt 0 ] || die 3 "no decision within ${TIMEOUT}s; $ID is still pending"
  WAIT=$((LEFT < 60 ? LEFT : 60))
  # Long-poll: the gateway answers as soon as the request is decided, or after WAIT seconds.
  HTTP_STATUS=$(api GET "/v1/requests/$ID?wait=$WAIT" "" $((WAIT + 15))) || HTTP_STATUS=000
  if [ "$HTTP_STATUS" = 200 ]; then
    REQ=$(cat "$BODY_FILE")
  elif [ "$HTTP_STATUS" -ge 400 ] && [ "$HTTP_STATUS" -lt 500 ] && [ "$HTTP_STATUS" != 429 ]; then
    die 2 "cannot read $ID: $(problem "$(cat "$BODY_FILE")")"
  else
    sleep 2 # gateway unreachable or busy: keep waiting until the deadline
  fi
done
