/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The card kinds table (see agent_card_kinds.h).
 */
#include "agent_card_kinds.h"
#include "agent_piv.h"

#include <ccid_card_loopback.h>
#include <ccid_card_nss.h>
#include <ccid_card_pcsc.h>
#include <ccid_card_piv.h>
#include <ccid_card_virtual.h>
#include <ccid_cacard_service.h>
#include <ccid_virtual_nssdb.h>
#include <string.h>

/* --- loopback: the card behind a gate, with its GSource timer ------------ */

/*
 * The loopback card has no notion of being pulled out, so a gate stands
 * between it and the slot: while the card is out the gate answers every
 * operation "no card" itself.  The device already refuses commands to an
 * absent card; the gate makes the backend agree rather than trusting that.
 */
struct loopback_gate {
	ccid_card_loopback *card;
	ccid_slot *slot;
	GMainContext *ctx;
	gboolean present;
	GSource *timer;
};

static void gate_timer_stop(struct loopback_gate *g)
{
	if (g->timer != NULL) {
		g_source_destroy(g->timer);
		g_source_unref(g->timer);
		g->timer = NULL;
	}
}

static gboolean gate_timer_cb(gpointer data)
{
	struct loopback_gate *g = data;

	g_source_unref(g->timer);
	g->timer = NULL;
	ccid_card_loopback_timer_fired(g->card);
	return G_SOURCE_REMOVE;
}

static void gate_timer_arm(void *user, uint32_t delay_ms)
{
	struct loopback_gate *g = user;

	gate_timer_stop(g);
	g->timer = g_timeout_source_new(delay_ms);
	g_source_set_callback(g->timer, gate_timer_cb, g, NULL);
	g_source_set_name(g->timer, "ccid-emu loopback delay");
	g_source_attach(g->timer, g->ctx);
}

static void gate_timer_disarm(void *user)
{
	gate_timer_stop(user);
}

static const struct ccid_card_loopback_timer_ops gate_timer_ops = {
	.arm = gate_timer_arm,
	.disarm = gate_timer_disarm,
};

static int gate_power_on(void *opaque)
{
	struct loopback_gate *g = opaque;

	if (!g->present) {
		ccid_slot_power_on_done(g->slot, CCID_CARD_ENOCARD, NULL, 0);
		return 0;
	}
	return ccid_card_loopback_ops()->power_on(g->card);
}

static void gate_power_off(void *opaque)
{
	struct loopback_gate *g = opaque;

	ccid_card_loopback_ops()->power_off(g->card);
}

static int gate_transmit(void *opaque, const uint8_t *apdu, size_t len)
{
	struct loopback_gate *g = opaque;

	if (!g->present) {
		ccid_slot_apdu_done(g->slot, CCID_CARD_ENOCARD, NULL, 0);
		return 0;
	}
	return ccid_card_loopback_ops()->transmit(g->card, apdu, len);
}

static void gate_cancel(void *opaque)
{
	struct loopback_gate *g = opaque;

	ccid_card_loopback_ops()->cancel(g->card);
}

static void gate_detach(void *opaque)
{
	struct loopback_gate *g = opaque;
	const struct ccid_card_ops *inner = ccid_card_loopback_ops();

	if (inner->detach != NULL)
		inner->detach(g->card);
}

static const struct ccid_card_ops gate_ops = {
	.name = "loopback",
	.power_on = gate_power_on,
	.power_off = gate_power_off,
	.transmit = gate_transmit,
	.cancel = gate_cancel,
	.detach = gate_detach,
};

static gboolean loopback_parse(const char *arg, struct agent_card_spec *spec,
			       GError **error)
{
	if (arg != NULL) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "card 'loopback:%s': the loopback card takes no "
			    "argument; write just 'loopback'", arg);
		return FALSE;
	}
	return TRUE;
}

static gpointer loopback_create(const struct agent_card_env *env,
				const struct agent_card_spec *spec,
				GError **error)
{
	struct loopback_gate *g = g_new0(struct loopback_gate, 1);

	g->slot = env->slot;
	g->ctx = env->ctx;
	g->present = TRUE;
	g->card = ccid_card_loopback_new(env->slot, &gate_timer_ops, g);
	if (g->card == NULL) {
		g_free(g);
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
			    "cannot create the loopback card for slot %u",
			    env->index);
		return NULL;
	}
	return g;
}

static const struct ccid_card_ops *loopback_ops(gpointer card)
{
	return &gate_ops;
}

static gboolean loopback_is_present(gpointer card)
{
	return ((struct loopback_gate *)card)->present;
}

static void loopback_free(gpointer card)
{
	struct loopback_gate *g = card;

	gate_timer_stop(g);
	ccid_card_loopback_free(g->card);
	g_free(g);
}

static char *loopback_describe(gpointer card)
{
	return g_strdup("loopback test card");
}

static gboolean loopback_set_inserted(gpointer card, gboolean inserted,
				      GError **error)
{
	struct loopback_gate *g = card;

	g->present = inserted;
	if (inserted) {
		ccid_slot_card_inserted(g->slot);
	} else {
		/* The op in flight is cancelled by the removal; then the
		 * card loses power as a real one would. */
		ccid_slot_card_removed(g->slot);
		ccid_card_loopback_ops()->power_off(g->card);
	}
	return TRUE;
}

ccid_card_loopback *agent_card_loopback_inner(gpointer card)
{
	return card != NULL ? ((struct loopback_gate *)card)->card : NULL;
}

/* --- virtual: libcacard on an NSS database ------------------------------- */

static gboolean virtual_parse(const char *arg, struct agent_card_spec *spec,
			      GError **error)
{
	if (arg == NULL)
		return TRUE;
	if (arg[0] == '\0') {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "card 'virtual:' needs an NSS database directory "
			    "after the colon");
		return FALSE;
	}
	spec->nssdb_dir = g_strdup(arg);
	return TRUE;
}

static gpointer virtual_create(const struct agent_card_env *env,
			       const struct agent_card_spec *spec,
			       GError **error)
{
	struct ccid_card_virtual_config cfg = {
		.nssdb_dir = spec->nssdb_dir,
		.cert_nicknames = (const char *const *)spec->nicknames,
		.context = env->ctx,
	};

	return ccid_card_virtual_new(env->slot, &cfg, error);
}

static const struct ccid_card_ops *virtual_ops(gpointer card)
{
	return ccid_card_virtual_ops();
}

static gboolean virtual_is_present(gpointer card)
{
	return ccid_card_virtual_is_present(card);
}

static void virtual_free(gpointer card)
{
	ccid_card_virtual_free(card);
}

static char *virtual_describe(gpointer card)
{
	return g_strdup_printf("virtual CAC card on NSS database %s",
			       ccid_card_virtual_get_nssdb_dir(card));
}

static gboolean virtual_set_inserted(gpointer card, gboolean inserted,
				     GError **error)
{
	/* libcacard moves the card and tells the card backend, which tells
	 * the slot, through an event on the card's context. */
	return ccid_card_virtual_set_inserted(card, inserted, error);
}

/* --- pcsc: the real card in a host reader -------------------------------- */

static gboolean pcsc_parse(const char *arg, struct agent_card_spec *spec,
			   GError **error)
{
	struct ccid_card_pcsc_config cfg;
	g_autoptr(GError) why = NULL;

	ccid_card_pcsc_config_init(&cfg);
	if (!ccid_card_pcsc_spec_parse(arg != NULL ? arg : "", &spec->reader,
				       &cfg, &why)) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "card 'pcsc%s%s': %s", arg != NULL ? ":" : "",
			    arg != NULL ? arg : "", why->message);
		return FALSE;
	}
	spec->idle_ms = cfg.idle_ms;
	spec->lock_timeout_ms = cfg.lock_timeout_ms;
	return TRUE;
}

/* The pcsc card's events are worth a line in the agent's log. */
static void pcsc_event(void *user, enum ccid_card_pcsc_event ev,
		       const char *detail)
{
	g_message("slot %u: %s", GPOINTER_TO_UINT(user), detail);
}

static gpointer pcsc_create(const struct agent_card_env *env,
			    const struct agent_card_spec *spec, GError **error)
{
	struct ccid_card_pcsc_config cfg;

	ccid_card_pcsc_config_init(&cfg);
	cfg.reader = spec->reader;
	cfg.idle_ms = spec->idle_ms;
	cfg.lock_timeout_ms = spec->lock_timeout_ms;
	cfg.context = env->ctx;
	cfg.event = pcsc_event;
	cfg.event_user = GUINT_TO_POINTER(env->index);
	return ccid_card_pcsc_new(env->slot, &cfg, error);
}

static const struct ccid_card_ops *pcsc_ops(gpointer card)
{
	return ccid_card_pcsc_ops();
}

static gboolean pcsc_is_present(gpointer card)
{
	return ccid_card_pcsc_is_present(card);
}

static void pcsc_free(gpointer card)
{
	ccid_card_pcsc_free(card);
}

static char *pcsc_describe(gpointer card)
{
	return g_strdup_printf("pcsc card on reader '%s' (%s)",
			       ccid_card_pcsc_get_reader(card),
			       ccid_card_pcsc_is_present(card) ?
			       "card inserted" : "no card yet");
}

/* --- nss: a PKCS#11 token re-emulated by libcacard ------------------------ */

static gboolean nss_parse(const char *arg, struct agent_card_spec *spec,
			  GError **error)
{
	g_autoptr(GError) why = NULL;

	if (!ccid_card_nss_spec_parse(arg != NULL ? arg : "",
				      &spec->nssdb_dir, &spec->token,
				      &spec->nss_timeout_ms, &why)) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "card 'nss%s%s': %s", arg != NULL ? ":" : "",
			    arg != NULL ? arg : "", why->message);
		return FALSE;
	}
	return TRUE;
}

static gpointer nss_create(const struct agent_card_env *env,
			   const struct agent_card_spec *spec, GError **error)
{
	struct ccid_card_nss_config cfg = {
		.nssdb_dir = spec->nssdb_dir,
		.token = spec->token,
		.apdu_timeout_ms = spec->nss_timeout_ms,
		.context = env->ctx,
	};

	return ccid_card_nss_new(env->slot, &cfg, error);
}

static const struct ccid_card_ops *nss_ops(gpointer card)
{
	return ccid_card_nss_ops();
}

static gboolean nss_is_present(gpointer card)
{
	return ccid_card_nss_is_present(card);
}

static void nss_free(gpointer card)
{
	ccid_card_nss_free(card);
}

static char *nss_describe(gpointer card)
{
	return g_strdup_printf("nss card on token reader '%s' (%s)",
			       ccid_card_nss_get_reader(card),
			       ccid_card_nss_is_present(card) ?
			       "token present" : "no token yet");
}

/* --- piv: the writable virtual PIV card ---------------------------------- */

static gboolean piv_parse(const char *arg, struct agent_card_spec *spec,
			  GError **error)
{
	if (arg == NULL)
		return TRUE;
	if (arg[0] == '\0') {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "card 'piv:' needs a card directory after the colon "
			    "(or plain 'piv' for the default card)");
		return FALSE;
	}
	spec->piv_dir = g_strdup(arg);
	return TRUE;
}

static void piv_store_error(void *user, const char *message)
{
	g_warning("slot %u: PIV card not saved: %s", GPOINTER_TO_UINT(user),
		  message);
}

static gpointer piv_create(const struct agent_card_env *env,
			   const struct agent_card_spec *spec, GError **error)
{
	/* Slot N > 0 gets its own card beside the first one. */
	g_autofree char *dir = agent_piv_slot_dir(spec->piv_dir, env->index);
	struct ccid_card_piv_config cfg = {
		.dir = dir,
		.context = env->ctx,
		.store_error = piv_store_error,
		.user = GUINT_TO_POINTER(env->index),
	};

	return ccid_card_piv_new(env->slot, &cfg, error);
}

static const struct ccid_card_ops *piv_ops(gpointer card)
{
	return ccid_card_piv_ops();
}

static gboolean piv_is_present(gpointer card)
{
	return ccid_card_piv_is_present(card);
}

static void piv_free(gpointer card)
{
	ccid_card_piv_free(card);
}

static char *piv_describe(gpointer card)
{
	return g_strdup_printf("virtual PIV card in %s%s",
			       ccid_card_piv_get_dir(card),
			       ccid_card_piv_created(card) ?
			       " (created now: PIN 123456, PUK 12345678, "
			       "default management key)" : "");
}

static gboolean piv_set_inserted(gpointer card, gboolean inserted,
				 GError **error)
{
	/* The card tells its slot at once (NotifySlotChange). */
	ccid_card_piv_set_inserted(card, inserted);
	return TRUE;
}

/* --- ATRs ------------------------------------------------------------------- */

static char *atr_to_hex(const guint8 *atr, gsize len)
{
	GString *hex = g_string_sized_new(2 * len);

	for (gsize i = 0; i < len; i++)
		g_string_append_printf(hex, "%02X", atr[i]);
	return g_string_free(hex, len == 0);
}

static char *loopback_atr_hex(gpointer card)
{
	guint8 atr[CCID_EMU_MAX_ATR];

	return atr_to_hex(atr, ccid_card_loopback_atr(atr));
}

static char *virtual_atr_hex(gpointer card)
{
	guint8 atr[CCID_EMU_MAX_ATR];

	return card != NULL ? atr_to_hex(atr, ccid_card_virtual_get_atr(card,
								       atr)) :
	       NULL;
}

static char *nss_atr_hex(gpointer card)
{
	guint8 atr[CCID_EMU_MAX_ATR];

	/* libcacard's card of the token; none without a token. */
	return card != NULL ? atr_to_hex(atr, ccid_card_nss_get_atr(card,
								   atr)) :
	       NULL;
}

static char *piv_atr_hex(gpointer card)
{
	gsize len;
	const guint8 *atr = ccid_card_piv_atr(&len);

	return atr_to_hex(atr, len);
}

/* --- the table ----------------------------------------------------------- */

static const struct agent_card_kind_info kinds[AGENT_CARD_N_KINDS] = {
	[AGENT_CARD_VIRTUAL] = {
		.kind = AGENT_CARD_VIRTUAL,
		.name = "virtual",
		.syntax = "virtual, virtual:NSSDB_DIR",
		.parse = virtual_parse,
		.create = virtual_create,
		.ops = virtual_ops,
		.is_present = virtual_is_present,
		.free_card = virtual_free,
		.describe = virtual_describe,
		.atr_hex = virtual_atr_hex,
		.set_inserted = virtual_set_inserted,
	},
	[AGENT_CARD_LOOPBACK] = {
		.kind = AGENT_CARD_LOOPBACK,
		.name = "loopback",
		.syntax = "loopback",
		.parse = loopback_parse,
		.create = loopback_create,
		.ops = loopback_ops,
		.is_present = loopback_is_present,
		.free_card = loopback_free,
		.describe = loopback_describe,
		.atr_hex = loopback_atr_hex,
		.set_inserted = loopback_set_inserted,
	},
	[AGENT_CARD_PCSC] = {
		.kind = AGENT_CARD_PCSC,
		.name = "pcsc",
		.syntax = "pcsc:READER",
		.parse = pcsc_parse,
		.create = pcsc_create,
		.ops = pcsc_ops,
		.is_present = pcsc_is_present,
		.free_card = pcsc_free,
		.describe = pcsc_describe,
		.moved_what = "holds a real card (pcsc)",
		.moved_how = " it in the reader itself",
		.announce = TRUE,
	},
	[AGENT_CARD_NSS] = {
		.kind = AGENT_CARD_NSS,
		.name = "nss",
		.syntax = "nss:NSSDB_DIR",
		.parse = nss_parse,
		.create = nss_create,
		.ops = nss_ops,
		.is_present = nss_is_present,
		.free_card = nss_free,
		.describe = nss_describe,
		.atr_hex = nss_atr_hex,
		.moved_what = "holds a PKCS#11 token (nss)",
		.moved_how = " the token itself",
		.announce = TRUE,
	},
	[AGENT_CARD_PIV] = {
		.kind = AGENT_CARD_PIV,
		.name = "piv",
		.syntax = "piv, piv:DIR",
		.parse = piv_parse,
		.create = piv_create,
		.ops = piv_ops,
		.is_present = piv_is_present,
		.free_card = piv_free,
		.describe = piv_describe,
		.atr_hex = piv_atr_hex,
		.set_inserted = piv_set_inserted,
		/* Where the card lives, and whether it was just made with
		 * the default PIN: worth a line at start. */
		.announce = TRUE,
	},
};

const struct agent_card_kind_info *agent_card_kind_get(enum agent_card_kind kind)
{
	if ((unsigned)kind >= G_N_ELEMENTS(kinds))
		return NULL;
	return &kinds[kind];
}

const struct agent_card_kind_info *agent_card_kind_for_spec(const char *text)
{
	if (text == NULL)
		return NULL;
	for (guint i = 0; i < G_N_ELEMENTS(kinds); i++) {
		size_t n = strlen(kinds[i].name);

		if (strncmp(text, kinds[i].name, n) == 0 &&
		    (text[n] == '\0' || text[n] == ':'))
			return &kinds[i];
	}
	return NULL;
}

char *agent_card_kinds_syntax(void)
{
	GString *s = g_string_new(NULL);

	for (guint i = 0; i < G_N_ELEMENTS(kinds); i++) {
		if (i > 0)
			g_string_append(s, i + 1 == G_N_ELEMENTS(kinds) ?
					   " or " : ", ");
		g_string_append(s, kinds[i].syntax);
	}
	return g_string_free(s, FALSE);
}

gboolean agent_card_kinds_prepare_cacard(const struct agent_card_spec *soft,
					 const struct agent_card_spec *hw,
					 GError **error)
{
	/* The virtual card's defaults (ccid_card_virtual_new()). */
	static const char *const default_nicks[] = {
		CCID_NSSDB_NICK_ID, CCID_NSSDB_NICK_SIGN, CCID_NSSDB_NICK_ENC,
		NULL
	};
	struct ccid_cacard_config scfg = {
		.nssdb_dir = soft->nssdb_dir,
		.soft_nicknames = (const char *const *)soft->nicknames,
		.hw_nssdb_dir = hw->nssdb_dir,
	};
	g_autofree char *default_dir = NULL;
	gboolean created = FALSE;

	if (scfg.nssdb_dir == NULL) {
		default_dir = ccid_nssdb_default_dir();
		if (!ccid_nssdb_ensure(default_dir, &created, error))
			return FALSE;
		scfg.nssdb_dir = default_dir;
		if (scfg.soft_nicknames == NULL)
			scfg.soft_nicknames = default_nicks;
	}
	return ccid_cacard_service_prepare(&scfg, error);
}
