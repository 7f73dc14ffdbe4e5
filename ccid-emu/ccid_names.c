/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Value->name tables for debug logs.
 */
#include <stddef.h>

#include "ccid-emu/ccid_emu.h"

struct ccid_name {
	uint8_t value;
	const char *name;
};

static const struct ccid_name ccid_msg_names[] = {
	{ CCID_PC_TO_RDR_SET_PARAMETERS, "PC_to_RDR_SetParameters" },
	{ CCID_PC_TO_RDR_ICC_POWER_ON, "PC_to_RDR_IccPowerOn" },
	{ CCID_PC_TO_RDR_ICC_POWER_OFF, "PC_to_RDR_IccPowerOff" },
	{ CCID_PC_TO_RDR_GET_SLOT_STATUS, "PC_to_RDR_GetSlotStatus" },
	{ CCID_PC_TO_RDR_SECURE, "PC_to_RDR_Secure" },
	{ CCID_PC_TO_RDR_T0_APDU, "PC_to_RDR_T0APDU" },
	{ CCID_PC_TO_RDR_ESCAPE, "PC_to_RDR_Escape" },
	{ CCID_PC_TO_RDR_GET_PARAMETERS, "PC_to_RDR_GetParameters" },
	{ CCID_PC_TO_RDR_RESET_PARAMETERS, "PC_to_RDR_ResetParameters" },
	{ CCID_PC_TO_RDR_ICC_CLOCK, "PC_to_RDR_IccClock" },
	{ CCID_PC_TO_RDR_XFR_BLOCK, "PC_to_RDR_XfrBlock" },
	{ CCID_PC_TO_RDR_MECHANICAL, "PC_to_RDR_Mechanical" },
	{ CCID_PC_TO_RDR_ABORT, "PC_to_RDR_Abort" },
	{ CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK,
	  "PC_to_RDR_SetDataRateAndClockFrequency" },
	{ CCID_RDR_TO_PC_DATA_BLOCK, "RDR_to_PC_DataBlock" },
	{ CCID_RDR_TO_PC_SLOT_STATUS, "RDR_to_PC_SlotStatus" },
	{ CCID_RDR_TO_PC_PARAMETERS, "RDR_to_PC_Parameters" },
	{ CCID_RDR_TO_PC_ESCAPE, "RDR_to_PC_Escape" },
	{ CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK,
	  "RDR_to_PC_DataRateAndClockFrequency" },
	{ CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE, "RDR_to_PC_NotifySlotChange" },
	{ CCID_RDR_TO_PC_HARDWARE_ERROR, "RDR_to_PC_HardwareError" },
};

static const struct ccid_name ccid_error_names[] = {
	{ CCID_ERR_CMD_NOT_SUPPORTED, "CMD_NOT_SUPPORTED" },
	{ CCID_ERR_CMD_SLOT_BUSY, "CMD_SLOT_BUSY" },
	{ CCID_ERR_PIN_CANCELLED, "PIN_CANCELLED" },
	{ CCID_ERR_PIN_TIMEOUT, "PIN_TIMEOUT" },
	{ CCID_ERR_BUSY_WITH_AUTO_SEQUENCE, "BUSY_WITH_AUTO_SEQUENCE" },
	{ CCID_ERR_DEACTIVATED_PROTOCOL, "DEACTIVATED_PROTOCOL" },
	{ CCID_ERR_PROCEDURE_BYTE_CONFLICT, "PROCEDURE_BYTE_CONFLICT" },
	{ CCID_ERR_ICC_CLASS_NOT_SUPPORTED, "ICC_CLASS_NOT_SUPPORTED" },
	{ CCID_ERR_ICC_PROTOCOL_NOT_SUPPORTED, "ICC_PROTOCOL_NOT_SUPPORTED" },
	{ CCID_ERR_BAD_ATR_TCK, "BAD_ATR_TCK" },
	{ CCID_ERR_BAD_ATR_TS, "BAD_ATR_TS" },
	{ CCID_ERR_HW_ERROR, "HW_ERROR" },
	{ CCID_ERR_XFR_OVERRUN, "XFR_OVERRUN" },
	{ CCID_ERR_XFR_PARITY_ERROR, "XFR_PARITY_ERROR" },
	{ CCID_ERR_ICC_MUTE, "ICC_MUTE" },
	{ CCID_ERR_CMD_ABORTED, "CMD_ABORTED" },
};

static const char *ccid_name_find(const struct ccid_name *t, size_t n,
				  uint8_t value)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].value == value)
			return t[i].name;
	return NULL;
}

const char *ccid_msg_type_name(uint8_t type)
{
	const char *name = ccid_name_find(ccid_msg_names,
					  sizeof(ccid_msg_names) / sizeof(ccid_msg_names[0]),
					  type);

	return name ? name : "unknown";
}

const char *ccid_error_name(uint8_t berror)
{
	const char *name = ccid_name_find(ccid_error_names,
					  sizeof(ccid_error_names) / sizeof(ccid_error_names[0]),
					  berror);

	if (name)
		return name;
	/* 0x01..0x7F name the offset of the offending field. */
	return berror < 0x80 ? "bad field (offset in bError)" : "unknown";
}
