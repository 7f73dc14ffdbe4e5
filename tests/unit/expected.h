/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Values the tests expect where neither CCID 1.1 nor ccid_emu.h pins down a
 * single answer.  Each is a choice the spec allows; they live here, in one
 * place, so that a deliberate change of choice is one edit, while every
 * value the spec or the header does fix stays spelled out in the vector
 * tables themselves.
 */
#ifndef CCID_TEST_EXPECTED_H
#define CCID_TEST_EXPECTED_H

/* Device descriptor.  USB 2.0 full-speed-only device: bcdUSB 2.00, which
 * is also what makes DEVICE_QUALIFIER a mandatory request error (USB 2.0
 * §9.6.2) and BOS absent (needs bcdUSB >= 2.01). */
#define EXP_BCD_USB             0x0200u
#define EXP_EP0_MAX_PACKET      64u

/* Configuration descriptor: bus-powered (bit 7 is reserved-one), remote
 * wake-up bit 5 from the config; bMaxPower in 2 mA units. */
#define EXP_CONFIG_ATTR         0x80u
#define EXP_CONFIG_ATTR_RWU     0x20u
#define EXP_MAX_POWER           0x32u   /* 100 mA */

/* Smart Card Device Class descriptor (CCID 1.1 §5.1). */
#define EXP_VOLTAGE             0x07u   /* 5 V | 3 V | 1.8 V */
#define EXP_PROTOCOLS           0x00000003u /* T=0 | T=1 */
/* 4 MHz and 4000000 / 372 (Fi=372, Di=1) = 10752 bps: one clock, one
 * rate, consistent with each other. */
#define EXP_DEFAULT_CLOCK       4000u   /* kHz */
#define EXP_MAX_CLOCK           4000u
#define EXP_NUM_CLOCKS          1u
#define EXP_DATA_RATE           10752u  /* bps */
#define EXP_MAX_DATA_RATE       10752u
#define EXP_NUM_DATA_RATES      1u
#define EXP_MAX_IFSD            254u
#define EXP_CLASS_GET_RESPONSE  0xFFu   /* echo the APDU's class byte */
#define EXP_CLASS_ENVELOPE      0xFFu

/* String descriptor indices when the string is present. */
#define EXP_IMANUFACTURER       1u
#define EXP_IPRODUCT            2u
#define EXP_ISERIAL             3u

/* Bulk replies. */
#define EXP_CLOCK_STATUS        0x00u   /* bClockStatus: running */
/* bError for a command that needs a card (IccPowerOn, XfrBlock) when the
 * slot is empty or the card is not powered: ICC_MUTE is what real readers
 * answer and what libccid maps to "no card / unresponsive card". */
#define EXP_ERR_NO_ICC          0xFEu
/* bError of a time-extension reply: the BWT multiplier, 1. */
#define EXP_TIME_EXT_MULT       0x01u

#endif /* CCID_TEST_EXPECTED_H */
