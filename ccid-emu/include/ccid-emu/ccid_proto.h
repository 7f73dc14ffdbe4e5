/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Wire constants of the USB CCID class, revision 1.1 (April 22, 2005).
 * Section numbers below refer to that specification ("CCID 1.1 §x.y").
 *
 * Only numbers live here: no structs are ever cast over wire bytes.  Fields
 * are read and written with the little-endian helpers in ccid_le.h, at the
 * offsets named below.
 */
#ifndef CCID_EMU_CCID_PROTO_H
#define CCID_EMU_CCID_PROTO_H

#include <stdint.h>

/* --- Common 10-byte bulk message header (CCID 1.1 §6.1, §6.2) ----------- */
#define CCID_HDR_LEN            10u
#define CCID_OFF_TYPE           0u  /* bMessageType */
#define CCID_OFF_LENGTH         1u  /* dwLength: bytes of abData after header */
#define CCID_OFF_SLOT           5u  /* bSlot */
#define CCID_OFF_SEQ            6u  /* bSeq */
#define CCID_OFF_SPEC0          7u  /* three message-specific bytes */
#define CCID_OFF_SPEC1          8u
#define CCID_OFF_SPEC2          9u
/* Reply header: byte 7 is bStatus, byte 8 bError, byte 9 message-specific. */
#define CCID_OFF_STATUS         7u
#define CCID_OFF_ERROR          8u

/* --- PC_to_RDR message types (CCID 1.1 §6.1, table 6.1-1) --------------- */
enum ccid_pc_to_rdr {
	CCID_PC_TO_RDR_SET_PARAMETERS           = 0x61, /* §6.1.7 */
	CCID_PC_TO_RDR_ICC_POWER_ON             = 0x62, /* §6.1.1 */
	CCID_PC_TO_RDR_ICC_POWER_OFF            = 0x63, /* §6.1.2 */
	CCID_PC_TO_RDR_GET_SLOT_STATUS          = 0x65, /* §6.1.3 */
	CCID_PC_TO_RDR_SECURE                   = 0x69, /* §6.1.11 */
	CCID_PC_TO_RDR_T0_APDU                  = 0x6A, /* §6.1.10 */
	CCID_PC_TO_RDR_ESCAPE                   = 0x6B, /* §6.1.8 */
	CCID_PC_TO_RDR_GET_PARAMETERS           = 0x6C, /* §6.1.5 */
	CCID_PC_TO_RDR_RESET_PARAMETERS         = 0x6D, /* §6.1.6 */
	CCID_PC_TO_RDR_ICC_CLOCK                = 0x6E, /* §6.1.9 */
	CCID_PC_TO_RDR_XFR_BLOCK                = 0x6F, /* §6.1.4 */
	CCID_PC_TO_RDR_MECHANICAL               = 0x71, /* §6.1.12 */
	CCID_PC_TO_RDR_ABORT                    = 0x72, /* §6.1.13 */
	CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK  = 0x73, /* §6.1.14 */
};

/* --- RDR_to_PC bulk-IN message types (CCID 1.1 §6.2) -------------------- */
enum ccid_rdr_to_pc {
	CCID_RDR_TO_PC_DATA_BLOCK               = 0x80, /* §6.2.1 */
	CCID_RDR_TO_PC_SLOT_STATUS              = 0x81, /* §6.2.2 */
	CCID_RDR_TO_PC_PARAMETERS               = 0x82, /* §6.2.3 */
	CCID_RDR_TO_PC_ESCAPE                   = 0x83, /* §6.2.4 */
	CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK      = 0x84, /* §6.2.5 */
};

/* --- RDR_to_PC interrupt-IN message types (CCID 1.1 §6.3) --------------- */
enum ccid_rdr_to_pc_intr {
	CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE       = 0x50, /* §6.3.1 */
	CCID_RDR_TO_PC_HARDWARE_ERROR           = 0x51, /* §6.3.2 */
};
#define CCID_HW_ERROR_OVERCURRENT       0x01u   /* bHardwareErrorCode, §6.3.2 */
/* NotifySlotChange bits per slot, two bits a slot from bit 0 (§6.3.1). */
#define CCID_SLOT_BIT_PRESENT           0x01u
#define CCID_SLOT_BIT_CHANGED           0x02u

/* --- bStatus (CCID 1.1 §6.2.6, table 6.2-3) ----------------------------- */
#define CCID_ICC_STATUS_MASK            0x03u
enum ccid_icc_status {
	CCID_ICC_PRESENT_ACTIVE   = 0, /* present and powered */
	CCID_ICC_PRESENT_INACTIVE = 1, /* present, not powered */
	CCID_ICC_ABSENT           = 2, /* no ICC present */
};
#define CCID_CMD_STATUS_SHIFT           6u
enum ccid_cmd_status {
	CCID_CMD_OK             = 0, /* processed without error */
	CCID_CMD_FAILED         = 1, /* failed, bError holds the reason */
	CCID_CMD_TIME_EXTENSION = 2, /* time extension requested */
};

/* --- bError (CCID 1.1 §6.2.6, table 6.2-2) ------------------------------ */
enum ccid_error {
	CCID_ERR_CMD_NOT_SUPPORTED      = 0x00,
	/* 0x01..0x7F: offset of the offending field in the command message. */
	CCID_ERR_BAD_LENGTH             = 0x01, /* dwLength */
	CCID_ERR_BAD_SLOT               = 0x05, /* bSlot */
	CCID_ERR_BAD_POWERSELECT        = 0x07, /* bPowerSelect */
	CCID_ERR_BAD_PROTOCOLNUM        = 0x07, /* bProtocolNum */
	CCID_ERR_BAD_CLOCKCOMMAND       = 0x07, /* bClockCommand */
	CCID_ERR_BAD_LEVELPARAMETER     = 0x08, /* wLevelParameter */
	CCID_ERR_BAD_PROTOCOL_DATA      = 0x0A, /* abProtocolDataStructure */
	CCID_ERR_CMD_SLOT_BUSY          = 0xE0,
	CCID_ERR_PIN_CANCELLED          = 0xEF,
	CCID_ERR_PIN_TIMEOUT            = 0xF0,
	CCID_ERR_BUSY_WITH_AUTO_SEQUENCE = 0xF2,
	CCID_ERR_DEACTIVATED_PROTOCOL   = 0xF3,
	CCID_ERR_PROCEDURE_BYTE_CONFLICT = 0xF4,
	CCID_ERR_ICC_CLASS_NOT_SUPPORTED = 0xF5,
	CCID_ERR_ICC_PROTOCOL_NOT_SUPPORTED = 0xF6,
	CCID_ERR_BAD_ATR_TCK            = 0xF7,
	CCID_ERR_BAD_ATR_TS             = 0xF8,
	CCID_ERR_HW_ERROR               = 0xFB,
	CCID_ERR_XFR_OVERRUN            = 0xFC,
	CCID_ERR_XFR_PARITY_ERROR       = 0xFD,
	CCID_ERR_ICC_MUTE               = 0xFE,
	CCID_ERR_CMD_ABORTED            = 0xFF,
};

/* --- Extended APDU chaining (CCID 1.1 §6.1.4 wLevelParameter, §6.2.1
 *     bChainParameter) -------------------------------------------------- */
enum ccid_level_parameter {        /* PC_to_RDR_XfrBlock bytes 8..9 */
	CCID_LEVEL_BEGIN_END      = 0x0000, /* whole APDU in this message */
	CCID_LEVEL_BEGIN_CONTINUE = 0x0001, /* first part, more follows */
	CCID_LEVEL_CONTINUE_END   = 0x0002, /* last part */
	CCID_LEVEL_CONTINUE       = 0x0003, /* middle part */
	CCID_LEVEL_RESPONSE_MORE  = 0x0010, /* empty: send next response part */
};
enum ccid_chain_parameter {        /* RDR_to_PC_DataBlock byte 9 */
	CCID_CHAIN_BEGIN_END      = 0x00,
	CCID_CHAIN_BEGIN_CONTINUE = 0x01,
	CCID_CHAIN_CONTINUE_END   = 0x02,
	CCID_CHAIN_CONTINUE       = 0x03,
	CCID_CHAIN_CMD_MORE       = 0x10, /* empty: send next command part */
};

/* --- CCID class-specific control requests (CCID 1.1 §5.3) --------------- */
enum ccid_class_request {
	CCID_REQ_ABORT                  = 0x01, /* §5.3.1, wValue = bSeq<<8|bSlot */
	CCID_REQ_GET_CLOCK_FREQUENCIES  = 0x02, /* §5.3.2, array of dwords (kHz) */
	CCID_REQ_GET_DATA_RATES         = 0x03, /* §5.3.3, array of dwords (bps) */
};

/* --- Smart Card Device Class descriptor (CCID 1.1 §5.1) ----------------- */
#define CCID_CLASS_DESC_TYPE            0x21u
#define CCID_CLASS_DESC_LEN             54u
#define CCID_BCD_CCID                   0x0110u
#define CCID_INTERFACE_CLASS            0x0Bu  /* Smart Card */

/* dwProtocols (§5.1, offset 6) */
#define CCID_PROTOCOL_T0                0x00000001u
#define CCID_PROTOCOL_T1                0x00000002u

/* dwFeatures (§5.1, offset 40) */
#define CCID_FEAT_AUTO_PARAM_ATR        0x00000002u
#define CCID_FEAT_AUTO_ACTIVATION       0x00000004u
#define CCID_FEAT_AUTO_VOLTAGE          0x00000008u
#define CCID_FEAT_AUTO_CLOCK            0x00000010u
#define CCID_FEAT_AUTO_BAUD             0x00000020u
#define CCID_FEAT_AUTO_PPS_NEGOTIATION  0x00000040u
#define CCID_FEAT_AUTO_PPS_CURRENT      0x00000080u
#define CCID_FEAT_CLOCK_STOP            0x00000100u
#define CCID_FEAT_NAD_NOT_ZERO          0x00000200u
#define CCID_FEAT_AUTO_IFSD             0x00000400u
#define CCID_FEAT_LEVEL_TPDU            0x00010000u
#define CCID_FEAT_LEVEL_SHORT_APDU      0x00020000u
#define CCID_FEAT_LEVEL_EXTENDED_APDU   0x00040000u
#define CCID_FEAT_USB_WAKEUP            0x00100000u

/* bVoltageSupport (§5.1, offset 5) */
#define CCID_VOLTAGE_5V                 0x01u
#define CCID_VOLTAGE_3V                 0x02u
#define CCID_VOLTAGE_1_8V               0x04u

/* --- Standard USB (USB 2.0 §9.3, §9.4) ---------------------------------- */
#define USB_DIR_IN                      0x80u
#define USB_TYPE_MASK                   0x60u
#define USB_TYPE_STANDARD               0x00u
#define USB_TYPE_CLASS                  0x20u
#define USB_TYPE_VENDOR                 0x40u
#define USB_RECIP_MASK                  0x1Fu
#define USB_RECIP_DEVICE                0x00u
#define USB_RECIP_INTERFACE             0x01u
#define USB_RECIP_ENDPOINT              0x02u

enum usb_std_request {
	USB_REQ_GET_STATUS        = 0x00,
	USB_REQ_CLEAR_FEATURE     = 0x01,
	USB_REQ_SET_FEATURE       = 0x03,
	USB_REQ_SET_ADDRESS       = 0x05,
	USB_REQ_GET_DESCRIPTOR    = 0x06,
	USB_REQ_SET_DESCRIPTOR    = 0x07,
	USB_REQ_GET_CONFIGURATION = 0x08,
	USB_REQ_SET_CONFIGURATION = 0x09,
	USB_REQ_GET_INTERFACE     = 0x0A,
	USB_REQ_SET_INTERFACE     = 0x0B,
	USB_REQ_SYNCH_FRAME       = 0x0C,
};

enum usb_desc_type {
	USB_DT_DEVICE             = 0x01,
	USB_DT_CONFIG             = 0x02,
	USB_DT_STRING             = 0x03,
	USB_DT_INTERFACE          = 0x04,
	USB_DT_ENDPOINT           = 0x05,
	USB_DT_DEVICE_QUALIFIER   = 0x06,
	USB_DT_OTHER_SPEED_CONFIG = 0x07,
	USB_DT_BOS                = 0x0F,
};
#define USB_DT_DEVICE_LEN               18u
#define USB_DT_CONFIG_LEN               9u
#define USB_DT_INTERFACE_LEN            9u
#define USB_DT_ENDPOINT_LEN             7u

#define USB_FEATURE_ENDPOINT_HALT       0x00u
#define USB_FEATURE_REMOTE_WAKEUP       0x01u

#define USB_EP_XFER_BULK                0x02u
#define USB_EP_XFER_INT                 0x03u

#endif /* CCID_EMU_CCID_PROTO_H */
