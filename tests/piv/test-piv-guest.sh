#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Guest-boot test of the virtual PIV card (docs/piv-card.md): enrollment
# and use of a fresh card from inside a stock Debian 12 guest (tests/guest
# kit) with yubico-piv-tool and OpenSC, behind `ccid-agent serve --card
# piv:DIR` and QEMU's usb-redir.  Per algorithm (RSA2048, then ECCP256),
# one new card and two boots:
#   1. enroll (guest/piv-guest.sh PHASE=enroll): new PIN, PUK and
#      management key; key generation in 9A; a certificate request made
#      on the card, which the host checks (openssl req -verify) and signs
#      with a throw-away test CA; CHUID and CCC written;
#   2. the agent is stopped (`ccid-agent piv info` checks the store on
#      the host) and started again; use (PHASE=use): the certificate is
#      imported, yubico-piv-tool -a status and pkcs15-tool --dump show
#      it, pkcs11-tool signs with the new PIN and the host verifies the
#      signature against the certificate; a wrong PIN is refused, three
#      block it, the PUK unblocks it.
#
# Usage: test-piv-guest.sh [--agent PATH] [--controller C] [--algs "RSA2048 ECCP256"]
#                          [--quiet] [--keep DIR] [--agent-verbose]
#   --agent-verbose  serve -v: the card logs each command's header and
#                    status word (never its data)
# Exit status: 0 pass, 1 fail, 2 setup error, 77 skipped (no QEMU or
# openssl on the host).
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
GUEST=$SRC/tests/guest
CONTROLLER=xhci
ALGS=(RSA2048 ECCP256)
QUIET=()
KEEP=
AGENT=${CCID_AGENT:-}
AGENT_ARGS=()

NEW_PIN=246810
NEW_PUK=13579135
NEW_MGM=1122334455667788990011223344556677889900aabbccdd

die() { printf 'test-piv-guest: error: %s\n' "$*" >&2; exit 2; }
skip() { printf 'test-piv-guest: %s: skipped\n' "$*"; exit 77; }

while (($#)); do
	case $1 in
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--controller) CONTROLLER=${2:?--controller needs a name}; shift ;;
	--algs) read -r -a ALGS <<<"${2:?--algs needs a list}"; shift ;;
	--quiet|-q) QUIET=(-q) ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	--agent-verbose) AGENT_ARGS=(-v) ;;
	-h|--help) sed -n '3,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done

command -v "${QEMU:-qemu-system-x86_64}" >/dev/null || skip "no qemu-system-x86_64"
for tool in openssl basenc; do
	command -v $tool >/dev/null || skip "$tool not found on the host"
done
# shellcheck source=../guest/host-lib.sh
. "$GUEST/host-lib.sh"
hl_find_agent "$SRC" || die "no ccid-agent: build the project or pass --agent"
"$GUEST/build-guest.sh" || die "build-guest.sh failed"
hl_work "$KEEP" ccid-piv-guest

AGENTS=()
cleanup() {
	local a
	for a in "${AGENTS[@]}"; do agent_stop "$a" >/dev/null 2>&1 || true; done
	[[ -n $KEEP ]] || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

# The card's ATR up to its historical bytes "ccid-PIV".
ATR=$("$AGENT" selftest --card "piv:$WORK/atr-probe" 2>/dev/null |
	sed -n 's/.*IccPowerOn: ATR \([0-9A-F ]*\)$/\1/p' | tr -d ' ' | cut -c1-40)
[[ $ATR == 3B8E8131FE45* ]] || die "cannot read the piv card's ATR from the selftest (got '$ATR')"

# A throw-away test CA.
CA=$WORK/ca
mkdir -p "$CA"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$CA/ca.key" -out "$CA/ca.pem" \
	-days 2 -subj "/CN=ccid-emu test CA/" >/dev/null 2>&1 || die "cannot make the test CA"

FAILS=0

# boot PHASE DIR EXPECTED...: one guest boot against a running agent.
boot() {
	local phase=$1 d=$2 rc=0
	shift 2
	cat >"$d/params-$phase" <<-EOF
	PHASE=$phase
	ATR=$ATR
	ALG=$ALG
	NEW_PIN=$NEW_PIN
	NEW_PUK=$NEW_PUK
	NEW_MGM=$NEW_MGM
	CN='$CN'
	EOF
	local files=(-f "$d/params-$phase:/ccid-test/params")
	[[ $phase == use ]] && files+=(-f "$d/cert.pem:/ccid-test/cert.pem"
		-f "$d/challenge.bin:/ccid-test/challenge.bin" -f "$CA/ca.pem:/ccid-test/ca.pem")
	"$GUEST/boot-guest.sh" --no-build "${QUIET[@]}" -c "$CONTROLLER" -r "$d/piv.sock" \
		-s "$HERE/guest/piv-guest.sh" "${files[@]}" -w "$d/boot-$phase" -t 600 || rc=$?
	if guest_expect "$d/boot-$phase/results.timed" "$@"; then
		hres "guest-$phase" PASS "$# guest results passed"
	else
		hres "guest-$phase" FAIL "boot-guest.sh exit $rc; guest results missing or failed (above)"
	fi
}

ROWS=()
T_SUITE=$SECONDS
for ALG in "${ALGS[@]}"; do
	echo "=== virtual PIV card, $ALG in 9A, behind $CONTROLLER"
	FAILS=0
	T_C=$SECONDS
	D=$WORK/$ALG
	CARD=$D/card
	CN="piv-user-$ALG"
	mkdir -p "$D"
	head -c 200 /dev/urandom >"$D/challenge.bin"

	agent_start "enroll-$ALG" "${AGENT_ARGS[@]}" -c "piv:$CARD" -l "unix:$D/piv.sock" ||
		die "cannot start the agent: $(tail -n 5 "$WORK/agent-enroll-$ALG.log")"
	AGENTS=("enroll-$ALG")
	boot enroll "$D" usb-enumerated atr ykpiv-version change-pin change-puk \
		set-mgm-key old-mgm-key-refused generate request-certificate \
		set-chuid set-ccc status-chuid
	arc=0
	agent_stop "enroll-$ALG" || arc=$?
	AGENTS=()
	((arc == 0)) && hres agent-sigterm PASS "clean exit 0" ||
		hres agent-sigterm FAIL "exit $arc: $(tail -n 3 "$WORK/agent-enroll-$ALG.log")"

	# The card as the store has it now.
	info=$("$AGENT" piv info "$CARD" 2>&1) || true
	if grep -q "pin: 3 of 3 tries left\$" <<<"$info" &&
		grep -q "puk: 3 of 3 tries left\$" <<<"$info" &&
		grep -q "management key: 3DES\$" <<<"$info" &&
		grep -q "slot 9a (PIV authentication): $ALG, generated, PIN once" <<<"$info" &&
		grep -q "object 5FC102" <<<"$info" && grep -q "object 5FC107" <<<"$info"; then
		hres store-after-enroll PASS "new PIN, PUK and key; $ALG in 9a; CHUID and CCC"
	else
		hres store-after-enroll FAIL "ccid-agent piv info: ${info//$'\n'/; }"
	fi

	# The certificate request: made with the card's key, signed by the CA.
	if guest_data "$D/boot-enroll/results.log" csr "$D/csr.pem" &&
		openssl req -in "$D/csr.pem" -verify -noout >"$D/req-verify.log" 2>&1 &&
		openssl x509 -req -in "$D/csr.pem" -CA "$CA/ca.pem" -CAkey "$CA/ca.key" \
			-CAcreateserial -days 1 -out "$D/cert.pem" >"$D/sign.log" 2>&1; then
		hres csr-signed PASS "request verifies ($(head -n 1 "$D/req-verify.log")); $(openssl x509 -in "$D/cert.pem" -noout -subject)"
	else
		hres csr-signed FAIL "no valid certificate request from the guest: $(cat "$D/req-verify.log" "$D/sign.log" 2>/dev/null | head -n 3)"
		: >"$D/cert.pem"
	fi

	# A new agent on the same card: everything must still be there.  The
	# guest blocks the PIN on purpose, which the PIN-retry guard would
	# not let it do (tests/pinguard tests the guard): off here.
	agent_start "use-$ALG" "${AGENT_ARGS[@]}" -c "piv:$CARD,pin_guard=off" -l "unix:$D/piv.sock" ||
		die "cannot restart the agent: $(tail -n 5 "$WORK/agent-use-$ALG.log")"
	AGENTS=("use-$ALG")
	boot use "$D" usb-enumerated atr ykpiv-version pin-persisted import-certificate \
		status-cert pkcs15-dump pkcs11-cert pkcs11-sign wrong-pin-refused \
		pin-blocked unblock-pin pin-after-unblock pkcs11-sign-after-unblock \
		pam-login pam-su pam-wrong-pin-refused pam-other-user-refused
	agent_stop "use-$ALG" || true
	AGENTS=()

	if guest_data "$D/boot-use/results.log" sig "$D/sig.bin" &&
		openssl x509 -in "$D/cert.pem" -noout -pubkey >"$D/pub.pem" 2>/dev/null &&
		out=$(openssl dgst -sha256 -verify "$D/pub.pem" -signature "$D/sig.bin" "$D/challenge.bin" 2>&1); then
		cp "$D/challenge.bin" "$D/challenge-bad.bin"
		printf '\xff' | dd of="$D/challenge-bad.bin" bs=1 seek=0 conv=notrunc status=none
		if openssl dgst -sha256 -verify "$D/pub.pem" -signature "$D/sig.bin" \
			"$D/challenge-bad.bin" >/dev/null 2>&1; then
			hres sig-verify FAIL "the check is broken: changed data verifies too"
		else
			hres sig-verify PASS "the guest's signature verifies with the enrolled certificate ($out); changed data does not"
		fi
	else
		hres sig-verify FAIL "no signature from the guest that verifies: ${out:-}"
	fi

	TE=$D/boot-enroll/results.timed
	TU=$D/boot-use/results.timed
	ROWS+=("$(printf '%-8s %-4s  keygen %s ms  csr %s ms  sign %s ms  login %s ms  atr %s ms  host fails %d  %d s' \
		"$ALG" "$( ((FAILS)) && echo FAIL || echo ok)" \
		"$(guest_metric "$TE" keygen_ms)" "$(guest_metric "$TE" csr_ms)" \
		"$(guest_metric "$TU" sign_ms)" "$(guest_metric "$TU" login_ms)" \
		"$(guest_metric "$TU" boot_to_atr_ms)" \
		"$FAILS" $((SECONDS - T_C)))")
	((FAILS == 0)) || FAILED=1
done

echo "=== summary (guest times, TCG)"
printf '%s\n' "${ROWS[@]}"
echo "total $((SECONDS - T_SUITE)) s"
if ((${FAILED:-0})); then
	echo "test-piv-guest: FAIL (${KEEP:+logs in $WORK; }rerun with --keep DIR for the logs)"
	exit 1
fi
echo "test-piv-guest: PASS"
