# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script of tests/pinguard/test-pin-guard-guest.sh: a guessing
# guest.  Behind the emulated reader sits the virtual PIV card (3 PIN
# tries) with the agent's PIN-retry guard on (the default).  The guest's
# stock yubico-piv-tool changes the PIN to one it knows, then guesses
# wrong again and again; OpenSC's pkcs11-tool guesses too; then the guest
# even tries the right PIN.  The card must take exactly two wrong
# guesses (63C2, 63C1); every later attempt is answered 63C1 by the
# guard without reaching the card, so the last try stays with the host.
#
# From the host (/ccid-test/params): ATR (hex prefix), NEW_PIN, GUESS,
# N_GUESSES; VIA=daemon when the reader comes from `ccid-agent daemon`
# (the guest boots without it and asks the host to attach it).

T=ccid-guest-tool
. /ccid-test/params

[ "${VIA:-}" = daemon ] && host_request attach

# The reader is found by its CCID interface class (0B), not by a USB ID.
pg_ccid_dev() {
	for pg_i in /sys/bus/usb/devices/*:*; do
		[ "$(cat "$pg_i/bInterfaceClass" 2>/dev/null)" = 0b ] || continue
		pg_n=$(basename "$pg_i")
		echo "/sys/bus/usb/devices/${pg_n%%:*}"
		return 0
	done
	return 1
}

if wait_until 30 pg_ccid_dev; then
	PG_DEV=$(pg_ccid_dev)
	PG_VID=$(cat "$PG_DEV/idVendor")
	PG_PID=$(cat "$PG_DEV/idProduct")
	pass usb-enumerated "CCID device $PG_VID:$PG_PID"
else
	fail usb-enumerated "no USB device with a CCID interface after 30 s"
	exit 1
fi
ccid_plist_has "$PG_VID" "$PG_PID" || ccid_plist_add "$PG_VID" "$PG_PID" "ccid-emu Virtual CCID Reader"
pcscd_start || { fail pcscd-start "pcscd did not start"; exit 1; }
if ! check_grep atr "^atr=$ATR" $T -t 20000 find-reader "$ATR"; then
	pcscd_log
	exit 1
fi
PG_READER=$(sed -n 's/^reader=//p' /tmp/atr.log)

Y() { yubico-piv-tool -r "$PG_READER" "$@"; }

check change-pin Y -a change-pin -P 123456 -N "$NEW_PIN"

# The guesses: yubico-piv-tool reports the card's answer ("N tries
# left" from 63CN).
pg_i=1
while [ "$pg_i" -le "$N_GUESSES" ]; do
	Y -a verify-pin -P "$GUESS" >"/tmp/guess$pg_i.log" 2>&1
	pg_left=$(sed -n 's/.*[^0-9]\([0-9][0-9]*\) tries left.*/\1/p' "/tmp/guess$pg_i.log" | head -n 1)
	pg_want=1
	[ "$pg_i" -eq 1 ] && pg_want=2
	if [ "$pg_left" = "$pg_want" ]; then
		pass "guess-$pg_i" "$(head -n 1 "/tmp/guess$pg_i.log")"
	else
		fail "guess-$pg_i" "expected $pg_want tries left: $(cat "/tmp/guess$pg_i.log")"
	fi
	metric "guess_${pg_i}_tries_left" "${pg_left:-none}" tries
	pg_i=$((pg_i + 1))
done

# OpenSC guesses through PKCS#11: a wrong PIN, never a blocked card.
pkcs11-tool --module /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so --login \
	--pin "$GUESS" --list-objects >/tmp/p11.log 2>&1
if grep -q CKR_PIN_INCORRECT /tmp/p11.log && ! grep -q CKR_PIN_LOCKED /tmp/p11.log; then
	pass pkcs11-guess "$(grep -m 1 CKR_ /tmp/p11.log)"
else
	fail pkcs11-guess "$(tail -n 3 /tmp/p11.log)"
fi

# The right PIN from the guest: the guard cannot tell it from a guess.
Y -a verify-pin -P "$NEW_PIN" >/tmp/right.log 2>&1
check_grep right-pin-refused ' 1 tries left' cat /tmp/right.log

# The card, asked without a PIN (the status query passes the guard).
check_grep still-one-try 'PIN tries left:[[:space:]]*1' Y -a status
