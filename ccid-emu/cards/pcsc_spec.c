/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pcsc card's configuration and its command-line form (see
 * ccid_card_pcsc_spec_parse() in ccid_card_pcsc.h).
 */
#include "ccid_pcsc_private.h"

#include <stdarg.h>
#include <string.h>

G_DEFINE_QUARK(ccid-card-pcsc-error-quark, ccid_card_pcsc_error)

void ccid_card_pcsc_config_init(struct ccid_card_pcsc_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->reader = "";
	cfg->idle_ms = CCID_CARD_PCSC_DEFAULT_IDLE_MS;
	cfg->lock_timeout_ms = CCID_CARD_PCSC_DEFAULT_LOCK_TIMEOUT_MS;
}

static gboolean duration_error(const char *key, const char *text,
			       GError **error)
{
	g_set_error(error, CCID_CARD_PCSC_ERROR, CCID_CARD_PCSC_ERROR_SPEC,
		    "%s=%s: expected a duration of at most one hour in "
		    "milliseconds, e.g. %s=200, %s=200ms or %s=2s", key, text,
		    key, key, key);
	return FALSE;
}

/* "250", "250ms", "3s" -> milliseconds, at most CCID_CARD_PCSC_MAX_MS. */
static gboolean parse_duration(const char *key, const char *text, guint *ms,
			       GError **error)
{
	guint64 v = 0, scale = 1;
	const char *p = text;

	if (!g_ascii_isdigit(*p))
		return duration_error(key, text, error);
	for (; g_ascii_isdigit(*p); p++) {
		v = v * 10 + (guint64)(*p - '0');
		if (v > CCID_CARD_PCSC_MAX_MS)
			return duration_error(key, text, error);
	}
	if (strcmp(p, "s") == 0)
		scale = 1000;
	else if (*p != '\0' && strcmp(p, "ms") != 0)
		return duration_error(key, text, error);
	if (v * scale > CCID_CARD_PCSC_MAX_MS)
		return duration_error(key, text, error);
	*ms = (guint)(v * scale);
	return TRUE;
}

static gboolean spec_error(GError **error, const char *fmt, ...)
	G_GNUC_PRINTF(2, 3);

static gboolean spec_error(GError **error, const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error_literal(error, CCID_CARD_PCSC_ERROR,
			    CCID_CARD_PCSC_ERROR_SPEC, msg);
	return FALSE;
}

/* Whether @part looks like "word=value", word made of [a-z_]. */
static gboolean is_option(const char *part)
{
	const char *eq = strchr(part, '=');

	if (eq == NULL || eq == part)
		return FALSE;
	for (const char *p = part; p < eq; p++)
		if (!g_ascii_islower(*p) && *p != '_')
			return FALSE;
	return TRUE;
}

gboolean ccid_card_pcsc_spec_parse(const char *text, char **reader,
				   struct ccid_card_pcsc_config *cfg,
				   GError **error)
{
	g_auto(GStrv) parts = g_strsplit(text != NULL ? text : "", ",", -1);
	guint n = g_strv_length(parts);
	guint first_opt = n;
	gboolean seen_idle = FALSE, seen_lock = FALSE;

	*reader = NULL;
	/* Options are the trailing "key=value" parts; the rest, commas
	 * included, is the reader name. */
	while (first_opt > 0 && is_option(parts[first_opt - 1]))
		first_opt--;

	for (guint i = first_opt; i < n; i++) {
		char *eq = strchr(parts[i], '=');
		const char *key = parts[i];

		*eq = '\0';
		if (strcmp(key, "idle") == 0) {
			if (seen_idle)
				return spec_error(error, "pcsc option '%s' "
						  "given twice", key);
			seen_idle = TRUE;
			if (!parse_duration(key, eq + 1, &cfg->idle_ms, error))
				return FALSE;
		} else if (strcmp(key, "lock_timeout") == 0) {
			if (seen_lock)
				return spec_error(error, "pcsc option '%s' "
						  "given twice", key);
			seen_lock = TRUE;
			if (!parse_duration(key, eq + 1,
					    &cfg->lock_timeout_ms, error))
				return FALSE;
			if (cfg->lock_timeout_ms == 0)
				return spec_error(error, "%s must be at least "
						  "1 ms", key);
		} else {
			return spec_error(error, "unknown pcsc option '%s' "
					  "(expected idle= or lock_timeout=)",
					  key);
		}
	}
	{
		GString *name = g_string_new(NULL);

		for (guint i = 0; i < first_opt; i++)
			g_string_append_printf(name, "%s%s", i ? "," : "",
					       parts[i]);
		*reader = g_string_free(name, FALSE);
	}
	return TRUE;
}
