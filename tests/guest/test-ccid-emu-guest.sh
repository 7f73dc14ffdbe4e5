#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The guest test of ccid-emu's reader (docs/guest-kit.md, "The guest
# test"): behind each USB host controller, a stock Debian 12 guest uses
# two ccid-emu readers plugged in with usb-redir, one `ccid-agent serve`
# with the virtual CAC card (the embedded default card, or --card nssdb)
# and one with the loopback card, and checks:
#   - 1209:CC1D enumerates at full speed with its CCID interface; pcscd +
#     libccid (VID:PID added to their list) create both readers;
#   - the ATR reaches ccid-guest-tool and opensc-tool and is the one the
#     host expects; APDUs answer 90 00;
#   - OpenSC's PKCS#11 module shows the CAC token and its 3 certificates;
#     signatures made in the guest with keys 0001 (RSA-PKCS) and 0002
#     (SHA256-RSA-PKCS) verify on the host with openssl against the
#     certificates of the host's NSS database;
#   - 64 KiB extended APDUs through the loopback card; a 10 s card
#     operation completes (time extension), also with a 64 KiB answer;
#   - the host removes and re-inserts each card (`ccid-agent ctl`):
#     pcsc_scan and SCardGetStatusChange see it, the card works after;
#   - QEMU killed during a 10 s card operation, once the loopback agent
#     reports its slot busy with it: both agents keep running and a
#     second boot against them works; SIGTERM stops them cleanly;
#   - both agents used the data path asked for (docs/serve.md).
#
# Usage: test-ccid-emu-guest.sh [--agent PATH] [--controllers "xhci ehci uhci"]
#                               [--card default|nssdb] [--data-path PATH]
#                               [--quiet] [--keep DIR]
#   --agent  the ccid-agent binary (default: $CCID_AGENT, then
#            build*/host-agent/ccid-agent in the source tree, then PATH)
#   --card   default: the embedded virtual card, its database created in
#            a temporary XDG_DATA_HOME; nssdb: `--card virtual:DIR` on a
#            database made by make-nssdb.sh
#   --data-path  the agents' --data-path (default auto: the interrupt path,
#            since the peer is QEMU; bulk forces the fallback)
# The agents run with temporary XDG_DATA_HOME and XDG_RUNTIME_DIR: the
# user's own data is never touched.
# Exit status: 0 when every controller passed, 1 otherwise, 2 on setup
# errors.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CONTROLLERS=(xhci ehci uhci)
QUIET=()
KEEP=
CARD=default
DATA_PATH=auto
AGENT=${CCID_AGENT:-}

# The ATR of libcacard's soft (NSS) card, which is what the virtual card
# is: the host's expectation the guest compares with.
VATR=3B7A18000073667465206364313434
# Any PIN logs in: libcacard passes it to NSS, and a database without a
# password accepts every PIN.  This one is what OpenSC's tools would ask
# for a CAC (4 to 8 digits).
SIGN_PIN=12345678

die() { printf 'test-ccid-emu-guest: error: %s\n' "$*" >&2; exit 2; }

while (($#)); do
	case $1 in
	--agent) AGENT=${2:?--agent needs a path}; shift ;;
	--controllers) read -r -a CONTROLLERS <<<"${2:?--controllers needs a list}"; shift ;;
	--card) CARD=${2:?--card needs default or nssdb}; shift ;;
	--data-path) DATA_PATH=${2:?--data-path needs auto, bulk, interrupt or interrupt-both}; shift ;;
	--quiet|-q) QUIET=(-q) ;;
	--keep) KEEP=${2:?--keep needs a directory}; shift ;;
	-h|--help) sed -n '3,34p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done
[[ $CARD == default || $CARD == nssdb ]] || die "--card: '$CARD' is not default or nssdb"
case $DATA_PATH in
auto|interrupt) WANT_PATH=interrupt ;;
bulk|interrupt-both) WANT_PATH=$DATA_PATH ;;
*) die "--data-path: '$DATA_PATH' is not auto, bulk, interrupt or interrupt-both" ;;
esac

# shellcheck source=host-lib.sh
. "$HERE/host-lib.sh"
hl_find_agent "$SRC" || die "no ccid-agent: build the project or pass --agent"
for tool in openssl certutil basenc; do
	command -v $tool >/dev/null || die "$tool not found on the host"
done

"$HERE/build-guest.sh" || die "build-guest.sh failed"

# The work directory; XDG_DATA_HOME and XDG_RUNTIME_DIR inside it: never
# the user's own card database or runtime directory.
hl_work "$KEEP" ccid-emu-guest

AGENTS=()
cleanup() {
	local a
	for a in "${AGENTS[@]}"; do agent_stop "$a" >/dev/null 2>&1 || true; done
	[[ -n $KEEP ]] || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT

if [[ $CARD == nssdb ]]; then
	"$HERE/make-nssdb.sh" "$WORK/nssdb" >/dev/null || die "cannot create the NSS database"
	DB=$WORK/nssdb
	# The CAC's ID, signature and encryption certificates, in that order
	# (without --certs the agent takes the database's first three, in
	# NSS's order).
	CARD_NICKS=(id-cert signing-cert encryption-cert)
	VCARD=(-c "virtual:$DB" --certs "$(IFS=,; echo "${CARD_NICKS[*]}")")
else
	DB=$XDG_DATA_HOME/ccid-emu/nssdb
	# What the agent puts into the database it creates for its default
	# card (docs/serve.md).
	CARD_NICKS=(ccid-emu-id ccid-emu-sign ccid-emu-enc)
	VCARD=()
fi

# --- host-side results -------------------------------------------------------------
FAILS=0

# The certificates of the host's database as DER files: all of them, so
# a mix-up names the certificate the guest got instead.
HOST_NICKS=()
host_certs() {
	local nick
	mkdir -p "$WORK/certs"
	mapfile -t HOST_NICKS < <(certutil -L -d "sql:$DB" |
		awk 'NR > 4 && NF >= 2 { $NF = ""; sub(/[ \t]+$/, ""); print }')
	for nick in "${CARD_NICKS[@]}"; do
		printf '%s\n' "${HOST_NICKS[@]}" | grep -qxF "$nick" || return 1
	done
	for nick in "${HOST_NICKS[@]}"; do
		certutil -L -d "sql:$DB" -n "$nick" -r >"$WORK/certs/$nick.der" || return 1
	done
}
cert_cn() {
	openssl x509 -inform DER -in "$1" -noout -subject -nameopt multiline |
		sed -n 's/^ *commonName *= //p'
}

# verify_sig ID MECH: the guest's signature with key ID (0001, 0002)
# over the challenge, checked with the host's copy of the certificate the
# guest read from the card, which must be the card's certificate ID.
verify_sig() {
	local id=$1 mech=$2 d=$D/host nick match="" pub out want
	want=${CARD_NICKS[$((10#$id - 1))]}
	mkdir -p "$d"
	if ! guest_data "$D/boot1/results.log" "cert-$id" "$d/cert-$id.der" ||
		! guest_data "$D/boot1/results.log" "sig-$id" "$d/sig-$id.bin"; then
		hres "sig-$id-verify" FAIL "no certificate or signature from the guest"
		return
	fi
	for nick in "${HOST_NICKS[@]}"; do
		cmp -s "$d/cert-$id.der" "$WORK/certs/$nick.der" && match=$nick && break
	done
	if [[ -z $match ]]; then
		hres "cert-$id-is-host-cert" FAIL "the guest's certificate $id is none of the host database's"
		return
	elif [[ $match != "$want" ]]; then
		hres "cert-$id-is-host-cert" FAIL "the guest's certificate $id is host '$match', expected '$want'"
		return
	fi
	hres "cert-$id-is-host-cert" PASS "guest certificate $id = host '$match' ($(stat -c %s "$d/cert-$id.der") bytes)"
	pub=$d/pub-$id.pem
	openssl x509 -inform DER -in "$WORK/certs/$match.der" -noout -pubkey >"$pub"
	# The same check on a changed challenge must fail, or it proves nothing.
	# Its first byte complemented: always a change, whatever the random
	# challenge starts with (setting it to 0xff was no change 1 time in 256).
	cp "$D/challenge.bin" "$d/challenge-bad.bin"
	local b0
	b0=$(od -An -tu1 -N1 "$D/challenge.bin" | tr -d ' ')
	# shellcheck disable=SC2059
	printf "\\$(printf '%03o' $((b0 ^ 255)))" |
		dd of="$d/challenge-bad.bin" bs=1 seek=0 conv=notrunc status=none
	if cmp -s "$D/challenge.bin" "$d/challenge-bad.bin"; then
		hres "sig-$id-verify" FAIL "could not make a changed challenge"
		return
	fi
	local rc_good=0 rc_bad=0
	case $mech in
	SHA256-RSA-PKCS)
		out=$(openssl dgst -sha256 -verify "$pub" -signature "$d/sig-$id.bin" "$D/challenge.bin" 2>&1) || rc_good=$?
		openssl dgst -sha256 -verify "$pub" -signature "$d/sig-$id.bin" "$d/challenge-bad.bin" >/dev/null 2>&1 || rc_bad=$? ;;
	RSA-PKCS)
		# Raw PKCS#1 v1.5 over the data itself: recover it and compare.
		out=$(openssl pkeyutl -verifyrecover -pubin -inkey "$pub" -in "$d/sig-$id.bin" \
			-out "$d/recovered-$id.bin" 2>&1 && echo "recovered $(stat -c %s "$d/recovered-$id.bin") bytes") ||
			rc_good=$?
		cmp -s "$d/recovered-$id.bin" "$D/challenge.bin" || rc_good=1
		cmp -s "$d/recovered-$id.bin" "$d/challenge-bad.bin" || rc_bad=1 ;;
	esac
	if ((rc_good == 0 && rc_bad != 0)); then
		hres "sig-$id-verify" PASS "$mech signature of key $id verifies with '$match' on the host (openssl: ${out//$'\n'/ }); a changed challenge does not"
	elif ((rc_good == 0)); then
		hres "sig-$id-verify" FAIL "the check is broken: a changed challenge verifies too"
	else
		hres "sig-$id-verify" FAIL "$mech signature of key $id does not verify with '$match': ${out//$'\n'/ }"
	fi
}

# What the guest's REQUEST lines ask for (run by watch_requests).
on_request() {
	local what=$1 name=${2:-} reply
	case $what in
	remove|insert)
		reply=$(agent_ctl "$name-$C" "$what" 2>&1) || true
		echo "$(date +%T.%N | cut -c1-12) $what $name: $reply" >>"$D/requests.log"
		echo "host: $what $name: $reply" ;;
	kill-qemu)
		# The guest has started a 10 s DELAY: kill QEMU once the
		# loopback agent says its card is working on it, so the
		# APDU really is in flight (a request that never reaches
		# the card must not pass for one).
		if wait_busy "loopback-$C"; then
			echo "$(date +%T.%N | cut -c1-12) kill-qemu pid $(cat "$D/qemu1.pid") busy" >>"$D/requests.log"
			echo "host: killing QEMU (SIGKILL) while the loopback card works on the 10 s DELAY"
		else
			echo "$(date +%T.%N | cut -c1-12) kill-qemu pid $(cat "$D/qemu1.pid") never-busy" >>"$D/requests.log"
			echo "host: the loopback card never started the DELAY; killing QEMU anyway"
		fi
		kill -KILL "$(cat "$D/qemu1.pid")" ;;
	*) echo "host: unknown guest request '$*'" >>"$D/requests.log" ;;
	esac
}

wait_busy() {    # wait_busy AGENT: its slot 0 is busy with a card operation (15 s)
	local end=$((SECONDS + 15))
	while ((SECONDS < end)); do
		agent_ctl "$1" status 2>/dev/null | grep -q '"slot": 0, [^}]*"busy": true' && return 0
	done
	return 1
}

wait_detached() {    # wait_detached AGENT: its status says no QEMU
	for _ in $(seq 50); do
		agent_ctl "$1" status 2>/dev/null | grep -q '"attached": false' && return 0
		sleep 0.1
	done
	return 1
}

EXPECT1=(usb-enumerated usb-full-speed usb-ccid-interface stock-plist readers atr-virtual atr-loopback
	usb-claimed opensc-tool-atr opensc-atr-match apdu-virtual-select apdu-loopback-select
	pkcs11-token pkcs11-objects pkcs11-certs pkcs11-cert1-subject pkcs11-cert2-subject
	pkcs11-cert3-subject pkcs11-sign-0001 pkcs11-read-cert-0001 pkcs11-sign-0002
	pkcs11-read-cert-0002 pattern-ext-65536 echo-ext-65535 pattern-ext-257 echo-ext-4096
	delay-10s delay-10s-duration delayed-pattern-3s-64k
	virtual-removed-event virtual-absent-no-card virtual-pcsc-scan-removed
	virtual-inserted-event virtual-pcsc-scan-inserted virtual-atr-after-replug
	virtual-apdu-after-replug virtual-pkcs11-after-replug virtual-sign-after-replug
	loopback-removed-event loopback-absent-no-card loopback-pcsc-scan-removed
	loopback-inserted-event loopback-pcsc-scan-inserted loopback-echo-after-replug)
EXPECT2=restart-usb-enumerated,stock-plist,restart-readers,restart-atr-virtual,restart-atr-loopback
EXPECT2+=,restart-apdu-loopback,restart-delay-1s,restart-apdu-virtual,restart-pkcs11-token

ROWS=()
FAILED=0
T_SUITE=$SECONDS
for C in "${CONTROLLERS[@]}"; do
	echo "=== ccid-emu in the guest behind $C"
	T_C=$SECONDS
	FAILS=0
	D=$WORK/$C
	# Fresh: the request watcher reads results.log from its start.
	rm -rf "$D"
	mkdir -p "$D"
	agent_start "virtual-$C" "${VCARD[@]}" --data-path "$DATA_PATH" \
		-l "unix:$D/virtual.sock" ||
		die "cannot start the virtual card agent"
	AGENTS+=("virtual-$C")
	agent_start "loopback-$C" -c loopback --data-path "$DATA_PATH" \
		-l "unix:$D/loopback.sock" ||
		die "cannot start the loopback agent"
	AGENTS+=("loopback-$C")
	if ((${#HOST_NICKS[@]} == 0)); then
		host_certs || die "$DB lacks one of the certificates ${CARD_NICKS[*]}"
	fi
	cn=()
	for nick in "${CARD_NICKS[@]}"; do
		cn+=("$(cert_cn "$WORK/certs/$nick.der")")
		[[ ${cn[-1]} =~ ^[A-Za-z0-9\ ._-]+$ ]] || die "certificate CN '${cn[-1]}' is not plain"
	done
	cat >"$D/params" <<-EOF
	VATR=$VATR
	CERT_CN1='${cn[0]}'
	CERT_CN2='${cn[1]}'
	CERT_CN3='${cn[2]}'
	SIGN_PIN=$SIGN_PIN
	EOF
	# Fresh data to sign each time; short enough for raw RSA-PKCS.
	head -c 200 /dev/urandom >"$D/challenge.bin"
	: >"$D/requests.log"

	# --- boot 1: everything, ending with QEMU killed ------------------------
	rc=0
	"$HERE/boot-guest.sh" --no-build "${QUIET[@]}" -c "$C" \
		-r "$D/virtual.sock" -r "$D/loopback.sock" \
		-s "$HERE/scripts/ccid-emu-guest.sh" \
		-f "$D/params:/ccid-test/params" -f "$D/challenge.bin:/ccid-test/challenge.bin" \
		--pidfile "$D/qemu1.pid" -w "$D/boot1" -t 300 &
	BOOT=$!
	mkdir -p "$D/boot1"
	watch_requests "$D/boot1/results.log" "$BOOT" on_request &
	WATCH=$!
	wait "$BOOT" || rc=$?
	wait "$WATCH" 2>/dev/null || true
	T1=$D/boot1/results.timed
	if ((rc == 4)) && grep -q 'kill-qemu .* busy$' "$D/requests.log"; then
		hres qemu-killed-mid-apdu PASS "QEMU killed while the loopback card worked on the guest's 10 s DELAY"
	else
		hres qemu-killed-mid-apdu FAIL "boot-guest.sh exit $rc (4 = QEMU gone before DONE); requests: $(tr '\n' ';' <"$D/requests.log")"
	fi
	if guest_expect "$T1" "${EXPECT1[@]}"; then
		hres guest-boot1 PASS "${#EXPECT1[@]} guest results passed"
	else
		hres guest-boot1 FAIL "guest results missing or failed (above)"
	fi
	for w in "remove virtual" "insert virtual" "remove loopback" "insert loopback"; do
		if grep -q "$w: {\"slot\": 0, \"present\": $([[ $w == insert* ]] && echo true || echo false), \"changed\": true}" "$D/requests.log"; then
			hres "ctl-${w// /-}" PASS "ccid-agent ctl $w"
		else
			hres "ctl-${w// /-}" FAIL "no successful 'ccid-agent ctl $w' (requests: $(tr '\n' ';' <"$D/requests.log"))"
		fi
	done
	verify_sig 0002 SHA256-RSA-PKCS
	verify_sig 0001 RSA-PKCS

	for a in "virtual-$C" "loopback-$C"; do
		if grep -q "reader attached to the VM .*; $WANT_PATH data path" "$WORK/agent-$a.log"; then
			hres "$a-data-path" PASS "$WANT_PATH data path (--data-path $DATA_PATH)"
		else
			hres "$a-data-path" FAIL "want the $WANT_PATH data path: $(grep 'data path' "$WORK/agent-$a.log" | tail -n 1)"
		fi
		# Behind uhci and ehci the loopback card's 10 s DELAY and its
		# 64 KiB answer after 3 s outlive the fence: their time
		# extensions and answers must have gone on the bulk path
		# (xhci leaves the interrupt path at its first whole transfer).
		if [[ $a == loopback-* && $C != xhci && ( $DATA_PATH == auto || $DATA_PATH == interrupt ) ]]; then
			st=$(agent_ctl "$a" status 2>&1 || true)
			flips=$(sed -n 's/.*"bulk_in_flips": \([0-9]*\).*/\1/p' <<<"$st")
			if [[ -n $flips ]] && ((flips >= 2)); then
				hres "$a-late-replies-bulk" PASS "$flips replies that came after the fence went on the bulk path"
			else
				hres "$a-late-replies-bulk" FAIL "want >= 2 bulk_in_flips (10 s DELAY, 3 s 64 KiB PATTERN): $st"
			fi
		fi
		if agent_alive "$a" && wait_detached "$a"; then
			hres "$a-survives-kill" PASS "running, status: $(agent_ctl "$a" status)"
		else
			hres "$a-survives-kill" FAIL "agent gone or still attached: $(tail -n 3 "$WORK/agent-$a.log")"
		fi
	done

	# --- boot 2: the same agents serve a new QEMU -----------------------------
	rc=0
	"$HERE/boot-guest.sh" --no-build "${QUIET[@]}" -c "$C" \
		-r "$D/virtual.sock" -r "$D/loopback.sock" \
		-s "$HERE/scripts/ccid-emu-restart.sh" -f "$D/params:/ccid-test/params" \
		-e "$EXPECT2" -w "$D/boot2" -t 180 || rc=$?
	T2=$D/boot2/results.timed
	if ((rc == 0)); then
		hres guest-boot2-after-kill PASS "a new QEMU against the same agents: both readers work"
	else
		hres guest-boot2-after-kill FAIL "boot-guest.sh exit $rc"
	fi
	for a in "virtual-$C" "loopback-$C"; do
		st=$(agent_ctl "$a" status 2>&1 || true)
		if [[ $st == *'"sessions": 2'* ]]; then
			hres "$a-sessions" PASS "$st"
		else
			hres "$a-sessions" FAIL "want 2 QEMU sessions: $st"
		fi
		arc=0
		agent_stop "$a" || arc=$?
		if ((arc == 0)); then
			hres "$a-sigterm" PASS "clean exit 0 on SIGTERM"
		else
			hres "$a-sigterm" FAIL "exit $arc on SIGTERM: $(tail -n 3 "$WORK/agent-$a.log")"
		fi
	done
	AGENTS=()

	# What pcscd/libccid logged (errors only at its default level).
	complaints=$(grep -c '  pcscd| ' "$D/boot1/console.log" || true)
	ROWS+=("$(printf '%-4s %-4s  guest %3d pass %d fail  host fails %d  atr %s ms (host %s s)  restart-atr %s ms  delay-10s %s ms  pcscd-log %s lines  %d s' \
		"$C" "$( ((FAILS)) && echo FAIL || echo ok)" \
		"$(grep -c ' RESULT [^ ]* PASS' "$T1" "$T2" | awk -F: '{ s += $2 } END { print s }')" \
		"$(grep -c ' RESULT [^ ]* FAIL' "$T1" "$T2" | awk -F: '{ s += $2 } END { print s }')" \
		"$FAILS" "$(guest_metric "$T1" boot_to_atr_ms)" "$(guest_metric_host "$T1" boot_to_atr_ms)" \
		"$(guest_metric "$T2" boot_to_atr_ms)" "$(guest_metric "$T1" delay_10s_ms)" \
		"$complaints" $((SECONDS - T_C)))")
	((FAILS == 0)) || FAILED=1
done

echo "=== summary (card: $CARD; guest uptime ms, host seconds since QEMU started)"
printf '%s\n' "${ROWS[@]}"
echo "total $((SECONDS - T_SUITE)) s"
if ((FAILED)); then
	echo "test-ccid-emu-guest: FAIL (${KEEP:+logs in $WORK; }rerun with --keep DIR for the logs)"
else
	echo "test-ccid-emu-guest: PASS"
fi
exit "$FAILED"
