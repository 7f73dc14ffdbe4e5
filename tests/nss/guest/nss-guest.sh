# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script of tests/nss/test-nss-guest.sh: one ccid-emu reader
# (1209:CC1D) behind usb-redir, served by `ccid-agent serve --card nss:`
# over a softhsm2 token on the host.  The guest's stock pcscd, libccid and
# OpenSC see a CAC card whose certificate and key live on that token:
#   - the reader and libcacard's CAC ATR;
#   - pkcs11-tool -L shows the CAC token, -O its one certificate, which
#     goes to the host (DATA cert) to be compared with the token's bytes;
#   - a wrong PIN is refused (the VERIFY reaches the token's C_Login);
#   - with the token's user PIN, a SHA256-RSA-PKCS signature over
#     /ccid-test/challenge.bin, sent to the host (DATA sig) to be verified
#     with openssl against the token's certificate.
#
# From the host (/ccid-test/params): VATR (the CAC ATR, hex), TOKEN_PIN,
# CERT_CN (the certificate's CN).

VID=$CCID_VID
PID=$CCID_PID
T=ccid-guest-tool
. /ccid-test/params

if usb_wait $VID $PID 30; then
	metric usb_enumerated_ms "$(uptime_ms)" ms
	pass usb-enumerated "$(usb_find $VID $PID | wc -l) device $VID:$PID"
else
	fail usb-enumerated "no USB device $VID:$PID after 30 s"
	exit 1
fi
usb_describe $VID $PID

ccid_stock_list $VID $PID
pcscd_start || { fail pcscd-start "pcscd did not start"; exit 1; }
check_grep reader '^reader=.*ccid-emu' $T -t 20000 wait-reader 1
if check_grep atr "^atr=$VATR " $T -t 20000 find-reader "$VATR"; then
	metric boot_to_atr_ms "$(uptime_ms)" ms
else
	pcscd_log
	exit 1
fi
NREADER=$(sed -n 's/^reader=//p' /tmp/atr.log)

# The CAC's Card Capability Container, through the token's mirror.
check apdu-select-ccc $T -r "$NREADER" -g apdu '00A4040007A000000116DB00=*9000'

# --- OpenSC PKCS#11 ---------------------------------------------------------------
check_grep pkcs11-token 'token label *: ' sh -c \
	"pkcs11-tool -L | grep -A 6 -F '$NREADER'"
check_grep pkcs11-objects 'Certificate Object' \
	pkcs11-tool --slot-description "$NREADER" -O
ncerts=$(grep -c 'Certificate Object' /tmp/pkcs11-objects.log)
if [ "$ncerts" -eq 1 ]; then
	pass pkcs11-one-cert "1 certificate object (the token holds one)"
else
	fail pkcs11-one-cert "$ncerts certificate objects, expected 1"
fi
if grep -q -E "subject: .*CN=$CERT_CN(,|\$)" /tmp/pkcs11-objects.log; then
	pass pkcs11-cert-subject "CN=$CERT_CN"
else
	fail pkcs11-cert-subject "no certificate with CN=$CERT_CN"
fi
# OpenSC numbers the CAC's keys; take the certificate's ID from -O.
CID=$(awk '/Certificate Object/ { c = 1 } c && $1 == "ID:" { print $2; exit }' \
	/tmp/pkcs11-objects.log)
if [ -z "$CID" ]; then
	fail pkcs11-cert-id "no ID in pkcs11-tool -O"
	exit 1
fi
note "certificate ID $CID"
if check pkcs11-read-cert pkcs11-tool --slot-description "$NREADER" \
	--read-object --type cert --id "$CID" -o /tmp/cert.der; then
	export_file cert /tmp/cert.der
fi

nsg_sign() {    # nsg_sign PIN OUT
	pkcs11-tool --slot-description "$NREADER" --login --pin "$1" \
		--sign --id "$CID" -m SHA256-RSA-PKCS \
		-i /ccid-test/challenge.bin -o "$2"
}

# A wrong PIN: the VERIFY reaches the token's C_Login and is refused.
# (OpenSC reports libcacard's answer to it as CKR_GENERAL_ERROR.)
if nsg_sign 999999 /tmp/sig-wrong.bin >/tmp/wrong-pin.log 2>&1; then
	fail wrong-pin-refused "a signature with PIN 999999"
elif grep -q 'C_Login failed' /tmp/wrong-pin.log; then
	pass wrong-pin-refused "$(grep -m 1 'C_Login failed' /tmp/wrong-pin.log)"
else
	fail wrong-pin-refused "failed, but not at C_Login: $(tail -n 1 /tmp/wrong-pin.log)"
fi
cat /tmp/wrong-pin.log

t0=$(uptime_ms)
if check pkcs11-sign nsg_sign "$TOKEN_PIN" /tmp/sig.bin &&
	[ "$(wc -c </tmp/sig.bin)" -eq 256 ]; then
	metric sign_ms $(( $(uptime_ms) - t0 )) ms
	export_file sig /tmp/sig.bin
else
	fail pkcs11-sign "no 256-byte signature"
fi

# A second signature in the same way: the card stays usable.
check pkcs11-sign-again nsg_sign "$TOKEN_PIN" /tmp/sig2.bin

[ "$(failures)" -eq 0 ] || pcscd_log
