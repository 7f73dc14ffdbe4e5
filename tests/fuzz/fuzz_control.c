/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: arbitrary SETUP packets and data stages (and raw, possibly
 * invalid device configs) interleaved with the bulk traffic of
 * fuzz_bulk_out.
 */
#include "fuzz_harness.h"
#include "fuzz_script.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_script_run(data, size, FZ_FLAVOUR_CONTROL);
	return 0;
}
