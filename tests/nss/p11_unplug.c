/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A test-only PKCS#11 module that makes a software token removable: it
 * forwards every call to a real module (softhsm2) and, while a control
 * file exists, reports every slot of it empty, as a reader whose token
 * was pulled out.  softhsm2 keeps its tokens in memory, so nothing done
 * from another process can take its token away; this module can.
 *
 * Environment (read at C_GetFunctionList):
 *   CCID_P11_UNPLUG_MODULE   the real module (default: softhsm2's)
 *   CCID_P11_UNPLUG_FILE     the control file: exists = token out
 *
 * While the token is out: C_GetSlotInfo clears CKF_TOKEN_PRESENT,
 * C_GetSlotList(tokenPresent) lists no slot, and C_GetTokenInfo,
 * C_OpenSession, C_GetMechanismList/Info and C_InitToken answer
 * CKR_TOKEN_NOT_PRESENT.  When a slot call first sees the file, the real
 * module's sessions on every slot are closed, so open sessions become
 * invalid and the login is gone, as with a real removal; a re-inserted
 * token therefore looks like a new one (NSS bumps its series).  Session
 * calls are forwarded untouched: they fail on their own once their
 * session is closed.  C_WaitForSlotEvent is forwarded too (softhsm2 does
 * not implement it, so NSS polls C_GetSlotInfo, which is what we answer).
 *
 * Process-wide state, as any PKCS#11 module has: one real module per
 * process.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pkcs11.h>

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *real_handle;
static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST wrapped;
static char *control_file;
static int was_out;

/* Closes the real module's sessions on every slot, once per removal. */
static void close_everything(void)
{
	CK_SLOT_ID slots[64];
	CK_ULONG n = sizeof(slots) / sizeof(slots[0]);

	if (real->C_GetSlotList(CK_FALSE, slots, &n) != CKR_OK)
		return;
	for (CK_ULONG i = 0; i < n; i++)
		(void)real->C_CloseAllSessions(slots[i]);
}

/* Is the token out?  Also notices the moment it goes out. */
static int token_out(void)
{
	int out = control_file != NULL && access(control_file, F_OK) == 0;

	pthread_mutex_lock(&lock);
	if (out && !was_out)
		close_everything();
	was_out = out;
	pthread_mutex_unlock(&lock);
	return out;
}

static CK_RV w_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list,
			   CK_ULONG_PTR count)
{
	if (present && token_out()) {
		if (count == NULL)
			return CKR_ARGUMENTS_BAD;
		*count = 0;
		return CKR_OK;
	}
	return real->C_GetSlotList(present, list, count);
}

static CK_RV w_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
	CK_RV rv = real->C_GetSlotInfo(slot, info);

	if (rv == CKR_OK && token_out())
		info->flags &= ~(CK_FLAGS)CKF_TOKEN_PRESENT;
	return rv;
}

static CK_RV w_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	return token_out() ? CKR_TOKEN_NOT_PRESENT :
		real->C_GetTokenInfo(slot, info);
}

static CK_RV w_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list,
				CK_ULONG_PTR count)
{
	return token_out() ? CKR_TOKEN_NOT_PRESENT :
		real->C_GetMechanismList(slot, list, count);
}

static CK_RV w_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
				CK_MECHANISM_INFO_PTR info)
{
	return token_out() ? CKR_TOKEN_NOT_PRESENT :
		real->C_GetMechanismInfo(slot, type, info);
}

static CK_RV w_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG len,
			 CK_UTF8CHAR_PTR label)
{
	return token_out() ? CKR_TOKEN_NOT_PRESENT :
		real->C_InitToken(slot, pin, len, label);
}

static CK_RV w_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
			   CK_NOTIFY notify, CK_SESSION_HANDLE_PTR session)
{
	return token_out() ? CKR_TOKEN_NOT_PRESENT :
		real->C_OpenSession(slot, flags, app, notify, session);
}

static CK_RV load_real(void)
{
	const char *path = getenv("CCID_P11_UNPLUG_MODULE");
	const char *file = getenv("CCID_P11_UNPLUG_FILE");
	CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);

	if (path == NULL || path[0] == '\0')
		path = DEFAULT_MODULE;
	real_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (real_handle == NULL) {
		fprintf(stderr, "p11-unplug: cannot load %s: %s\n", path,
			dlerror());
		return CKR_GENERAL_ERROR;
	}
	*(void **)&get_list = dlsym(real_handle, "C_GetFunctionList");
	if (get_list == NULL || get_list(&real) != CKR_OK || real == NULL) {
		fprintf(stderr, "p11-unplug: %s has no usable "
			"C_GetFunctionList\n", path);
		return CKR_GENERAL_ERROR;
	}
	if (file != NULL && file[0] != '\0')
		control_file = strdup(file);
	wrapped = *real;
	wrapped.C_GetFunctionList = C_GetFunctionList;
	wrapped.C_GetSlotList = w_GetSlotList;
	wrapped.C_GetSlotInfo = w_GetSlotInfo;
	wrapped.C_GetTokenInfo = w_GetTokenInfo;
	wrapped.C_GetMechanismList = w_GetMechanismList;
	wrapped.C_GetMechanismInfo = w_GetMechanismInfo;
	wrapped.C_InitToken = w_InitToken;
	wrapped.C_OpenSession = w_OpenSession;
	return CKR_OK;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	CK_RV rv = CKR_OK;

	if (list == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&lock);
	if (real == NULL)
		rv = load_real();
	pthread_mutex_unlock(&lock);
	if (rv == CKR_OK)
		*list = &wrapped;
	return rv;
}
