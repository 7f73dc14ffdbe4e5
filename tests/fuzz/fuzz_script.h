/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The op-script interpreter behind fuzz_bulk_out and fuzz_control: the
 * fuzz input is a device config followed by a list of ops (guest bulk and
 * control traffic, clock, card events, backend completions), each an op
 * byte plus arguments.  The encoding is documented in fuzz_script.c and
 * mirrored by gen_seeds.py, which writes the hand-made seeds.
 */
#ifndef CCID_FUZZ_SCRIPT_H
#define CCID_FUZZ_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fz_script_flavour {
	FZ_FLAVOUR_BULK,     /* bulk traffic, card events, class ABORT, reset */
	FZ_FLAVOUR_CONTROL,  /* the same plus arbitrary SETUP packets and raw
	                      * (possibly invalid) device configs */
};

void fz_script_run(const uint8_t *data, size_t size, enum fz_script_flavour fl);

#endif /* CCID_FUZZ_SCRIPT_H */
