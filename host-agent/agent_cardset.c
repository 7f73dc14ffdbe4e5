/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Cards behind a device's slots (see agent_cardset.h).
 */
#include "agent_cardset.h"

#include <ccid_pin_guard.h>


/* How long a card may take to report its own removal/insertion (a virtual
 * card: through libcacard's event thread), and how often we look. */
#define CARDSET_EVENT_TIMEOUT_MS 3000
#define CARDSET_EVENT_POLL_MS    5

G_DEFINE_QUARK(agent-cardset-error-quark, agent_cardset_error)

struct owned_card {
	gpointer card;
	GDestroyNotify free_fn;
};

/* One slot's card as the set sees it. */
struct slot_card {
	agent_cardset *cs;
	unsigned index;
	ccid_slot *slot;
	const struct agent_card_kind_info *kind;    /* NULL: no card */
	gpointer card;
	ccid_card_pin_guard *guard;   /* in front of card, NULL when off */

	/* A change waiting for the card to report it. */
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
	agent_cardset_pin_refused_fn pin_refused;
	void *pin_refused_user;
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
	if (cs->slots[index].kind != NULL) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
			    "slot %u already has a card", index);
		return NULL;
	}
	cs->slots[index].slot = slot;
	return &cs->slots[index];
}

/* The guard tells why the guest's command got 63C1 without reaching the
 * card: a line at info level (g_message), with no PIN bytes. */
static void guard_refused(void *user, uint8_t ins, uint8_t ref)
{
	struct slot_card *sc = user;

	g_message("slot %u: PIN guard: refused the guest's %s of PIN "
		  "reference 0x%02X: the %s card has 1 try left, kept for the "
		  "host user (answered 63C1; card option pin_guard=off lets "
		  "the guest spend it)", sc->index, ccid_pin_cmd_name(ins), ref,
		  sc->kind->name);
	if (sc->cs->pin_refused != NULL)
		sc->cs->pin_refused(sc->cs->pin_refused_user, sc->index,
				    ccid_pin_cmd_name(ins), ref);
}

void agent_cardset_set_pin_refused_handler(agent_cardset *cs,
					   agent_cardset_pin_refused_fn fn,
					   void *user)
{
	cs->pin_refused = fn;
	cs->pin_refused_user = user;
}

/* Every card sits behind the PIN-retry guard unless its spec says
 * pin_guard=off: the one place all backends pass through. */
static void bind_card(struct slot_card *sc, enum ccid_pin_guard_policy policy)
{
	const struct ccid_card_pin_guard_config cfg = {
		.refused = guard_refused,
		.user = sc,
	};
	const struct ccid_card_ops *ops = sc->kind->ops(sc->card);
	gboolean present = sc->kind->is_present(sc->card);

	if (policy == CCID_PIN_GUARD_OFF) {
		ccid_slot_set_card(sc->slot, ops, sc->card, present);
		return;
	}
	sc->guard = ccid_card_pin_guard_new(sc->slot, ops, sc->card, &cfg);
	/* Registered after the card, so freed before it. */
	agent_cardset_own(sc->cs, sc->guard,
			  (GDestroyNotify)ccid_card_pin_guard_free);
	ccid_card_pin_guard_bind(sc->guard, present);
}

gpointer agent_cardset_add(agent_cardset *cs, unsigned index,
			   const struct agent_card_spec *spec, GError **error)
{
	const struct agent_card_kind_info *kind = agent_card_kind_get(spec->kind);
	struct slot_card *sc;
	struct agent_card_env env;
	gpointer card;

	g_return_val_if_fail(kind != NULL, NULL);
	sc = slot_for_new_card(cs, index, error);
	if (sc == NULL)
		return NULL;
	env.slot = sc->slot;
	env.index = index;
	env.ctx = cs->ctx;
	card = kind->create(&env, spec, error);
	if (card == NULL)
		return NULL;
	sc->kind = kind;
	sc->card = card;
	agent_cardset_own(cs, card, kind->free_card);
	bind_card(sc, spec->pin_guard);
	if (kind->announce) {
		g_autofree char *what = kind->describe(card);

		g_message("slot %u: %s", index, what);
	}
	return card;
}

ccid_card_loopback *agent_cardset_add_loopback(agent_cardset *cs,
					       unsigned index, GError **error)
{
	struct agent_card_spec spec = { .kind = AGENT_CARD_LOOPBACK };

	return agent_card_loopback_inner(agent_cardset_add(cs, index, &spec,
							   error));
}

/* --- insert and remove ----------------------------------------------------- */

static struct slot_card *slot_with_card(agent_cardset *cs, unsigned index)
{
	if (index >= G_N_ELEMENTS(cs->slots) || cs->slots[index].kind == NULL)
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

	return sc != NULL && sc->kind->is_present(sc->card);
}

const char *agent_cardset_card_name(agent_cardset *cs, unsigned index)
{
	struct slot_card *sc = slot_with_card(cs, index);

	return sc != NULL ? sc->kind->name : NULL;
}

char *agent_cardset_describe(agent_cardset *cs, unsigned index)
{
	struct slot_card *sc = slot_with_card(cs, index);

	return sc != NULL ? sc->kind->describe(sc->card) : NULL;
}

char *agent_cardset_atr_hex(agent_cardset *cs, unsigned index)
{
	struct slot_card *sc = slot_with_card(cs, index);

	return sc != NULL && sc->kind->atr_hex != NULL ?
	       sc->kind->atr_hex(sc->card) : NULL;
}

guint agent_cardset_pin_refusals(agent_cardset *cs, unsigned index)
{
	struct slot_card *sc = slot_with_card(cs, index);

	return sc != NULL && sc->guard != NULL ?
	       ccid_card_pin_guard_refusals(sc->guard) : 0;
}

static gboolean wait_poll_cb(gpointer data)
{
	struct slot_card *sc = data;
	g_autoptr(GError) error = NULL;

	if (sc->kind->is_present(sc->card) == sc->wait_for) {
		wait_finish(sc, TRUE, NULL);
		return G_SOURCE_REMOVE;    /* source already destroyed */
	}
	if (g_get_monotonic_time() < sc->wait_deadline)
		return G_SOURCE_CONTINUE;
	error = g_error_new(AGENT_CARDSET_ERROR, AGENT_CARDSET_ERROR_TIMED_OUT,
			    "slot %u: the %s card did not report itself %s "
			    "within %u ms", sc->index, sc->kind->name,
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
	if (sc->kind->set_inserted == NULL) {
		error = g_error_new(AGENT_CARDSET_ERROR,
				    AGENT_CARDSET_ERROR_BACKEND,
				    "slot %u %s: %s%s", index,
				    sc->kind->moved_what,
				    inserted ? "insert" : "remove",
				    sc->kind->moved_how);
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
	if (sc->kind->is_present(sc->card) == inserted) {
		done(user, FALSE, NULL);
		return;
	}
	if (!sc->kind->set_inserted(sc->card, inserted, &error)) {
		g_autoptr(GError) why = g_error_new(AGENT_CARDSET_ERROR,
			AGENT_CARDSET_ERROR_BACKEND, "slot %u: %s", index,
			error->message);

		done(user, FALSE, why);
		return;
	}
	if (sc->kind->is_present(sc->card) == inserted) {
		done(user, TRUE, NULL);    /* moved at once (loopback) */
		return;
	}
	/* The card moves through an event of its own (libcacard's): wait
	 * until it says so. */
	sc->done = done;
	sc->done_user = user;
	sc->wait_for = inserted;
	sc->wait_deadline = g_get_monotonic_time() +
			    (gint64)CARDSET_EVENT_TIMEOUT_MS * 1000;
	sc->wait = attach_timeout(cs->ctx, CARDSET_EVENT_POLL_MS, wait_poll_cb,
				  sc, "ccid-agent card event wait");
}
