/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Cards behind a device's slots (see agent_cardset.h).
 */
#include "agent_cardset.h"


/* How long a virtual card may take to report its own removal/insertion
 * through libcacard's event thread, and how often we look. */
#define CARDSET_EVENT_TIMEOUT_MS 3000
#define CARDSET_EVENT_POLL_MS    5

G_DEFINE_QUARK(agent-cardset-error-quark, agent_cardset_error)

struct owned_card {
	gpointer card;
	GDestroyNotify free_fn;
};

enum slot_card_kind {
	SLOT_CARD_NONE,
	SLOT_CARD_LOOPBACK,
	SLOT_CARD_VIRTUAL,
	SLOT_CARD_PCSC,
	SLOT_CARD_NSS,
	SLOT_CARD_CLASS,     /* agent_cardset_add_card() */
};

/* One slot's card as the set sees it. */
struct slot_card {
	agent_cardset *cs;
	unsigned index;
	ccid_slot *slot;
	enum slot_card_kind kind;
	gpointer card;
	const struct agent_cardset_card_class *cls;

	/* Loopback: the gate's notion of presence, and the card's timer. */
	gboolean present;
	GSource *timer;

	/* A change waiting for the virtual card's event. */
	GSource *wait;
	gint64 wait_deadline;
	gboolean wait_for;
	agent_cardset_done_fn done;
	void *done_user;
};

struct agent_cardset {
	ccid_dev *dev;
	GMainContext *ctx;
	GArray *owned;                       /* struct owned_card */
	struct slot_card slots[CCID_EMU_MAX_SLOTS];
};

static void destroy_source(GSource **src)
{
	if (*src != NULL) {
		g_source_destroy(*src);
		g_source_unref(*src);
		*src = NULL;
	}
}

static GSource *attach_timeout(GMainContext *ctx, guint ms, GSourceFunc fn,
			       gpointer data, const char *name)
{
	GSource *src = g_timeout_source_new(ms);

	g_source_set_callback(src, fn, data, NULL);
	g_source_set_name(src, name);
	g_source_attach(src, ctx);
	return src;    /* caller keeps this reference */
}

/* --- loopback timer -------------------------------------------------------- */

static gboolean loop_timer_cb(gpointer data)
{
	struct slot_card *sc = data;

	g_source_unref(sc->timer);
	sc->timer = NULL;
	ccid_card_loopback_timer_fired(sc->card);
	return G_SOURCE_REMOVE;
}

static void loop_timer_arm(void *user, uint32_t delay_ms)
{
	struct slot_card *sc = user;

	destroy_source(&sc->timer);
	sc->timer = attach_timeout(sc->cs->ctx, delay_ms, loop_timer_cb, sc,
				   "ccid-emu loopback delay");
}

static void loop_timer_disarm(void *user)
{
	struct slot_card *sc = user;

	destroy_source(&sc->timer);
}

static const struct ccid_card_loopback_timer_ops loop_timer_ops = {
	.arm = loop_timer_arm,
	.disarm = loop_timer_disarm,
};

/* --- the loopback gate ----------------------------------------------------- */

/*
 * The loopback card has no notion of being pulled out, so the set stands
 * between it and the slot: while the card is out the gate answers every
 * operation "no card" itself.  The device already refuses commands to an
 * absent card; the gate makes the backend agree rather than trusting that.
 */
static int gate_power_on(void *opaque)
{
	struct slot_card *sc = opaque;

	if (!sc->present) {
		ccid_slot_power_on_done(sc->slot, CCID_CARD_ENOCARD, NULL, 0);
		return 0;
	}
	return ccid_card_loopback_ops()->power_on(sc->card);
}

static void gate_power_off(void *opaque)
{
	struct slot_card *sc = opaque;

	ccid_card_loopback_ops()->power_off(sc->card);
}

static int gate_transmit(void *opaque, const uint8_t *apdu, size_t len)
{
	struct slot_card *sc = opaque;

	if (!sc->present) {
		ccid_slot_apdu_done(sc->slot, CCID_CARD_ENOCARD, NULL, 0);
		return 0;
	}
	return ccid_card_loopback_ops()->transmit(sc->card, apdu, len);
}

static void gate_cancel(void *opaque)
{
	struct slot_card *sc = opaque;

	ccid_card_loopback_ops()->cancel(sc->card);
}

static void gate_detach(void *opaque)
{
	struct slot_card *sc = opaque;
	const struct ccid_card_ops *inner = ccid_card_loopback_ops();

	if (inner->detach != NULL)
		inner->detach(sc->card);
}

static const struct ccid_card_ops gate_ops = {
	.name = "loopback",
	.power_on = gate_power_on,
	.power_off = gate_power_off,
	.transmit = gate_transmit,
	.cancel = gate_cancel,
	.detach = gate_detach,
};

/* --- lifetime -------------------------------------------------------------- */

agent_cardset *agent_cardset_new(ccid_dev *dev, GMainContext *ctx)
{
	agent_cardset *cs = g_new0(agent_cardset, 1);

	cs->dev = dev;
	cs->ctx = g_main_context_ref(ctx != NULL ? ctx :
				     g_main_context_default());
	cs->owned = g_array_new(FALSE, FALSE, sizeof(struct owned_card));
	for (unsigned i = 0; i < G_N_ELEMENTS(cs->slots); i++) {
		cs->slots[i].cs = cs;
		cs->slots[i].index = i;
	}
	return cs;
}

static void wait_finish(struct slot_card *sc, gboolean changed,
			const GError *error)
{
	agent_cardset_done_fn done = sc->done;
	void *user = sc->done_user;

	destroy_source(&sc->wait);
	sc->done = NULL;
	sc->done_user = NULL;
	if (done != NULL)
		done(user, changed, error);
}

void agent_cardset_free(agent_cardset *cs)
{
	if (cs == NULL)
		return;
	for (unsigned i = 0; i < G_N_ELEMENTS(cs->slots); i++) {
		struct slot_card *sc = &cs->slots[i];

		if (sc->wait != NULL) {
			g_autoptr(GError) error = g_error_new(AGENT_CARDSET_ERROR,
				AGENT_CARDSET_ERROR_CANCELLED,
				"slot %u: shutting down before the card "
				"moved", i);

			wait_finish(sc, FALSE, error);
		}
		destroy_source(&sc->timer);
	}
	for (guint i = cs->owned->len; i > 0; i--) {
		struct owned_card *c = &g_array_index(cs->owned,
						      struct owned_card, i - 1);

		c->free_fn(c->card);
	}
	g_array_unref(cs->owned);
	g_main_context_unref(cs->ctx);
	g_free(cs);
}

ccid_dev *agent_cardset_get_dev(agent_cardset *cs)
{
	return cs->dev;
}

GMainContext *agent_cardset_get_context(agent_cardset *cs)
{
	return cs->ctx;
}

void agent_cardset_own(agent_cardset *cs, gpointer card,
		       GDestroyNotify free_fn)
{
	struct owned_card c = { card, free_fn };

	g_array_append_val(cs->owned, c);
}

/* The slot record for @index if the device has that slot and no card was
 * added to it yet. */
static struct slot_card *slot_for_new_card(agent_cardset *cs, unsigned index,
					   GError **error)
{
	ccid_slot *slot = cs->dev != NULL ? ccid_dev_get_slot(cs->dev, index) :
			  NULL;

	if (slot == NULL || index >= G_N_ELEMENTS(cs->slots)) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "no slot %u on the device", index);
		return NULL;
	}
	if (cs->slots[index].kind != SLOT_CARD_NONE) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
			    "slot %u already has a card", index);
		return NULL;
	}
	cs->slots[index].slot = slot;
	return &cs->slots[index];
}

static void loopback_free_notify(gpointer p)
{
	ccid_card_loopback_free(p);
}

static void virtual_free_notify(gpointer p)
{
	ccid_card_virtual_free(p);
}

ccid_card_loopback *agent_cardset_add_loopback(agent_cardset *cs,
					       unsigned index, GError **error)
{
	struct slot_card *sc = slot_for_new_card(cs, index, error);
	ccid_card_loopback *card;

	if (sc == NULL)
		return NULL;
	card = ccid_card_loopback_new(sc->slot, &loop_timer_ops, sc);
	if (card == NULL) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
			    "cannot create the loopback card for slot %u",
			    index);
		return NULL;
	}
	sc->kind = SLOT_CARD_LOOPBACK;
	sc->card = card;
	sc->present = TRUE;
	agent_cardset_own(cs, card, loopback_free_notify);
	ccid_slot_set_card(sc->slot, &gate_ops, sc, true);
	return card;
}

ccid_card_virtual *agent_cardset_add_virtual(agent_cardset *cs,
					     unsigned index,
					     const struct ccid_card_virtual_config *cfg,
					     GError **error)
{
	struct slot_card *sc = slot_for_new_card(cs, index, error);
	struct ccid_card_virtual_config vcfg = { 0 };
	ccid_card_virtual *card;

	if (sc == NULL)
		return NULL;
	if (cfg != NULL)
		vcfg = *cfg;
	vcfg.context = cs->ctx;
	card = ccid_card_virtual_new(sc->slot, &vcfg, error);
	if (card == NULL)
		return NULL;
	sc->kind = SLOT_CARD_VIRTUAL;
	sc->card = card;
	agent_cardset_own(cs, card, virtual_free_notify);
	ccid_slot_set_card(sc->slot, ccid_card_virtual_ops(), card,
			   ccid_card_virtual_is_present(card));
	return card;
}

static void pcsc_free_notify(gpointer p)
{
	ccid_card_pcsc_free(p);
}

/* The pcsc card's events are worth a line in the agent's log. */
static void pcsc_event(void *user, enum ccid_card_pcsc_event ev,
		       const char *detail)
{
	struct slot_card *sc = user;

	g_message("slot %u: %s", sc->index, detail);
}

ccid_card_pcsc *agent_cardset_add_pcsc(agent_cardset *cs, unsigned index,
				       const struct ccid_card_pcsc_config *cfg,
				       GError **error)
{
	struct slot_card *sc = slot_for_new_card(cs, index, error);
	struct ccid_card_pcsc_config pcfg;
	ccid_card_pcsc *card;

	if (sc == NULL)
		return NULL;
	if (cfg != NULL)
		pcfg = *cfg;
	else
		ccid_card_pcsc_config_init(&pcfg);
	pcfg.context = cs->ctx;
	pcfg.event = pcsc_event;
	pcfg.event_user = sc;
	card = ccid_card_pcsc_new(sc->slot, &pcfg, error);
	if (card == NULL)
		return NULL;
	sc->kind = SLOT_CARD_PCSC;
	sc->card = card;
	agent_cardset_own(cs, card, pcsc_free_notify);
	ccid_slot_set_card(sc->slot, ccid_card_pcsc_ops(), card,
			   ccid_card_pcsc_is_present(card));
	g_message("slot %u: pcsc card on reader '%s' (%s)", index,
		  ccid_card_pcsc_get_reader(card),
		  ccid_card_pcsc_is_present(card) ? "card inserted" :
						    "no card yet");
	return card;
}

static void nss_free_notify(gpointer p)
{
	ccid_card_nss_free(p);
}

ccid_card_nss *agent_cardset_add_nss(agent_cardset *cs, unsigned index,
				     const struct ccid_card_nss_config *cfg,
				     GError **error)
{
	struct slot_card *sc = slot_for_new_card(cs, index, error);
	struct ccid_card_nss_config ncfg = *cfg;
	ccid_card_nss *card;

	if (sc == NULL)
		return NULL;
	ncfg.context = cs->ctx;
	card = ccid_card_nss_new(sc->slot, &ncfg, error);
	if (card == NULL)
		return NULL;
	sc->kind = SLOT_CARD_NSS;
	sc->card = card;
	agent_cardset_own(cs, card, nss_free_notify);
	ccid_slot_set_card(sc->slot, ccid_card_nss_ops(), card,
			   ccid_card_nss_is_present(card));
	g_message("slot %u: nss card on token reader '%s' (%s)", index,
		  ccid_card_nss_get_reader(card),
		  ccid_card_nss_is_present(card) ? "token present" :
						   "no token yet");
	return card;
}

gboolean agent_cardset_add_card(agent_cardset *cs, unsigned index,
				const struct agent_cardset_card_class *cls,
				gpointer card, GDestroyNotify free_fn,
				GError **error)
{
	struct slot_card *sc = slot_for_new_card(cs, index, error);

	if (sc == NULL)
		return FALSE;
	sc->kind = SLOT_CARD_CLASS;
	sc->card = card;
	sc->cls = cls;
	agent_cardset_own(cs, card, free_fn);
	return TRUE;
}

/* --- insert and remove ----------------------------------------------------- */

static struct slot_card *slot_with_card(agent_cardset *cs, unsigned index)
{
	if (index >= G_N_ELEMENTS(cs->slots) ||
	    cs->slots[index].kind == SLOT_CARD_NONE)
		return NULL;
	return &cs->slots[index];
}

gboolean agent_cardset_has_card(agent_cardset *cs, unsigned index)
{
	return slot_with_card(cs, index) != NULL;
}

gboolean agent_cardset_is_present(agent_cardset *cs, unsigned index)
{
	struct slot_card *sc = slot_with_card(cs, index);

	if (sc == NULL)
		return FALSE;
	if (sc->kind == SLOT_CARD_VIRTUAL)
		return ccid_card_virtual_is_present(sc->card);
	if (sc->kind == SLOT_CARD_PCSC)
		return ccid_card_pcsc_is_present(sc->card);
	if (sc->kind == SLOT_CARD_NSS)
		return ccid_card_nss_is_present(sc->card);
	if (sc->kind == SLOT_CARD_CLASS)
		return sc->cls->is_present(sc->card);
	return sc->present;
}

const char *agent_cardset_card_name(agent_cardset *cs, unsigned index)
{
	struct slot_card *sc = slot_with_card(cs, index);

	if (sc == NULL)
		return NULL;
	switch (sc->kind) {
	case SLOT_CARD_VIRTUAL:
		return "virtual";
	case SLOT_CARD_PCSC:
		return "pcsc";
	case SLOT_CARD_NSS:
		return "nss";
	case SLOT_CARD_CLASS:
		return sc->cls->name;
	default:
		return "loopback";
	}
}

static gboolean wait_poll_cb(gpointer data)
{
	struct slot_card *sc = data;
	g_autoptr(GError) error = NULL;

	if (ccid_card_virtual_is_present(sc->card) == sc->wait_for) {
		wait_finish(sc, TRUE, NULL);
		return G_SOURCE_REMOVE;    /* source already destroyed */
	}
	if (g_get_monotonic_time() < sc->wait_deadline)
		return G_SOURCE_CONTINUE;
	error = g_error_new(AGENT_CARDSET_ERROR, AGENT_CARDSET_ERROR_TIMED_OUT,
			    "slot %u: libcacard did not report the card %s "
			    "within %u ms", sc->index,
			    sc->wait_for ? "inserted" : "removed",
			    CARDSET_EVENT_TIMEOUT_MS);
	wait_finish(sc, FALSE, error);
	return G_SOURCE_REMOVE;
}

void agent_cardset_set_inserted(agent_cardset *cs, unsigned index,
				gboolean inserted, agent_cardset_done_fn done,
				void *user)
{
	struct slot_card *sc = slot_with_card(cs, index);
	g_autoptr(GError) error = NULL;

	if (sc == NULL) {
		error = g_error_new(AGENT_CARDSET_ERROR,
				    AGENT_CARDSET_ERROR_NO_CARD,
				    "slot %u has no card that can be %s", index,
				    inserted ? "inserted" : "removed");
		done(user, FALSE, error);
		return;
	}
	if (sc->kind == SLOT_CARD_NSS) {
		error = g_error_new(AGENT_CARDSET_ERROR,
				    AGENT_CARDSET_ERROR_BACKEND,
				    "slot %u holds a PKCS#11 token (nss): %s "
				    "the token itself", index,
				    inserted ? "insert" : "remove");
		done(user, FALSE, error);
		return;
	}
	if (sc->kind == SLOT_CARD_PCSC) {
		error = g_error_new(AGENT_CARDSET_ERROR,
				    AGENT_CARDSET_ERROR_BACKEND,
				    "slot %u holds a real card (pcsc): %s it "
				    "in the reader itself", index,
				    inserted ? "insert" : "remove");
		done(user, FALSE, error);
		return;
	}
	if (sc->kind == SLOT_CARD_CLASS && sc->cls->set_inserted == NULL) {
		error = g_error_new(AGENT_CARDSET_ERROR,
				    AGENT_CARDSET_ERROR_BACKEND,
				    "slot %u: a %s card cannot be %s", index,
				    sc->cls->name,
				    inserted ? "inserted" : "removed");
		done(user, FALSE, error);
		return;
	}
	if (sc->wait != NULL) {
		error = g_error_new(AGENT_CARDSET_ERROR, AGENT_CARDSET_ERROR_BUSY,
				    "slot %u: the previous insert/remove has "
				    "not completed yet", index);
		done(user, FALSE, error);
		return;
	}
	if (agent_cardset_is_present(cs, index) == inserted) {
		done(user, FALSE, NULL);
		return;
	}
	if (sc->kind == SLOT_CARD_CLASS) {
		sc->cls->set_inserted(sc->card, inserted);
		done(user, TRUE, NULL);
		return;
	}
	if (sc->kind == SLOT_CARD_LOOPBACK) {
		sc->present = inserted;
		if (inserted) {
			ccid_slot_card_inserted(sc->slot);
		} else {
			/* The op in flight is cancelled by the removal; then
			 * the card loses power as a real one would. */
			ccid_slot_card_removed(sc->slot);
			ccid_card_loopback_ops()->power_off(sc->card);
		}
		done(user, TRUE, NULL);
		return;
	}
	/* Virtual: libcacard moves the card and tells the card backend,
	 * which tells the slot, through an event on our context. */
	if (!ccid_card_virtual_set_inserted(sc->card, inserted, &error)) {
		g_autoptr(GError) why = g_error_new(AGENT_CARDSET_ERROR,
			AGENT_CARDSET_ERROR_BACKEND, "slot %u: %s", index,
			error->message);

		done(user, FALSE, why);
		return;
	}
	sc->done = done;
	sc->done_user = user;
	sc->wait_for = inserted;
	sc->wait_deadline = g_get_monotonic_time() +
			    (gint64)CARDSET_EVENT_TIMEOUT_MS * 1000;
	sc->wait = attach_timeout(cs->ctx, CARDSET_EVENT_POLL_MS, wait_poll_cb,
				  sc, "ccid-agent card event wait");
}
