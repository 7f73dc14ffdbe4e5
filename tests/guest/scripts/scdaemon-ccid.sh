# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script of test-scdaemon-guest.sh: GnuPG's scdaemon drives the
# reader with its own libusb CCID driver (scd/ccid-driver.c), with no
# pcscd running, on a stock guest.  Two readers (default USB ID): one with
# the loopback card (T=1 ATR), one with the virtual CAC card (T=0 ATR).
#
# scdaemon runs as `scdaemon --server` and is fed Assuan commands:
#   GETINFO reader_list   the readers its CCID driver found
#   SERIALNO undefined    open the card without an application
#   APDU --atr [HEX]      the ATR, then a raw APDU; D lines carry the answer
#
# From the host (/ccid-test/params): VATR (the virtual card's ATR).

VID=$CCID_VID
PID=$CCID_PID
. /ccid-test/params
SCD=/usr/lib/gnupg/scdaemon
LATR=3B880163636964
GH=/tmp/gnupg

two_devices() { [ "$(usb_find $VID $PID | wc -l)" -ge 2 ]; }
if wait_until 30 two_devices; then
	pass usb-enumerated "$(usb_find $VID $PID | wc -l) devices $VID:$PID"
else
	fail usb-enumerated "want 2 USB devices $VID:$PID after 30 s"
	exit 1
fi
ccid_stock_list $VID $PID
if pidof pcscd >/dev/null 2>&1; then
	fail no-pcscd "pcscd runs: scdaemon would not use its own driver"
else
	pass no-pcscd "no pcscd: scdaemon's internal CCID driver owns the USB devices"
fi
mkdir -p $GH && chmod 700 $GH
# scdaemon's CCID driver picks a reader by the name GETINFO reader_list
# gives; card-timeout and the like are left at their defaults.
: >$GH/scdaemon.conf

# scd_run NAME COMMAND...: one scdaemon session with these Assuan commands
# (a BYE ends it); the raw answer in /tmp/NAME.out, scdaemon's log in
# /tmp/NAME.scdlog.
scd_run() {
	_n=$1
	shift
	printf '%s\n' "$@" BYE |
		timeout 60 $SCD --server --homedir $GH --log-file /tmp/$_n.scdlog \
			--debug-ccid-driver --debug-level basic >/tmp/$_n.out 2>&1
	_rc=$?
	return $_rc
}
# scd_data NAME: each APDU answer of that session (consecutive D lines,
# percent escapes decoded) as one line of " xx" hex bytes.
scd_data() {
	od -An -tx1 -v "/tmp/$1.out" | awk '
		BEGIN { for (k = 0; k < 10; k++) dig[sprintf("%02x", 48 + k)] = k
			for (k = 0; k < 6; k++) { dig[sprintf("%02x", 65 + k)] = 10 + k
						  dig[sprintf("%02x", 97 + k)] = 10 + k } }
		{ for (i = 1; i <= NF; i++) t[n++] = $i }
		END {
			bol = 1
			for (i = 0; i < n; i++) {
				if (bol) {
					bol = 0
					if (t[i] == "44" && t[i + 1] == "20") { ind = 1; i++; continue }
					if (out != "") { print out; out = "" }
					ind = 0
				}
				if (t[i] == "0a") { bol = 1; continue }
				if (!ind) continue
				if (t[i] == "25" && (t[i + 1] in dig) && (t[i + 2] in dig)) {
					out = out sprintf(" %02x", dig[t[i + 1]] * 16 + dig[t[i + 2]])
					i += 2
				} else {
					out = out " " t[i]
				}
			}
			if (out != "") print out
		}'
}
# scd_answer NAME N: the Nth APDU answer (1-based) of that session.
scd_answer() { scd_data "$1" | sed -n "${2}p"; }

# scd_ok NAME: every command answered OK (no ERR line).
scd_ok() { ! grep -a -q '^ERR' "/tmp/$1.out" && grep -a -q '^OK' "/tmp/$1.out"; }

# --- the reader list ---------------------------------------------------------
scd_run readers 'GETINFO reader_list'
sed 's/^/  | /' /tmp/readers.out
# scdaemon names a reader VID:PID:SERIAL:INTERFACE; the D lines end in an
# escaped newline (%0A).
VIDPID=$(printf '%04X:%04X' 0x$VID 0x$PID)
grep -a "^D $VIDPID:" /tmp/readers.out | sed 's/^D //; s/%0A$//' | sort -u >/tmp/reader-names
n=$(wc -l </tmp/reader-names)
if [ "$n" -eq 2 ] && scd_ok readers; then
	pass scd-reader-list "two readers, told apart by their serial numbers: $(tr '\n' ' ' </tmp/reader-names)"
else
	fail scd-reader-list "want 2 distinct $VIDPID readers in scdaemon's list, have $n: $(tr '\n' ' ' </tmp/readers.out)"
	exit 1
fi

# scd_reader ATRHEX: the reader (by scdaemon's name) whose card has that
# ATR prefix; prints it.
scd_reader() {
	_k=0
	while IFS= read -r _r; do
		_k=$((_k + 1))
		printf 'reader-port %s\n' "$_r" >$GH/scdaemon.conf
		scd_run probe-$1-$_k 'SERIALNO undefined' 'APDU --atr'
		cp /tmp/probe-$1-$_k.out /tmp/probe.out
		cp /tmp/probe-$1-$_k.scdlog /tmp/probe.scdlog
		if grep -a -q "^S CARD-ATR $1" /tmp/probe.out; then
			echo "$_r"
			return 0
		fi
	done </tmp/reader-names
	return 1
}

# --- loopback card (T=1) --------------------------------------------------------
if LR=$(scd_reader $LATR); then
	pass scd-loopback-atr "reader '$LR': $(grep -a '^S CARD-ATR' /tmp/probe.out)"
else
	fail scd-loopback-atr "no reader with the loopback card's ATR $LATR"
	cat /tmp/probe.out; tail -n 40 /tmp/probe.scdlog
	exit 1
fi
printf 'reader-port %s\n' "$LR" >$GH/scdaemon.conf

# hexdata N: N bytes of "A" as an APDU hex string; hexbytes N: the same
# bytes as scd_data prints them; pattern N: the loopback PATTERN bytes.
hexdata() { _i=0; while [ $_i -lt "$1" ]; do printf 41; _i=$((_i + 1)); done; }
hexbytes() { _i=0; while [ $_i -lt "$1" ]; do printf ' 41'; _i=$((_i + 1)); done; }
pattern() { awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf " %02x", (i * 31 + 7) % 256 }'; }

# Short APDUs: SELECT, ECHO, an unknown INS.
scd_run short 'SERIALNO undefined' 'APDU 00A4040000' 'APDU 8001000005414243444500' 'APDU 80FF0000'
scd_data short | sed 's/^/  | answer:/'
if scd_ok short && [ "$(scd_answer short 1)" = " 90 00" ] &&
	[ "$(scd_answer short 2)" = " 41 42 43 44 45 90 00" ] &&
	[ "$(scd_answer short 3)" = " 6d 00" ]; then
	pass scd-apdu-short "SELECT 9000, ECHO ABCDE 9000, unknown INS 6D00"
else
	fail scd-apdu-short "$(grep -a '^ERR' /tmp/short.out) answers: $(scd_data short | tr '\n' '|')"
fi

# Extended APDUs at the APDU level.  An Assuan line holds at most 1000
# characters, so the long command is an ECHO of 400 bytes (extended Lc);
# the long answer is a PATTERN of 2000 bytes (extended Le), near the most
# scdaemon's driver takes in one CCID message: it reads into a 2065-byte
# buffer (scd/ccid-driver.c, CCID_MAX_BUF), whatever
# dwMaxCCIDMessageLength says.
scd_run ext-echo 'SERIALNO undefined' "APDU --exlen=4096 80010000000190$(hexdata 400)0000"
if scd_ok ext-echo && [ "$(scd_answer ext-echo 1)" = "$(hexbytes 400) 90 00" ]; then
	pass scd-apdu-ext-echo "extended ECHO of 400 bytes came back intact with 9000"
else
	fail scd-apdu-ext-echo "$(grep -a '^ERR' /tmp/ext-echo.out) $(scd_answer ext-echo 1 | head -c 120)"
fi
scd_run ext-pattern 'SERIALNO undefined' 'APDU --exlen=4096 800200000007D0'
if scd_ok ext-pattern && [ "$(scd_answer ext-pattern 1)" = "$(pattern 2000) 90 00" ]; then
	pass scd-apdu-ext-pattern "extended PATTERN of 2000 bytes intact with 9000"
else
	fail scd-apdu-ext-pattern "$(grep -a '^ERR' /tmp/ext-pattern.out) $(scd_answer ext-pattern 1 | wc -c) chars"
fi
# A card operation of 3 s: the reader's time extensions keep scdaemon's
# driver waiting (it asks for up to its CCID_CMD_TIMEOUT of 5 s per wait).
scd_run delay 'SERIALNO undefined' 'APDU 800300000400000BB8'
if scd_ok delay && [ "$(scd_answer delay 1)" = " 90 00" ]; then
	pass scd-time-extension "3 s DELAY answered 9000"
else
	fail scd-time-extension "$(grep -a '^ERR\|^OK' /tmp/delay.out | tr '\n' ' ')"
fi

# --- virtual CAC card (T=0 only ATR) --------------------------------------------
# scdaemon's driver parses the ATR itself and insists on T=1
# (update_param_by_atr), even at the APDU level where the reader carries
# the transport protocol.  The reader must get that far: power the card
# on and hand over the ATR; scdaemon then refuses the card cleanly.
VR=$(grep -v -x -F "$LR" /tmp/reader-names)
printf 'reader-port %s\n' "$VR" >$GH/scdaemon.conf
scd_run cac 'SERIALNO undefined' 'APDU --atr'
grep -a 'ccid-driver: \(PC_to_RDR_IccPowerOn\|RDR_to_PC_DataBlock\|update_param\)' /tmp/cac.scdlog
atr_bytes=$(echo "$VATR" | sed 's/../& /g; s/ $//')
if grep -a -q 'RDR_to_PC_DataBlock' /tmp/cac.scdlog &&
	grep -a -q 'update_param_by_atr failed' /tmp/cac.scdlog &&
	grep -a -q '^ERR' /tmp/cac.out; then
	pass scd-virtual-t0-refused "reader '$VR' powered the card on; scdaemon refuses its T=0-only ATR $VATR (update_param_by_atr), as with any T=0 card"
else
	fail scd-virtual-t0-refused "$(grep -a '^ERR\|^OK\|^S' /tmp/cac.out | tr '\n' ' ') $(grep -a 'ccid-driver' /tmp/cac.scdlog | tail -n 5 | tr '\n' ' ')"
fi
# ... and the loopback reader next to it is unaffected.
printf 'reader-port %s\n' "$LR" >$GH/scdaemon.conf
scd_run after-cac 'SERIALNO undefined' 'APDU 00A4040000'
if scd_ok after-cac && [ "$(scd_answer after-cac 1)" = " 90 00" ]; then
	pass scd-loopback-after-t0 "loopback reader still answers SELECT 9000"
else
	fail scd-loopback-after-t0 "$(grep -a '^ERR' /tmp/after-cac.out)"
fi

# --- last: past scdaemon's buffer ---------------------------------------------
# A 4000-byte answer does not fit the 2065 bytes scdaemon's driver reads:
# its transfer ends with a short packet and the reader drops the rest of
# that message, so the next session finds the reader in step.
printf 'reader-port %s\n' "$LR" >$GH/scdaemon.conf
scd_run ext-4000 'SERIALNO undefined' 'APDU --exlen=8192 80020000000FA0'
note "scdaemon, PATTERN of 4000 bytes: $(grep -a '^ERR\|^OK' /tmp/ext-4000.out | tr '\n' ' ') answer $(scd_answer ext-4000 1 | wc -w) bytes"
scd_run after-4000 'SERIALNO undefined' 'APDU 00A4040000' 'APDU 8001000005414243444500'
if scd_ok after-4000 && [ "$(scd_answer after-4000 1)" = " 90 00" ] &&
	[ "$(scd_answer after-4000 2)" = " 41 42 43 44 45 90 00" ]; then
	pass scd-after-long-answer "after an answer longer than scdaemon's buffer, a new session gets SELECT 9000 and ECHO"
else
	fail scd-after-long-answer "$(grep -a '^ERR' /tmp/after-4000.out) $(grep -a 'ccid-driver: \(unexpected\|bulk-in\)' /tmp/after-4000.scdlog | head -n 3 | tr '\n' ' ')"
fi
