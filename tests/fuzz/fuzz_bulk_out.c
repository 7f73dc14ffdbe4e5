/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: guest bulk traffic of any shape against a device whose
 * cards are fuzz-driven fakes (script encoding in fuzz_script.c).
 */
#include "fuzz_harness.h"
#include "fuzz_script.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_script_run(data, size, FZ_FLAVOUR_BULK);
	return 0;
}
