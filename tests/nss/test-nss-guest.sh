#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Guest-boot test of the nss card (docs/shared-mode.md, "nss flavour"):
# a softhsm2 token on the host (private SOFTHSM2_CONF, removable slots)
# with an RSA-2048 key and its certificate, an NSS database loading it
# (make-softhsm-nssdb.sh, modutil), `ccid-agent serve --card
# nss:DB,token=NAME`, and a stock Debian 12 guest (tests/guest kit) with
# the reader plugged in through usb-redir.  Checks:
#   - the guest's pcscd + libccid see the reader and libcacard's CAC ATR;
#   - OpenSC: pkcs11-tool -L shows the CAC token, -O its one certificate,
#     whose bytes (exported to the host) equal the token's certificate;
#   - a wrong PIN is refused; with the token's user PIN (libcacard turns
#     the CAC VERIFY into C_Login on the token) a SHA256-RSA-PKCS
#     signature made in the guest verifies on the host with openssl
#     against the token's certificate, and not over changed data;
#   - the agent logs no NSS deadlock and exits 0 on SIGTERM.
#
# The NSS deadlock (login vs libcacard's slot polling thread, see the
# docs): if the agent reports it, the attempt fails with a clear
# "deadlock" result and is retried once with a fresh agent and guest;
# the test passes only if an attempt passes entirely, and the summary
# says how many deadlocks were seen.
#
# Usage: test-nss-guest.sh [--agent PATH] [--controllers "xhci ..."]
#                          [--timeout-ms MS] [--quiet] [--keep DIR]
#   --agent        the ccid-agent binary (default: $CCID_AGENT, then
#                  build*/host-agent/ccid-agent, then PATH)
#   --controllers  default xhci (ehci and uhci work too)
#   --timeout-ms   the nss card's per-operation deadline (default 10000)
# Exit status: 0 pass, 1 fail, 2 setup error, 77 skipped (no QEMU, no
# softhsm2, pkcs11-tool, NSS tools or openssl on the host).
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
GUEST=$SRC/tests/guest
CONTROLLERS=(xhci)
QUIET=()
KEEP=
AGENT=${CCID_AGENT:-}
NSS_TIMEOUT_MS=10000
ATTEMPTS=2

# libcacard's CAC ATR, the same for mirrored tokens and soft cards.
VATR=3B7A18000073667465206364313434

die() { printf 'test-nss-guest: error: %s\n' "$*" >&2; exit 2; }
skip() { printf 'test-nss-guest: %s: skipped\n' "$*"; exit 77; }

while (($#)); do
	case $1 in
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--controllers) read -r -a CONTROLLERS <<<"${2:?--controllers needs a list}"; shift ;;
	--timeout-ms) NSS_TIMEOUT_MS=${2:?--timeout-ms needs a number}; shift ;;
	--quiet|-q) QUIET=(-q) ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	-h|--help) sed -n '3,34p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done
[[ $NSS_TIMEOUT_MS =~ ^[1-9][0-9]*$ ]] || die "--timeout-ms: '$NSS_TIMEOUT_MS' is not a number"

command -v "${QEMU:-qemu-system-x86_64}" >/dev/null || skip "no qemu-system-x86_64"
for tool in softhsm2-util pkcs11-tool modutil certutil openssl basenc; do
	command -v $tool >/dev/null || skip "$tool not found on the host"
done
# shellcheck source=../guest/host-lib.sh
. "$GUEST/host-lib.sh"
hl_find_agent "$SRC" || die "no ccid-agent: build the project or pass --agent"
"$GUEST/build-guest.sh" || die "build-guest.sh failed"

# Never the user's data, runtime directory or softhsm2 tokens.
hl_work "$KEEP" ccid-nss-guest

AGENTS=()
cleanup() {
	local a
	for a in "${AGENTS[@]}"; do agent_stop "$a" >/dev/null 2>&1 || true; done
	[[ -n $KEEP ]] || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

TOK=$WORK/token
rc=0
"$HERE/make-softhsm-nssdb.sh" "$TOK" || rc=$?
((rc == 0)) || { ((rc == 77)) && skip "no softhsm2 token"; die "cannot build the softhsm2 token"; }
# shellcheck source=/dev/null
. "$TOK/env"
export SOFTHSM2_CONF=$TOK/softhsm2.conf
CERT_CN=$(openssl x509 -inform DER -in "$TOK/cert.der" -noout -subject -nameopt multiline |
	sed -n 's/^ *commonName *= //p')
openssl x509 -inform DER -in "$TOK/cert.der" -noout -pubkey >"$TOK/pub.pem"

FAILS=0

EXPECT=(usb-enumerated stock-plist reader atr apdu-select-ccc pkcs11-token pkcs11-objects
	pkcs11-one-cert pkcs11-cert-subject pkcs11-read-cert wrong-pin-refused
	pkcs11-sign pkcs11-sign-again)

# host_checks: what the guest sent, checked against the token.
host_checks() {
	local log=$D/boot/results.log rc_good=0 rc_bad=0 out
	if guest_data "$log" cert "$D/cert.der"; then
		if cmp -s "$D/cert.der" "$TOK/cert.der"; then
			hres cert-is-token-cert PASS "the guest's certificate = the token's ($(stat -c %s "$TOK/cert.der") bytes)"
		else
			hres cert-is-token-cert FAIL "the guest's certificate ($(stat -c %s "$D/cert.der") bytes) differs from the token's"
		fi
	else
		hres cert-is-token-cert FAIL "no certificate from the guest"
	fi
	if ! guest_data "$log" sig "$D/sig.bin"; then
		hres sig-verify FAIL "no signature from the guest"
		return
	fi
	cp "$D/challenge.bin" "$D/challenge-bad.bin"
	printf '\xff' | dd of="$D/challenge-bad.bin" bs=1 seek=0 conv=notrunc status=none
	out=$(openssl dgst -sha256 -verify "$TOK/pub.pem" -signature "$D/sig.bin" "$D/challenge.bin" 2>&1) ||
		rc_good=$?
	openssl dgst -sha256 -verify "$TOK/pub.pem" -signature "$D/sig.bin" "$D/challenge-bad.bin" \
		>/dev/null 2>&1 || rc_bad=$?
	if ((rc_good == 0 && rc_bad != 0)); then
		hres sig-verify PASS "SHA256-RSA-PKCS signature from the guest verifies with the token's certificate (openssl: $out); changed data does not"
	elif ((rc_good == 0)); then
		hres sig-verify FAIL "the check is broken: changed data verifies too"
	else
		hres sig-verify FAIL "the guest's signature does not verify: ${out//$'\n'/ }"
	fi
}

DEADLOCKS=0
ROWS=()
FAILED=0
T_SUITE=$SECONDS
for C in "${CONTROLLERS[@]}"; do
	for attempt in $(seq "$ATTEMPTS"); do
		echo "=== nss card in the guest behind $C (attempt $attempt)"
		T_C=$SECONDS
		FAILS=0
		D=$WORK/$C-$attempt
		A=nss-$C-$attempt
		rm -rf "$D"
		mkdir -p "$D"
		agent_start "$A" -c "nss:$TOK/hwdb,token=$TOKEN,timeout=$NSS_TIMEOUT_MS" \
			-l "unix:$D/nss.sock" || die "cannot start the nss agent: $(tail -n 5 "$WORK/agent-$A.log")"
		AGENTS=("$A")
		if grep -q "nss card on token reader .*(token present)" "$WORK/agent-$A.log"; then
			hres agent-token-present PASS "$(grep -o "token reader .*" "$WORK/agent-$A.log" | head -n 1)"
		else
			hres agent-token-present FAIL "$(tail -n 3 "$WORK/agent-$A.log")"
		fi
		cat >"$D/params" <<-EOF
		VATR=$VATR
		TOKEN_PIN=$PIN
		CERT_CN='$CERT_CN'
		EOF
		head -c 200 /dev/urandom >"$D/challenge.bin"

		rc=0
		"$GUEST/boot-guest.sh" --no-build "${QUIET[@]}" -c "$C" -r "$D/nss.sock" \
			-s "$HERE/guest/nss-guest.sh" \
			-f "$D/params:/ccid-test/params" -f "$D/challenge.bin:/ccid-test/challenge.bin" \
			-w "$D/boot" -t 300 || rc=$?
		TIMED=$D/boot/results.timed
		if guest_expect "$TIMED" "${EXPECT[@]}"; then
			hres guest PASS "${#EXPECT[@]} guest results passed"
		else
			hres guest FAIL "boot-guest.sh exit $rc; guest results missing or failed (above)"
		fi
		host_checks

		deadlocked=0
		if grep -q 'NSS is presumably deadlocked' "$WORK/agent-$A.log"; then
			deadlocked=1
			DEADLOCKS=$((DEADLOCKS + 1))
			hres nss-no-deadlock FAIL "the agent's per-operation deadline tripped (the known NSS deadlock, login vs event polling, or an operation slower than timeout=$NSS_TIMEOUT_MS ms): $(grep -m1 'did not finish within' "$WORK/agent-$A.log")"
		else
			hres nss-no-deadlock PASS "no NSS deadlock reported by the agent"
		fi
		arc=0
		agent_stop "$A" || arc=$?
		AGENTS=()
		if ((arc == 0)); then
			hres agent-sigterm PASS "clean exit 0 on SIGTERM"
		else
			hres agent-sigterm FAIL "exit $arc on SIGTERM: $(tail -n 3 "$WORK/agent-$A.log")"
		fi

		ROWS+=("$(printf '%-4s #%d %-4s  guest %2d pass %d fail  host fails %d  atr %s ms  sign %s ms  deadlock %d  %d s' \
			"$C" "$attempt" "$( ((FAILS)) && echo FAIL || echo ok)" \
			"$(grep -c ' RESULT [^ ]* PASS' "$TIMED" || true)" \
			"$(grep -c ' RESULT [^ ]* FAIL' "$TIMED" || true)" "$FAILS" \
			"$(guest_metric "$TIMED" boot_to_atr_ms)" "$(guest_metric "$TIMED" sign_ms)" \
			"$deadlocked" $((SECONDS - T_C)))")
		((FAILS == 0)) && break
		# Only the known NSS deadlock earns a retry; anything else fails.
		if ((deadlocked && attempt < ATTEMPTS)); then
			echo "host: the nss card's deadline tripped (NSS deadlock); retrying once with a fresh agent and guest"
			continue
		fi
		FAILED=1
		break
	done
done

echo "=== summary (guest uptime ms)"
printf '%s\n' "${ROWS[@]}"
echo "NSS deadlocks caught: $DEADLOCKS; total $((SECONDS - T_SUITE)) s"
if ((FAILED)); then
	echo "test-nss-guest: FAIL (${KEEP:+logs in $WORK; }rerun with --keep DIR for the logs)"
else
	echo "test-nss-guest: PASS"
fi
exit "$FAILED"
